//! Publishing through a JavaScript producer: the seed's wrapper (`produce(topic, key, value,
//! headers)`) or a kafkajs `Producer` (`send({ topic, messages })`).
//!
//! Messages cross to the JS thread in batches: whatever the listener hands over while the
//! previous crossing is queued goes in one threadsafe-function call, and a small JavaScript loop
//! (`lib/publish-batch.js`, received through [`crate::helpers`]) calls the producer once per
//! message and reports each outcome through one shared callback. A message is acknowledged only once the producer's
//! promise (any thenable) resolved, or the producer returned something that is not thenable. One crossing,
//! one promise and two callbacks created by napi per message are expensive in Node CPU; the
//! JavaScript loop does the per-message part with plain closures.

use engine::error::{ErrorCode, RetryError};
use engine::message::headers::HeaderValue;
use engine::publisher::{BoxFuture, Outgoing, Publisher};
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Any value returned from a JavaScript call whose result is not needed.
pub struct Ignored;

impl FromNapiValue for Ignored {
    unsafe fn from_napi_value(_env: sys::napi_env, _value: sys::napi_value) -> Result<Self> {
        Ok(Ignored)
    }
}

/// Most messages one crossing carries.
const BATCH_MAX: usize = 2048;
/// Outcome senders kept before the ones nobody waits for any more (the listener gave up on a
/// producer promise that never settles) are swept.
const SWEEP_AT: usize = 16_384;

/// A message's outcome as the JavaScript loop reported it: the failure's text on error, and the
/// kafkajs error type when it is one retrying cannot fix.
type Outcome = std::result::Result<(), (String, Option<String>)>;
type Waiting = Arc<Mutex<HashMap<u64, oneshot::Sender<Outcome>>>>;
type Job = (Outgoing, oneshot::Sender<Outcome>);

/// One crossing: ids, header counts, and per message topic, key, value and the header pairs;
/// then the caller's own headers (see [`Extra`]).
pub struct Batch {
    ids: Vec<f64>,
    header_counts: Vec<u32>,
    strings: Vec<String>,
    extra: Extra,
}

/// The caller's own headers of a crossing: per message how many (all empty when no message of
/// the batch has any, so the common case costs nothing), then per header its name, its value (a
/// string, or a `Buffer` with the bytes) and whether it is an element of an array.
#[derive(Default)]
pub struct Extra {
    counts: Vec<u32>,
    names: Vec<String>,
    values: Vec<Either<String, Buffer>>,
    in_array: Vec<bool>,
}

type BatchArgs = FnArgs<(
    Vec<f64>,
    Vec<u32>,
    Vec<String>,
    Vec<u32>,
    Vec<String>,
    Vec<Either<String, Buffer>>,
    Vec<bool>,
)>;
/// The arguments of the per-batch loop's factory (`lib/publish-batch.js`, the helper
/// `publishBatch`), called once per JS producer to get `publishBatch`, which must never throw: an
/// exception escaping a threadsafe-function call would be Node's uncaught exception. They are:
/// the producer method, whether it is `send`, the outcome callback `done(id, failure?,
/// permanentType?)`, and where `@opentelemetry/api` is resolved from (the addon's file URL; empty
/// when unknown).
type FactoryArgs<'a> = FnArgs<(
    Function<'a>,
    bool,
    Function<'a, (f64, Option<String>, Option<String>), ()>,
    String,
)>;
/// Strong (not weak) on purpose: while the listener runs, Node stays alive, as it did with the
/// original's timer; `close()` drops it and lets the process exit.
type BatchTsfn = ThreadsafeFunction<Batch, (), BatchArgs, Status, false>;

/// A publisher calling a JavaScript producer.
pub struct JsPublisher {
    queue: mpsc::UnboundedSender<Job>,
    worker: Mutex<Option<(mpsc::UnboundedReceiver<Job>, Arc<BatchTsfn>)>>,
    waiting: Waiting,
}

