//! The shard count of a schedule, recorded in Redis by the first instance that uses it, so an
//! instance configured with another `shards` is refused instead of leaving messages on shards no
//! listener of it serves.

use crate::error::{ErrorCode, Result, RetryError};
use crate::store::connection::Redis;
use crate::store::keys::shards_key;
use crate::store::scripts;
use redis::Script;
use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

/// Records `shards` when nothing is recorded yet; returns the recorded count either way.
static RECORD: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/record_shards"));

/// Counts this process already read, per connection and schedule key: a record is written once
/// and never changed, and services that make an instance per failed message (as the original
/// class's callers do) would otherwise pay one more round trip per push.
static KNOWN: LazyLock<Mutex<HashMap<String, u32>>> = LazyLock::new(Default::default);

/// The key under which this process remembers the count of the schedule key `key`.
fn known_key(redis: &Redis, key: &str) -> String {
    format!("{}\n{key}", redis.shared().url())
}

/// The count this process already read for `known_key`, if any.
fn known(known_key: &str) -> Option<u32> {
    KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(known_key)
        .copied()
}

/// Parses the count read from `key` and remembers it for this process.
fn remember(known_key: String, key: &str, recorded: &str) -> Result<u32> {
    let count = recorded.parse().map_err(|_| {
        RetryError::new(
            ErrorCode::Internal,
            format!("{key} holds {recorded:?}, not a shard count"),
        )
    })?;
    KNOWN
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(known_key, count);
    Ok(count)
}

/// The shard count recorded for the schedule `prefix`, recording `shards` if there is none.
pub async fn record(redis: &Redis, prefix: &str, shards: u32) -> Result<u32> {
    let key = &shards_key(prefix);
    let known_key = known_key(redis, key);
    if let Some(count) = known(&known_key) {
        return Ok(count);
    }
    let recorded: String = redis
        .run("read of the recorded shard count", |mut conn| async move {
            RECORD.key(key).arg(shards).invoke_async(&mut conn).await
        })
        .await?;
    remember(known_key, key, &recorded)
}

/// The shard count recorded for the schedule `prefix`, if any, writing nothing: for read-only
/// calls (`stats()`, `metrics()`, the CLI's `stats`), which must not create the record with their
/// own `shards` before the service that owns the schedule starts.
pub async fn read(redis: &Redis, prefix: &str) -> Result<Option<u32>> {
    let key = &shards_key(prefix);
    let known_key = known_key(redis, key);
    if let Some(count) = known(&known_key) {
        return Ok(Some(count));
    }
    let recorded: Option<String> = redis
        .run("read of the recorded shard count", |mut conn| async move {
            redis::cmd("GET").arg(key).query_async(&mut conn).await
        })
        .await?;
    recorded
        .map(|recorded| remember(known_key, key, &recorded))
        .transpose()
}
