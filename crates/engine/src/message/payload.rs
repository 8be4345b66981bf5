//! The message payload (`value`): JSON text validated on push, and given a fresh `msgId` on
//! re-publish without disturbing the order or text of its other members.

use crate::error::{Result, RetryError};
use serde_json::value::RawValue;

/// Checks that `value` is JSON text and returns its top-level `msgId` (string or number), if any.
/// This runs once per push, so it reads the text once, without building the object: member
/// names are compared as they are read and only the `msgId` member's value is kept.
pub fn validate(value: &str) -> Result<Option<String>> {
    let invalid = |err: serde_json::Error| {
        // The reason as a plain read of the whole text gives it (reading members can word the
        // same fault differently: "key must be a string" for a trailing comma).
        let err = serde_json::from_str::<&RawValue>(value)
            .err()
            .unwrap_or(err);
        RetryError::invalid_arg(format!(
            "message.value must be JSON text, got {}",
            preview(value)
        ))
        .caused_by(err)
    };
    // Keys with a lone surrogate escape (valid JSON, not valid UTF-8) would make the whole
    // object unreadable and lose its msgId: read the text with such escapes replaced (by escapes
    // of the same length, so an error's position is the same in both).
    let text = without_lone_surrogates(value);
    let mut reader = serde_json::Deserializer::from_str(&text);
    let is_object = text
        .trim_start_matches([' ', '\t', '\n', '\r'])
        .starts_with('{');
    let raw = if is_object {
        serde::Deserializer::deserialize_map(&mut reader, LastMsgId).map_err(invalid)?
    } else {
        serde::Deserialize::deserialize(&mut reader)
            .map(|_: serde::de::IgnoredAny| None)
            .map_err(invalid)?
    };
    reader.end().map_err(invalid)?;
    Ok(raw.and_then(|raw| msg_id_text(raw.get())))
}

/// Reads an object member by member and keeps the raw value of its last `msgId` member
/// (`JSON.parse` keeps the last of duplicate keys).
struct LastMsgId;

impl<'de> serde::de::Visitor<'de> for LastMsgId {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut last = None;
        while let Some(is_msg_id) = map.next_key_seed(IsMsgId)? {
            if is_msg_id {
                last = Some(map.next_value::<&'de RawValue>()?);
            } else {
                map.next_value::<serde::de::IgnoredAny>()?;
            }
        }
        Ok(last)
    }
}

/// JSON text with every `\uD800`-`\uDFFF` escape that is not part of a surrogate pair replaced
/// by `\uFFFD`, as JavaScript's `TextEncoder` would; other text is unchanged.
pub fn without_lone_surrogates(json: &str) -> std::borrow::Cow<'_, str> {
    if !json.contains("\\u") {
        return std::borrow::Cow::Borrowed(json);
    }
    let bytes = json.as_bytes();
    let hex_at = |i: usize| -> Option<u32> {
        let digits = json.get(i..i + 4)?;
        u32::from_str_radix(digits, 16).ok()
    };
    let mut out = String::with_capacity(json.len());
    let mut i = 0;
    let mut last = 0;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        // An escape: `\\` and `\"` are skipped whole so their second byte is never misread.
        if bytes.get(i + 1) != Some(&b'u') {
            i += 2;
            continue;
        }
        let Some(unit) = hex_at(i + 2) else {
            i += 2;
            continue;
        };
        let is_high = (0xD800..0xDC00).contains(&unit);
        let is_low = (0xDC00..0xE000).contains(&unit);
        let paired = is_high
            && bytes.get(i + 6) == Some(&b'\\')
            && bytes.get(i + 7) == Some(&b'u')
            && hex_at(i + 8).is_some_and(|next| (0xDC00..0xE000).contains(&next));
        if paired {
            i += 12;
        } else if is_high || is_low {
            out.push_str(&json[last..i]);
            out.push_str("\\uFFFD");
            i += 6;
            last = i;
        } else {
            i += 6;
        }
    }
    if last == 0 {
        return std::borrow::Cow::Borrowed(json);
    }
    out.push_str(&json[last..]);
    std::borrow::Cow::Owned(out)
}

