//! JavaScript values to core types, with `ERR_INVALID_ARG` errors that name the argument and
//! describe the value (napi's own conversion errors would not carry our codes).

use engine::error::{Result, RetryError};
use engine::message::options::OptionValue;
use napi::bindgen_prelude::*;
use napi::JsValue;

/// A short description of a JavaScript value for error messages: `undefined`, `null`,
/// `number 5`, `string "x"`, `object`, `array`, `function`, `Buffer`.
pub fn describe(value: &Unknown) -> String {
    let kind = match value.get_type() {
        Ok(kind) => kind,
        Err(_) => return "a value of unknown type".to_string(),
    };
    match kind {
        ValueType::Undefined => "undefined".to_string(),
        ValueType::Null => "null".to_string(),
        ValueType::Boolean => format!(
            "boolean {}",
            unsafe { value.cast::<bool>() }.unwrap_or_default()
        ),
        ValueType::Number => format!(
            "number {}",
            unsafe { value.cast::<f64>() }.unwrap_or(f64::NAN)
        ),
        ValueType::String => match text(value) {
            Ok(s) => format!("string {}", engine::message::payload::preview(&s)),
            Err(_) => "a string".to_string(),
        },
        ValueType::Object if value.is_array().unwrap_or(false) => "an array".to_string(),
        ValueType::Object if value.is_buffer().unwrap_or(false) => "a Buffer".to_string(),
        ValueType::Object => "an object".to_string(),
        ValueType::Function => "a function".to_string(),
        ValueType::Symbol => "a symbol".to_string(),
        ValueType::BigInt => "a bigint".to_string(),
        _ => "a value of unknown type".to_string(),
    }
}

/// A JavaScript string's UTF-8 text. Most strings a push carries (topic, option values, header
/// names, small payloads) fit a stack buffer and take one N-API call; napi-rs's `String`
/// conversion takes two (measure, then copy) and walks the string twice.
pub fn text(value: &Unknown) -> napi::Result<String> {
    const CAP: usize = 1024;
    // Not zeroed: the engine writes the first `len` bytes, and only those are read.
    let mut buf = std::mem::MaybeUninit::<[u8; CAP]>::uninit();
    let mut len = 0usize;
    let raw = value.value();
    check_status!(unsafe {
        sys::napi_get_value_string_utf8(raw.env, raw.value, buf.as_mut_ptr().cast(), CAP, &mut len)
    })?;
    // The engine stops before a character that does not fit whole (at most 4 bytes) and keeps
    // one byte for a NUL: with 4 bytes to spare the text is complete.
    if len + 5 <= CAP {
        // SAFETY: napi_get_value_string_utf8 wrote `len` (< CAP) bytes at the start of `buf`.
        let written = unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), len) };
        if let Ok(text) = std::str::from_utf8(written) {
            return Ok(text.to_owned());
        }
    }
    unsafe { value.cast::<String>() }
}

/// Whether the value is `undefined` or `null` (or was not passed at all).
pub fn is_nullish(value: Option<&Unknown>) -> bool {
    match value {
        None => true,
        Some(v) => matches!(v.get_type(), Ok(ValueType::Undefined | ValueType::Null)),
    }
}

/// A required string argument.
pub fn string_arg(name: &str, value: Option<&Unknown>, non_empty: bool) -> Result<String> {
    let invalid = |got: String| {
        let what = if non_empty {
            "a non-empty string"
        } else {
            "a string"
        };
        RetryError::invalid_arg(format!("{name} must be {what}, got {got}"))
    };
    let Some(value) = value else {
        return Err(invalid("undefined".into()));
    };
    match value.get_type() {
        Ok(ValueType::String) => {
            let s = text(value).map_err(|_| invalid(describe(value)))?;
            if non_empty && s.is_empty() {
                Err(invalid("\"\"".into()))
            } else {
                Ok(s)
            }
        }
        _ => Err(invalid(describe(value))),
    }
}

/// An optional object argument: `None` for `undefined`/`null`.
pub fn object_arg<'env>(name: &str, value: Option<&Unknown<'env>>) -> Result<Option<Object<'env>>> {
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    match value.get_type() {
        Ok(ValueType::Object) if !value.is_array().unwrap_or(false) => unsafe {
            value.cast::<Object>()
        }
        .map(Some)
        .map_err(|_| {
            RetryError::invalid_arg(format!("{name} must be an object, got {}", describe(value)))
        }),
        _ => Err(RetryError::invalid_arg(format!(
            "{name} must be an object, got {}",
            describe(value)
        ))),
    }
}

