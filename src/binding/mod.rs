//! The JavaScript-facing layer: the `KafkaRetry` class. Thin by design: it converts arguments,
//! calls the core in `crate::retry`, and turns core errors into `Error`s with a `code`.

mod convert;
mod hub;
mod js_publisher;
mod observer;

use crate::backoff::Backoff;
use crate::config::ConfigInput;
use crate::error::{Result as CoreResult, RetryError};
use crate::options::{parse_first_failed_at, RetryHeaders, RetryOptions};
use crate::publisher::{KafkaPublisher, Publisher};
use crate::retry::{PushRequest, RetryCore};
use convert::*;
use js_publisher::{JsPublisher, KeepAlive};
use napi::bindgen_prelude::*;
use napi::JsValue;
use napi_derive::napi;
use std::future::Future;
use std::sync::Arc;

/// Turns a core error into a JavaScript `Error` whose `code` is the stable error code.
fn js_error(env: &Env, err: &RetryError) -> Error {
    // An exception left by a throwing getter would make creating the error fail.
    clear_pending_exception(env.raw());
    match env.create_error(Error::new(Status::GenericFailure, err.to_string())) {
        Ok(mut object) => {
            let _ = object.set_named_property("code", err.code.as_ref());
            Error::from(object.to_unknown())
        }
        Err(fallback) => fallback,
    }
}

/// Runs a core future and settles a promise with its result; a core error rejects with a coded
/// `Error`. Validation errors go through here too, so every method rejects rather than throws.
fn settle<'env, T, V, F>(
    env: &'env Env,
    work: F,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = CoreResult<T>> + Send + 'static,
{
    env.spawn_future_with_callback(
        async move { Ok(work.await) },
        move |env, outcome| match outcome {
            Ok(value) => Ok(to_js(value)),
            Err(err) => Err(js_error(env, &err)),
        },
    )
}

/// `settle` for work that needs valid arguments first: invalid ones reject with their error.
fn settle_with<'env, A, T, V, F>(
    env: &'env Env,
    args: CoreResult<A>,
    work: impl FnOnce(A) -> F,
    to_js: impl FnOnce(T) -> V + 'static,
) -> Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue + Send + 'static,
    F: Future<Output = CoreResult<T>> + Send + 'static,
{
    match args {
        Ok(args) => settle(env, work(args), to_js),
        Err(err) => rejected(env, err),
    }
}

fn rejected<'env, V: ToNapiValue + Send + 'static>(
    env: &'env Env,
    err: RetryError,
) -> Result<PromiseRaw<'env, V>> {
    settle(env, async move { Err::<V, _>(err) }, |v| v)
}

/// The retry options as `KafkaRetry.headers()` returns them: the three Kafka headers as strings.
#[napi(object)]
pub struct RetryHeadersObject {
    /// Minutes to wait before the next attempt (decimals allowed). Default `'2'`.
    pub delay: String,
    /// Retries allowed before the message is dead-lettered. Default `'3'`.
    pub max_retry: String,
    /// Retries already spent. Default `'0'`.
    pub retry_count: String,
    /// When the message first failed (ms since the epoch), present once a retry carried it. Pass
    /// it back to `pushToQueue` so the dead letter knows when the trouble started.
    pub first_failed_at: Option<String>,
}

/// A Redis-backed retry queue for Kafka consumers, a drop-in replacement for the original
/// JavaScript `KafkaRetry` class.
///
/// Constructing one per failed message is cheap: instances with the same Redis URL share one
/// connection per process.
#[napi]
pub struct KafkaRetry {
    core: Arc<RetryCore>,
}

#[napi]
impl KafkaRetry {
    /// Creates a retry queue.
    ///
    /// `config` keys (all optional): `redisUrl` (default `REDIS_URL`, then
    /// `redis://127.0.0.1:6379`), `brokers` (string or array; default `KAFKA_BROKERS`, then
    /// `localhost:9092`), `kafka` (extra librdkafka properties for the internal producer),
    /// `keyPrefix` (namespace of every Redis key, default `kafka-retry`), `pollIntervalMs`
    /// (longest the listener sleeps when nothing is due, default 1000), `leaseMs` (how long a
    /// claimed message stays invisible to other listeners, default 30000), `batchSize` (most
    /// messages one claim takes, default 1024), `redisTimeoutMs` (longest one Redis operation may
    /// take, default 5000), `dedupeWindowMs` (how long a pushed `msgId` + `retryCount` is
    /// remembered to drop consumer redeliveries, default 3600000).
    ///
    /// Throws an `Error` with `code: 'ERR_INVALID_ARG'` for a bad config value.
    #[napi(constructor, ts_args_type = "config?: KafkaRetryConfig")]
    pub fn new(env: &Env, config: Option<Unknown>) -> Result<Self> {
        let input = parse_config(config.as_ref()).map_err(|e| js_error(env, &e))?;
        let config_object = object_arg("config", config.as_ref()).map_err(|e| js_error(env, &e))?;
        let observer = observer::JsObserver::from_config(config_object.as_ref())
            .map_err(|e| js_error(env, &e))?;
        let config = input.resolve().map_err(|e| js_error(env, &e))?;
        Ok(KafkaRetry {
            core: Arc::new(RetryCore::new(config, observer)),
        })
    }

