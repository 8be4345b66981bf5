//! The `KafkaRetry` class as JavaScript sees it. Each method reads its arguments (`args`), calls
//! the core (`engine::retry::RetryCore`) and settles a promise (`settle`, or the push `hub`).

use crate::args::{
    dlq_name as dlq_name_arg, dlq_name_and_id, optional_dlq_name, optional_topic, parse_actor,
    parse_audit_query, parse_bulk_options, parse_config, parse_filter, parse_history_options,
    parse_pause_options, parse_push, parse_push_many, parse_requeue_delay, parse_search,
};
use crate::convert::{
    element, header_text, json_text, object_arg, own_entries, property, string_arg,
};
use crate::hub::Hub;
use crate::observer::JsObserver;
use crate::producer::make_publisher;
use crate::requeue_watch::requeue_watch;
use crate::results::{
    nullable, AuditPage, DeadLetter, DeadLetterPage, DeadLetterReasons, RequeueOutcome,
    RetryHistory, RetryPause, RetryStats,
};
use crate::settle::{js_error, settle, settle_with};
use engine::error::RetryError;
use engine::message::options::RetryHeaders;
use engine::retry::audit::{action, filter_target, item_target, topic_target};
use engine::retry::{BulkOptions, RetryCore};
use engine::store::dead_letters::requeue::{BulkOutcome, Watch};
use engine::store::dead_letters::search::FilterInput;
use napi::bindgen_prelude::*;
use napi_derive::napi;
use std::sync::Arc;

/// The retry options as `KafkaRetry.headers()` returns them: the three Kafka headers as strings.
#[napi(object)]
#[allow(dead_code)] // built by hand in `headers()` (it adds kept headers); this is its type
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
    /// How often a requeue of its dead letter replayed it (present on a requeued message). Pass
    /// it back to `pushToQueue` so its next dead letter counts the replay (`maxReplays`).
    pub replays: Option<String>,
}

/// Which headers `KafkaRetry.headers()` keeps besides the retry options.
enum Keep {
    All,
    Names(Vec<String>),
}

/// W3C trace context headers, kept by default.
const TRACE_HEADERS: [&str; 3] = ["traceparent", "tracestate", "baggage"];

/// `headers()`'s `keep`: absent for the W3C trace context, `true` for all, `false` for none, or
/// a list of names kept besides the W3C ones. Never an error: `headers()` runs in a consumer's
/// error path and never throws, so anything else counts as absent, and list elements that are
/// not strings are skipped.
fn keep_arg(keep: Option<&Unknown>) -> Option<Keep> {
    let mut names: Vec<String> = TRACE_HEADERS.iter().map(|n| n.to_string()).collect();
    let Some(keep) = keep else {
        return Some(Keep::Names(names));
    };
    match keep.get_type() {
        Ok(ValueType::Boolean) => unsafe { keep.cast::<bool>() }
            .unwrap_or(false)
            .then_some(Keep::All),
        Ok(ValueType::Object) if keep.is_array().unwrap_or(false) => {
            if let Ok(array) = unsafe { keep.cast::<Object>() } {
                for i in 0..array.get_array_length().unwrap_or(0) {
                    if let Ok(name) = string_arg("keep[]", element(&array, i).as_ref(), true) {
                        names.push(name);
                    }
                }
            }
            Some(Keep::Names(names))
        }
        _ => Some(Keep::Names(names)),
    }
}

/// A Redis-backed retry queue for Kafka consumers, a drop-in replacement for the original
/// JavaScript `KafkaRetry` class.
///
/// Constructing one per failed message is cheap: instances with the same Redis URL share one
/// connection per process.
///
/// The constructor throws, and every method that returns a promise rejects with, a
/// `KafkaRetryError`: an `Error` whose `code` is an `ErrorCode` (`switch (err.code)` is checked
/// by TypeScript).
#[napi]
pub struct KafkaRetry {
    core: Arc<RetryCore>,
}

impl KafkaRetry {
    /// The core the other method files of the class (`ordered.rs`) call.
    pub(super) fn core(&self) -> &Arc<RetryCore> {
        &self.core
    }
}