/// Clears the JavaScript exception a failed N-API call left pending (a getter or Proxy trap that
/// threw). Left pending, it would be thrown at the caller when we return, bypassing our coded
/// errors, or make every later N-API call of this call fail.
pub fn clear_pending_exception(env: sys::napi_env) {
    let mut pending = false;
    unsafe {
        if sys::napi_is_exception_pending(env, &mut pending) == sys::Status::napi_ok && pending {
            let mut exception = std::ptr::null_mut();
            sys::napi_get_and_clear_last_exception(env, &mut exception);
        }
    }
}

/// Reads through N-API, turning a thrown exception into `None` (and clearing it).
pub fn read<T>(env: sys::napi_env, result: napi::Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(_) => {
            clear_pending_exception(env);
            None
        }
    }
}

/// A property of an object, `None` when reading fails: a getter or Proxy trap that throws counts
/// as absent, and its exception is cleared.
pub fn property<'env>(object: &Object<'env>, key: &str) -> Option<Unknown<'env>> {
    read(
        object.value().env,
        object.get_named_property::<Unknown>(key),
    )
}

/// A property of an object by a JavaScript key (any string, NUL included), `None` when reading
/// fails (exception cleared).
pub fn property_by<'env>(object: &Object<'env>, key: &Unknown) -> Option<Unknown<'env>> {
    let env = object.value().env;
    let mut result = std::ptr::null_mut();
    let status = unsafe {
        sys::napi_get_property(env, object.value().value, key.value().value, &mut result)
    };
    if status != sys::Status::napi_ok {
        clear_pending_exception(env);
        return None;
    }
    Some(unsafe { Unknown::from_raw_unchecked(env, result) })
}

/// Element `index` of an array, `None` when reading fails (exception cleared).
pub fn element<'env>(array: &Object<'env>, index: u32) -> Option<Unknown<'env>> {
    read(array.value().env, array.get_element::<Unknown>(index))
}

/// An optional string property.
pub fn optional_string(object: &Object, key: &str, name: &str) -> Result<Option<String>> {
    let value = property(object, key);
    if is_nullish(value.as_ref()) {
        return Ok(None);
    }
    string_arg(name, value.as_ref(), false).map(Some)
}

/// An optional property of one JavaScript type (`kind`, named `what` in errors, e.g.
/// "a number"): `None` when absent or nullish, `ERR_INVALID_ARG` naming `name` otherwise.
fn optional_of<T: FromNapiValue>(
    object: &Object,
    key: &str,
    name: &str,
    kind: ValueType,
    what: &str,
) -> Result<Option<T>> {
    let value = property(object, key);
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    match value.get_type() {
        Ok(found) if found == kind => unsafe { value.cast::<T>() }
            .map(Some)
            .map_err(|_| RetryError::invalid_arg(format!("{name} must be {what}"))),
        _ => Err(RetryError::invalid_arg(format!(
            "{name} must be {what}, got {}",
            describe(&value)
        ))),
    }
}

/// An optional number property.
pub fn optional_number(object: &Object, key: &str, name: &str) -> Result<Option<f64>> {
    optional_of(object, key, name, ValueType::Number, "a number")
}

/// An optional boolean property.
pub fn optional_bool(object: &Object, key: &str, name: &str) -> Result<Option<bool>> {
    optional_of(object, key, name, ValueType::Boolean, "a boolean")
}

/// An option (`delay`, `maxRetry`, `retryCount`) as given: text, number, absent or other.
pub fn option_value_of(value: Option<Unknown>) -> OptionValue {
    let Some(value) = value else {
        return OptionValue::Missing;
    };
    match value.get_type() {
        Ok(ValueType::Undefined | ValueType::Null) => OptionValue::Missing,
        Ok(ValueType::String) => text(&value)
            .map(OptionValue::Text)
            .unwrap_or(OptionValue::Other("a string".into())),
        Ok(ValueType::Number) => unsafe { value.cast::<f64>() }
            .map(OptionValue::Number)
            .unwrap_or(OptionValue::Other("a number".into())),
        _ => OptionValue::Other(describe(&value)),
    }
}

/// A property of `object` taken from its own entries already read ([`own_entries`]), else read
/// by name (an inherited or non-enumerable one): a push enumerates its options once instead of
/// also looking each option up.
pub fn entry_or_property<'env>(
    entries: &[(String, Unknown<'env>)],
    object: &Object<'env>,
    key: &str,
) -> Option<Unknown<'env>> {
    match entries.iter().find(|(name, _)| name == key) {
        Some((_, value)) => Some(*value),
        None => property(object, key),
    }
}

