//! What the schedule stores per message, and what a dead letter holds.
//!
//! An entry is stored in a compact text form (see [`Entry::encode`]) rather than JSON with named
//! fields and an escaped payload: the entry is most of the Redis memory a scheduled message costs
//! (`BENCHMARKS.md`, Memory, has the sizes).

use crate::message::headers::{self, Header, HeaderValue};
use serde::{Deserialize, Serialize};

/// One scheduled message, stored in the entries hash under its id (see [`Entry::encode`]);
/// `Deserialize` reads the JSON form that versions before 0.2 stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
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
    #[serde(default)]
    pub first_failed_at: Option<u64>,
    /// The error of the latest failure, when the consumer passed one.
    #[serde(default)]
    pub last_error: Option<ErrorInfo>,
    /// The delay this attempt actually waits (after backoff and jitter), in ms.
    #[serde(default)]
    pub waited_ms: Option<u64>,
    /// The caller's own headers (options the package does not interpret), re-published as they
    /// were given. Empty for entries stored before they were kept.
    #[serde(skip)]
    pub extra: Vec<Header>,
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
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("delay", self.delay.clone()),
            ("maxRetry", self.max_retry.to_string()),
            ("retryCount", self.retry_count.to_string()),
            ("executeAt", self.due_at.to_string()),
        ];
        if let Some(first) = self.first_failed_at {
            headers.push(("firstFailedAt", first.to_string()));
        }
        if let Some(waited) = self.waited_ms {
            headers.push(("retryDelayMs", waited.to_string()));
        }
        headers
    }
}

/// Fields of the compact form before the payload.
const FIELDS: usize = 10;

/// `n` in base 36 (lowercase), the shortest text for a millisecond timestamp that JavaScript
/// (`parseInt(s, 36)`) and Lua (`tonumber(s, 36)`) read natively.
fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::with_capacity(13);
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("base 36 digits are ASCII")
}

