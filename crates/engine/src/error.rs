//! Errors with stable codes that JavaScript callers can branch on (`err.code`).

use std::fmt;

/// Stable error codes. The string form is part of the public API: never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// An argument or config value is missing, of the wrong type, or out of range.
    InvalidArg,
    /// Redis could not be reached or answered with an error.
    RedisUnavailable,
    /// Kafka (or the JavaScript producer) refused or failed to publish.
    KafkaPublish,
    /// The instance was closed with `close()`.
    Closed,
    /// A bug or an unexpected state; the message says what happened.
    Internal,
}

impl AsRef<str> for ErrorCode {
    fn as_ref(&self) -> &str {
        match self {
            ErrorCode::InvalidArg => "ERR_INVALID_ARG",
            ErrorCode::RedisUnavailable => "ERR_REDIS_UNAVAILABLE",
            ErrorCode::KafkaPublish => "ERR_KAFKA_PUBLISH",
            ErrorCode::Closed => "ERR_CLOSED",
            ErrorCode::Internal => "ERR_INTERNAL",
        }
    }
}

/// An error of the retry core: a code, a message naming what was wrong, and the cause chain.
#[derive(Debug, Clone)]
pub struct RetryError {
    /// The stable code.
    pub code: ErrorCode,
    /// What went wrong, naming the argument or server and the value.
    pub message: String,
    /// Lower-level causes, outermost first (kept as text so the error stays `Send + Clone`).
    pub causes: Vec<String>,
    /// Whether retrying the same operation cannot succeed (a publish the broker refuses for the
    /// message or topic itself, see `publisher::is_permanent`). Internal: never changes the code.
    pub permanent: bool,
    /// What a bulk operation that failed midway had done before it failed, as the property JS
    /// sees on the error and its value (`requeued: 1`): its count is not lost with its result.
    pub done_before: Option<(&'static str, u64)>,
}

/// Result alias of the retry core.
pub type Result<T> = std::result::Result<T, RetryError>;

impl RetryError {
    /// A new error without a cause.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        RetryError {
            code,
            message: message.into(),
            causes: Vec::new(),
            permanent: false,
            done_before: None,
        }
    }

    /// Shorthand for an `ERR_INVALID_ARG` error.
    pub fn invalid_arg(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidArg, message)
    }

    /// The same error about one item of a batch (`pushMany`): its message names the index.
    pub fn in_item(mut self, index: usize) -> Self {
        self.message = format!("items[{index}]: {}", self.message);
        self
    }

    /// Shorthand for an `ERR_CLOSED` error.
    pub fn closed() -> Self {
        Self::new(
            ErrorCode::Closed,
            "this KafkaRetry instance was closed with close()",
        )
    }

    /// Marks the error as one that retrying the same operation cannot fix.
    pub fn permanent(mut self, permanent: bool) -> Self {
        self.permanent = permanent;
        self
    }

    /// The error of a bulk operation that had done `count` (`requeued`, `removed`) before it
    /// failed: said in the message and kept as [`Self::done_before`].
    pub fn after(mut self, what: &'static str, count: u64) -> Self {
        self.message = format!(
            "{} ({what} {count} before this failure; the rest are still dead letters, and the same call goes on with them)",
            self.message
        );
        self.done_before = Some((what, count));
        self
    }

    /// Adds a cause at the end of the chain.
    pub fn caused_by(mut self, cause: impl fmt::Display) -> Self {
        self.causes.push(cause.to_string());
        self
    }

    /// An `ERR_REDIS_UNAVAILABLE` error for a failed Redis operation.
    pub fn redis(what: &str, err: redis::RedisError) -> Self {
        Self::new(ErrorCode::RedisUnavailable, format!("Redis {what} failed")).caused_by(err)
    }
}

impl fmt::Display for RetryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.message)?;
        for cause in &self.causes {
            write!(f, "\nCaused by: {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for RetryError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_stable_strings() {
        assert_eq!(ErrorCode::InvalidArg.as_ref(), "ERR_INVALID_ARG");
        assert_eq!(
            ErrorCode::RedisUnavailable.as_ref(),
            "ERR_REDIS_UNAVAILABLE"
        );
        assert_eq!(ErrorCode::KafkaPublish.as_ref(), "ERR_KAFKA_PUBLISH");
        assert_eq!(ErrorCode::Closed.as_ref(), "ERR_CLOSED");
    }

    #[test]
    fn display_keeps_the_cause_chain() {
        let err = RetryError::invalid_arg("bad topic").caused_by("inner");
        assert_eq!(err.to_string(), "bad topic\nCaused by: inner");
    }
}
