//! Listener events and log lines to JavaScript: config `onEvent(event)` and `logger`
//! (`{ warn(message), error(message) }`, e.g. `console`). Without them, warnings and errors go to
//! stderr, and never a line per tick.

use super::convert::{is_nullish, property};
use super::js_publisher::Ignored;
use crate::error::{ErrorCode, Result as CoreResult, RetryError};
use crate::events::{Event, Observer, StderrObserver};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Weak: a callback alone must not keep Node alive.
type Callback<T> = Arc<ThreadsafeFunction<T, Ignored, T, Status, false, true>>;

/// Callback calls waiting for the JS thread at most; beyond, events are dropped and counted, so
/// a slow `onEvent` or logger cannot make memory grow with the listener's pace.
const MAX_PENDING_CALLS: usize = 1024;

/// Calls into JavaScript that have not finished yet, and those dropped for want of room.
#[derive(Default)]
struct Calls {
    pending: Arc<AtomicUsize>,
    dropped: AtomicU64,
}

impl Calls {
    /// Calls a JS callback without waiting, if fewer than [`MAX_PENDING_CALLS`] are pending. A
    /// callback that throws is ignored: a logging or metrics bug in the service must not crash
    /// the process or stop the listener.
    fn call<T: 'static + Send + JsValuesTupleIntoVec>(&self, callback: &Callback<T>, value: T) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.pending.fetch_add(1, Ordering::AcqRel) >= MAX_PENDING_CALLS {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let callback = callback.clone();
        let pending = self.pending.clone();
        runtime.spawn(async move {
            let _ = callback.call_async_catch(value).await;
            pending.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// How many were dropped since the last time this was asked, once there is room again.
    fn take_dropped(&self) -> u64 {
        if self.pending.load(Ordering::Acquire) >= MAX_PENDING_CALLS / 2 {
            return 0;
        }
        self.dropped.swap(0, Ordering::Relaxed)
    }
}

/// The observer of one `KafkaRetry` instance.
pub struct JsObserver {
    on_event: Option<Callback<serde_json::Value>>,
    warn: Option<Callback<String>>,
    error: Option<Callback<String>>,
    fallback: StderrObserver,
    calls: Calls,
}

fn function_of<T: 'static + JsValuesTupleIntoVec>(
    owner: Option<&Object>,
    value: Option<Unknown>,
    name: &str,
) -> CoreResult<Option<Callback<T>>> {
    if is_nullish(value.as_ref()) {
        return Ok(None);
    }
    let value = value.expect("checked above");
    if !matches!(value.get_type(), Ok(ValueType::Function)) {
        return Err(RetryError::invalid_arg(format!(
            "{name} must be a function, got {}",
            super::convert::describe(&value)
        )));
    }
    let wrap = |e: Error| RetryError::invalid_arg(format!("{name} cannot be called")).caused_by(e);
    let function: Function<T, Ignored> = unsafe { value.cast() }.map_err(wrap)?;
    let tsfn = match owner {
        Some(owner) => function
            .bind(owner)
            .map_err(wrap)?
            .build_threadsafe_function()
            .weak::<true>()
            .build(),
        None => function.build_threadsafe_function().weak::<true>().build(),
    }
    .map_err(wrap)?;
    Ok(Some(Arc::new(tsfn)))
}

impl JsObserver {
    /// Reads `onEvent` and `logger` from the config object; `None` when neither is given.
    pub fn from_config(config: Option<&Object>) -> CoreResult<Option<Arc<dyn Observer>>> {
        let Some(config) = config else {
            return Ok(None);
        };
        let on_event = function_of(None, property(config, "onEvent"), "config.onEvent")?;
        let logger =
            super::convert::object_arg("config.logger", property(config, "logger").as_ref())?;
        let (warn, error) = match &logger {
            Some(logger) => (
                function_of(Some(logger), property(logger, "warn"), "config.logger.warn")?,
                function_of(
                    Some(logger),
                    property(logger, "error"),
                    "config.logger.error",
                )?,
            ),
            None => (None, None),
        };
        if on_event.is_none() && logger.is_none() {
            return Ok(None);
        }
        Ok(Some(Arc::new(JsObserver {
            on_event,
            // A logger without one of the methods silences that level, as the caller chose.
            warn,
            error,
            fallback: StderrObserver::default(),
            calls: Calls::default(),
        })))
    }
}

/// The event as JavaScript sees it: `{ type, ... }` with camelCase fields.
pub fn event_json(event: &Event) -> serde_json::Value {
    match event {
        Event::Retry {
            id,
            topic,
            event,
            retry_count,
            late_ms,
        } => serde_json::json!({
            "type": "retry", "id": id, "topic": topic, "event": event,
            "retryCount": retry_count, "lateMs": late_ms,
        }),
        Event::DeadLetter {
            id,
            topic,
            event,
            dlq_name,
        } => serde_json::json!({
            "type": "deadLetter", "id": id, "topic": topic, "event": event, "dlqName": dlq_name,
        }),
        Event::DeadLetterCap {
            dlq_name,
            count,
            max,
        } => serde_json::json!({
            "type": "deadLetterCap", "dlqName": dlq_name, "count": count, "max": max,
        }),
        Event::Error { code, message } => serde_json::json!({
            "type": "error", "code": code, "message": message,
        }),
    }
}

impl JsObserver {
    fn deliver(&self, event: &Event) {
        if let Some(on_event) = &self.on_event {
            self.calls.call(on_event, event_json(event));
        }
        if let Event::Error { code, message } = event {
            match &self.error {
                Some(error) => self
                    .calls
                    .call(error, format!("kafka-redis-retry: {code}: {message}")),
                None if self.warn.is_none() => self.fallback.on_event(event),
                None => {}
            }
        }
    }
}

impl Observer for JsObserver {
    fn on_event(&self, event: &Event) {
        let dropped = self.calls.take_dropped();
        if dropped > 0 {
            self.deliver(&Event::Error {
                code: ErrorCode::Internal.as_ref().to_string(),
                message: format!(
                    "{dropped} events were dropped: onEvent or the logger was slower than the listener"
                ),
            });
        }
        self.deliver(event);
    }

    fn wants_events(&self) -> bool {
        self.on_event.is_some()
    }

    fn warn(&self, message: &str) {
        match &self.warn {
            Some(warn) => self
                .calls
                .call(warn, format!("kafka-redis-retry: warning: {message}")),
            None if self.error.is_none() => self.fallback.warn(message),
            None => {}
        }
    }
}