/// Appends a free-text field: `\` and newlines escaped, so a field never contains the separator.
fn push_text(out: &mut String, text: &str) {
    if !text.bytes().any(|b| b == b'\\' || b == b'\n') {
        // The usual field (a topic, an event name): nothing to escape, copied whole.
        out.push_str(text);
        out.push('\n');
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\n');
}

fn unescape(field: &str) -> Result<String, String> {
    // Copied whole between escapes: this runs for several fields of every fired message, and
    // most have none.
    if !field.contains('\\') {
        return Ok(field.to_owned());
    }
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        match rest.as_bytes().get(at + 1) {
            Some(b'\\') => out.push('\\'),
            Some(b'n') => out.push('\n'),
            _ => {
                let other = rest[at + 1..].chars().next();
                return Err(format!("bad escape \\{other:?} in {field:?}"));
            }
        }
        rest = &rest[at + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Marks the headers section of a stored entry. JSON text never starts with it, so an entry
/// without caller headers is stored exactly as 0.2 stored it (see [`write_section`]).
pub const SECTION_MARK: char = '\u{1}';

/// Appends the headers section: the mark, the count, then per header a line of kind and name and
/// a line of value. Kinds: `s` a string, `u` a Buffer that is UTF-8 text, `b` a Buffer in base64
/// (any bytes, so an entry stays text); upper case for an element of an array. Names and text
/// values escape `\` and newline as `\\` and `\n`.
pub fn write_section(out: &mut String, headers: &[Header]) {
    out.push(SECTION_MARK);
    out.push_str(&headers.len().to_string());
    out.push('\n');
    for header in headers {
        let (kind, text) = match &header.value {
            HeaderValue::Text(text) => ('s', Some(text.as_str())),
            HeaderValue::Bytes(bytes) => match std::str::from_utf8(bytes) {
                Ok(text) => ('u', Some(text)),
                Err(_) => ('b', None),
            },
        };
        out.push(if header.in_array {
            kind.to_ascii_uppercase()
        } else {
            kind
        });
        push_text(out, &header.name);
        match (text, &header.value) {
            (Some(text), _) => push_text(out, text),
            (None, HeaderValue::Bytes(bytes)) => {
                out.push_str(&headers::base64_encode(bytes));
                out.push('\n');
            }
            (None, HeaderValue::Text(_)) => unreachable!("text always has text"),
        }
    }
}

/// Reads a section written by [`write_section`] at the start of `text` (which starts with
/// [`SECTION_MARK`]); returns the headers and the rest (the payload).
pub fn read_section(text: &str) -> Result<(Vec<Header>, &str), String> {
    let rest = text
        .strip_prefix(SECTION_MARK)
        .ok_or("no headers section")?;
    let mut lines = rest.splitn(2, '\n');
    let count: usize = lines
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or("headers section without a count")?;
    let mut rest = lines.next().ok_or("headers section cut short")?;
    let mut line = || -> Result<&str, String> {
        let (head, tail) = rest.split_once('\n').ok_or("headers section cut short")?;
        rest = tail;
        Ok(head)
    };
    let mut headers = Vec::with_capacity(count.min(headers::MAX_HEADERS));
    for _ in 0..count {
        let first = line()?;
        let kind = first.chars().next().ok_or("header without a kind")?;
        let name = unescape(&first[kind.len_utf8()..])?;
        let raw = line()?;
        let value = match kind.to_ascii_lowercase() {
            's' => HeaderValue::Text(unescape(raw)?),
            'u' => HeaderValue::Bytes(unescape(raw)?.into_bytes()),
            'b' => {
                HeaderValue::Bytes(headers::base64_decode(raw).ok_or("bad base64 header value")?)
            }
            other => return Err(format!("unknown header kind {other:?}")),
        };
        headers.push(Header {
            name,
            value,
            in_array: kind.is_ascii_uppercase(),
        });
    }
    Ok((headers, rest))
}

fn number(field: &str, radix: u32, name: &str) -> Result<u64, String> {
    u64::from_str_radix(field, radix).map_err(|_| format!("{name} {field:?} is not a number"))
}

impl Entry {
    /// The stored form: ten fields, each ending in a newline, then the payload as pushed:
    ///
    /// ```text
    /// dueAt \n waitedMs \n firstFailedAt \n maxRetry \n retryCount \n topic \n event \n delay \n
    /// error name \n error message \n [headers section] payload
    /// ```
    ///
    /// The caller's own headers, when there are any, come in a section before the payload that
    /// starts with U+0001 (see [`write_section`]), a character JSON text never starts
    /// with: an entry without them is stored exactly as 0.2 stored it, and 0.2 entries read as
    /// having none. (A payload that does start with it, which pushes never store, is written
    /// after an empty section.)
    ///
    /// Times are base 36; `waitedMs` is empty when unknown; `firstFailedAt` is empty when it is
    /// `dueAt - waitedMs` (a first failure: it failed when it was pushed) or unknown without a
    /// `waitedMs`, `-` when unknown with one; no error is two empty fields. Text fields escape
    /// `\` and newline as `\\` and `\n`; the payload is last and kept verbatim. The first
    /// character is a base-36 digit, never `{`, so entries stored as JSON by earlier versions stay
    /// readable ([`Entry::decode`]).
    pub fn encode(&self) -> String {
        let first_failed_at_due = matches!(
            (self.first_failed_at, self.waited_ms),
            (Some(first), Some(waited)) if self.due_at.checked_sub(waited) == Some(first)
        );
        let mut out = base36(self.due_at);
        out.push('\n');
        out.push_str(&self.encode_after_due(first_failed_at_due));
        out
    }

    /// [`Entry::encode`] without its first field, the due time, which the push and requeue
    /// scripts write from Redis's clock. `failed_when_pushed` says the message first failed when
    /// it was pushed (its first failure): `firstFailedAt` is then left for the reader to derive
    /// as `dueAt - waitedMs`, which is Redis's clock too.
    pub fn encode_after_due(&self, failed_when_pushed: bool) -> String {
        let mut out = String::with_capacity(self.value.len() + self.topic.len() + 64);
        if let Some(waited) = self.waited_ms {
            out.push_str(&base36(waited));
        }
        out.push('\n');
        match (self.first_failed_at, self.waited_ms) {
            _ if failed_when_pushed && self.waited_ms.is_some() => {}
            (Some(first), _) => out.push_str(&base36(first)),
            (None, Some(_)) => out.push('-'),
            (None, None) => {}
        }
        out.push('\n');
        out.push_str(&self.max_retry.to_string());
        out.push('\n');
        out.push_str(&self.retry_count.to_string());
        out.push('\n');
        push_text(&mut out, &self.topic);
        push_text(&mut out, &self.event);
        push_text(&mut out, &self.delay);
        let (name, message) = match &self.last_error {
            Some(error) => (error.name.as_str(), error.message.as_str()),
            None => ("", ""),
        };
        push_text(&mut out, name);
        push_text(&mut out, message);
        if !self.extra.is_empty() || self.value.starts_with(SECTION_MARK) {
            write_section(&mut out, &self.extra);
        }
        out.push_str(&self.value);
        out
    }

    /// Reads an entry stored by [`Entry::encode`], or as JSON by versions before it.
    pub fn decode(text: &str) -> Result<Entry, String> {
        if text.starts_with('{') {
            return serde_json::from_str(text).map_err(|err| err.to_string());
        }
        let mut parts = text.splitn(FIELDS + 1, '\n');
        let mut fields = [""; FIELDS];
        for field in fields.iter_mut() {
            *field = parts
                .next()
                .ok_or_else(|| format!("{FIELDS} fields expected before the payload"))?;
        }
        let value = parts
            .next()
            .ok_or_else(|| format!("{FIELDS} fields expected before the payload"))?;
        let (extra, value) = if value.starts_with(SECTION_MARK) {
            read_section(value)?
        } else {
            (Vec::new(), value)
        };
        let [due, waited, first, max_retry, retry_count, topic, event, delay, name, message] =
            fields;
        let due_at = number(due, 36, "dueAt")?;
        let waited_ms = match waited {
            "" => None,
            w => Some(number(w, 36, "waitedMs")?),
        };
        let first_failed_at = match first {
            "" => waited_ms.map(|w| due_at.saturating_sub(w)),
            "-" => None,
            f => Some(number(f, 36, "firstFailedAt")?),
        };
        let last_error = if name.is_empty() && message.is_empty() {
            None
        } else {
            Some(ErrorInfo {
                name: unescape(name)?,
                message: unescape(message)?,
            })
        };
        Ok(Entry {
            topic: unescape(topic)?,
            event: unescape(event)?,
            value: value.to_string(),
            delay: unescape(delay)?,
            max_retry: number(max_retry, 10, "maxRetry")?,
            retry_count: number(retry_count, 10, "retryCount")?,
            due_at,
            first_failed_at,
            last_error,
            waited_ms,
            extra,
        })
    }
}

/// A dead letter as written to the `dlqName` hash: one field per message, never overwritten by
/// another message.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeadLetter {
    /// The message id (also the hash field).
    pub id: String,
    /// Topic it was meant for.
    pub topic: String,
    /// Kafka key.
    pub event: String,
    /// Payload JSON text, written into the record as JSON (the parsed payload, as the original's
    /// `JSON.stringify({ value: ele.value })` wrote it; see [`value_json`]).
    #[serde(serialize_with = "serialize_value")]
    pub value: String,
    /// The retry options at death, as header strings, then the caller's own headers.
    pub options: DeadLetterOptions,
    /// When it was dead-lettered, ms since the epoch.
    pub died_at: u64,
    /// When it first failed, ms since the epoch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failed_at: Option<u64>,
    /// The last failure's error, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// The `keyPrefix` of the schedule it came from, so a requeue sends it back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
    /// The caller's own headers, as stored with the message (in `options` in the record).
    #[serde(skip)]
    pub extra: Vec<Header>,
}

/// The payload as it goes into a dead letter record: the JSON text itself (so the record holds
/// the parsed payload), except a top-level JSON string, which stays escaped text as 0.2 wrote
/// every payload: readers parse a string `value` that is JSON text, so a string payload that
/// happens to be JSON text itself would otherwise read back as that inner JSON. Text that is not
/// JSON (never pushed; only hand-written records) stays a string too.
pub fn value_json(text: &str) -> Box<serde_json::value::RawValue> {
    let trimmed = text.trim_matches([' ', '\t', '\n', '\r']);
    if !trimmed.starts_with('"') {
        if let Ok(raw) = serde_json::value::RawValue::from_string(trimmed.to_string()) {
            return raw;
        }
    }
    serde_json::value::to_raw_value(text).expect("a string serializes")
}

fn serialize_value<S: serde::Serializer>(text: &str, serializer: S) -> Result<S::Ok, S::Error> {
    value_json(text).serialize(serializer)
}

/// The options of a dead letter, as the header strings the original stored, then the caller's
/// own headers (`headers::to_json`: strings, a `Buffer` as `{ type: 'Buffer', data }`, arrays).
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// The caller's own headers, in their JSON form.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

impl DeadLetter {
    /// The dead letter of an exhausted entry of the schedule `key_prefix`.
    pub fn of(id: &str, entry: &Entry, died_at: u64, key_prefix: &str) -> Self {
        // Caller headers never carry the package's names (`headers::is_interpreted`), so none
        // shadows these four.
        let mut extra = serde_json::Map::new();
        headers::to_json(&entry.extra, &mut extra);
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
                extra,
            },
            died_at,
            first_failed_at: entry.first_failed_at,
            error: entry.last_error.clone(),
            key_prefix: Some(key_prefix.to_string()),
            extra: entry.extra.clone(),
        }
    }
}