/// The `error` option: an `Error` (its `message` and `name`), a string, or anything else as text.
/// `None` when absent. Never fails: the error only informs dead letters.
pub fn error_info(value: Option<Unknown>) -> Option<engine::store::entry::ErrorInfo> {
    let value = value.filter(|v| !is_nullish(Some(v)))?;
    let string_of = |v: Option<Unknown>| -> Option<String> {
        let v = v?;
        match v.get_type().ok()? {
            ValueType::String => text(&v).ok(),
            _ => None,
        }
    };
    let (message, name) = match value.get_type().ok()? {
        ValueType::String => (text(&value).ok()?, "Error".to_string()),
        ValueType::Object => {
            let object = unsafe { value.cast::<Object>() }.ok()?;
            (
                string_of(property(&object, "message")).unwrap_or_else(|| describe(&value)),
                string_of(property(&object, "name")).unwrap_or_else(|| "Error".to_string()),
            )
        }
        _ => (describe(&value), "Error".to_string()),
    };
    Some(error_info_of(message, name))
}

/// An error's message and name as an entry keeps them: a huge message is cut, on a character
/// boundary, to keep entries small.
pub fn error_info_of(message: String, name: String) -> engine::store::entry::ErrorInfo {
    const MAX: usize = 4_096;
    let message = if message.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|&i| message.is_char_boundary(i))
            .unwrap_or(0);
        format!("{}...", &message[..cut])
    } else {
        message
    };
    engine::store::entry::ErrorInfo { message, name }
}

/// A Kafka header value as kafkajs gives it (Buffer, string, number, or an array of them; the
/// last element of an array wins, as a later header overrides an earlier one) to text. Absent or
/// empty values are `None`, so the original's defaults apply.
pub fn header_text(value: Option<Unknown>) -> Option<String> {
    let value = value?;
    let text = match value.get_type().ok()? {
        ValueType::String => text(&value).ok()?,
        ValueType::Number => {
            engine::message::options::format_js_number(unsafe { value.cast::<f64>() }.ok()?)
        }
        ValueType::Object if value.is_buffer().unwrap_or(false) => {
            let bytes = unsafe { value.cast::<BufferSlice>() }.ok()?;
            String::from_utf8_lossy(&bytes).into_owned()
        }
        ValueType::Object if value.is_array().unwrap_or(false) => {
            let array = unsafe { value.cast::<Object>() }.ok()?;
            let len = array.get_array_length().ok()?;
            if len == 0 {
                return None;
            }
            return header_text(element(&array, len - 1));
        }
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// Message `value`: JSON text as given, or any other value serialized with the engine's own
/// `JSON.stringify` (so `toJSON`, key order and dates behave exactly as the original class's
/// `JSON.stringify(value)` did).
pub fn json_text(name: &str, value: Option<&Unknown>) -> Result<String> {
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Err(RetryError::invalid_arg(format!(
            "{name} must be JSON text (or a JSON-serializable value), got {}",
            value.map_or("undefined".to_string(), describe)
        )));
    };
    match value.get_type() {
        Ok(ValueType::String) => {
            text(value).map_err(|_| RetryError::invalid_arg(format!("{name} is not readable text")))
        }
        Ok(ValueType::Function | ValueType::Symbol | ValueType::BigInt | ValueType::External) => {
            Err(RetryError::invalid_arg(format!(
                "{name} must be JSON text, got {}",
                describe(value)
            )))
        }
        _ => stringify(value).map_err(|reason| {
            RetryError::invalid_arg(format!(
                "{name} cannot be serialized to JSON ({}): {reason}",
                describe(value)
            ))
        }),
    }
}

/// `JSON.stringify(value)` of the engine; `Err` says why it failed (it threw, or gave no text).
fn stringify(value: &Unknown) -> std::result::Result<String, String> {
    let env = value.value().env;
    let mut global = std::ptr::null_mut();
    let mut json = std::ptr::null_mut();
    let mut stringify = std::ptr::null_mut();
    let mut out = std::ptr::null_mut();
    unsafe {
        if sys::napi_get_global(env, &mut global) != sys::Status::napi_ok
            || sys::napi_get_named_property(env, global, c"JSON".as_ptr(), &mut json)
                != sys::Status::napi_ok
            || sys::napi_get_named_property(env, json, c"stringify".as_ptr(), &mut stringify)
                != sys::Status::napi_ok
        {
            clear_pending_exception(env);
            return Err("JSON.stringify is not available".to_string());
        }
        let args = [value.value().value];
        if sys::napi_call_function(env, json, stringify, 1, args.as_ptr(), &mut out)
            != sys::Status::napi_ok
        {
            let mut pending = false;
            sys::napi_is_exception_pending(env, &mut pending);
            let mut reason = "JSON.stringify threw".to_string();
            if pending {
                let mut exception = std::ptr::null_mut();
                sys::napi_get_and_clear_last_exception(env, &mut exception);
                let thrown = Unknown::from_raw_unchecked(env, exception);
                let text = thrown
                    .coerce_to_string()
                    .and_then(|s| s.into_utf8())
                    .and_then(|s| s.into_owned());
                if let Some(message) = read(env, text) {
                    reason = format!(
                        "JSON.stringify threw: {}",
                        engine::message::payload::preview(&message)
                    );
                }
            }
            return Err(reason);
        }
        let result = Unknown::from_raw_unchecked(env, out);
        match result.get_type() {
            Ok(ValueType::String) => text(&result).map_err(|e| e.reason),
            _ => Err("JSON.stringify gave no text".to_string()),
        }
    }
}

/// The own enumerable string keys of an object with their values, in `Object.keys` order (what
/// a spread `{ ...options }` copies, symbols aside). A key whose getter throws is left out.
pub fn own_entries<'env>(object: &Object<'env>) -> Vec<(String, Unknown<'env>)> {
    own_keys(object)
        .into_iter()
        .filter_map(|(key, name)| property_by(object, &name).map(|value| (key, value)))
        .collect()
}

