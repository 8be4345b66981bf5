//! The caller's own headers: every `pushToQueue` option the package does not interpret travels
//! with the message and is re-published as a Kafka header of the same name and bytes, as the
//! original class did (`{ ...options, retryCount, executeAt }` handed to `produce`). Pure: the
//! limits and the JSON form of a dead letter, unit-tested here (with the entry's headers section,
//! which `store::entry` writes).

use crate::error::{Result, RetryError};
use serde_json::{Map, Value};

/// Header names the package writes itself on a re-published message: a caller's option of the
/// same name is replaced (`delay`, `maxRetry`, `retryCount` and `firstFailedAt` are read from it
/// first), as the original's `{ ...options, retryCount, executeAt }` replaced its keys.
pub const OWN_HEADERS: [&str; 6] = [
    "delay",
    "maxRetry",
    "retryCount",
    "executeAt",
    "firstFailedAt",
    "retryDelayMs",
];

/// Options the package interprets and never re-publishes: its own headers and `error`.
pub fn is_interpreted(name: &str) -> bool {
    name == "error" || OWN_HEADERS.contains(&name)
}

/// Most header values one message may carry besides the package's own (each element of an array
/// counts).
pub const MAX_HEADERS: usize = 64;
/// Longest header name, in UTF-8 bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Most bytes of all names and values of one message's headers together.
pub const MAX_TOTAL_BYTES: usize = 64 * 1024;

/// A header value as the caller gave it: a string, or a `Buffer`'s bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderValue {
    /// A JavaScript string (re-published as its UTF-8 bytes, handed back as a string).
    Text(String),
    /// A `Buffer`, byte for byte (handed back as a `Buffer`).
    Bytes(Vec<u8>),
}

impl HeaderValue {
    /// The bytes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderValue::Text(text) => text.as_bytes(),
            HeaderValue::Bytes(bytes) => bytes,
        }
    }
}

/// One caller header. An array value (kafkajs sends one header per element) is consecutive
/// headers of the same name with `in_array` set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The option's key.
    pub name: String,
    /// Its value.
    pub value: HeaderValue,
    /// Whether it is an element of an array value (kept so `produce` gets the array back).
    pub in_array: bool,
}

/// Checks the limits (`ERR_INVALID_ARG` naming the option): a name of 1 to [`MAX_NAME_BYTES`]
/// bytes without NUL (librdkafka takes names as C strings), at most [`MAX_HEADERS`] values and
/// [`MAX_TOTAL_BYTES`] bytes in all.
pub fn check_limits(headers: &[Header]) -> Result<()> {
    if headers.len() > MAX_HEADERS {
        return Err(RetryError::invalid_arg(format!(
            "options may carry at most {MAX_HEADERS} header values besides delay, maxRetry, retryCount, firstFailedAt and error, got {}",
            headers.len()
        )));
    }
    let mut total = 0;
    for header in headers {
        let name = &header.name;
        if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
            return Err(RetryError::invalid_arg(format!(
                "options key {name:?} cannot be a Kafka header name: it must be 1 to {MAX_NAME_BYTES} bytes without NUL"
            )));
        }
        total += name.len() + header.value.as_bytes().len();
    }
    if total > MAX_TOTAL_BYTES {
        return Err(RetryError::invalid_arg(format!(
            "options' headers must total at most {MAX_TOTAL_BYTES} bytes (names and values), got {total}"
        )));
    }
    Ok(())
}

/// What `KafkaRetry.headers()` may still keep so that `pushToQueue` accepts its result (see
/// [`check_limits`]): headers are kept in order while they fit, and one that does not (a name
/// that cannot be a Kafka header name, or past [`MAX_HEADERS`] values or [`MAX_TOTAL_BYTES`]) is
/// left out, so a consumed message can always be retried.
#[derive(Debug, Default)]
pub struct Budget {
    values: usize,
    bytes: usize,
}

impl Budget {
    /// Whether a header `name` whose values are `sizes` bytes long fits; if so it is counted.
    pub fn take(&mut self, name: &str, sizes: &[usize]) -> bool {
        if name.is_empty() || name.len() > MAX_NAME_BYTES || name.contains('\0') {
            return false;
        }
        let values = self.values + sizes.len();
        let bytes = self.bytes + sizes.iter().map(|size| size + name.len()).sum::<usize>();
        if values > MAX_HEADERS || bytes > MAX_TOTAL_BYTES {
            return false;
        }
        (self.values, self.bytes) = (values, bytes);
        true
    }
}