/// The topic of a stored entry, read as `tally.lua` reads it in the claim (the sixth field, or
/// `topic` of an entry stored as JSON), so the listener's acks count a message under the topic its
/// claim counted; `""` for an entry without one.
pub fn topic_of(stored: &str) -> String {
    if stored.starts_with('{') {
        #[derive(serde::Deserialize)]
        struct Topic {
            topic: Option<String>,
        }
        return serde_json::from_str::<Topic>(stored)
            .ok()
            .and_then(|t| t.topic)
            .unwrap_or_default();
    }
    let mut fields = stored.splitn(FIELDS + 1, '\n');
    match (fields.nth(5), fields.next()) {
        (Some(topic), Some(_)) => unescape(topic).unwrap_or_else(|_| topic.to_string()),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_topic_is_read_from_either_stored_form() {
        let mut e = Entry::decode("1\n2\n\n3\n1\nt\\\\x\nE\n1\n\n\n{}").unwrap();
        assert_eq!(e.topic, "t\\x");
        assert_eq!(topic_of(&e.encode()), "t\\x");
        e.topic = "orders".into();
        assert_eq!(topic_of(&e.encode()), "orders");
        assert_eq!(topic_of(r#"{"topic":"legacy","value":{}}"#), "legacy");
        assert_eq!(topic_of("not an entry"), "");
    }

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
            extra: Vec::new(),
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
        let names: Vec<_> = h.iter().map(|(k, _)| *k).collect();
        assert_eq!(names, ["delay", "maxRetry", "retryCount", "executeAt"]);
        assert_eq!(h[0].1, "0.5");
        assert_eq!(h[2].1, "2");
        assert_eq!(h[3].1, "42");
        let mut later = entry(2, 3);
        later.first_failed_at = Some(7);
        later.waited_ms = Some(400);
        let h = later.headers();
        assert_eq!(h[4], ("firstFailedAt", "7".to_string()));
        assert_eq!(h[5], ("retryDelayMs", "400".to_string()));
    }

    fn full() -> Entry {
        Entry {
            topic: "orders".into(),
            event: "OrderFailed".into(),
            value: r#"{"msgId":"a","n":1}"#.into(),
            delay: "525600".into(),
            max_retry: 3,
            retry_count: 1,
            due_at: 1_827_402_924_761,
            first_failed_at: Some(1_795_866_924_761),
            last_error: None,
            waited_ms: Some(31_536_000_000),
            extra: Vec::new(),
        }
    }

    fn round_trip(entry: &Entry) {
        let text = entry.encode();
        assert_eq!(&Entry::decode(&text).unwrap(), entry, "stored as {text:?}");
    }

    #[test]
    fn a_first_failure_stores_no_first_failed_at() {
        let entry = full();
        let text = entry.encode();
        assert_eq!(
            text,
            "nbhwioyh\nehjpxc0\n\n3\n1\norders\nOrderFailed\n525600\n\n\n{\"msgId\":\"a\",\"n\":1}"
        );
        round_trip(&entry);
    }

    #[test]
    fn entries_round_trip() {
        round_trip(&entry(2, 3));
        let mut e = full();
        e.first_failed_at = Some(5);
        round_trip(&e);
        e.first_failed_at = None;
        round_trip(&e);
        e.waited_ms = None;
        round_trip(&e);
        e.first_failed_at = Some(9);
        round_trip(&e);
        e.last_error = Some(ErrorInfo {
            name: "TypeError".into(),
            message: "line 1\nline 2 \\n not a newline\\".into(),
        });
        e.event = "a\nb\\".into();
        e.topic = "t\\n".into();
        e.delay = "".into();
        e.value = "{\n  \"pretty\": \"a\\nb\"\n}".into();
        round_trip(&e);
        e.due_at = 0;
        e.waited_ms = Some(u64::MAX);
        round_trip(&e);
    }

    #[test]
    fn entries_stored_as_json_by_earlier_versions_still_read() {
        let legacy = r#"{"topic":"orders","event":"E","value":"{\"n\":1}","delay":"0.5","maxRetry":3,"retryCount":1,"dueAt":42,"firstFailedAt":7,"waitedMs":35}"#;
        let entry = Entry::decode(legacy).unwrap();
        assert_eq!(entry.value, r#"{"n":1}"#);
        assert_eq!(entry.first_failed_at, Some(7));
        assert_eq!(entry.due_at, 42);
    }

    #[test]
    fn broken_entries_are_errors_not_panics() {
        for text in [
            "",
            "zz",
            "1\n2\n3",
            "{",
            "!\n\n\n3\n1\nt\ne\nd\n\n\n{}",
            "1\n\n\nx\n1\nt\ne\nd\n\n\n{}",
            "1\n\n\n3\n1\nt\\q\ne\nd\n\n\n{}",
            "1\n\n\n3\n1\nt\\\ne\nd\n\n\n{}",
            "1\n\n\n3\n1\nt\\é\ne\nd\n\n\n{}",
        ] {
            assert!(Entry::decode(text).is_err(), "{text:?}");
        }
    }

    fn with_headers() -> Entry {
        use crate::message::headers::HeaderValue;
        let mut e = full();
        e.extra = vec![
            Header {
                name: "tenant".into(),
                value: HeaderValue::Text("acme\nwith newline".into()),
                in_array: false,
            },
            Header {
                name: "bin".into(),
                value: HeaderValue::Bytes(vec![0, 1, 255, 10]),
                in_array: true,
            },
        ];
        e
    }

    #[test]
    fn caller_headers_round_trip_and_leave_other_entries_as_0_2_stored_them() {
        // Without caller headers: byte for byte the 0.2 form (the same text as above).
        assert!(!full().encode().contains('\u{1}'));
        let e = with_headers();
        let text = e.encode();
        assert_eq!(
            text,
            "nbhwioyh\nehjpxc0\n\n3\n1\norders\nOrderFailed\n525600\n\n\n\u{1}2\nstenant\nacme\\nwith newline\nBbin\nAAH/Cg==\n{\"msgId\":\"a\",\"n\":1}"
        );
        round_trip(&e);
        let mut odd = full();
        odd.value = "\u{1}not json".into();
        round_trip(&odd);
        odd.extra = with_headers().extra;
        round_trip(&odd);
    }

    #[test]
    fn a_hand_written_0_2_entry_still_reads() {
        // As 0.2.0 stored it (push.lua prepends the due time): no headers section.
        let stored =
            "mk8q3x2a\n1ye\n\n3\n2\norders\nOrderFailed\n0.01\nTypeError\nboom\n{\"msgId\":\"x\"}";
        let entry = Entry::decode(stored).unwrap();
        assert_eq!(entry.value, "{\"msgId\":\"x\"}");
        assert_eq!(entry.retry_count, 2);
        assert!(entry.extra.is_empty());
        assert_eq!(entry.encode(), stored);
    }

    #[test]
    fn dead_letters_hold_the_parsed_payload_and_the_caller_headers() {
        let mut e = with_headers();
        e.value = "  {\"msgId\":\"a\",\"n\":1}\n".into();
        let record = serde_json::to_value(DeadLetter::of("id", &e, 9, "p")).unwrap();
        assert_eq!(record["value"]["msgId"], "a");
        assert_eq!(record["options"]["delay"], "525600");
        assert_eq!(record["options"]["tenant"], "acme\nwith newline");
        assert_eq!(
            record["options"]["bin"],
            serde_json::json!([{ "type": "Buffer", "data": [0, 1, 255, 10] }])
        );
        let keys: Vec<_> = record["options"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect();
        assert_eq!(
            keys,
            [
                "delay",
                "maxRetry",
                "retryCount",
                "executeAt",
                "tenant",
                "bin"
            ]
        );
        // A top-level JSON string stays escaped text (readers parse string values that are JSON).
        e.value = "\"{\\\"a\\\":1}\"".into();
        let record = serde_json::to_value(DeadLetter::of("id", &e, 9, "p")).unwrap();
        assert_eq!(record["value"], serde_json::Value::from(e.value.clone()));
        e.value = "not json".into();
        let record = serde_json::to_value(DeadLetter::of("id", &e, 9, "p")).unwrap();
        assert_eq!(record["value"], "not json");
    }

    #[test]
    fn base36_is_what_javascript_parses() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        assert_eq!(base36(u64::MAX), "3w5e11264sgsf");
    }
}