    /// Reads the retry options from the Kafka headers of a consumed message (kafkajs gives
    /// `Buffer` values, strings, arrays of them, or nothing) and returns them as strings, with the
    /// original defaults `{ delay: '2', maxRetry: '3', retryCount: '0' }`.
    #[napi(
        ts_args_type = "headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined> | null"
    )]
    pub fn headers(headers: Option<Unknown>) -> RetryHeadersObject {
        let object = headers
            .as_ref()
            .and_then(|h| object_arg("headers", Some(h)).ok().flatten());
        let parsed = RetryHeaders::from_lookup(|key| {
            object.as_ref().and_then(|o| header_text(property(o, key)))
        });
        RetryHeadersObject {
            delay: parsed.delay,
            max_retry: parsed.max_retry,
            retry_count: parsed.retry_count,
            first_failed_at: parsed.first_failed_at,
        }
    }

    /// Stores a failed message for a later attempt. Resolves once the message is stored in
    /// Redis. `event` becomes the Kafka key on re-publish; `value` is the payload's JSON text;
    /// `options` is what `KafkaRetry.headers()` returned (`retryCount` is stored + 1, the message
    /// is due `delay` minutes from now, decimals allowed). Pushing the same `msgId` and
    /// `retryCount` twice (a consumer redelivery) stores it once.
    ///
    /// Rejects with `ERR_INVALID_ARG` (bad topic, message or options), `ERR_REDIS_UNAVAILABLE`
    /// or `ERR_CLOSED`.
    #[napi(
        ts_args_type = "topic: string, message: RetryMessage, options?: RetryOptions",
        ts_return_type = "Promise<void>"
    )]
    pub fn push_to_queue<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        message: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<Unknown<'env>> {
        let request = parse_push(topic.as_ref(), message.as_ref(), options.as_ref());
        let (ticket, promise) = hub::Hub::current(env)?.promise(env)?;
        match request {
            Err(err) => ticket.settle(Err(err)),
            Ok(request) => {
                let core = self.core.clone();
                // The batch worker is spawned on the first push: give it the runtime.
                napi::bindgen_prelude::within_runtime_if_available(move || {
                    core.push_detached(
                        request,
                        Box::new(move |outcome| ticket.settle(outcome.map(drop))),
                    )
                });
            }
        }
        Ok(promise)
    }

    /// Starts the background listener: due messages are re-published through `producer` with
    /// their original key, payload (fresh `msgId`) and headers `delay`, `maxRetry`,
    /// `retryCount`, `executeAt`; messages whose `retryCount` exceeds `maxRetry` go to the Redis
    /// hash `dlqName` instead. `producer` may be an object with
    /// `produce(topic, key, value, headers)`, a kafkajs `Producer` (`send`), or `null`/absent for
    /// the package's own Kafka producer. Resolves once the listener runs. Node stays alive while
    /// it runs; `close()` stops it.
    #[napi(
        ts_args_type = "producer?: RetryProducer | null, dlqName?: string",
        ts_return_type = "Promise<void>"
    )]
    pub fn queue_listener<'env>(
        &self,
        env: &'env Env,
        producer: Option<Unknown>,
        dlq_name: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, ()>> {
        let parsed = optional_name(dlq_name.as_ref()).and_then(|name| {
            if self.core.is_closed() {
                return Err(RetryError::closed());
            }
            let name = name.unwrap_or_else(|| self.core.default_dlq_name());
            Ok((name, make_publisher(env, &self.core, producer.as_ref())?))
        });
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, publisher)| async move { core.start_listener(publisher, name).await },
            |_| (),
        )
    }

    /// Writes one entry into the Redis hash `dlqName` (the dead letter queue) under a new unique
    /// field, so no entry ever overwrites another. `entry` is stored as JSON. Resolves to the field.
    #[napi(ts_args_type = "dlqName: string, entry: unknown")]
    pub fn push_to_dlq<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        entry: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, String>> {
        let parsed = string_arg("dlqName", dlq_name.as_ref(), true)
            .and_then(|name| Ok((name, json_text("entry", entry.as_ref())?)));
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, entry)| async move { core.push_to_dlq(&name, &entry).await },
            |field| field,
        )
    }

    /// A page of dead letters of the hash `dlqName`, newest first: `{ items, cursor }`. Pass
    /// `cursor` back to get the next page; it is `null` after the last one. `limit` defaults to
    /// 100. Each item has its `id` (the hash field), `topic`, `event`, `value`, `options`,
    /// `error`, `firstFailedAt` and `diedAt`.
    #[napi(
        ts_args_type = "dlqName: string, page?: { limit?: number, cursor?: string | null }",
        ts_return_type = "Promise<DeadLetterPage>"
    )]
    pub fn dead_letters<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        page: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let parsed = (|| {
            let name = string_arg("dlqName", dlq_name.as_ref(), true)?;
            let page = object_arg("page", page.as_ref())?;
            let limit = match page.as_ref() {
                Some(page) => optional_number(page, "limit", "page.limit")?,
                None => None,
            };
            let limit = match limit {
                None => 100,
                Some(l) if l.fract() == 0.0 && (1.0..=10_000.0).contains(&l) => l as usize,
                Some(l) => {
                    return Err(RetryError::invalid_arg(format!(
                        "page.limit must be a whole number from 1 to 10000, got {l}"
                    )))
                }
            };
            let cursor = match page.as_ref() {
                Some(page) => optional_string(page, "cursor", "page.cursor")?,
                None => None,
            };
            Ok((name, limit, cursor))
        })();
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, limit, cursor)| async move {
                core.list_dead_letters(&name, limit, cursor.as_deref())
                    .await
            },
            |page| serde_json::to_value(page).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Schedules dead letter `id` of the hash `dlqName` again, due now with `retryCount` reset to
    /// 0, and removes it from the hash (in one step on a single Redis server). Resolves to `false`
    /// when there is no such dead letter.
    #[napi(
        ts_args_type = "dlqName: string, id: string",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn requeue_dead_letter<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        id: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let core = self.core.clone();
        settle_with(
            env,
            names(dlq_name.as_ref(), id.as_ref()),
            move |(name, id)| async move { core.requeue_dead_letter(&name, &id).await },
            |moved| moved,
        )
    }

    /// Requeues every dead letter of the hash `dlqName` (see `requeueDeadLetter`). Resolves to
    /// how many were requeued.
    #[napi(ts_args_type = "dlqName: string", ts_return_type = "Promise<number>")]
    pub fn requeue_all_dead_letters<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, f64>> {
        let core = self.core.clone();
        settle_with(
            env,
            string_arg("dlqName", dlq_name.as_ref(), true),
            move |name| async move { core.requeue_all_dead_letters(&name).await },
            |n| n as f64,
        )
    }

    /// Removes dead letter `id` from the hash `dlqName`. Resolves to whether it was there.
    #[napi(
        ts_args_type = "dlqName: string, id: string",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn remove_dead_letter<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        id: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let core = self.core.clone();
        settle_with(
            env,
            names(dlq_name.as_ref(), id.as_ref()),
            move |(name, id)| async move { core.remove_dead_letter(&name, &id).await },
            |removed| removed,
        )
    }

    /// Schedules every message the original JavaScript class left in Redis (keys named by due
    /// minute, `YYYYMMDD-HHmm`, holding a JSON array), each exactly once, and deletes the
    /// buckets. Resolves to how many messages were scheduled. With config `migrateLegacy: true`
    /// the listener does this every 10 s.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn migrate_legacy<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, f64>> {
        let core = self.core.clone();
        settle(env, async move { core.migrate_legacy().await }, |n| {
            n as f64
        })
    }

    /// Sizes of the schedule and of the dead letter hash (`dlqName`, default: this instance's
    /// listener's, else `<keyPrefix>:dead-letters`), and counters since the process started.
    #[napi(
        ts_args_type = "dlqName?: string",
        ts_return_type = "Promise<RetryStats>"
    )]
    pub fn stats<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, serde_json::Value>> {
        let core = self.core.clone();
        settle_with(
            env,
            optional_name(dlq_name.as_ref()),
            move |name| async move { core.stats(name.as_deref()).await },
            |stats| serde_json::to_value(stats).unwrap_or(serde_json::Value::Null),
        )
    }

    /// The same as `stats()`, as Prometheus text exposition (metrics named `kafka_retry_*`,
    /// labelled with the key prefix), for a `/metrics` endpoint.
    #[napi(ts_args_type = "dlqName?: string", ts_return_type = "Promise<string>")]
    pub fn metrics<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, String>> {
        let core = self.core.clone();
        settle_with(
            env,
            optional_name(dlq_name.as_ref()),
            move |name| async move {
                let stats = core.stats(name.as_deref()).await?;
                Ok(stats.prometheus(&core.config().key_prefix))
            },
            |text| text,
        )
    }

    /// Stops the listener after its current batch (each message published and acknowledged, or
    /// put back on the schedule), flushes the producer and releases connections and JavaScript
    /// callbacks, so Node can exit. Later calls to other methods reject with `ERR_CLOSED`.
    /// Calling it twice is harmless.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        settle(env, async move { core.close().await }, |_| ())
    }
}