/// The headers as the options object of a dead letter, as `JSON.stringify` writes them: strings,
/// a `Buffer` as `{ "type": "Buffer", "data": [bytes] }`, arrays as arrays. Added to `options`
/// after keys already there (the package's own win).
pub fn to_json(headers: &[Header], options: &mut Map<String, Value>) {
    let json = |value: &HeaderValue| match value {
        HeaderValue::Text(text) => Value::String(text.clone()),
        HeaderValue::Bytes(bytes) => serde_json::json!({ "type": "Buffer", "data": bytes }),
    };
    for header in headers {
        if options.contains_key(&header.name) && !header.in_array {
            continue;
        }
        if header.in_array {
            match options.get_mut(&header.name) {
                Some(Value::Array(items)) => items.push(json(&header.value)),
                Some(_) => {}
                None => {
                    options.insert(header.name.clone(), Value::Array(vec![json(&header.value)]));
                }
            }
        } else {
            options.insert(header.name.clone(), json(&header.value));
        }
    }
}

/// The caller headers in the options of a stored dead letter (this package's or the original
/// class's): every key but the interpreted ones, read back from [`to_json`]'s form (numbers and
/// booleans as their text). Values of no header form are left out; so are keys that break the
/// limits' name rules.
pub fn from_json(options: &Value) -> Vec<Header> {
    let Some(object) = options.as_object() else {
        return Vec::new();
    };
    let value_of = |value: &Value| -> Option<HeaderValue> {
        match value {
            Value::String(text) => Some(HeaderValue::Text(text.clone())),
            Value::Number(n) => Some(HeaderValue::Text(n.to_string())),
            Value::Bool(b) => Some(HeaderValue::Text(b.to_string())),
            Value::Object(o) if o.get("type") == Some(&Value::from("Buffer")) => {
                let data = o.get("data")?.as_array()?;
                data.iter()
                    .map(|b| b.as_u64().filter(|b| *b < 256).map(|b| b as u8))
                    .collect::<Option<Vec<u8>>>()
                    .map(HeaderValue::Bytes)
            }
            _ => None,
        }
    };
    let mut headers = Vec::new();
    for (name, value) in object {
        if is_interpreted(name) || name.is_empty() || name.contains('\0') {
            continue;
        }
        match value {
            Value::Array(items) => {
                headers.extend(items.iter().filter_map(value_of).map(|value| Header {
                    name: name.clone(),
                    value,
                    in_array: true,
                }))
            }
            other => headers.extend(value_of(other).map(|value| Header {
                name: name.clone(),
                value,
                in_array: false,
            })),
        }
    }
    headers.truncate(MAX_HEADERS);
    headers
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(BASE64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Reads [`base64_encode`]'s output; `None` for anything else.
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let digit = |c: u8| BASE64.iter().position(|&d| d == c).map(|p| p as u32);
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    for (i, chunk) in bytes.chunks(4).enumerate() {
        let last = i == bytes.len() / 4 - 1;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0;
        for &c in &chunk[..4 - pad] {
            n = (n << 6) | digit(c)?;
        }
        n <<= 6 * pad as u32;
        let got = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&got[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::entry::{read_section, write_section};

    fn text(name: &str, value: &str) -> Header {
        Header {
            name: name.into(),
            value: HeaderValue::Text(value.into()),
            in_array: false,
        }
    }

    fn bytes(name: &str, value: &[u8], in_array: bool) -> Header {
        Header {
            name: name.into(),
            value: HeaderValue::Bytes(value.to_vec()),
            in_array,
        }
    }

    fn all_kinds() -> Vec<Header> {
        vec![
            text("tenant", "acme"),
            text(
                "traceparent",
                "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            ),
            text("ünï\ncode\\", "é 漢字 🎉\nline\\n"),
            bytes("bin", &[0, 255, 10, 92, 1, 128, 13], false),
            bytes("utf8", "plain é".as_bytes(), false),
            bytes("empty", b"", false),
            text("list", "a"),
            bytes("list2", b"\xff\x00", true),
            bytes("list2", b"x", true),
        ]
    }

    #[test]
    fn the_section_round_trips_every_kind() {
        let headers = all_kinds();
        let mut out = String::new();
        write_section(&mut out, &headers);
        out.push_str("{\"a\":1}");
        assert!(!out[1..].contains('\u{1}'));
        let (read, rest) = read_section(&out).unwrap();
        assert_eq!(read, headers);
        assert_eq!(rest, "{\"a\":1}");
        // An empty section (written before a payload that starts with the mark).
        let mut out = String::new();
        write_section(&mut out, &[]);
        out.push_str("\u{1}x");
        assert_eq!(read_section(&out).unwrap(), (vec![], "\u{1}x"));
    }

    #[test]
    fn broken_sections_are_errors() {
        for text in [
            "\u{1}",
            "\u{1}x\n",
            "\u{1}1\n",
            "\u{1}1\nsname\n",
            "\u{1}1\nqname\nv\n",
            "\u{1}1\nbname\n!!!!\n",
            "\u{1}1\nsna\\qme\nv\n",
        ] {
            assert!(read_section(text).is_err(), "{text:?}");
        }
    }

    #[test]
    fn limits_are_enforced() {
        assert!(check_limits(&all_kinds()).is_ok());
        let many: Vec<Header> = (0..=MAX_HEADERS)
            .map(|i| text(&format!("h{i}"), "v"))
            .collect();
        assert!(check_limits(&many)
            .unwrap_err()
            .message
            .contains("at most 64"));
        let big = vec![text("a", &"x".repeat(MAX_TOTAL_BYTES))];
        assert!(check_limits(&big)
            .unwrap_err()
            .message
            .contains("65536 bytes"));
        let exact = vec![text("a", &"x".repeat(MAX_TOTAL_BYTES - 1))];
        assert!(check_limits(&exact).is_ok());
        for name in ["", "a\0b", &"n".repeat(256)] {
            let err = check_limits(&[text(name, "v")]).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidArg);
        }
    }

    #[test]
    fn dead_letter_json_is_what_json_stringify_writes_and_reads_back() {
        let mut options = Map::new();
        options.insert("delay".into(), Value::from("2"));
        let mut headers = all_kinds();
        headers.push(text("delay", "ignored: the package's own wins"));
        to_json(&headers, &mut options);
        assert_eq!(options["delay"], "2");
        assert_eq!(options["tenant"], "acme");
        assert_eq!(
            options["bin"],
            serde_json::json!({ "type": "Buffer", "data": [0, 255, 10, 92, 1, 128, 13] })
        );
        assert_eq!(options["list2"][1]["data"], serde_json::json!([120]));
        let back = from_json(&Value::Object(options));
        assert_eq!(back, all_kinds());
        // The original class's options: its own keys skipped, numbers as text.
        let original = serde_json::json!({ "delay": "2", "retryCount": "4", "executeAt": "x", "tenant": 7, "error": {} });
        assert_eq!(from_json(&original), vec![text("tenant", "7")]);
    }

    #[test]
    fn base64_round_trips() {
        for len in 0..20 {
            let data: Vec<u8> = (0..len).map(|i| (i * 37 + 200) as u8).collect();
            let encoded = base64_encode(&data);
            assert_eq!(base64_decode(&encoded).unwrap(), data);
        }
        assert_eq!(base64_encode(b"Man"), "TWFu");
        assert_eq!(base64_encode(b"Ma"), "TWE=");
        assert_eq!(base64_encode(b"M"), "TQ==");
        assert!(base64_decode("TQ=").is_none());
        assert!(base64_decode("T===").is_none());
        assert!(base64_decode("TQ==TWFu").is_none());
    }

    #[test]
    fn the_budget_keeps_only_what_check_limits_accepts() {
        let mut budget = Budget::default();
        assert!(!budget.take("with\0nul", &[1]));
        assert!(!budget.take("", &[1]));
        assert!(!budget.take(&"n".repeat(MAX_NAME_BYTES + 1), &[1]));
        assert!(budget.take(&"n".repeat(MAX_NAME_BYTES), &[1]));
        // Too large alone: left out, and what follows still fits.
        assert!(!budget.take("big", &[MAX_TOTAL_BYTES]));
        assert!(budget.take("many", &[1; MAX_HEADERS - 1]));
        assert!(!budget.take("one-more", &[1]));
        // What it kept passes check_limits.
        let mut kept = vec![Header {
            name: "n".repeat(MAX_NAME_BYTES),
            value: HeaderValue::Text("x".into()),
            in_array: false,
        }];
        kept.extend((0..MAX_HEADERS - 1).map(|_| Header {
            name: "many".into(),
            value: HeaderValue::Text("x".into()),
            in_array: true,
        }));
        assert!(check_limits(&kept).is_ok());
    }
}
