//! What `queueListener(producer)` publishes through: a JavaScript producer, or the package's
//! own Kafka producer held together with a handle that keeps Node alive while the listener runs.

use super::convert::*;
use super::js_publisher::JsPublisher;
use crate::error::{ErrorCode, Result as CoreResult, RetryError};
use crate::publisher::{BoxFuture, KafkaPublisher, Outgoing, Publisher};
use crate::retry::RetryCore;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::Arc;

/// The publisher `queueListener(producer)` uses: the package's own Kafka producer for
/// `null`/absent, else the object's `produce(topic, key, value, headers)`, else its kafkajs
/// `send({ topic, messages })`.
pub fn make_publisher(
    env: &Env,
    core: &RetryCore,
    producer: Option<&Unknown>,
) -> CoreResult<Arc<dyn Publisher>> {
    let invalid = |got: String| {
        RetryError::invalid_arg(format!(
            "producer must have produce(topic, key, value, headers) or send({{ topic, messages }}), got {got}"
        ))
    };
    if is_nullish(producer) {
        let config = core.config();
        let inner = KafkaPublisher::new(&config.brokers, &config.kafka)?;
        let keep_alive = env
            .create_function_from_closure::<(), (), _>("kafkaRetryKeepAlive", |_| Ok(()))
            .and_then(|f| f.build_threadsafe_function().build())
            .map_err(|e| {
                RetryError::new(ErrorCode::Internal, "cannot hold the event loop").caused_by(e)
            })?;
        return Ok(Arc::new(KeepAlive {
            inner,
            _handle: keep_alive,
        }));
    }
    let producer = producer.expect("checked above");
    let object = match producer.get_type() {
        Ok(ValueType::Object | ValueType::Function) => {
            unsafe { producer.cast::<Object>() }.map_err(|_| invalid(describe(producer)))?
        }
        _ => return Err(invalid(describe(producer))),
    };
    // Each method is read once: a getter may answer differently (or throw) the second time.
    let method = |key: &str| {
        property(&object, key).filter(|v| matches!(v.get_type(), Ok(ValueType::Function)))
    };
    let wrap = |e: Error| {
        clear_pending_exception(env.raw());
        RetryError::new(ErrorCode::Internal, "cannot wrap the producer").caused_by(e)
    };
    let publisher = if let Some(produce) = method("produce") {
        let produce: Function = unsafe { produce.cast() }.map_err(wrap)?;
        JsPublisher::new(env, &object, produce, false).map_err(wrap)?
    } else if let Some(send) = method("send") {
        let send: Function = unsafe { send.cast() }.map_err(wrap)?;
        JsPublisher::new(env, &object, send, true).map_err(wrap)?
    } else {
        return Err(invalid(describe(producer)));
    };
    Ok(Arc::new(publisher))
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
    fn publish(&self, message: Outgoing) -> BoxFuture<CoreResult<()>> {
        self.inner.publish(message)
    }

    fn flush(&self) -> BoxFuture<CoreResult<()>> {
        self.inner.flush()
    }
}
