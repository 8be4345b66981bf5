//! Migration from the original JavaScript class: its buckets are string keys named by due minute
//! (`YYYYMMDD-HHmm`) holding a JSON array of `{ topic, event, value, options }`. Each entry is
//! scheduled exactly once (its id derives from the bucket and position, and pushes of the same
//! id are de-duplicated), then the bucket is deleted if nobody appended to it meanwhile.

use super::{PushMessage, Schedule};
use crate::clock::now_ms;
use crate::error::{Result, RetryError};
use crate::message::options::{OptionValue, RetryOptions};
use crate::message::payload::json_text;
use crate::store::connection::Redis;
use crate::store::entry::Entry;
use crate::store::scripts;
use redis::Script;
use std::sync::LazyLock;

/// SCAN pattern of the original's bucket keys.
pub const BUCKET_PATTERN: &str = "[0-9][0-9][0-9][0-9][0-9][0-9][0-9][0-9]-[0-9][0-9][0-9][0-9]";

static DELETE_IF_UNCHANGED: LazyLock<Script> =
    LazyLock::new(|| scripts::load("schedule/drop_bucket"));

/// The due time of a bucket key `YYYYMMDD-HHmm`, read as UTC, in ms. `None` for other keys.
pub fn bucket_due_ms(key: &str) -> Option<u64> {
    let bytes = key.as_bytes();
    if bytes.len() != 13 || bytes[8] != b'-' {
        return None;
    }
    let digits = |range: std::ops::Range<usize>| -> Option<u64> {
        key.get(range)?
            .chars()
            .try_fold(0u64, |acc, c| Some(acc * 10 + c.to_digit(10)? as u64))
    };
    let (year, month, day) = (digits(0..4)?, digits(4..6)?, digits(6..8)?);
    let (hour, minute) = (digits(9..11)?, digits(11..13)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    let days = days_from_civil(year as i64, month as i64, day as i64);
    let seconds = days * 86_400 + (hour * 3_600 + minute * 60) as i64;
    u64::try_from(seconds).ok().map(|s| s * 1_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// One legacy element to an entry due at `due_ms`. The original stored `retryCount` already
/// incremented, so it is kept as is. `None` for elements without a topic.
pub fn legacy_entry(element: &serde_json::Value, due_ms: u64) -> Option<Entry> {
    let object = element.as_object()?;
    let topic = json_text(object.get("topic")).filter(|t| !t.is_empty())?;
    let options = object.get("options");
    let option = |key: &str| match options.and_then(|o| o.get(key)) {
        Some(serde_json::Value::String(s)) => OptionValue::Text(s.clone()),
        Some(serde_json::Value::Number(n)) => OptionValue::Number(n.as_f64().unwrap_or(f64::NAN)),
        _ => OptionValue::Missing,
    };
    // Unreadable options fall back to the original defaults rather than dropping the message.
    let parsed = RetryOptions::parse(option("delay"), option("maxRetry"), option("retryCount"))
        .or_else(|_| {
            RetryOptions::parse(
                OptionValue::Missing,
                OptionValue::Missing,
                OptionValue::Missing,
            )
        })
        .ok()?;
    Some(Entry {
        topic,
        event: json_text(object.get("event")).unwrap_or_default(),
        value: json_text(object.get("value")).unwrap_or_else(|| "null".to_string()),
        delay: parsed.delay_text,
        max_retry: parsed.max_retry,
        retry_count: parsed.retry_count.max(1),
        due_at: due_ms,
        first_failed_at: None,
        last_error: None,
        waited_ms: None,
        // The original re-published every other key of its options as a header.
        extra: options
            .map(crate::message::headers::from_json)
            .unwrap_or_default(),
    })
}

/// Moves every legacy bucket into `schedule` (shard chosen by `shard_of`). Returns how many
/// messages were scheduled.
pub async fn migrate(redis: &Redis, shard_of: impl Fn(&str) -> Schedule) -> Result<u64> {
    if redis.is_cluster() {
        return Err(RetryError::invalid_arg(
            "migrateLegacy works on a single Redis server (the original class never ran on a cluster)",
        ));
    }
    let mut cursor: u64 = 0;
    let mut buckets = Vec::new();
    loop {
        let (next, keys): (u64, Vec<String>) = redis
            .run("SCAN for legacy buckets", |mut conn| async move {
                redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(BUCKET_PATTERN)
                    .arg("COUNT")
                    .arg(1_000)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        buckets.extend(keys);
        if next == 0 {
            break;
        }
        cursor = next;
    }
    let mut migrated = 0;
    for bucket in buckets {
        migrated += migrate_bucket(redis, &bucket, &shard_of).await?;
    }
    Ok(migrated)
}

async fn migrate_bucket(
    redis: &Redis,
    bucket: &str,
    shard_of: &impl Fn(&str) -> Schedule,
) -> Result<u64> {
    let Some(bucket_due) = bucket_due_ms(bucket) else {
        return Ok(0);
    };
    let text: Option<String> = redis
        .run("GET of a legacy bucket", |mut conn| async move {
            // A key of another type that happens to match the pattern is not ours: skip it.
            match redis::cmd("GET").arg(bucket).query_async(&mut conn).await {
                Ok(text) => Ok(text),
                Err(err) if err.code() == Some("WRONGTYPE") => Ok(None),
                Err(err) => Err(err),
            }
        })
        .await?;
    let Some(text) = text else { return Ok(0) };
    let Ok(serde_json::Value::Array(elements)) = serde_json::from_str(&text) else {
        return Ok(0);
    };
    // The bucket names the minute by the writing host's clock, the only clock there is for it.
    let delay_ms = bucket_due.saturating_sub(now_ms());
    let mut migrated = 0;
    for (position, element) in elements.iter().enumerate() {
        let Some(entry) = legacy_entry(element, bucket_due) else {
            continue;
        };
        let id = format!("legacy:{bucket}:{position}");
        let stored = shard_of(&id)
            .push(PushMessage {
                id,
                delay_ms,
                entry: entry.encode_after_due(false),
                dedupe: true,
                topic: entry.topic.clone(),
            })
            .await?;
        migrated += stored.is_some() as u64;
    }
    // Deleted only if unchanged: an original class still running may have appended meanwhile,
    // and the next run then takes the new elements (the old ones are de-duplicated).
    redis
        .run("DEL of a legacy bucket", |mut conn| async move {
            DELETE_IF_UNCHANGED
                .key(bucket)
                .arg(&text)
                .invoke_async::<i64>(&mut conn)
                .await
                .map(drop)
        })
        .await?;
    Ok(migrated)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_keys_are_minutes_in_utc() {
        assert_eq!(bucket_due_ms("19700101-0000"), Some(0));
        assert_eq!(bucket_due_ms("19700102-0001"), Some(86_460_000));
        // 2026-11-28 08:30 UTC
        assert_eq!(bucket_due_ms("20261128-0830"), Some(1_795_854_600_000));
        assert_eq!(bucket_due_ms("20241301-0000"), None);
        assert_eq!(bucket_due_ms("2024-01-0100"), None);
        assert_eq!(bucket_due_ms("kafka-retry"), None);
    }

    #[test]
    fn legacy_elements_become_entries() {
        let element = serde_json::json!({
            "topic": "orders", "event": "Created", "value": "{\"id\":1}",
            "options": { "delay": "2", "maxRetry": "3", "retryCount": "2" }
        });
        let entry = legacy_entry(&element, 5).unwrap();
        assert_eq!(
            entry.retry_count, 2,
            "the original stored the count already incremented"
        );
        assert_eq!(entry.value, "{\"id\":1}");
        assert_eq!(entry.due_at, 5);
        let object_value = serde_json::json!({ "topic": "t", "event": "e", "value": { "a": 1 } });
        assert_eq!(legacy_entry(&object_value, 0).unwrap().value, "{\"a\":1}");
        assert!(legacy_entry(&serde_json::json!({ "event": "no topic" }), 0).is_none());
    }

    #[test]
    fn the_originals_other_options_stay_headers() {
        // The original re-published `{ ...options, retryCount, executeAt }` as the headers.
        let element = serde_json::json!({
            "topic": "orders", "event": "Created", "value": { "id": 1 },
            "options": { "delay": "2", "maxRetry": "3", "retryCount": "1", "tenant": "acme",
                         "executeAt": "2026-11-28 08:30:00", "traceparent": "00-ab-cd-01" }
        });
        let entry = legacy_entry(&element, 5).unwrap();
        let names: Vec<_> = entry.extra.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["tenant", "traceparent"]);
        assert_eq!(
            entry.extra[0].value,
            crate::message::headers::HeaderValue::Text("acme".into())
        );
    }
}