fn names(dlq_name: Option<&Unknown>, id: Option<&Unknown>) -> CoreResult<(String, String)> {
    Ok((
        string_arg("dlqName", dlq_name, true)?,
        string_arg("id", id, true)?,
    ))
}

fn optional_name(dlq_name: Option<&Unknown>) -> CoreResult<Option<String>> {
    if is_nullish(dlq_name) {
        Ok(None)
    } else {
        string_arg("dlqName", dlq_name, true).map(Some)
    }
}

fn parse_config(config: Option<&Unknown>) -> CoreResult<ConfigInput> {
    let Some(object) = object_arg("config", config)? else {
        return Ok(ConfigInput::default());
    };
    let brokers = match property(&object, "brokers") {
        value if is_nullish(value.as_ref()) => None,
        Some(value) if value.is_array().unwrap_or(false) => {
            let array = unsafe { value.cast::<Object>() }.map_err(|_| {
                RetryError::invalid_arg("config.brokers must be a string or an array of strings")
            })?;
            let len = array.get_array_length().unwrap_or(0);
            let mut hosts = Vec::with_capacity(len as usize);
            for i in 0..len {
                let item = element(&array, i);
                hosts.push(string_arg(
                    &format!("config.brokers[{i}]"),
                    item.as_ref(),
                    true,
                )?);
            }
            Some(hosts.join(","))
        }
        value => Some(string_arg("config.brokers", value.as_ref(), true)?),
    };
    let mut kafka = Vec::new();
    if let Some(props) = object_arg("config.kafka", property(&object, "kafka").as_ref())? {
        let names = props
            .get_property_names()
            .map_err(|e| RetryError::invalid_arg("config.kafka is not readable").caused_by(e))?;
        for i in 0..names.get_array_length().unwrap_or(0) {
            let name = element(&names, i)
                .ok_or_else(|| RetryError::invalid_arg("config.kafka has an unreadable key"))?;
            let key: String = unsafe { name.cast() }.map_err(|e| {
                RetryError::invalid_arg("config.kafka has a key that is not a string").caused_by(e)
            })?;
            // Read by the JS key itself: a key holding NUL cannot go through a C string.
            let value = property_by(&props, &name);
            let text = match value.as_ref().map(|v| v.get_type()) {
                Some(Ok(ValueType::Boolean)) => unsafe { value.as_ref().unwrap().cast::<bool>() }
                    .map(|b| b.to_string())
                    .ok(),
                Some(Ok(ValueType::Number)) => unsafe { value.as_ref().unwrap().cast::<f64>() }
                    .map(crate::options::format_js_number)
                    .ok(),
                Some(Ok(ValueType::String)) => {
                    unsafe { value.as_ref().unwrap().cast::<String>() }.ok()
                }
                _ => None,
            };
            let text = text.ok_or_else(|| {
                RetryError::invalid_arg(format!(
                    "config.kafka[{key:?}] must be a string, number or boolean, got {}",
                    value.as_ref().map_or("undefined".to_string(), describe)
                ))
            })?;
            kafka.push((key, text));
        }
    }
    Ok(ConfigInput {
        redis_url: optional_string(&object, "redisUrl", "config.redisUrl")?,
        brokers,
        kafka,
        key_prefix: optional_string(&object, "keyPrefix", "config.keyPrefix")?,
        poll_interval_ms: optional_number(&object, "pollIntervalMs", "config.pollIntervalMs")?,
        lease_ms: optional_number(&object, "leaseMs", "config.leaseMs")?,
        batch_size: optional_number(&object, "batchSize", "config.batchSize")?,
        redis_timeout_ms: optional_number(&object, "redisTimeoutMs", "config.redisTimeoutMs")?,
        dedupe_window_ms: optional_number(&object, "dedupeWindowMs", "config.dedupeWindowMs")?,
        cluster: optional_bool(&object, "cluster", "config.cluster")?,
        shards: optional_number(&object, "shards", "config.shards")?,
        backoff: parse_backoff(property(&object, "backoff").as_ref())?,
        dead_letter_topic: optional_string(&object, "deadLetterTopic", "config.deadLetterTopic")?,
        max_dead_letters: optional_number(&object, "maxDeadLetters", "config.maxDeadLetters")?,
        migrate_legacy: optional_bool(&object, "migrateLegacy", "config.migrateLegacy")?,
    })
}