#[napi]
impl KafkaRetry {
    /// Creates a retry queue.
    ///
    /// `config` is optional, and so is each of its keys (see `KafkaRetryConfig` for what each
    /// means and its default); without it, `REDIS_URL` and `KAFKA_BROKERS` from the environment,
    /// then `redis://127.0.0.1:6379` and `localhost:9092`, are used.
    ///
    /// Throws a `KafkaRetryError` with `code: 'ERR_INVALID_ARG'` for a bad config value, and
    /// for a key it does not know (in `config`, `tls`, `sentinel` or `backoff`), naming the
    /// closest known key: ``config has no key `redisURL` (did you mean `redisUrl`?)``.
    #[napi(constructor, ts_args_type = "config?: KafkaRetryConfig")]
    pub fn new(env: &Env, config: Option<Unknown>) -> Result<Self> {
        let input = parse_config(config.as_ref()).map_err(|e| js_error(env, &e))?;
        let config_object = object_arg("config", config.as_ref()).map_err(|e| js_error(env, &e))?;
        let observer =
            JsObserver::from_config(env, config_object.as_ref()).map_err(|e| js_error(env, &e))?;
        let config = input.resolve().map_err(|e| js_error(env, &e))?;
        Ok(KafkaRetry {
            core: Arc::new(RetryCore::new(config, observer)),
        })
    }

