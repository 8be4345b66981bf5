//! JavaScript values to core types, with `ERR_INVALID_ARG` errors that name the argument and
//! describe the value (napi's own conversion errors would not carry our codes).

use crate::error::{Result, RetryError};
use crate::options::OptionValue;
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
        ValueType::String => match unsafe { value.cast::<String>() } {
            Ok(s) => format!("string {}", crate::payload::preview(&s)),
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
            let s = unsafe { value.cast::<String>() }.map_err(|_| invalid(describe(value)))?;
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

/// A property of an object, `undefined` when reading fails (getters that throw count as absent).
pub fn property<'env>(object: &Object<'env>, key: &str) -> Option<Unknown<'env>> {
    object.get_named_property::<Unknown>(key).ok()
}

/// An optional string property.
pub fn optional_string(object: &Object, key: &str, name: &str) -> Result<Option<String>> {
    let value = property(object, key);
    if is_nullish(value.as_ref()) {
        return Ok(None);
    }
    string_arg(name, value.as_ref(), false).map(Some)
}

/// An optional number property.
pub fn optional_number(object: &Object, key: &str, name: &str) -> Result<Option<f64>> {
    let value = property(object, key);
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    match value.get_type() {
        Ok(ValueType::Number) => unsafe { value.cast::<f64>() }
            .map(Some)
            .map_err(|_| RetryError::invalid_arg(format!("{name} must be a number"))),
        _ => Err(RetryError::invalid_arg(format!(
            "{name} must be a number, got {}",
            describe(&value)
        ))),
    }
}

/// An optional boolean property.
pub fn optional_bool(object: &Object, key: &str, name: &str) -> Result<Option<bool>> {
    let value = property(object, key);
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    match value.get_type() {
        Ok(ValueType::Boolean) => unsafe { value.cast::<bool>() }
            .map(Some)
            .map_err(|_| RetryError::invalid_arg(format!("{name} must be a boolean"))),
        _ => Err(RetryError::invalid_arg(format!(
            "{name} must be a boolean, got {}",
            describe(&value)
        ))),
    }
}

/// An option (`delay`, `maxRetry`, `retryCount`) as given: text, number, absent or other.
pub fn option_value(object: Option<&Object>, key: &str) -> OptionValue {
    let Some(value) = object.and_then(|o| property(o, key)) else {
        return OptionValue::Missing;
    };
    match value.get_type() {
        Ok(ValueType::Undefined | ValueType::Null) => OptionValue::Missing,
        Ok(ValueType::String) => unsafe { value.cast::<String>() }
            .map(OptionValue::Text)
            .unwrap_or(OptionValue::Other("a string".into())),
        Ok(ValueType::Number) => unsafe { value.cast::<f64>() }
            .map(OptionValue::Number)
            .unwrap_or(OptionValue::Other("a number".into())),
        _ => OptionValue::Other(describe(&value)),
    }
}

/// The `error` option: an `Error` (its `message` and `name`), a string, or anything else as text.
/// `None` when absent. Never fails: the error only informs dead letters.
pub fn error_info(value: Option<Unknown>) -> Option<crate::entry::ErrorInfo> {
    let value = value.filter(|v| !is_nullish(Some(v)))?;
    let text = |v: Option<Unknown>| -> Option<String> {
        let v = v?;
        match v.get_type().ok()? {
            ValueType::String => unsafe { v.cast::<String>() }.ok(),
            _ => None,
        }
    };
    let (message, name) = match value.get_type().ok()? {
        ValueType::String => (unsafe { value.cast::<String>() }.ok()?, "Error".to_string()),
        ValueType::Object => {
            let object = unsafe { value.cast::<Object>() }.ok()?;
            (
                text(property(&object, "message")).unwrap_or_else(|| describe(&value)),
                text(property(&object, "name")).unwrap_or_else(|| "Error".to_string()),
            )
        }
        _ => (describe(&value), "Error".to_string()),
    };
    // Keep entries small: a huge message is cut, on a character boundary.
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
    Some(crate::entry::ErrorInfo { message, name })
}

/// A Kafka header value as kafkajs gives it (Buffer, string, number, or an array of them; the
/// last element of an array wins, as a later header overrides an earlier one) to text. Absent or
/// empty values are `None`, so the original's defaults apply.
pub fn header_text(value: Option<Unknown>) -> Option<String> {
    let value = value?;
    let text = match value.get_type().ok()? {
        ValueType::String => unsafe { value.cast::<String>() }.ok()?,
        ValueType::Number => crate::options::format_js_number(unsafe { value.cast::<f64>() }.ok()?),
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
            return header_text(array.get_element::<Unknown>(len - 1).ok());
        }
        _ => return None,
    };
    (!text.is_empty()).then_some(text)
}

/// Message `value`: JSON text as given, or any other JSON-able value serialized (keeping the
/// object's key order, as `JSON.stringify` would).
pub fn json_text(name: &str, value: Option<&Unknown>) -> Result<String> {
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Err(RetryError::invalid_arg(format!(
            "{name} must be JSON text (or a JSON-serializable value), got {}",
            value.map_or("undefined".to_string(), describe)
        )));
    };
    match value.get_type() {
        Ok(ValueType::String) => unsafe { value.cast::<String>() }
            .map_err(|_| RetryError::invalid_arg(format!("{name} is not readable text"))),
        Ok(ValueType::Function | ValueType::Symbol | ValueType::BigInt | ValueType::External) => {
            Err(RetryError::invalid_arg(format!(
                "{name} must be JSON text, got {}",
                describe(value)
            )))
        }
        _ => {
            let json = unsafe { value.cast::<serde_json::Value>() }.map_err(|err| {
                RetryError::invalid_arg(format!(
                    "{name} cannot be serialized to JSON ({})",
                    describe(value)
                ))
                .caused_by(err)
            })?;
            Ok(json.to_string())
        }
    }
}