/// The own enumerable string keys of an object, each with its JavaScript name, in `Object.keys`
/// order; no getter is called.
fn own_keys<'env>(object: &Object<'env>) -> Vec<(String, Unknown<'env>)> {
    let env = object.value().env;
    let Some(names) = read(
        env,
        object.get_all_property_names(
            KeyCollectionMode::OwnOnly,
            KeyFilter::Enumerable,
            KeyConversion::NumbersToStrings,
        ),
    ) else {
        return Vec::new();
    };
    let mut keys = Vec::new();
    for i in 0..names.get_array_length().unwrap_or(0) {
        let Some(name) = element(&names, i) else {
            continue;
        };
        if !matches!(name.get_type(), Ok(ValueType::String)) {
            continue;
        }
        let Ok(key) = text(&name) else {
            continue;
        };
        keys.push((key, name));
    }
    keys
}

/// Fails with `ERR_INVALID_ARG` when `object` (named `name`) has an own key that `known` does
/// not hold, naming the closest known key (`engine::config::check_keys`).
pub fn only_known_keys(object: &Object, name: &str, known: &[&str]) -> Result<()> {
    // Keys only: a getter is read once, when its key is read.
    let keys: Vec<String> = own_keys(object).into_iter().map(|(k, _)| k).collect();
    engine::config::check_keys(name, &keys, known)
}

/// One option value as a Kafka header value: a string as given, a `Buffer` byte for byte, a
/// number or boolean as its text. `Ok(None)` for `undefined`/`null` (left out, as
/// `JSON.stringify` leaves out `undefined`).
/// The byte lengths of the header values `value` becomes (one per array element, none for
/// `undefined`), or `None` when `pushToQueue` would refuse it as a header.
pub fn header_sizes(name: &str, value: &Unknown) -> Option<Vec<usize>> {
    if !value.is_array().unwrap_or(false) {
        let one = header_value(name, value).ok()?;
        return Some(one.map(|v| vec![v.as_bytes().len()]).unwrap_or_default());
    }
    let array = unsafe { value.cast::<Object>() }.ok()?;
    let mut sizes = Vec::new();
    for i in 0..array.get_array_length().unwrap_or(0) {
        let Some(item) = element(&array, i) else {
            continue;
        };
        if item.is_array().unwrap_or(false) {
            return None;
        }
        if let Some(v) = header_value(name, &item).ok()? {
            sizes.push(v.as_bytes().len());
        }
    }
    Some(sizes)
}

