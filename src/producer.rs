//! What `queueListener(producer)` publishes through: a JavaScript producer, or the package's
//! own Kafka producer held together with a handle that keeps Node alive while the listener runs.

use crate::convert::*;
use crate::js_publisher::JsPublisher;
use engine::error::{ErrorCode, Result as CoreResult, RetryError};
use engine::publisher::{BoxFuture, KafkaPublisher, Outgoing, Publisher};
use engine::retry::RetryCore;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::ThreadsafeFunction;
use std::sync::Arc;

/// The publisher `queueListener(producer)` uses: the package's own Kafka producer for
/// `null`/absent, else the producer `lib/producer-shape.js` recognises (kafkajs and the KafkaJS API
/// of @confluentinc/kafka-javascript, @platformatic/kafka, node-rdkafka and the rdkafka API of
/// @confluentinc/kafka-javascript, the seed's `produce(topic, key, value, headers)` wrapper),
/// else `ERR_INVALID_ARG` saying what to pass.
pub fn make_publisher(
    env: &Env,
    core: &RetryCore,
    producer: Option<&Unknown>,
) -> CoreResult<Arc<dyn Publisher>> {
    let invalid = |got: String| {
        RetryError::invalid_arg(format!(
            "producer must be a Kafka producer (kafkajs, @platformatic/kafka, node-rdkafka, @confluentinc/kafka-javascript), an object with produce(topic, key, value, headers), or null, got {got}"
        ))
    };
    if is_nullish(producer) {
        let config = core.config();
        let inner = KafkaPublisher::new(&config.brokers, &config.kafka, core.observer())?;
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
    let wrap = |e: Error| {
        clear_pending_exception(env.raw());
        RetryError::new(ErrorCode::Internal, "cannot wrap the producer").caused_by(e)
    };
    // Which producer it is, and the method to call, are decided in lib/producer-shape.js (where
    // each client's calling convention can be read in its own language): `[publish, isSend]`,
    // or the refusal's message.
    let shape: Function<Unknown, Unknown> =
        crate::helpers::helper(env, "producerShape").map_err(wrap)?;
    let shaped = shape.call(*producer).map_err(wrap)?;
    if matches!(shaped.get_type(), Ok(ValueType::String)) {
        let message: String = unsafe { shaped.cast() }.map_err(wrap)?;
        return Err(RetryError::invalid_arg(message));
    }
    let shaped: Object = unsafe { shaped.cast() }.map_err(wrap)?;
    let publish: Function = shaped.get_element(0).map_err(wrap)?;
    let is_send: bool = shaped.get_element(1).map_err(wrap)?;
    let publisher = JsPublisher::new(env, &object, publish, is_send).map_err(wrap)?;
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