    /// Reads the retry options from the Kafka headers of a consumed message (kafkajs gives
    /// `Buffer` values, strings, arrays of them, or nothing) and returns them as strings, with the
    /// original defaults `{ delay: '2', maxRetry: '3', retryCount: '0' }`, plus `firstFailedAt`
    /// once a retry carried it.
    ///
    /// Headers to keep travel along, returned as kafkajs gave them (a `Buffer`, a string or an
    /// array, byte for byte): pass the result to `pushToQueue` and the retry is re-published with
    /// them. `keep` says which: by default the W3C trace context (`traceparent`, `tracestate`,
    /// `baggage`); a list of names keeps those too; `true` keeps every header; `false` none (only
    /// the retry options, as 0.2 returned); any other `keep` counts as absent (this never
    /// throws). `executeAt` and `retryDelayMs` are never kept (a retry gets new ones). Only what
    /// `pushToQueue` accepts is kept, in order while it fits: a header whose name holds NUL, is
    /// empty or longer than 255 bytes, or that would pass 64 values or 64 KiB in all, is left out,
    /// so the result can always be pushed.
    #[napi(
        ts_args_type = "headers?: Record<string, Buffer | string | (Buffer | string)[] | undefined> | null, keep?: string[] | boolean",
        ts_return_type = "RetryHeadersObject & KeptHeaders"
    )]
    pub fn headers<'env>(
        env: &'env Env,
        headers: Option<Unknown<'env>>,
        keep: Option<Unknown<'env>>,
    ) -> Result<Object<'env>> {
        let object = headers
            .as_ref()
            .and_then(|h| object_arg("headers", Some(h)).ok().flatten());
        let keep = keep_arg(keep.as_ref());
        let parsed = RetryHeaders::from_lookup(|key| {
            object.as_ref().and_then(|o| header_text(property(o, key)))
        });
        let mut out = Object::new(env)?;
        out.set("delay", parsed.delay)?;
        out.set("maxRetry", parsed.max_retry)?;
        out.set("retryCount", parsed.retry_count)?;
        if let Some(first) = parsed.first_failed_at {
            out.set("firstFailedAt", first)?;
        }
        if let Some(replays) = parsed.replays {
            out.set("replays", replays)?;
        }
        if let (Some(object), Some(keep)) = (object.as_ref(), keep) {
            let mut budget = engine::message::headers::Budget::default();
            for (name, value) in own_entries(object) {
                let wanted = match &keep {
                    Keep::All => true,
                    Keep::Names(names) => names.iter().any(|n| n == &name),
                };
                let present =
                    !matches!(value.get_type(), Ok(ValueType::Undefined | ValueType::Null));
                // Only what `pushToQueue` accepts (`headers::Budget`): a name with NUL, empty or
                // too long, or past the count or size limits, is left out, never thrown on.
                let mut fits = || {
                    crate::convert::header_sizes(&name, &value)
                        .is_some_and(|sizes| budget.take(&name, &sizes))
                };
                // `replays` is returned above as a string, like the retry options.
                let own = engine::message::headers::is_interpreted(&name)
                    || name == engine::store::dead_letters::REPLAYS_HEADER;
                if wanted && present && !own && fits() {
                    // Defined, not assigned: a header named `__proto__` stays a header.
                    out.define_properties(&[Property::new()
                        .with_utf8_name(&name)?
                        .with_value(&value)
                        .with_property_attributes(PropertyAttributes::default())])?;
                }
            }
        }
        Ok(out)
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
        ts_args_type = "topic: string, message: RetryMessage, options?: RetryOptions | RetryOptionsWithHeaders",
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
        let (ticket, promise) = Hub::current(env)?.promise(env)?;
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

    /// The pushes of one JavaScript tick in one call (`lib/push-pack.js` packs them into one
    /// string, `src/packed.rs` reads it back): each is stored as `pushToQueue` stores it.
    /// Resolves to `undefined` when every push was stored, else to `[index, error, ...]` for the
    /// ones that failed. `waited_ms` is how long ago the first of them was made: the Redis
    /// timeout counts from then. Internal: `pushToQueue` of the exported class calls it.
    #[napi(skip_typescript)]
    pub fn push_packed<'env>(
        &self,
        env: &'env Env,
        packed: Option<Unknown>,
        waited_ms: Option<f64>,
    ) -> Result<Unknown<'env>> {
        let since = crate::convert::instant_before(waited_ms);
        let (ticket, promise) = Hub::current(env)?.promise(env)?;
        let requests = crate::convert::utf16_units("packed", packed.as_ref())
            .and_then(|units| crate::packed::unpack(&units));
        match requests {
            Err(err) => ticket.settle(Err(err)),
            Ok(requests) => {
                let core = self.core.clone();
                napi::bindgen_prelude::within_runtime_if_available(move || {
                    core.push_group(
                        requests,
                        since,
                        Box::new(move |failures| ticket.settle_group(failures)),
                    )
                });
            }
        }
        Ok(promise)
    }

    /// `pushMany` with its items packed into one string by `lib/push-pack.js`, as `pushPacked`
    /// takes a tick's pushes: checked and stored exactly as `pushMany` does it, the first invalid
    /// item rejecting the whole call with its index. Internal: `pushMany` of the exported class
    /// calls it.
    #[napi(skip_typescript)]
    pub fn push_many_packed<'env>(
        &self,
        env: &'env Env,
        packed: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, u32>> {
        let parsed = crate::convert::utf16_units("packed", packed.as_ref())
            .and_then(|units| crate::packed::unpack(&units))
            .and_then(|requests| {
                requests
                    .into_iter()
                    .enumerate()
                    .map(|(index, request)| request.map_err(|e| e.in_item(index)))
                    .collect()
            });
        settle_push_many(env, self.core.clone(), parsed)
    }

    /// Stores a batch of failed messages with one call: `items` is an array of
    /// `{ topic, message, options }`, each what `pushToQueue` takes as its three arguments (for a
    /// kafkajs `eachBatch` handler, one item per failed message of the batch).
    ///
    /// Every item is checked before anything is stored: an invalid one rejects the whole call with
    /// `ERR_INVALID_ARG`, its message naming the index (`items[3]: ...`), and nothing is stored.
    /// Each item is stored as `pushToQueue` stores it: pushing the same `msgId` and `retryCount`
    /// again (a redelivered batch) stores it once. Resolves once Redis holds every item, to the
    /// number newly stored (redeliveries are not counted); an empty array resolves to 0. At most
    /// 100,000 items per call.
    ///
    /// Rejects with `ERR_INVALID_ARG`, `ERR_REDIS_UNAVAILABLE` (some items may be stored by then:
    /// pushing the batch again stores each item with a `msgId` once) or `ERR_CLOSED`.
    #[napi(ts_args_type = "items: PushItem[]")]
    pub fn push_many<'env>(
        &self,
        env: &'env Env,
        items: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, u32>> {
        let parsed = parse_push_many(items.as_ref());
        settle_push_many(env, self.core.clone(), parsed)
    }

    /// Starts the background listener: due messages are re-published through `producer` with
    /// their original key, payload (fresh `msgId`) and headers `delay`, `maxRetry`,
    /// `retryCount`, `executeAt`; messages whose `retryCount` exceeds `maxRetry` go to the Redis
    /// hash `dlqName` instead. `producer` may be an object with
    /// `produce(topic, key, value, headers)`, a kafkajs or `@confluentinc/kafka-javascript`
    /// KafkaJS `Producer` (`send`), a `@platformatic/kafka` `Producer`, a `node-rdkafka` (or
    /// `@confluentinc/kafka-javascript` rdkafka-API) `Producer` created with `dr_cb: true`, or
    /// `null`/absent for the package's own Kafka producer; anything else rejects with
    /// `ERR_INVALID_ARG`. Resolves once the listener runs. Node stays alive while it runs;
    /// `close()` stops it.
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
        let parsed = optional_dlq_name(dlq_name.as_ref()).and_then(|name| {
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
    /// Its `diedAt` (ms since the epoch), when it has one, is its time of death for listing and
    /// the `since`/`until` filters alike (without one: now); a `diedAt` that is not a whole
    /// number from 0 to 8.64e15 is `ERR_INVALID_ARG`.
    #[napi(ts_args_type = "dlqName: string, entry: unknown")]
    pub fn push_to_dlq<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        entry: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, String>> {
        let parsed = dlq_name_arg(dlq_name.as_ref())
            .and_then(|name| Ok((name, json_text("entry", entry.as_ref())?)));
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, entry)| async move { core.push_to_dlq(&name, &entry).await },
            |field| field,
        )
    }

    /// A page of dead letters of the hash `dlqName`, newest first: `{ items, cursor, scanned }`.
    /// Pass `cursor` back to get the next page; it is `null` after the last one. `limit` defaults
    /// to 100. Each item has its `id` (the hash field), `topic`, `event`, `value`, `options`,
    /// `error`, `firstFailedAt` and `diedAt`.
    ///
    /// Filters (all that are given must hold): `topic` exactly; `errorContains` a substring of
    /// the error's name or message, any case; `search` a substring (case kept) of the key
    /// (`event`), the payload's JSON text or a header value; `since`/`until` the time of death,
    /// ms since the epoch. A filtered call reads at most 5,000 dead letters (`scanned` says how
    /// many), so a page may hold fewer than `limit` items, even none, and still have a `cursor`.
    #[napi(ts_args_type = "dlqName: string, page?: DeadLetterQuery")]
    pub fn dead_letters<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        page: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, DeadLetterPage>> {
        let parsed = dlq_name_arg(dlq_name.as_ref())
            .and_then(|name| Ok((name, parse_search(page.as_ref())?)));
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, (limit, cursor, filter))| async move {
                core.search_dead_letters(&name, filter, limit, cursor.as_deref())
                    .await
            },
            DeadLetterPage::from,
        )
    }

    /// Dead letter `id` of the hash `dlqName`, as `deadLetters()` lists it, or `null` when there
    /// is no such dead letter. Costs the same whatever the number of dead letters.
    #[napi(ts_args_type = "dlqName: string, id: string")]
    pub fn dead_letter<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        id: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, Either<DeadLetter, Null>>> {
        let core = self.core.clone();
        settle_with(
            env,
            dlq_name_and_id(dlq_name.as_ref(), id.as_ref()),
            move |(name, id)| async move { core.dead_letter(&name, &id).await },
            |item| nullable(item.map(DeadLetter::from)),
        )
    }

    /// Schedules dead letter `id` of the hash `dlqName` again, due now (or `options.delayMs` ms
    /// later) with `retryCount` reset to 0, and removes it from the hash (in one step on a single
    /// Redis server; on a cluster, run again after a crash, it finishes without scheduling it
    /// twice). Resolves to `false` when there is no such dead letter, or another call moved it.
    #[napi(
        ts_args_type = "dlqName: string, id: string, options?: { delayMs?: number, actor?: string }",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn requeue_dead_letter<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        id: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let core = self.core.clone();
        let parsed = dlq_name_and_id(dlq_name.as_ref(), id.as_ref()).and_then(|(name, id)| {
            Ok((
                name,
                id,
                parse_requeue_delay(options.as_ref())?,
                parse_actor(options.as_ref())?,
            ))
        });
        settle_with(
            env,
            parsed,
            move |(name, id, delay_ms, actor)| async move {
                let target = item_target(&name, &id);
                let requeue = core.requeue_dead_letter(&name, &id, delay_ms);
                core.audited(actor, action::REQUEUE, target, false, requeue)
                    .await
            },
            |moved| moved,
        )
    }

    /// Requeues every dead letter of the hash `dlqName` (see `requeueDeadLetter`). Resolves to
    /// how many were requeued.
    #[napi(
        ts_args_type = "dlqName: string, options?: { actor?: string }",
        ts_return_type = "Promise<number>"
    )]
    pub fn requeue_all_dead_letters<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, f64>> {
        let core = self.core.clone();
        let parsed = dlq_name_arg(dlq_name.as_ref())
            .and_then(|name| Ok((name, parse_actor(options.as_ref())?)));
        settle_with(
            env,
            parsed,
            move |(name, actor)| async move {
                let target = filter_target(&name, &Default::default());
                let requeue = core.requeue_all_dead_letters(&name);
                core.audited(actor, action::REQUEUE, target, false, requeue)
                    .await
            },
            |n| n as f64,
        )
    }

    /// Requeues the dead letters of the hash `dlqName` that `filter` matches (the keys of
    /// `deadLetters()`'s filter; `{}` is every dead letter), each as `requeueDeadLetter` does:
    /// scheduled again with `retryCount` reset and removed from the hash in one step, so a run
    /// killed midway leaves the rest untouched and can be run again. `ratePerSec` paces it (from
    /// 0.001 to 1,000,000 a second); `delayMs` makes the messages due that much later instead of
    /// now (a whole number of ms, up to a year); `dryRun` only counts.
    /// `signal` (an `AbortSignal`) stops it before its next move: it then resolves to how many
    /// it requeued until then, and running it again goes on with the rest. `onProgress` is
    /// called with the count requeued so far as it goes (at most 10 times a second; a throw in
    /// it becomes a process warning). `maxCount` requeues at most that many (a dry run then
    /// counts at most that many). Dead letters replayed `maxReplays` times (config, default 3:
    /// requeued and dead again each time) are passed over and stay, unless `force: true`;
    /// `requeueDeadLettersDetailed` says how many were passed over. Resolves to how many matched
    /// (dry run) or were requeued; one that fails midway rejects with an error whose `requeued`
    /// says how many it had moved.
    #[napi(
        ts_args_type = "dlqName: string, filter?: DeadLetterFilter, options?: RequeueDeadLettersOptions",
        ts_return_type = "Promise<number>"
    )]
    pub fn requeue_dead_letters<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        filter: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, f64>> {
        let parsed = requeue_args(env, dlq_name, filter, options);
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |args| audited_requeue(core, args),
            |outcome| outcome.count as f64,
        )
    }

    /// `requeueDeadLetters`, resolving to `{ requeued, skipped }`: how many were requeued (dry
    /// run: would be) and how many matches were passed over for their replays (`maxReplays`).
    /// The CLI and the dashboard use it to say what a requeue left behind.
    #[napi(
        ts_args_type = "dlqName: string, filter?: DeadLetterFilter, options?: RequeueDeadLettersOptions",
        ts_return_type = "Promise<RequeueOutcome>"
    )]
    pub fn requeue_dead_letters_detailed<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        filter: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, RequeueOutcome>> {
        let parsed = requeue_args(env, dlq_name, filter, options);
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |args| audited_requeue(core, args),
            RequeueOutcome::from,
        )
    }

    /// The failure reasons of the dead letters of the hash `dlqName` (that `filter` matches, if
    /// given): `{ reasons: [{ reason, count, topics, example, lastAt }], scanned, total,
    /// truncated }`, largest count first. A reason is the error (`Name: message`) with its
    /// variable parts masked (numbers, ids, UUIDs, addresses, e-mails, quoted values), so one
    /// failure with different values is one reason; pass it as the filter's `reason` to list,
    /// requeue or remove exactly those. Reads the newest 10,000 dead letters at most: beyond,
    /// `truncated` is `true` and the counts are of the newest `scanned`.
    #[napi(
        ts_args_type = "dlqName: string, filter?: DeadLetterFilter",
        ts_return_type = "Promise<DeadLetterReasons>"
    )]
    pub fn dead_letter_reasons<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        filter: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, DeadLetterReasons>> {
        let parsed = dlq_name_arg(dlq_name.as_ref())
            .and_then(|name| Ok((name, parse_filter(filter.as_ref())?)));
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, filter)| async move { core.dead_letter_reasons(&name, filter).await },
            DeadLetterReasons::from,
        )
    }

    /// Removes the dead letters of the hash `dlqName` that `filter` matches (the keys of
    /// `deadLetters()`'s filter; `{}` is every dead letter), at most `maxCount` of them; `dryRun`
    /// only counts them (at most `maxCount`).
    /// `signal` (an `AbortSignal`) stops it before its next removal (what was removed stays
    /// removed, the rest stays); `onProgress` is called with the count removed so far as it goes
    /// (at most 10 times a second). Resolves to how many matched (dry run) or were removed; one
    /// that fails midway rejects with an error whose `removed` says how many it had removed.
    #[napi(
        ts_args_type = "dlqName: string, filter?: DeadLetterFilter, options?: { dryRun?: boolean, maxCount?: number, signal?: AbortSignal, onProgress?: (removed: number) => void, actor?: string }",
        ts_return_type = "Promise<number>"
    )]
    pub fn remove_dead_letters<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        filter: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, f64>> {
        let parsed = dlq_name_arg(dlq_name.as_ref()).and_then(|name| {
            Ok((
                name,
                parse_filter(filter.as_ref())?,
                parse_bulk_options(options.as_ref())?,
                requeue_watch(env, options.as_ref())?,
                parse_actor(options.as_ref())?,
            ))
        });
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(name, filter, options, watch, actor)| async move {
                let target = filter_target(&name, &filter);
                let remove = core.remove_matching_dead_letters(&name, filter, options, watch);
                core.audited(actor, action::REMOVE, target, options.dry_run, remove)
                    .await
            },
            |n| n as f64,
        )
    }

    /// Pauses `topic` (absent or `null`: the whole schedule): from their next claim on, no
    /// listener in any process publishes its messages; they fall due and wait (nothing is lost or
    /// dead-lettered, no lease is taken). `untilMs` (ms since the epoch, compared with Redis's
    /// clock) ends the pause by itself; without it the pause lasts until `resume()`. Resolves to
    /// `false` when `untilMs` is already past (nothing paused).
    #[napi(
        ts_args_type = "topic?: string | null, options?: { untilMs?: number, actor?: string }",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn pause<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let parsed = optional_topic(topic.as_ref()).and_then(|topic| {
            Ok((
                topic,
                parse_pause_options(options.as_ref())?,
                parse_actor(options.as_ref())?,
            ))
        });
        let core = self.core.clone();
        settle_with(
            env,
            parsed,
            move |(topic, until, actor)| async move {
                let target = topic_target(topic.as_deref());
                let pause = core.pause(topic.as_deref(), until);
                core.audited(actor, action::PAUSE, target, false, pause)
                    .await
            },
            |paused| paused,
        )
    }

    /// Ends the pause of `topic`, or without one every pause (the whole schedule's and every
    /// topic's). Every listener claims at once (the wake channel); a resumed topic's waiting
    /// messages go out over its next claims. Resolves to whether a pause ended.
    #[napi(
        ts_args_type = "topic?: string | null, options?: { actor?: string }",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn resume<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let core = self.core.clone();
        let parsed = optional_topic(topic.as_ref())
            .and_then(|topic| Ok((topic, parse_actor(options.as_ref())?)));
        settle_with(
            env,
            parsed,
            move |(topic, actor)| async move {
                let target = topic_target(topic.as_deref());
                let resume = core.resume(topic.as_deref());
                core.audited(actor, action::RESUME, target, false, resume)
                    .await
            },
            |ended| ended,
        )
    }

    /// The audit log of this schedule, newest first: every operator action (requeue, remove,
    /// pause, resume, a job stopped or continued) with when (Redis's clock), who (`actor`), what,
    /// on what, how many and how it ended. `limit` (1 to 1,000, default 100) entries at most,
    /// recorded at or after `since` (ms since the epoch); `cursor` (the previous page's) goes on
    /// where that page ended; `cursor` is `null` on the last page. Kept 30 days, at most 10,000.
    #[napi(
        ts_args_type = "options?: { limit?: number, since?: number, cursor?: string }",
        ts_return_type = "Promise<AuditPage>"
    )]
    pub fn audit_log<'env>(
        &self,
        env: &'env Env,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, AuditPage>> {
        let core = self.core.clone();
        settle_with(
            env,
            parse_audit_query(options.as_ref()),
            move |query| async move { core.audit_log(query).await },
            AuditPage::from,
        )
    }

    /// The pauses in force: `[{ topic, untilMs }]`, `topic` `null` for the whole schedule.
    #[napi]
    pub fn paused<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<RetryPause>>> {
        let core = self.core.clone();
        settle(env, async move { core.paused().await }, |pauses| {
            pauses.into_iter().map(RetryPause::from).collect()
        })
    }

    /// Removes dead letter `id` from the hash `dlqName`. Resolves to whether it was there.
    #[napi(
        ts_args_type = "dlqName: string, id: string, options?: { actor?: string }",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn remove_dead_letter<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
        id: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let core = self.core.clone();
        let parsed = dlq_name_and_id(dlq_name.as_ref(), id.as_ref())
            .and_then(|(name, id)| Ok((name, id, parse_actor(options.as_ref())?)));
        settle_with(
            env,
            parsed,
            move |(name, id, actor)| async move {
                let target = item_target(&name, &id);
                let remove = core.remove_dead_letter(&name, &id);
                core.audited(actor, action::REMOVE, target, false, remove)
                    .await
            },
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
    #[napi(ts_args_type = "dlqName?: string")]
    pub fn stats<'env>(
        &self,
        env: &'env Env,
        dlq_name: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, RetryStats>> {
        let core = self.core.clone();
        settle_with(
            env,
            optional_dlq_name(dlq_name.as_ref()),
            move |name| async move { core.stats(name.as_deref()).await },
            RetryStats::from,
        )
    }

    /// Per-minute counts of the last `minutes` minutes (default 60, at most 2880 = 48 hours, what
    /// Redis keeps): pushed, published, failed publishes and dead-lettered, for the whole schedule
    /// and per topic, as the scripts that did the work recorded them. The last minute is the
    /// current one, still counting.
    #[napi(ts_args_type = "options?: { minutes?: number }")]
    pub fn history<'env>(
        &self,
        env: &'env Env,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, RetryHistory>> {
        let core = self.core.clone();
        settle_with(
            env,
            parse_history_options(options.as_ref()),
            move |minutes| async move { core.history(minutes).await },
            RetryHistory::from,
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
            optional_dlq_name(dlq_name.as_ref()),
            move |name| async move {
                let stats = core.stats(name.as_deref()).await?;
                Ok(stats.prometheus(&core.config().key_prefix))
            },
            |text| text,
        )
    }

    /// The schedule this instance works on: its config's `keyPrefix` (default `kafka-retry`).
    #[napi(getter)]
    pub fn key_prefix(&self) -> String {
        self.core.config().key_prefix.clone()
    }

    /// The dead letter hash `stats()` and `metrics()` count when given none: this instance's
    /// (first) listener's, else `<keyPrefix>:dead-letters`, where a listener started without a
    /// name writes.
    #[napi(getter)]
    pub fn dlq_name(&self) -> String {
        self.core.default_dlq_name()
    }

    /// Stops the listener after its current batch (each message published and acknowledged, or
    /// put back on the schedule), stops a `requeueDeadLetters` or `requeueAllDeadLetters` still
    /// running before its next move (it resolves to how many it moved), flushes the producer and
    /// releases connections and JavaScript callbacks, so Node can exit. Later calls to other
    /// methods reject with `ERR_CLOSED`. Calling it twice is harmless.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let core = self.core.clone();
        settle(env, async move { core.close().await }, |_| ())
    }
}

