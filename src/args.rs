//! The arguments of the `KafkaRetry` methods, read from JavaScript values into core types. Every
//! bad value is an `ERR_INVALID_ARG` naming the argument and describing what was given.

use crate::convert::*;
use engine::config::{BreakerInput, ConfigInput, SentinelConfig, TlsConfig, BREAKER_KEYS};
use engine::error::{Result as CoreResult, RetryError};
use engine::message::backoff::Backoff;
use engine::message::options::{format_js_number, parse_first_failed_at, RetryOptions};
use engine::retry::audit::AuditQuery;
use engine::retry::{BulkOptions, PushRequest};
use engine::store::dead_letters::search::FilterInput;
use napi::bindgen_prelude::*;
use napi::JsValue;

/// The name of a dead letter hash: a non-empty string.
pub fn dlq_name(value: Option<&Unknown>) -> CoreResult<String> {
    string_arg("dlqName", value, true)
}

/// A dead letter hash name and the id of one of its dead letters.
pub fn dlq_name_and_id(
    dlq: Option<&Unknown>,
    id: Option<&Unknown>,
) -> CoreResult<(String, String)> {
    Ok((dlq_name(dlq)?, string_arg("id", id, true)?))
}

/// `requeueDeadLetter()`'s `{ delayMs }`: how long after now the requeued message falls due
/// (default 0), a whole number of ms up to a year.
pub fn parse_requeue_delay(options: Option<&Unknown>) -> CoreResult<u64> {
    use engine::store::dead_letters::requeue::MAX_DELAY_MS;
    let Some(options) = object_arg("options", options)? else {
        return Ok(0);
    };
    match optional_number(&options, "delayMs", "options.delayMs")? {
        None => Ok(0),
        Some(ms) if ms.fract() == 0.0 && (0.0..=MAX_DELAY_MS as f64).contains(&ms) => Ok(ms as u64),
        Some(ms) => Err(RetryError::invalid_arg(format!(
            "options.delayMs must be a whole number of ms from 0 to {MAX_DELAY_MS} (a year), got {}",
            format_js_number(ms)
        ))),
    }
}

/// The `actor` of an operator method's options: who acts, as the audit log records it (the core
/// checks it, `store::audit::check_actor`). `None` when absent.
pub fn parse_actor(options: Option<&Unknown>) -> CoreResult<Option<String>> {
    let Some(object) = object_arg("options", options)? else {
        return Ok(None);
    };
    optional_string(&object, "actor", "options.actor")
}

/// `auditLog()`'s `{ limit, since, cursor }`, checked by the core.
pub fn parse_audit_query(options: Option<&Unknown>) -> CoreResult<AuditQuery> {
    let Some(object) = object_arg("options", options)? else {
        return Ok(AuditQuery::default());
    };
    Ok(AuditQuery {
        limit: optional_number(&object, "limit", "options.limit")?,
        since: optional_number(&object, "since", "options.since")?,
        cursor: optional_string(&object, "cursor", "options.cursor")?,
    })
}

/// A dead letter hash name that may be left out (`undefined` or `null`).
pub fn optional_dlq_name(value: Option<&Unknown>) -> CoreResult<Option<String>> {
    if is_nullish(value) {
        Ok(None)
    } else {
        dlq_name(value).map(Some)
    }
}

/// A dead letter filter's keys (`topic`, `errorContains`, `search`, `since`, `until`) read from
/// `object` (named `name` in errors); the core checks them (`Filter::parse`).
pub fn filter_input(object: Option<&Object>, name: &str) -> CoreResult<FilterInput> {
    let Some(object) = object else {
        return Ok(FilterInput::default());
    };
    let key = |k: &str| format!("{name}.{k}");
    Ok(FilterInput {
        topic: optional_string(object, "topic", &key("topic"))?,
        error_contains: optional_string(object, "errorContains", &key("errorContains"))?,
        search: optional_string(object, "search", &key("search"))?,
        since: optional_number(object, "since", &key("since"))?,
        until: optional_number(object, "until", &key("until"))?,
        reason: optional_string(object, "reason", &key("reason"))?,
    })
}

/// A dead letter filter argument (`filter`): an object with the keys of [`filter_input`], or
/// absent (everything).
pub fn parse_filter(filter: Option<&Unknown>) -> CoreResult<FilterInput> {
    filter_input(object_arg("filter", filter)?.as_ref(), "filter")
}

