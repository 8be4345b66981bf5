//! The retry options carried in Kafka headers (`delay`, `maxRetry`, `retryCount`) and the due-time
//! math. Pure functions: unit-tested here, used by the napi layer and the schedule.

use crate::error::{Result, RetryError};

/// Header defaults of the original class: delay 2 minutes, 3 retries, none spent yet.
pub const DEFAULT_DELAY: &str = "2";
/// Default `maxRetry` header value.
pub const DEFAULT_MAX_RETRY: &str = "3";
/// Default `retryCount` header value.
pub const DEFAULT_RETRY_COUNT: &str = "0";

/// The longest delay accepted, in minutes (ten years): keeps due times far from float limits.
pub const MAX_DELAY_MINUTES: f64 = 10.0 * 365.0 * 24.0 * 60.0;
/// The largest `maxRetry` / `retryCount` accepted.
pub const MAX_COUNT: u64 = 1_000_000_000;

/// The three headers as strings, exactly what `KafkaRetry.headers()` returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryHeaders {
    /// Minutes to wait before the next attempt, as text (decimals allowed).
    pub delay: String,
    /// How many retries a message gets before it is dead-lettered, as text.
    pub max_retry: String,
    /// How many retries were already spent, as text.
    pub retry_count: String,
    /// When the message first failed (ms since the epoch, as text), if a retry carried it.
    pub first_failed_at: Option<String>,
    /// How often a requeue replayed its dead letter (`replays`), if a requeue carried it.
    pub replays: Option<String>,
}

impl RetryHeaders {
    /// Reads the headers of a consumed message. `lookup` returns a header's text, or `None` when
    /// the header is absent; absent headers take the original class's defaults.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Self {
        RetryHeaders {
            delay: lookup("delay").unwrap_or_else(|| DEFAULT_DELAY.to_string()),
            max_retry: lookup("maxRetry").unwrap_or_else(|| DEFAULT_MAX_RETRY.to_string()),
            retry_count: lookup("retryCount").unwrap_or_else(|| DEFAULT_RETRY_COUNT.to_string()),
            first_failed_at: lookup("firstFailedAt"),
            replays: lookup("replays"),
        }
    }
}

/// Validated retry options of one `pushToQueue` call.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryOptions {
    /// The `delay` as the caller wrote it (kept verbatim so the re-published header matches).
    pub delay_text: String,
    /// The delay in milliseconds.
    pub delay_ms: u64,
    /// Retries allowed before dead-lettering.
    pub max_retry: u64,
    /// Retries already spent before this failure.
    pub retry_count: u64,
    /// When the message first failed, if an earlier retry recorded it.
    pub first_failed_at: Option<u64>,
}

/// One option value as JavaScript gave it: headers give text, hand-written options may give numbers.
#[derive(Debug, Clone, PartialEq)]
pub enum OptionValue {
    /// Absent (`undefined` or `null`): the default applies.
    Missing,
    /// A string such as `'2'` or `'0.5'`.
    Text(String),
    /// A JavaScript number.
    Number(f64),
    /// Anything else (object, boolean, ...): always rejected; the text describes it.
    Other(String),
}

impl RetryOptions {
    /// Validates the three options; absent ones take the header defaults.
    pub fn parse(
        delay: OptionValue,
        max_retry: OptionValue,
        retry_count: OptionValue,
    ) -> Result<Self> {
        let (delay_text, delay_minutes) = parse_number("delay", delay, DEFAULT_DELAY)?;
        if delay_minutes > MAX_DELAY_MINUTES {
            return Err(RetryError::invalid_arg(format!(
                "options.delay must be at most {MAX_DELAY_MINUTES} minutes, got {delay_text:?}"
            )));
        }
        let max_retry = parse_count("maxRetry", max_retry, DEFAULT_MAX_RETRY)?;
        let retry_count = parse_count("retryCount", retry_count, DEFAULT_RETRY_COUNT)?;
        Ok(RetryOptions {
            delay_ms: minutes_to_ms(delay_minutes),
            delay_text,
            max_retry,
            retry_count,
            first_failed_at: None,
        })
    }
}

/// Reads a `firstFailedAt` option or header (ms since the epoch); anything unreadable is ignored
/// (the failure then counts as the first), since it only informs dead letters.
pub fn parse_first_failed_at(value: OptionValue) -> Option<u64> {
    let number = match value {
        OptionValue::Text(text) => text.trim().parse::<f64>().ok()?,
        OptionValue::Number(n) => n,
        OptionValue::Missing | OptionValue::Other(_) => return None,
    };
    (number.is_finite() && number >= 0.0 && number.fract() == 0.0 && number < 1e15)
        .then_some(number as u64)
}

/// Minutes (decimals allowed) to whole milliseconds, rounded to the nearest.
pub fn minutes_to_ms(minutes: f64) -> u64 {
    (minutes * 60_000.0).round() as u64
}

