//! Publishing through a JavaScript producer: the seed's wrapper (`produce(topic, key, value,
//! headers)`) or a kafkajs `Producer` (`send({ topic, messages })`). Calls cross to the JS thread
//! through a threadsafe function; the returned promise is awaited from Rust, so a message is
//! acknowledged only when the JS producer's promise resolved.

use crate::error::{ErrorCode, RetryError};
use crate::publisher::{BoxFuture, Outgoing, Publisher};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::Arc;

/// Any resolved value; the producer's result is not needed.
pub struct Ignored;

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_env: sys::napi_env, _value: sys::napi_value) -> Result<Self> {
        Ok(Ignored)
    }
}

/// What the JS producer returned: a promise to await, or a plain value (a synchronous producer).
pub enum Returned {
    /// A promise (or thenable the engine treats as one).
    Pending(Promise<Ignored>),
    /// Anything else: the call succeeded when it returned.
    Done,
}

impl FromNapiValue for Returned {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> Result<Self> {
        let mut is_promise = false;
        unsafe { sys::napi_is_promise(env, value, &mut is_promise) };
        if is_promise {
            Ok(Returned::Pending(unsafe {
                Promise::from_napi_value(env, value)?
            }))
        } else {
            Ok(Returned::Done)
        }
    }
}

/// Arguments of the seed wrapper's `produce(topic, key, value, headers)`.
pub type ProduceArgs = FnArgs<(String, String, String, serde_json::Value)>;
/// The argument of kafkajs `send({ topic, messages: [...] })`.
pub type SendArgs = serde_json::Value;

/// Strong (not weak) on purpose: while the listener runs, Node stays alive, as it did with the
/// original's timer; `close()` drops it and lets the process exit.
type Tsfn<Args> = ThreadsafeFunction<Args, Returned, Args, Status, false>;

/// A publisher calling a JavaScript function.
pub enum JsPublisher {
    /// `produce(topic, key, value, headers)`.
    Produce(Arc<Tsfn<ProduceArgs>>),
    /// `send({ topic, messages: [{ key, value, headers }] })`.
    Send(Arc<Tsfn<SendArgs>>),
}

impl JsPublisher {
    /// Wraps `producer.produce`, bound to `producer` so `this` works inside it.
    pub fn produce(producer: &Object, produce: Function<ProduceArgs, Returned>) -> Result<Self> {
        let bound = produce.bind(producer)?;
        Ok(JsPublisher::Produce(Arc::new(
            bound.build_threadsafe_function().build()?,
        )))
    }

    /// Wraps `producer.send`, bound to `producer`.
    pub fn send(producer: &Object, send: Function<SendArgs, Returned>) -> Result<Self> {
        let bound = send.bind(producer)?;
        Ok(JsPublisher::Send(Arc::new(
            bound.build_threadsafe_function().build()?,
        )))
    }
}

fn headers_object(headers: &[(&'static str, String)]) -> serde_json::Value {
    serde_json::Value::Object(
        headers
            .iter()
            .map(|(k, v)| (k.to_string(), serde_json::Value::String(v.clone())))
            .collect(),
    )
}

impl Publisher for JsPublisher {
    fn publish(&self, message: Outgoing) -> BoxFuture<crate::error::Result<()>> {
        let topic = message.topic.clone();
        let call = match self {
            JsPublisher::Produce(tsfn) => {
                let tsfn = tsfn.clone();
                let args = FnArgs::from((
                    message.topic,
                    message.key,
                    message.value,
                    headers_object(&message.headers),
                ));
                Box::pin(async move { tsfn.call_async_catch(args).await }) as BoxFuture<_>
            }
            JsPublisher::Send(tsfn) => {
                let tsfn = tsfn.clone();
                let record = serde_json::json!({
                    "topic": message.topic,
                    "messages": [{
                        "key": message.key,
                        "value": message.value,
                        "headers": headers_object(&message.headers),
                    }],
                });
                Box::pin(async move { tsfn.call_async_catch(record).await })
            }
        };
        Box::pin(async move {
            let failed = |err: Error| {
                RetryError::new(
                    ErrorCode::KafkaPublish,
                    format!("the JavaScript producer failed to publish to topic {topic:?}"),
                )
                .caused_by(err.reason)
            };
            match call.await.map_err(failed)? {
                Returned::Pending(promise) => promise.await.map(drop).map_err(failed),
                Returned::Done => Ok(()),
            }
        })
    }
}

/// The package's own producer, plus a strong threadsafe function that keeps Node alive while the
/// listener runs (the original's timer did the same); `close()` drops both.
pub struct KeepAlive<P> {
    /// The publisher doing the work.
    pub inner: P,
    /// Held only for its effect on Node's event loop.
    pub _handle: ThreadsafeFunction<(), (), (), Status, false>,
}

impl<P: Publisher> Publisher for KeepAlive<P> {
    fn publish(&self, message: Outgoing) -> BoxFuture<crate::error::Result<()>> {
        self.inner.publish(message)
    }

    fn flush(&self) -> BoxFuture<crate::error::Result<()>> {
        self.inner.flush()
    }
}