/// The payload to publish: `value` with `msgId` set to `fresh_id`, so the consumer's next failure
/// is not mistaken for a redelivery of this one (the original class did the same). Only the
/// `msgId` value's text changes (or `,"msgId":...` is added after the last member): everything
/// else keeps its exact text, whitespace included. A payload that is not a JSON object is
/// published unchanged. This runs once per fired message, so it reads the object without
/// building it (no allocation per member) and splices the new id into the original text.
pub fn with_fresh_msg_id(value: &str, fresh_id: &str) -> String {
    let mut reader = serde_json::Deserializer::from_str(value);
    let Ok(members) = serde::Deserializer::deserialize_map(&mut reader, ObjectSpans(value)) else {
        return value.to_string();
    };
    if reader.end().is_err() {
        return value.to_string();
    }
    let id = serde_json::to_string(fresh_id).expect("a string serializes");
    let mut out = String::with_capacity(value.len() + id.len() + 10);
    if members.msg_ids.is_empty() {
        let at = match members.last_end {
            Some(end) => end,
            None => value.find('{').map_or(0, |open| open + 1),
        };
        out.push_str(&value[..at]);
        if members.last_end.is_some() {
            out.push(',');
        }
        out.push_str("\"msgId\":");
        out.push_str(&id);
        out.push_str(&value[at..]);
        return out;
    }
    // Every `msgId` member is replaced (JSON.parse keeps the last of duplicate keys).
    let mut last = 0;
    for span in &members.msg_ids {
        out.push_str(&value[last..span.start]);
        out.push_str(&id);
        last = span.end;
    }
    out.push_str(&value[last..]);
    out
}

/// Where the members of a JSON object are in its text.
struct Spans {
    /// Byte ranges of the values of `msgId` members.
    msg_ids: Vec<std::ops::Range<usize>>,
    /// End of the last member's value, `None` for an empty object.
    last_end: Option<usize>,
}

/// Reads an object member by member without building it; the `&str` is the whole input, so a
/// borrowed raw value's position in it is its byte range.
struct ObjectSpans<'de>(&'de str);

impl<'de> serde::de::Visitor<'de> for ObjectSpans<'de> {
    type Value = Spans;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Spans, A::Error> {
        let base = self.0.as_ptr() as usize;
        let mut spans = Spans {
            msg_ids: Vec::new(),
            last_end: None,
        };
        while let Some(is_msg_id) = map.next_key_seed(IsMsgId)? {
            let raw: &'de RawValue = map.next_value()?;
            let start = raw.get().as_ptr() as usize - base;
            let range = start..start + raw.get().len();
            spans.last_end = Some(range.end);
            if is_msg_id {
                spans.msg_ids.push(range);
            }
        }
        Ok(spans)
    }
}

/// Reads a member name and says whether it is `msgId` (after unescaping), without keeping it.
struct IsMsgId;

impl<'de> serde::de::DeserializeSeed<'de> for IsMsgId {
    type Value = bool;

    fn deserialize<D: serde::Deserializer<'de>>(
        self,
        reader: D,
    ) -> std::result::Result<bool, D::Error> {
        reader.deserialize_str(self)
    }
}

impl serde::de::Visitor<'_> for IsMsgId {
    type Value = bool;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a member name")
    }

    fn visit_str<E: serde::de::Error>(self, name: &str) -> std::result::Result<bool, E> {
        Ok(name == "msgId")
    }
}

