//! The pushes of one JavaScript tick, packed by `lib/push-pack.js` into one string, read back into
//! push requests (`pushPacked`). The string is read as UTF-16, as JavaScript holds it, so lengths
//! are JavaScript's own `.length` and each field is turned into UTF-8 on its own (a lone surrogate
//! becomes U+FFFD, as when the value is read alone).
//!
//! Format (`docs/push-batch.md`): a field is `<length>:<text>`, a count is `<n>:`. A push is its
//! topic, event and value fields, the count of its option pairs, then each pair: the key field, a
//! tag and the value: `s` a string field, `n` a number's JavaScript text, `u` absent (`undefined`
//! or `null`, no field), `x` a Buffer as a field of one character per byte, `e` an error object's
//! message and name fields.

use crate::convert::error_info_of;
use engine::error::{Result as CoreResult, RetryError};
use engine::message::headers::{is_interpreted, Header, HeaderValue, MAX_HEADERS};
use engine::message::options::{
    format_js_number, parse_first_failed_at, OptionValue, RetryOptions,
};
use engine::retry::PushRequest;
use engine::store::entry::ErrorInfo;

/// One option value as packed.
enum Value<'a> {
    Text(&'a [u16]),
    Number(f64),
    Missing,
    Bytes(&'a [u16]),
    Error(&'a [u16], &'a [u16]),
}

/// Reads the packed pushes: one outcome per push, an invalid one (a bad retry option) failing
/// alone. `Err` when the text is not a well-formed pack (a bug in the packer, never user input).
pub fn unpack(packed: &[u16]) -> CoreResult<Vec<CoreResult<PushRequest>>> {
    let mut reader = Reader { rest: packed };
    let mut pushes = Vec::new();
    while !reader.rest.is_empty() {
        pushes.push(reader.push()?);
    }
    Ok(pushes)
}

struct Reader<'a> {
    rest: &'a [u16],
}

fn malformed() -> RetryError {
    RetryError::invalid_arg("pushPacked: the packed pushes are malformed")
}

fn utf8(units: &[u16]) -> String {
    // ASCII, the usual text of topics, events, JSON and option values, is narrowed unit by unit:
    // `from_utf16_lossy` decodes and pushes one char at a time, which showed in profiles.
    if units.iter().all(|&unit| unit < 0x80) {
        let bytes: Vec<u8> = units.iter().map(|&unit| unit as u8).collect();
        return String::from_utf8(bytes).expect("ASCII is UTF-8");
    }
    String::from_utf16_lossy(units)
}

impl<'a> Reader<'a> {
    /// A decimal count ended by `:`.
    fn count(&mut self) -> CoreResult<usize> {
        let mut n: usize = 0;
        for (i, &unit) in self.rest.iter().enumerate() {
            match unit {
                0x30..=0x39 if i < 16 => n = n * 10 + (unit - 0x30) as usize,
                0x3a if i > 0 => {
                    self.rest = &self.rest[i + 1..];
                    return Ok(n);
                }
                _ => break,
            }
        }
        Err(malformed())
    }

    fn field(&mut self) -> CoreResult<&'a [u16]> {
        let len = self.count()?;
        if len > self.rest.len() {
            return Err(malformed());
        }
        let (field, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(field)
    }

    fn value(&mut self) -> CoreResult<Value<'a>> {
        let (&tag, rest) = self.rest.split_first().ok_or_else(malformed)?;
        self.rest = rest;
        Ok(match tag {
            0x73 /* s */ => Value::Text(self.field()?),
            0x6e /* n */ => Value::Number(
                utf8(self.field()?)
                    .parse::<f64>()
                    .map_err(|_| malformed())?,
            ),
            0x75 /* u */ => Value::Missing,
            0x78 /* x */ => Value::Bytes(self.field()?),
            0x65 /* e */ => Value::Error(self.field()?, self.field()?),
            _ => return Err(malformed()),
        })
    }

    fn push(&mut self) -> CoreResult<CoreResult<PushRequest>> {
        let topic = self.field()?;
        let event = self.field()?;
        let value = self.field()?;
        let pairs = self.count()?;
        let mut options = [const { None }; 4];
        let mut error = None;
        let mut extra = Vec::new();
        for _ in 0..pairs {
            let key = utf8(self.field()?);
            let value = self.value()?;
            match ["delay", "maxRetry", "retryCount", "firstFailedAt"]
                .iter()
                .position(|k| *k == key)
            {
                Some(i) => options[i] = Some(option_value(&value)),
                None if key == "error" => error = error_info(&value),
                None if is_interpreted(&key) => {}
                // Past the limit already: `headers::check_limits` says so.
                None if extra.len() > MAX_HEADERS => {}
                None => {
                    if let Some(value) = header_value(value)? {
                        extra.push(Header {
                            name: key,
                            value,
                            in_array: false,
                        });
                    }
                }
            }
        }
        let [delay, max_retry, retry_count, first_failed_at] =
            options.map(|o| o.unwrap_or(OptionValue::Missing));
        let mut parsed = match RetryOptions::parse(delay, max_retry, retry_count) {
            Ok(parsed) => parsed,
            Err(err) => return Ok(Err(err)),
        };
        parsed.first_failed_at = parse_first_failed_at(first_failed_at);
        Ok(Ok(PushRequest {
            topic: utf8(topic),
            event: utf8(event),
            value: utf8(value),
            options: parsed,
            error,
            extra,
        }))
    }
}

