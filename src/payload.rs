//! The message payload (`value`): JSON text validated on push, and given a fresh `msgId` on
//! re-publish without disturbing the order or text of its other members.

use crate::error::{Result, RetryError};
use indexmap::IndexMap;
use serde_json::value::RawValue;

/// Checks that `value` is JSON text and returns its top-level `msgId` (string or number), if any.
pub fn validate(value: &str) -> Result<Option<String>> {
    let raw: &RawValue = serde_json::from_str(value).map_err(|err| {
        RetryError::invalid_arg(format!(
            "message.value must be JSON text, got {}",
            preview(value)
        ))
        .caused_by(err)
    })?;
    let Ok(members) = serde_json::from_str::<IndexMap<String, &RawValue>>(raw.get()) else {
        return Ok(None);
    };
    Ok(members.get("msgId").and_then(|id| msg_id_text(id.get())))
}

/// The payload to publish: `value` with `msgId` set to `fresh_id`, so the consumer's next failure
/// is not mistaken for a redelivery of this one (the original class did the same). Members keep
/// their order and their exact text; a payload that is not a JSON object is published unchanged.
pub fn with_fresh_msg_id(value: &str, fresh_id: &str) -> String {
    let Ok(mut members) = serde_json::from_str::<IndexMap<String, Box<RawValue>>>(value) else {
        return value.to_string();
    };
    let id = RawValue::from_string(serde_json::Value::from(fresh_id).to_string())
        .expect("a JSON string is valid JSON");
    members.insert("msgId".to_string(), id);
    serde_json::to_string(&members).unwrap_or_else(|_| value.to_string())
}

fn msg_id_text(raw: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The start of a long value, for error messages.
pub fn preview(value: &str) -> String {
    const MAX: usize = 60;
    if value.chars().count() <= MAX {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX).collect();
        format!("{head:?}... ({} bytes)", value.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_msg_id() {
        assert_eq!(
            validate(r#"{"a":1,"msgId":"x"}"#).unwrap(),
            Some("x".into())
        );
        assert_eq!(validate(r#"{"msgId":42}"#).unwrap(), Some("42".into()));
        assert_eq!(validate(r#"{"a":1}"#).unwrap(), None);
        assert_eq!(validate("[1,2]").unwrap(), None);
        assert_eq!(validate("\"text\"").unwrap(), None);
    }

    #[test]
    fn rejects_text_that_is_not_json() {
        for bad in ["", "{", "{'a':1}", "undefined", "{\"a\":1} x"] {
            let err = validate(bad).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidArg, "{bad}");
            assert!(err.message.contains("message.value"));
        }
    }

    #[test]
    fn fresh_msg_id_keeps_key_order_and_member_text() {
        let out = with_fresh_msg_id(r#"{"z":1,"msgId":"old","a":{"b":1.50},"n":1e3}"#, "new");
        assert_eq!(out, r#"{"z":1,"msgId":"new","a":{"b":1.50},"n":1e3}"#);
    }

    #[test]
    fn fresh_msg_id_is_appended_when_missing() {
        assert_eq!(
            with_fresh_msg_id(r#"{"success":false}"#, "id"),
            r#"{"success":false,"msgId":"id"}"#
        );
    }

    #[test]
    fn non_objects_are_published_unchanged() {
        assert_eq!(with_fresh_msg_id("[1,2]", "id"), "[1,2]");
        assert_eq!(with_fresh_msg_id("7", "id"), "7");
    }
}
