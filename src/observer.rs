//! Listener events and log lines to JavaScript: config `onEvent(event)` and `logger`
//! (`{ warn(message), error(message) }`, e.g. `console`). Without them, warnings and errors go to
//! stderr, and never a line per tick.
//!
//! Events reach `onEvent` in batches (`lib/deliver-events.js` calls it once per event), through a
//! bounded [`Backlog`]: a burst costs one call into JavaScript per batch, not per event, so none
//! is dropped while JavaScript keeps up on average. Log lines stay one call each: they are few
//! (errors are throttled, `events::ErrorThrottle`).

use crate::convert::{is_nullish, property};
use crate::js_publisher::Ignored;
use engine::error::{ErrorCode, Result as CoreResult, RetryError};
use engine::observe::events::{Backlog, Event, Observer, StderrObserver};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Weak: a callback alone must not keep Node alive.
type Callback<T> = Arc<ThreadsafeFunction<T, Ignored, T, Status, false, true>>;

/// Logger calls waiting for the JS thread at most; beyond, lines are dropped and counted, so a
/// slow logger cannot make memory grow with the listener's pace.
const MAX_PENDING_CALLS: usize = 1024;

/// `lib/deliver-events.js` (the helper `deliverEvents`): `(onEvent) => (events) => void`.
type Deliver<'env> = Function<'env, Unknown<'env>, Function<'env, serde_json::Value, Ignored>>;

/// Log-line calls into JavaScript that have not finished yet, and those dropped for want of room.
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

/// `onEvent`, fed batches of events by one delivery task at a time.
struct Events {
    /// `lib/deliver-events.js` around the caller's `onEvent`: takes an array of events.
    deliver: Callback<serde_json::Value>,
    backlog: Arc<Backlog>,
}

impl Events {
    /// Queues the event; starts the delivery task when none runs.
    fn send(&self, event: &Event) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if !self.backlog.push(event.clone()) {
            return;
        }
        let (deliver, backlog) = (self.deliver.clone(), self.backlog.clone());
        runtime.spawn(async move {
            // Each batch once the previous one was handled: what arrives meanwhile goes in the
            // next, so batches grow with the JavaScript thread's delay.
            while let Some(batch) = backlog.take_batch() {
                let events = batch.iter().map(event_json).collect();
                let _ = deliver
                    .call_async_catch(serde_json::Value::Array(events))
                    .await;
            }
        });
    }
}

/// The observer of one `KafkaRetry` instance.
pub struct JsObserver {
    on_event: Option<Events>,
    warn: Option<Callback<String>>,
    error: Option<Callback<String>>,
    fallback: StderrObserver,
    calls: Calls,
}

/// `value` when it is a function, `None` when it is absent or nullish; anything else is
/// `ERR_INVALID_ARG` naming `name`.
fn function_arg<'env>(
    value: Option<Unknown<'env>>,
    name: &str,
) -> CoreResult<Option<Unknown<'env>>> {
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    if !matches!(value.get_type(), Ok(ValueType::Function)) {
        return Err(RetryError::invalid_arg(format!(
            "{name} must be a function, got {}",
            crate::convert::describe(&value)
        )));
    }
    Ok(Some(value))
}

fn function_of<T: 'static + JsValuesTupleIntoVec>(
    owner: Option<&Object>,
    value: Option<Unknown>,
    name: &str,
) -> CoreResult<Option<Callback<T>>> {
    let Some(value) = function_arg(value, name)? else {
        return Ok(None);
    };
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

/// `config.onEvent` wrapped to take batches (`lib/deliver-events.js`); `None` when absent.
fn events_of(env: &Env, value: Option<Unknown>) -> CoreResult<Option<Events>> {
    let Some(value) = function_arg(value, "config.onEvent")? else {
        return Ok(None);
    };
    let wrap = |e: Error| RetryError::invalid_arg("config.onEvent cannot be called").caused_by(e);
    let deliver: Deliver = crate::helpers::helper(env, "deliverEvents").map_err(wrap)?;
    let batches = deliver.call(value).map_err(wrap)?;
    // Weak: a callback alone must not keep Node alive.
    let tsfn = batches
        .build_threadsafe_function()
        .weak::<true>()
        .build()
        .map_err(wrap)?;
    Ok(Some(Events {
        deliver: Arc::new(tsfn),
        backlog: Arc::default(),
    }))
}

impl JsObserver {
    /// Reads `onEvent` and `logger` from the config object; `None` when neither is given.
    pub fn from_config(
        env: &Env,
        config: Option<&Object>,
    ) -> CoreResult<Option<Arc<dyn Observer>>> {
        let Some(config) = config else {
            return Ok(None);
        };
        let on_event = events_of(env, property(config, "onEvent"))?;
        let logger =
            crate::convert::object_arg("config.logger", property(config, "logger").as_ref())?;
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

/// The event as JavaScript sees it: `{ type, ... }` with camelCase fields, as
/// `results::RetryEvent` declares it (its TypeScript is generated from that type).
pub fn event_json(event: &Event) -> serde_json::Value {
    serde_json::to_value(crate::results::RetryEvent::from(event)).unwrap_or(serde_json::Value::Null)
}

impl JsObserver {
    fn deliver(&self, event: &Event) {
        if let Some(on_event) = &self.on_event {
            on_event.send(event);
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
        let dropped = self.calls.take_dropped()
            + self
                .on_event
                .as_ref()
                .map_or(0, |events| events.backlog.take_unreported());
        if dropped > 0 {
            self.deliver(&Event::Error {
                code: ErrorCode::Internal.as_ref().to_string(),
                message: format!(
                    "{dropped} events or log lines were dropped: onEvent or the logger was slower than the listener (stats().eventsDropped counts the events)"
                ),
            });
        }
        self.deliver(event);
    }

    fn events_dropped(&self) -> u64 {
        self.on_event
            .as_ref()
            .map_or(0, |events| events.backlog.dropped())
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