fn parse_backoff(value: Option<&Unknown>) -> CoreResult<Option<Backoff>> {
    let Some(object) = object_arg("config.backoff", value)? else {
        return Ok(None);
    };
    let delays = match property(&object, "delaysMs") {
        value if is_nullish(value.as_ref()) => None,
        Some(value) if value.is_array().unwrap_or(false) => {
            let array = unsafe { value.cast::<Object>() }.map_err(|_| {
                RetryError::invalid_arg("config.backoff.delaysMs must be an array of numbers")
            })?;
            let mut delays = Vec::new();
            for i in 0..array.get_array_length().unwrap_or(0) {
                let item = element(&array, i);
                match item.as_ref().map(|v| (v.get_type(), v)) {
                    Some((Ok(ValueType::Number), v)) => {
                        delays.push(unsafe { v.cast::<f64>() }.unwrap_or(f64::NAN))
                    }
                    _ => {
                        return Err(RetryError::invalid_arg(format!(
                            "config.backoff.delaysMs[{i}] must be a number, got {}",
                            item.as_ref().map_or("undefined".to_string(), describe)
                        )))
                    }
                }
            }
            Some(delays)
        }
        other => {
            return Err(RetryError::invalid_arg(format!(
                "config.backoff.delaysMs must be an array of numbers, got {}",
                other.as_ref().map_or("undefined".to_string(), describe)
            )))
        }
    };
    Backoff::parse(
        optional_string(&object, "type", "config.backoff.type")?.as_deref(),
        optional_number(&object, "multiplier", "config.backoff.multiplier")?,
        optional_number(&object, "maxDelayMs", "config.backoff.maxDelayMs")?,
        delays,
        optional_string(&object, "jitter", "config.backoff.jitter")?.as_deref(),
    )
    .map(Some)
}