fn msg_id_text(raw: &str) -> Option<String> {
    match serde_json::from_str::<serde_json::Value>(raw).ok()? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A JSON value as text, as stored records hold their fields: a string as it is, `null` or a
/// missing value as `None`, anything else serialized.
pub fn json_text(value: Option<&serde_json::Value>) -> Option<String> {
    match value {
        Some(serde_json::Value::String(s)) => Some(s.clone()),
        Some(serde_json::Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
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

    /// The two-pass reading `validate` replaced (the whole text as a raw value, then the object
    /// as a map of raw values): the one pass must agree with it on every input.
    fn validate_two_pass(value: &str) -> std::result::Result<Option<String>, String> {
        let raw: &RawValue = serde_json::from_str(value).map_err(|e| e.to_string())?;
        let text = without_lone_surrogates(raw.get());
        let Ok(members) = serde_json::from_str::<indexmap::IndexMap<String, &RawValue>>(&text)
        else {
            return Ok(None);
        };
        Ok(members.get("msgId").and_then(|id| msg_id_text(id.get())))
    }

    #[test]
    fn one_pass_reads_what_the_two_pass_reading_read() {
        let inputs = [
            r#"{"msgId":"a","n":1}"#,
            r#"{"n":{"msgId":"inner"},"msgId":42}"#,
            r#"{"msgId":"first","msgId":"second"}"#,
            r#"{"msgId":"first","msgId":{"x":1}}"#,
            r#"{"msgId":{"x":1},"msgId":"last"}"#,
            r#"{"msg\u0049d":"escaped name"}"#,
            r#"{"msgId":"\ud800 lone in the value","k\udc00":2}"#,
            r#"{"k\ud800":1,"msgId":"after a lone key"}"#,
            r#"{"msgId":1.5e3}"#,
            r#"{"msgId":null}"#,
            r#"{"msgId":true}"#,
            r#"{"msgId":["a"]}"#,
            r#"  { "msgId" : "spaced" }  "#,
            "\t\n{\"msgId\":\"tabs\"}\r\n",
            r#"{}"#,
            r#"[{"msgId":"in an array"}]"#,
            r#""msgId""#,
            r#"42"#,
            r#"null"#,
            r#"{"msgId":"a",}"#,
            r#"{"msgId":"a"} trailing"#,
            r#"{"msgId":"a""#,
            r#"{"msgId":"bad \x escape"}"#,
            r#"{msgId:"a"}"#,
            "{\"msgId\":\"a\u{1}control\"}",
            "\u{a0}{\"msgId\":\"nbsp\"}",
            "",
            " ",
        ];
        for input in inputs {
            let one = validate(input).map_err(|e| e.to_string());
            let two = validate_two_pass(input);
            match (&one, &two) {
                (Ok(a), Ok(b)) => assert_eq!(a, b, "{input:?}"),
                (Err(a), Err(b)) => assert!(a.contains(b.as_str()), "{input:?}: {a} / {b}"),
                _ => panic!("{input:?}: {one:?} / {two:?}"),
            }
        }
    }

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
    fn a_lone_surrogate_key_does_not_hide_the_msg_id() {
        let text = r#"{"msgId":"dup-1","k\ud800":1}"#;
        assert_eq!(validate(text).unwrap(), Some("dup-1".into()));
        assert_eq!(
            without_lone_surrogates(r#"{"a\udc00b":"\ud83d\ude00","c":"\\ud800"}"#),
            r#"{"a\uFFFDb":"\ud83d\ude00","c":"\\ud800"}"#
        );
        assert!(matches!(
            without_lone_surrogates(r#"{"a":"\u0041"}"#),
            std::borrow::Cow::Borrowed(_)
        ));
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
    fn fresh_msg_id_keeps_whitespace_and_replaces_every_duplicate() {
        assert_eq!(
            with_fresh_msg_id("{ \"msgId\" : 1 ,\n \"a\": [ 1 ] ,\"msgId\":\"x\" }", "n"),
            "{ \"msgId\" : \"n\" ,\n \"a\": [ 1 ] ,\"msgId\":\"n\" }"
        );
        // An escaped name is still msgId.
        assert_eq!(
            with_fresh_msg_id(r#"{"msg\u0049d":"x"}"#, "n"),
            r#"{"msg\u0049d":"n"}"#
        );
        assert_eq!(with_fresh_msg_id(" { } ", "n"), r#" {"msgId":"n" } "#);
        assert_eq!(
            with_fresh_msg_id("{\"a\":{\"msgId\":1} }", "n"),
            "{\"a\":{\"msgId\":1},\"msgId\":\"n\" }"
        );
        assert_eq!(with_fresh_msg_id("{}", "q\""), r#"{"msgId":"q\""}"#);
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
        assert_eq!(with_fresh_msg_id("{\"a\":1} x", "id"), "{\"a\":1} x");
        assert_eq!(with_fresh_msg_id("{\"a\":", "id"), "{\"a\":");
        assert_eq!(with_fresh_msg_id("7", "id"), "7");
    }
}
