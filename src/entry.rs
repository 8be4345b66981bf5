//! What the schedule stores per message, and what a dead letter holds.

use serde::{Deserialize, Serialize};

/// One scheduled message, stored as JSON in the entries hash under its id.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    /// Topic to re-publish to.
    pub topic: String,
    /// Kafka message key (the original's `event`).
    pub event: String,
    /// Payload JSON text, exactly as pushed.
    pub value: String,
    /// The `delay` option as given (minutes, text), re-published unchanged.
    pub delay: String,
    /// Retries allowed.
    pub max_retry: u64,
    /// Retries spent, counting this one (the pushed `retryCount` + 1).
    pub retry_count: u64,
    /// When the message falls due, ms since the epoch.
    pub due_at: u64,
    /// When the message first failed (carried across retries in the `firstFailedAt` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<u64>,
    /// The error of the latest failure, when the consumer passed one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<ErrorInfo>,
    /// The delay this attempt actually waits (after backoff and jitter), in ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub waited_ms: Option<u64>,
}

/// Why a message failed: an `Error`'s message and name (or a string's text and `"Error"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// `error.message`.
    pub message: String,
    /// `error.name`.
    pub name: String,
}

impl Entry {
    /// Whether this attempt is past the allowed retries: compared as numbers, never as text
    /// (the original compared `'10' <= '3'` as strings).
    pub fn exhausted(&self) -> bool {
        self.retry_count > self.max_retry
    }

    /// The Kafka headers of the re-published message: the original's four (`delay` stays the base
    /// delay), then `firstFailedAt` (so the next failure keeps it) and `retryDelayMs` (what this
    /// attempt actually waited, after backoff).
    pub fn headers(&self) -> Vec<(String, String)> {
        let mut headers = vec![
            ("delay".to_string(), self.delay.clone()),
            ("maxRetry".to_string(), self.max_retry.to_string()),
            ("retryCount".to_string(), self.retry_count.to_string()),
            ("executeAt".to_string(), self.due_at.to_string()),
        ];
        if let Some(first) = self.first_failed_at {
            headers.push(("firstFailedAt".to_string(), first.to_string()));
        }
        if let Some(waited) = self.waited_ms {
            headers.push(("retryDelayMs".to_string(), waited.to_string()));
        }
        headers
    }
}

/// A dead letter as written to the `dlqName` hash: one field per message, never overwritten by
/// another message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The message id (also the hash field).
    pub id: String,
    /// Topic it was meant for.
    pub topic: String,
    /// Kafka key.
    pub event: String,
    /// Payload JSON text.
    pub value: String,
    /// The retry options at death, as header strings.
    pub options: DeadLetterOptions,
    /// When it was dead-lettered, ms since the epoch.
    pub died_at: u64,
    /// When it first failed, ms since the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<u64>,
    /// The last failure's error, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// The `keyPrefix` of the schedule it came from, so a requeue sends it back there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// The options of a dead letter, as the header strings the original stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetterOptions {
    /// `delay` header.
    pub delay: String,
    /// `maxRetry` header.
    pub max_retry: String,
    /// `retryCount` header.
    pub retry_count: String,
    /// `executeAt` header.
    pub execute_at: String,
}

impl DeadLetter {
    /// The dead letter of an exhausted entry of the schedule `key_prefix`.
    pub fn of(id: &str, entry: &Entry, died_at: u64, key_prefix: &str) -> Self {
        DeadLetter {
            id: id.to_string(),
            topic: entry.topic.clone(),
            event: entry.event.clone(),
            value: entry.value.clone(),
            options: DeadLetterOptions {
                delay: entry.delay.clone(),
                max_retry: entry.max_retry.to_string(),
                retry_count: entry.retry_count.to_string(),
                execute_at: entry.due_at.to_string(),
            },
            died_at,
            first_failed_at: entry.first_failed_at,
            error: entry.last_error.clone(),
            key_prefix: Some(key_prefix.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(retry_count: u64, max_retry: u64) -> Entry {
        Entry {
            topic: "t".into(),
            event: "e".into(),
            value: "{}".into(),
            delay: "0.5".into(),
            max_retry,
            retry_count,
            due_at: 42,
            first_failed_at: None,
            last_error: None,
            waited_ms: None,
        }
    }

    #[test]
    fn exhausted_compares_numbers() {
        assert!(!entry(3, 3).exhausted());
        assert!(entry(4, 3).exhausted());
        assert!(entry(10, 3).exhausted());
        assert!(!entry(3, 10).exhausted());
    }

    #[test]
    fn headers_are_the_originals_four_strings() {
        let h = entry(2, 3).headers();
        let names: Vec<_> = h.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["delay", "maxRetry", "retryCount", "executeAt"]);
        assert_eq!(h[0].1, "0.5");
        assert_eq!(h[2].1, "2");
        assert_eq!(h[3].1, "42");
        let mut later = entry(2, 3);
        later.first_failed_at = Some(7);
        later.waited_ms = Some(400);
        let h = later.headers();
        assert_eq!(h[4], ("firstFailedAt".to_string(), "7".to_string()));
        assert_eq!(h[5], ("retryDelayMs".to_string(), "400".to_string()));
    }
}