/// The `{ dryRun, ratePerSec, delayMs, maxCount, force }` of `requeueDeadLetters` /
/// `removeDeadLetters` (the latter reads `dryRun` and `maxCount` only).
pub fn parse_bulk_options(options: Option<&Unknown>) -> CoreResult<BulkOptions> {
    let Some(object) = object_arg("options", options)? else {
        return Ok(BulkOptions::default());
    };
    Ok(BulkOptions {
        dry_run: optional_bool(&object, "dryRun", "options.dryRun")?.unwrap_or(false),
        rate_per_sec: optional_number(&object, "ratePerSec", "options.ratePerSec")?,
        delay_ms: optional_number(&object, "delayMs", "options.delayMs")?,
        // The cap and the replay guard (issue 30).
        max_count: optional_number(&object, "maxCount", "options.maxCount")?,
        force: optional_bool(&object, "force", "options.force")?.unwrap_or(false),
    })
}

/// A topic that may be left out (`undefined` or `null`: the whole schedule).
pub fn optional_topic(value: Option<&Unknown>) -> CoreResult<Option<String>> {
    if is_nullish(value) {
        Ok(None)
    } else {
        string_arg("topic", value, true).map(Some)
    }
}

/// `pause()`'s `{ untilMs }`: a time in ms since the epoch.
pub fn parse_pause_options(options: Option<&Unknown>) -> CoreResult<Option<u64>> {
    let Some(object) = object_arg("options", options)? else {
        return Ok(None);
    };
    match optional_number(&object, "untilMs", "options.untilMs")? {
        None => Ok(None),
        Some(v) if v.is_finite() && v > 0.0 && v.fract() == 0.0 && v <= 9.0e15 => {
            Ok(Some(v as u64))
        }
        Some(v) => Err(RetryError::invalid_arg(format!(
            "options.untilMs must be a time in ms since the epoch (a whole number above 0), got {}",
            format_js_number(v)
        ))),
    }
}

/// `history()`'s `{ minutes }`, read as given (the core checks it).
pub fn parse_history_options(options: Option<&Unknown>) -> CoreResult<Option<f64>> {
    match object_arg("options", options)? {
        None => Ok(None),
        Some(object) => optional_number(&object, "minutes", "options.minutes"),
    }
}

/// `deadLetters()`'s `{ limit, cursor, ...filter }`: the page size (default 100, at most 10000),
/// where to start, and the filter.
pub fn parse_search(page: Option<&Unknown>) -> CoreResult<(usize, Option<String>, FilterInput)> {
    let (limit, cursor) = parse_page(page)?;
    let filter = filter_input(object_arg("page", page)?.as_ref(), "page")?;
    Ok((limit, cursor, filter))
}

/// `deadLetters()`'s `{ limit, cursor }`: the page size (default 100, at most 10000) and where
/// to start.
pub fn parse_page(page: Option<&Unknown>) -> CoreResult<(usize, Option<String>)> {
    let page = object_arg("page", page)?;
    let limit = match page.as_ref() {
        Some(page) => optional_number(page, "limit", "page.limit")?,
        None => None,
    };
    let limit = match limit {
        None => 100,
        Some(l) if l.fract() == 0.0 && (1.0..=10_000.0).contains(&l) => l as usize,
        Some(l) => {
            return Err(RetryError::invalid_arg(format!(
                "page.limit must be a whole number from 1 to 10000, got {}",
                format_js_number(l)
            )))
        }
    };
    let cursor = match page.as_ref() {
        Some(page) => optional_string(page, "cursor", "page.cursor")?,
        None => None,
    };
    Ok((limit, cursor))
}