/// What `requeueDeadLetters` and `requeueDeadLettersDetailed` read: the hash, the filter, the
/// bulk options, the signal and progress callback, the actor.
type RequeueArgs = (String, FilterInput, BulkOptions, Watch, Option<String>);

fn requeue_args(
    env: &Env,
    dlq_name: Option<Unknown>,
    filter: Option<Unknown>,
    options: Option<Unknown>,
) -> engine::error::Result<RequeueArgs> {
    let name = dlq_name_arg(dlq_name.as_ref())?;
    Ok((
        name,
        parse_filter(filter.as_ref())?,
        parse_bulk_options(options.as_ref())?,
        requeue_watch(env, options.as_ref())?,
        parse_actor(options.as_ref())?,
    ))
}

/// The filtered requeue both methods run, recorded in the audit log.
async fn audited_requeue(
    core: Arc<RetryCore>,
    (name, filter, options, watch, actor): RequeueArgs,
) -> engine::error::Result<BulkOutcome> {
    let target = filter_target(&name, &filter);
    let requeue = core.requeue_matching_dead_letters(&name, filter, options, watch);
    core.audited(actor, action::REQUEUE, target, options.dry_run, requeue)
        .await
}

/// `pushMany`'s promise over items already read (natively or packed): the number newly stored.
fn settle_push_many<'env>(
    env: &'env Env,
    core: Arc<RetryCore>,
    parsed: engine::error::Result<Vec<engine::retry::PushRequest>>,
) -> Result<PromiseRaw<'env, u32>> {
    settle_with(
        env,
        parsed,
        move |requests| async move { core.push_many(requests).await },
        |stored| stored as u32,
    )
}