fn header_value(
    name: &str,
    value: &Unknown,
) -> Result<Option<engine::message::headers::HeaderValue>> {
    use engine::message::headers::HeaderValue;
    Ok(Some(match value.get_type() {
        Ok(ValueType::Undefined | ValueType::Null) => return Ok(None),
        Ok(ValueType::String) => HeaderValue::Text(
            text(value)
                .map_err(|_| RetryError::invalid_arg(format!("options[{name:?}] is not readable text")))?,
        ),
        Ok(ValueType::Number) => HeaderValue::Text(engine::message::options::format_js_number(
            unsafe { value.cast::<f64>() }.unwrap_or(f64::NAN),
        )),
        Ok(ValueType::Boolean) => {
            HeaderValue::Text(unsafe { value.cast::<bool>() }.unwrap_or_default().to_string())
        }
        Ok(ValueType::Object) if value.is_buffer().unwrap_or(false) => {
            let bytes = unsafe { value.cast::<BufferSlice>() }.map_err(|_| {
                RetryError::invalid_arg(format!("options[{name:?}] is not a readable Buffer"))
            })?;
            HeaderValue::Bytes(bytes.to_vec())
        }
        _ => {
            return Err(RetryError::invalid_arg(format!(
                "options[{name:?}] becomes a Kafka header: it must be a string, a Buffer or an array of them, got {}",
                describe(value)
            )))
        }
    }))
}

/// The caller's own headers among the own entries of `options` ([`own_entries`]): every key the
/// package does not interpret (`headers::is_interpreted`), in key order; an array value gives one
/// header per element.
pub fn extra_headers(
    entries: Vec<(String, Unknown)>,
) -> Result<Vec<engine::message::headers::Header>> {
    use engine::message::headers::{is_interpreted, Header, MAX_HEADERS};
    let mut headers = Vec::new();
    for (name, value) in entries {
        if is_interpreted(&name) {
            continue;
        }
        if value.is_array().unwrap_or(false) {
            let array = unsafe { value.cast::<Object>() }.map_err(|_| {
                RetryError::invalid_arg(format!("options[{name:?}] is not readable"))
            })?;
            let len = array.get_array_length().unwrap_or(0);
            for i in 0..len {
                if headers.len() > MAX_HEADERS {
                    break; // over the limit already: `headers::check_limits` says so
                }
                let Some(item) = element(&array, i) else {
                    continue;
                };
                if item.is_array().unwrap_or(false) {
                    return Err(RetryError::invalid_arg(format!(
                        "options[{name:?}][{i}] must be a string or a Buffer, got an array"
                    )));
                }
                if let Some(value) = header_value(&format!("{name}[{i}]"), &item)? {
                    headers.push(Header {
                        name: name.clone(),
                        value,
                        in_array: true,
                    });
                }
            }
        } else if let Some(value) = header_value(&name, &value)? {
            headers.push(Header {
                name,
                value,
                in_array: false,
            });
        }
        if headers.len() > MAX_HEADERS {
            break;
        }
    }
    Ok(headers)
}

/// A string argument's UTF-16 code units, as JavaScript holds them (no UTF-8 conversion).
pub fn utf16_units(name: &str, value: Option<&Unknown>) -> Result<Vec<u16>> {
    let invalid = || RetryError::invalid_arg(format!("{name} must be a string"));
    let value = value.filter(|v| matches!(v.get_type(), Ok(ValueType::String)));
    let Some(value) = value else {
        return Err(invalid());
    };
    let raw = value.value();
    let mut len = 0usize;
    if unsafe {
        sys::napi_get_value_string_utf16(raw.env, raw.value, std::ptr::null_mut(), 0, &mut len)
    } != sys::Status::napi_ok
    {
        return Err(invalid());
    }
    // One more unit for the NUL the engine writes.
    let mut units = Vec::<u16>::with_capacity(len + 1);
    let mut written = 0usize;
    let status = unsafe {
        sys::napi_get_value_string_utf16(
            raw.env,
            raw.value,
            units.as_mut_ptr(),
            len + 1,
            &mut written,
        )
    };
    if status != sys::Status::napi_ok || written != len {
        return Err(invalid());
    }
    // SAFETY: the engine wrote `written` units at the start of the buffer.
    unsafe { units.set_len(written) };
    Ok(units)
}

/// The instant `waited_ms` milliseconds ago (now when absent, not finite or negative), so a
/// wait measured in JavaScript counts against the Redis timeout.
pub fn instant_before(waited_ms: Option<f64>) -> std::time::Instant {
    let now = std::time::Instant::now();
    match waited_ms {
        Some(ms) if ms.is_finite() && ms > 0.0 => now
            .checked_sub(std::time::Duration::from_secs_f64(
                ms.min(86_400_000.0) / 1000.0,
            ))
            .unwrap_or(now),
        _ => now,
    }
}