/// Every key of the constructor's `config` (`KafkaRetryConfig` in `header.d.ts`; `onEvent` and
/// `logger` are read by `observer.rs`). Any other key is refused, so a misspelt one is not
/// silently ignored.
pub const CONFIG_KEYS: &[&str] = &[
    "redisUrl",
    "brokers",
    "kafka",
    "keyPrefix",
    "pollIntervalMs",
    "leaseMs",
    "batchSize",
    "redisTimeoutMs",
    "dedupeWindowMs",
    "cluster",
    "backoff",
    "deadLetterTopic",
    "maxDeadLetters",
    "maxPublishFailures",
    "maxPublishRate",
    "maxReplays",
    "migrateLegacy",
    "onEvent",
    "logger",
    "shards",
    "username",
    "password",
    "tls",
    "sentinel",
    "waitReplicas",
    "waitTimeoutMs",
    "breaker",
];
/// The keys of `config.tls` and `config.sentinel.tls` (`RedisTlsOptions`).
pub const TLS_KEYS: &[&str] = &["ca", "cert", "key", "rejectUnauthorized", "servername"];
/// The keys of `config.sentinel` (`RedisSentinelOptions`).
pub const SENTINEL_KEYS: &[&str] = &["sentinels", "name", "username", "password", "tls"];
/// The keys of one of `config.sentinel.sentinels`.
pub const SENTINEL_NODE_KEYS: &[&str] = &["host", "port"];
/// The keys of `config.backoff` (`BackoffPolicy`).
pub const BACKOFF_KEYS: &[&str] = &["type", "multiplier", "maxDelayMs", "delaysMs", "jitter"];

/// The constructor's `config` object, each key checked and named in its error. `kafka` (librdkafka
/// properties, checked by librdkafka) and `logger` (a caller's own logger) take any keys.
pub fn parse_config(config: Option<&Unknown>) -> CoreResult<ConfigInput> {
    let Some(object) = object_arg("config", config)? else {
        return Ok(ConfigInput::default());
    };
    only_known_keys(&object, "config", CONFIG_KEYS)?;
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
                    .map(format_js_number)
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
        max_publish_failures: optional_number(
            &object,
            "maxPublishFailures",
            "config.maxPublishFailures",
        )?,
        max_publish_rate: optional_number(&object, "maxPublishRate", "config.maxPublishRate")?,
        max_replays: optional_number(&object, "maxReplays", "config.maxReplays")?,
        username: optional_string(&object, "username", "config.username")?,
        password: optional_secret(&object, "password", "config.password")?,
        tls: parse_tls("config.tls", property(&object, "tls").as_ref())?,
        sentinel: parse_sentinel(property(&object, "sentinel").as_ref())?,
        wait_replicas: optional_number(&object, "waitReplicas", "config.waitReplicas")?,
        wait_timeout_ms: optional_number(&object, "waitTimeoutMs", "config.waitTimeoutMs")?,
        breaker: parse_breaker(property(&object, "breaker").as_ref())?,
    })
}

/// `config.breaker`: `true`/`false`, or an object of options (which turns it on).
fn parse_breaker(value: Option<&Unknown>) -> CoreResult<Option<BreakerInput>> {
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    if let Ok(napi::ValueType::Boolean) = value.get_type() {
        let enabled = unsafe { value.cast::<bool>() }.unwrap_or_default();
        return Ok(Some(BreakerInput {
            enabled,
            ..BreakerInput::default()
        }));
    }
    let object = object_arg("config.breaker", Some(value)).map_err(|_| {
        RetryError::invalid_arg(format!(
            "config.breaker must be true, false or an object of options, got {}",
            describe(value)
        ))
    })?;
    let Some(object) = object else {
        return Ok(None);
    };
    only_known_keys(&object, "config.breaker", BREAKER_KEYS)?;
    let number = |key: &str| optional_number(&object, key, &format!("config.breaker.{key}"));
    Ok(Some(BreakerInput {
        enabled: true,
        failure_ratio: number("failureRatio")?,
        min_failures: number("minFailures")?,
        window_ms: number("windowMs")?,
        probe_interval_ms: number("probeIntervalMs")?,
        probe_count: number("probeCount")?,
        ramp_ms: number("rampMs")?,
    }))
}

/// A password: a string, never shown in an error (a wrong type is described by its type only).
fn optional_secret(object: &Object, key: &str, name: &str) -> CoreResult<Option<String>> {
    let value = property(object, key);
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    match value.get_type() {
        Ok(ValueType::String) => unsafe { value.cast::<String>() }
            .map(Some)
            .map_err(|_| RetryError::invalid_arg(format!("{name} is not readable text"))),
        Ok(kind) => Err(RetryError::invalid_arg(format!(
            "{name} must be a string, got a {}",
            format!("{kind:?}").to_lowercase()
        ))),
        Err(_) => Err(RetryError::invalid_arg(format!("{name} must be a string"))),
    }
}