/// A retry option as `convert::option_value_of` reads it.
fn option_value(value: &Value) -> OptionValue {
    match value {
        Value::Text(text) => OptionValue::Text(utf8(text)),
        Value::Number(n) => OptionValue::Number(*n),
        Value::Missing => OptionValue::Missing,
        // The packer sends these only for headers; read as the native path would describe them.
        Value::Bytes(_) => OptionValue::Other("a Buffer".into()),
        Value::Error(..) => OptionValue::Other("an object".into()),
    }
}

/// The `error` option as `convert::error_info` reads it.
fn error_info(value: &Value) -> Option<ErrorInfo> {
    match value {
        Value::Text(text) => Some(error_info_of(utf8(text), "Error".into())),
        Value::Error(message, name) => Some(error_info_of(utf8(message), utf8(name))),
        Value::Number(n) => Some(error_info_of(format!("number {n}"), "Error".into())),
        Value::Missing => None,
        Value::Bytes(_) => Some(error_info_of("a Buffer".into(), "Error".into())),
    }
}

/// A header value as `convert::header_value` reads it.
fn header_value(value: Value) -> CoreResult<Option<HeaderValue>> {
    Ok(Some(match value {
        Value::Text(text) => HeaderValue::Text(utf8(text)),
        Value::Number(n) => HeaderValue::Text(format_js_number(n)),
        Value::Missing => return Ok(None),
        Value::Bytes(units) => {
            let mut bytes = Vec::with_capacity(units.len());
            for &unit in units {
                bytes.push(u8::try_from(unit).map_err(|_| malformed())?);
            }
            HeaderValue::Bytes(bytes)
        }
        Value::Error(..) => return Err(malformed()),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(s: &str) -> Vec<u16> {
        s.encode_utf16().collect()
    }

    #[test]
    fn reads_pushes_with_their_options_and_headers() {
        let packed = units(
            "6:orders3:k-17:{\"a\":1}4:5:delays1:28:maxRetryn1:52:tpx2:\u{ff}\u{0}5:errore4:boom9:TypeError\
             1:t0:2:[]0:",
        );
        let pushes = unpack(&packed).unwrap();
        assert_eq!(pushes.len(), 2);
        let first = pushes[0].as_ref().unwrap();
        assert_eq!(
            (first.topic.as_str(), first.event.as_str()),
            ("orders", "k-1")
        );
        assert_eq!(first.value, "{\"a\":1}");
        assert_eq!(first.options.delay_text, "2");
        assert_eq!(first.options.max_retry, 5);
        assert_eq!(first.extra.len(), 1);
        assert_eq!(first.extra[0].value, HeaderValue::Bytes(vec![0xff, 0]));
        let error = first.error.as_ref().unwrap();
        assert_eq!(
            (error.message.as_str(), error.name.as_str()),
            ("boom", "TypeError")
        );
        let second = pushes[1].as_ref().unwrap();
        assert_eq!(
            (
                second.topic.as_str(),
                second.event.as_str(),
                second.value.as_str()
            ),
            ("t", "", "[]")
        );
    }

    #[test]
    fn a_bad_option_fails_its_push_alone() {
        let packed = units("1:t0:2:{}1:5:delays3:abc1:t0:2:{}0:");
        let pushes = unpack(&packed).unwrap();
        let err = pushes[0].as_ref().unwrap_err();
        assert_eq!(err.code, engine::error::ErrorCode::InvalidArg);
        assert!(pushes[1].is_ok());
    }

    #[test]
    fn lengths_count_utf16_units_and_lone_surrogates_become_replacement_characters() {
        let mut packed = units("1:t2:");
        packed.extend([0xd83d, 0xde00]); // one emoji, two units
        packed.extend(units("1:"));
        packed.push(0xd800); // a lone surrogate
        packed.extend(units("0:"));
        let pushes = unpack(&packed).unwrap();
        let push = pushes[0].as_ref().unwrap();
        assert_eq!(push.event, "\u{1f600}");
        assert_eq!(push.value, "\u{fffd}");
    }

    #[test]
    fn a_malformed_pack_is_an_error_not_a_panic() {
        for bad in [
            "x",
            "5:ab",
            "1:t0:2:{}1:1:ak",
            "1:t0:2:{}1:1:an1:z",
            "99999999999999999999:",
        ] {
            assert!(unpack(&units(bad)).is_err(), "{bad}");
        }
        assert!(unpack(&[]).unwrap().is_empty());
    }
}