fn parse_number(name: &str, value: OptionValue, default: &str) -> Result<(String, f64)> {
    let text = match value {
        OptionValue::Missing => default.to_string(),
        OptionValue::Text(text) => text,
        OptionValue::Number(n) => format_js_number(n),
        OptionValue::Other(desc) => {
            return Err(RetryError::invalid_arg(format!(
                "options.{name} must be a number or a numeric string, got {desc}"
            )))
        }
    };
    let trimmed = text.trim();
    let number: f64 = trimmed
        .parse()
        .ok()
        .filter(|n: &f64| n.is_finite())
        .ok_or_else(|| {
            RetryError::invalid_arg(format!(
                "options.{name} must be a number or a numeric string, got {text:?}"
            ))
        })?;
    if number < 0.0 {
        return Err(RetryError::invalid_arg(format!(
            "options.{name} must not be negative, got {text:?}"
        )));
    }
    Ok((trimmed.to_string(), number))
}

fn parse_count(name: &str, value: OptionValue, default: &str) -> Result<u64> {
    let (text, number) = parse_number(name, value, default)?;
    if number.fract() != 0.0 || number > MAX_COUNT as f64 {
        return Err(RetryError::invalid_arg(format!(
            "options.{name} must be a whole number from 0 to {MAX_COUNT}, got {text:?}"
        )));
    }
    Ok(number as u64)
}

/// Formats a number the way JavaScript's `String(n)` does for the values options take
/// (integers without `.0`), so a header written from a number reads like one written by JS.
pub fn format_js_number(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_string();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_string();
    }
    let magnitude = n.abs();
    if n != 0.0 && !(1e-6..1e21).contains(&magnitude) {
        // JavaScript switches to exponent notation outside [1e-6, 1e21): 1e+21, 1.5e-7.
        let text = format!("{n:e}");
        return match text.split_once('e') {
            Some((mantissa, exponent)) if !exponent.starts_with('-') => {
                format!("{mantissa}e+{exponent}")
            }
            _ => text,
        };
    }
    if n.fract() == 0.0 {
        format!("{}", n as i128)
    } else {
        format!("{n}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> OptionValue {
        OptionValue::Text(s.to_string())
    }

    #[test]
    fn headers_default_like_the_original() {
        let h = RetryHeaders::from_lookup(|_| None);
        assert_eq!(h.delay, "2");
        assert_eq!(h.max_retry, "3");
        assert_eq!(h.retry_count, "0");
    }

    #[test]
    fn headers_keep_given_text() {
        let h = RetryHeaders::from_lookup(|k| (k == "retryCount").then(|| "2".to_string()));
        assert_eq!(h.retry_count, "2");
        assert_eq!(h.delay, "2");
    }

    #[test]
    fn decimal_minutes_become_milliseconds() {
        let o = RetryOptions::parse(text("0.01"), text("3"), text("0")).unwrap();
        assert_eq!(o.delay_ms, 600);
        assert_eq!(o.delay_text, "0.01");
        let o = RetryOptions::parse(
            OptionValue::Number(2.0),
            OptionValue::Missing,
            OptionValue::Missing,
        )
        .unwrap();
        assert_eq!(o.delay_ms, 120_000);
        assert_eq!(o.delay_text, "2");
    }

    #[test]
    fn counts_compare_as_numbers_not_strings() {
        let o = RetryOptions::parse(text("1"), text("3"), text("10")).unwrap();
        assert!(
            o.retry_count > o.max_retry,
            "'10' must exceed '3' numerically"
        );
    }

    #[test]
    fn bad_values_are_rejected_with_the_name_and_value() {
        for (d, m, r, needle) in [
            (text("abc"), text("3"), text("0"), "options.delay"),
            (text("-1"), text("3"), text("0"), "negative"),
            (text("1"), text("x"), text("0"), "options.maxRetry"),
            (text("1"), text("3"), text("1.5"), "options.retryCount"),
            (
                text("1"),
                text("3"),
                OptionValue::Other("object".into()),
                "retryCount",
            ),
            (OptionValue::Number(f64::NAN), text("3"), text("0"), "delay"),
            (text("1e12"), text("3"), text("0"), "at most"),
            (text(""), text("3"), text("0"), "delay"),
        ] {
            let err = RetryOptions::parse(d, m, r).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidArg);
            assert!(
                err.message.contains(needle),
                "{} should mention {needle}",
                err.message
            );
        }
    }

    #[test]
    fn first_failed_at_is_read_leniently() {
        assert_eq!(
            parse_first_failed_at(text("1700000000000")),
            Some(1_700_000_000_000)
        );
        assert_eq!(parse_first_failed_at(OptionValue::Number(5.0)), Some(5));
        assert_eq!(parse_first_failed_at(text("yesterday")), None);
        assert_eq!(parse_first_failed_at(OptionValue::Missing), None);
    }

    #[test]
    fn numbers_format_like_javascript() {
        assert_eq!(format_js_number(3.0), "3");
        assert_eq!(format_js_number(0.5), "0.5");
        assert_eq!(format_js_number(1e21), "1e+21");
        assert_eq!(format_js_number(1.5e-7), "1.5e-7");
        assert_eq!(format_js_number(-0.0), "0");
        assert_eq!(format_js_number(123456789012.0), "123456789012");
    }
}