/// PEM text as ioredis/Node's `tls` takes it: a string, a Buffer, or an array of them (joined).
fn optional_pem(object: &Object, key: &str, name: &str) -> CoreResult<Option<Vec<u8>>> {
    fn one(name: &str, value: &Unknown, out: &mut Vec<u8>) -> CoreResult<()> {
        match value.get_type() {
            Ok(ValueType::String) => {
                let text = unsafe { value.cast::<String>() }
                    .map_err(|_| RetryError::invalid_arg(format!("{name} is not readable text")))?;
                out.extend_from_slice(text.as_bytes());
            }
            Ok(ValueType::Object) if value.is_buffer().unwrap_or(false) => {
                let bytes = unsafe { value.cast::<BufferSlice>() }.map_err(|_| {
                    RetryError::invalid_arg(format!("{name} is not a readable Buffer"))
                })?;
                out.extend_from_slice(&bytes);
            }
            _ => {
                return Err(RetryError::invalid_arg(format!(
                    "{name} must be PEM text (a string or a Buffer), got {}",
                    describe(value)
                )))
            }
        }
        out.push(b'\n');
        Ok(())
    }
    let value = property(object, key);
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    let mut pem = Vec::new();
    if value.is_array().unwrap_or(false) {
        let array = unsafe { value.cast::<Object>() }
            .map_err(|_| RetryError::invalid_arg(format!("{name} is not a readable array")))?;
        for i in 0..array.get_array_length().unwrap_or(0) {
            let item = element(&array, i)
                .ok_or_else(|| RetryError::invalid_arg(format!("{name}[{i}] is not readable")))?;
            one(&format!("{name}[{i}]"), &item, &mut pem)?;
        }
    } else {
        one(name, &value, &mut pem)?;
    }
    Ok(Some(pem))
}

/// `tls` (and `sentinel.tls`): `{ ca, cert, key, rejectUnauthorized, servername }`; `true` or
/// `{}` for TLS with the public CAs.
fn parse_tls(name: &str, value: Option<&Unknown>) -> CoreResult<Option<TlsConfig>> {
    let Some(value) = value.filter(|v| !is_nullish(Some(v))) else {
        return Ok(None);
    };
    if let Ok(ValueType::Boolean) = value.get_type() {
        return Ok(unsafe { value.cast::<bool>() }
            .unwrap_or(false)
            .then(TlsConfig::default));
    }
    let Some(tls) = object_arg(name, Some(value))? else {
        return Ok(None);
    };
    only_known_keys(&tls, name, TLS_KEYS)?;
    Ok(Some(TlsConfig {
        ca: optional_pem(&tls, "ca", &format!("{name}.ca"))?,
        cert: optional_pem(&tls, "cert", &format!("{name}.cert"))?,
        key: optional_pem(&tls, "key", &format!("{name}.key"))?,
        reject_unauthorized: optional_bool(
            &tls,
            "rejectUnauthorized",
            &format!("{name}.rejectUnauthorized"),
        )?
        .unwrap_or(true),
        servername: optional_string(&tls, "servername", &format!("{name}.servername"))?,
    }))
}