fn parse_push(
    topic: Option<&Unknown>,
    message: Option<&Unknown>,
    options: Option<&Unknown>,
) -> CoreResult<PushRequest> {
    let topic = string_arg("topic", topic, true)?;
    let message = object_arg("message", message)?.ok_or_else(|| {
        RetryError::invalid_arg(format!(
            "message must be an object {{ event, value }}, got {}",
            message.map_or("undefined".to_string(), describe)
        ))
    })?;
    let event = string_arg("message.event", property(&message, "event").as_ref(), false)?;
    let value = json_text("message.value", property(&message, "value").as_ref())?;
    let options = object_arg("options", options)?;
    let mut parsed = RetryOptions::parse(
        option_value(options.as_ref(), "delay"),
        option_value(options.as_ref(), "maxRetry"),
        option_value(options.as_ref(), "retryCount"),
    )?;
    parsed.first_failed_at = parse_first_failed_at(option_value(options.as_ref(), "firstFailedAt"));
    let error = options
        .as_ref()
        .and_then(|o| error_info(property(o, "error")));
    Ok(PushRequest {
        topic,
        event,
        value,
        options: parsed,
        error,
    })
}

fn make_publisher(
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
                RetryError::new(
                    crate::error::ErrorCode::Internal,
                    "cannot hold the event loop",
                )
                .caused_by(e)
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
        RetryError::new(
            crate::error::ErrorCode::Internal,
            "cannot wrap the producer",
        )
        .caused_by(e)
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