impl JsPublisher {
    /// Wraps `producer.produce` (bound to `producer`, so `this` works inside it), or
    /// `producer.send` when `is_send`.
    pub fn new(env: &Env, producer: &Object, method: Function, is_send: bool) -> Result<Self> {
        let bound = method.bind(producer)?;
        let waiting: Waiting = Arc::default();
        let outcomes = waiting.clone();
        let done = env
            .create_function_from_closure::<(f64, Option<String>, Option<String>), (), _>(
                "kafkaRetryPublished",
                move |ctx| {
                    let id = ctx.get::<f64>(0)? as u64;
                    let failure = ctx.get::<Option<String>>(1).unwrap_or(None);
                    let permanent = ctx.get::<Option<String>>(2).unwrap_or(None);
                    let sender = outcomes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&id);
                    if let Some(sender) = sender {
                        let _ = sender.send(failure.map_or(Ok(()), |f| Err((f, permanent))));
                    }
                    Ok(())
                },
            )?;
        let factory: Function<FactoryArgs, Function<BatchArgs, ()>> =
            crate::helpers::helper(env, "publishBatch")?;
        // Resolved from the addon's own location, as a peer dependency is.
        let base = env.get_module_file_name().unwrap_or_default();
        let publish_batch = factory.call(FnArgs::from((bound, is_send, done, base)))?;
        let tsfn = publish_batch
            .build_threadsafe_function::<Batch>()
            .build_callback(|ctx| {
                let Batch {
                    ids,
                    header_counts,
                    strings,
                    extra,
                } = ctx.value;
                Ok(FnArgs::from((
                    ids,
                    header_counts,
                    strings,
                    extra.counts,
                    extra.names,
                    extra.values,
                    extra.in_array,
                )))
            })?;
        let (queue, receiver) = mpsc::unbounded_channel();
        Ok(JsPublisher {
            queue,
            worker: Mutex::new(Some((receiver, Arc::new(tsfn)))),
            waiting,
        })
    }
}

/// Hands queued messages to JavaScript, as many per crossing as are waiting.
async fn run_batches(
    mut receiver: mpsc::UnboundedReceiver<Job>,
    tsfn: Arc<BatchTsfn>,
    waiting: Waiting,
) {
    let mut next_id: u64 = 0;
    while let Some(jobs) = engine::batch::next_batch(&mut receiver, BATCH_MAX).await {
        let mut batch = Batch {
            ids: Vec::with_capacity(jobs.len()),
            header_counts: Vec::with_capacity(jobs.len()),
            strings: Vec::with_capacity(jobs.len() * 15),
            extra: Extra::default(),
        };
        let any_extra = jobs.iter().any(|(message, _)| !message.extra.is_empty());
        let mut ids = Vec::with_capacity(jobs.len());
        {
            let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
            if waiting.len() > SWEEP_AT {
                waiting.retain(|_, sender| !sender.is_closed());
            }
            for (message, sender) in jobs {
                // Ids stay below 2^53, so they survive the trip as JavaScript numbers.
                next_id = (next_id + 1) % (1 << 53);
                waiting.insert(next_id, sender);
                ids.push(next_id);
                batch.ids.push(next_id as f64);
                batch.header_counts.push(message.headers.len() as u32);
                batch.strings.push(message.topic);
                batch.strings.push(message.key);
                batch.strings.push(message.value);
                for (name, value) in message.headers {
                    batch.strings.push(name.to_string());
                    batch.strings.push(value);
                }
                if any_extra {
                    let extra = &mut batch.extra;
                    extra.counts.push(message.extra.len() as u32);
                    for header in message.extra {
                        extra.names.push(header.name);
                        extra.in_array.push(header.in_array);
                        extra.values.push(match header.value {
                            HeaderValue::Text(text) => Either::A(text),
                            HeaderValue::Bytes(bytes) => Either::B(bytes.into()),
                        });
                    }
                }
            }
        }
        let status = tsfn.call(batch, ThreadsafeFunctionCallMode::NonBlocking);
        if status != Status::Ok {
            let mut waiting = waiting.lock().unwrap_or_else(|p| p.into_inner());
            for id in ids {
                if let Some(sender) = waiting.remove(&id) {
                    let _ = sender.send(Err((
                        format!(
                            "the call into JavaScript failed ({status}): Node is shutting down"
                        ),
                        None,
                    )));
                }
            }
        }
    }
}

impl Publisher for JsPublisher {
    fn publish(&self, message: Outgoing) -> BoxFuture<engine::error::Result<()>> {
        // The worker starts with the first publish, inside the listener's runtime.
        if let Some((receiver, tsfn)) = self.worker.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            tokio::spawn(run_batches(receiver, tsfn, self.waiting.clone()));
        }
        let topic = message.topic.clone();
        let (sender, outcome) = oneshot::channel();
        let queued = self.queue.send((message, sender)).is_ok();
        Box::pin(async move {
            let failed = |reason: String| {
                RetryError::new(
                    ErrorCode::KafkaPublish,
                    format!("the JavaScript producer failed to publish to topic {topic:?}"),
                )
                .caused_by(reason)
            };
            if !queued {
                return Err(failed("the publisher is closed".to_string()));
            }
            match outcome.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err((reason, None))) => Err(failed(reason)),
                // kafkajs typed it as a refusal retrying cannot fix (lib/publish-batch.js PERMANENT).
                Ok(Err((reason, Some(kind)))) => {
                    Err(failed(format!("{reason} ({kind})")).permanent(true))
                }
                Err(_) => Err(failed("the publisher is closed".to_string())),
            }
        })
    }
}