/// `sentinel`: `{ sentinels: [{ host, port }], name, username?, password?, tls? }`.
fn parse_sentinel(value: Option<&Unknown>) -> CoreResult<Option<SentinelConfig>> {
    let Some(sentinel) = object_arg("config.sentinel", value)? else {
        return Ok(None);
    };
    only_known_keys(&sentinel, "config.sentinel", SENTINEL_KEYS)?;
    let list = property(&sentinel, "sentinels");
    let not_list =
        || RetryError::invalid_arg("config.sentinel.sentinels must be an array of { host, port }");
    let list = list
        .filter(|v| v.is_array().unwrap_or(false))
        .ok_or_else(not_list)?;
    let array = unsafe { list.cast::<Object>() }.map_err(|_| not_list())?;
    let mut sentinels = Vec::new();
    for i in 0..array.get_array_length().unwrap_or(0) {
        let name = format!("config.sentinel.sentinels[{i}]");
        let item = element(&array, i);
        let node = object_arg(&name, item.as_ref())?
            .ok_or_else(|| RetryError::invalid_arg(format!("{name} must be {{ host, port }}")))?;
        only_known_keys(&node, &name, SENTINEL_NODE_KEYS)?;
        let host = optional_string(&node, "host", &format!("{name}.host"))?
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "127.0.0.1".to_string());
        let port = optional_number(&node, "port", &format!("{name}.port"))?.unwrap_or(26379.0);
        if port.fract() != 0.0 || !(1.0..=65535.0).contains(&port) {
            return Err(RetryError::invalid_arg(format!(
                "{name}.port must be a whole number from 1 to 65535, got {}",
                format_js_number(port)
            )));
        }
        sentinels.push((host, port as u16));
    }
    Ok(Some(SentinelConfig {
        sentinels,
        name: optional_string(&sentinel, "name", "config.sentinel.name")?.unwrap_or_default(),
        username: optional_string(&sentinel, "username", "config.sentinel.username")?,
        password: optional_secret(&sentinel, "password", "config.sentinel.password")?
            .filter(|p| !p.is_empty())
            .map(engine::config::Secret),
        tls: parse_tls("config.sentinel.tls", property(&sentinel, "tls").as_ref())?,
    }))
}

/// `config.backoff`.
fn parse_backoff(value: Option<&Unknown>) -> CoreResult<Option<Backoff>> {
    let Some(object) = object_arg("config.backoff", value)? else {
        return Ok(None);
    };
    only_known_keys(&object, "config.backoff", BACKOFF_KEYS)?;
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

/// `pushToQueue(topic, { event, value }, options)`.
pub fn parse_push(
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
    let entries = options.as_ref().map(own_entries).unwrap_or_default();
    let option = |key: &str| {
        options
            .as_ref()
            .and_then(|o| entry_or_property(&entries, o, key))
    };
    let mut parsed = RetryOptions::parse(
        option_value_of(option("delay")),
        option_value_of(option("maxRetry")),
        option_value_of(option("retryCount")),
    )?;
    parsed.first_failed_at = parse_first_failed_at(option_value_of(option("firstFailedAt")));
    let error = error_info(option("error"));
    let extra = extra_headers(entries)?;
    Ok(PushRequest {
        topic,
        event,
        value,
        options: parsed,
        error,
        extra,
    })
}

/// Most items one `pushMany` call takes: a bound on the memory one call can pin, far above any
/// Kafka batch a consumer gets.
pub const PUSH_MANY_MAX: u32 = 100_000;

/// `pushMany`'s `items`: an array of `{ topic, message, options }`, each read as `pushToQueue`
/// reads its three arguments. The first bad item fails the whole call, its error naming the index
/// (`items[3]: topic must be ...`).
pub fn parse_push_many(items: Option<&Unknown>) -> CoreResult<Vec<PushRequest>> {
    let not_an_array = || {
        RetryError::invalid_arg(format!(
            "items must be an array of {{ topic, message, options }}, got {}",
            items.map_or("undefined".to_string(), describe)
        ))
    };
    let Some(array) = items.filter(|v| v.is_array().unwrap_or(false)) else {
        return Err(not_an_array());
    };
    let array = unsafe { array.cast::<Object>() }.map_err(|_| not_an_array())?;
    let len = array.get_array_length().map_err(|_| not_an_array())?;
    if len > PUSH_MANY_MAX {
        return Err(RetryError::invalid_arg(format!(
            "items may hold at most {PUSH_MANY_MAX} messages, got {len}: split the batch"
        )));
    }
    let mut requests = Vec::with_capacity(len as usize);
    for index in 0..len {
        let item = element(&array, index);
        let request = object_arg("item", item.as_ref())
            .and_then(|object| {
                object.ok_or_else(|| {
                    RetryError::invalid_arg(format!(
                        "item must be an object {{ topic, message, options }}, got {}",
                        item.as_ref().map_or("undefined".to_string(), describe)
                    ))
                })
            })
            .and_then(|object| {
                parse_push(
                    property(&object, "topic").as_ref(),
                    property(&object, "message").as_ref(),
                    property(&object, "options").as_ref(),
                )
            })
            .map_err(|e| e.in_item(index as usize))?;
        requests.push(request);
    }
    Ok(requests)
}
