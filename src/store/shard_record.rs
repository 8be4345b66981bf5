//! The shard count of a schedule, recorded in Redis by the first instance that uses it, so an
//! instance configured with another `shards` is refused instead of leaving messages on shards no
//! listener of it serves.

use super::connection::Redis;
use super::keys::shards_key;
use crate::error::{ErrorCode, Result, RetryError};
use redis::Script;
use std::sync::LazyLock;

/// Records `shards` when nothing is recorded yet; returns the recorded count either way.
static RECORD: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        "local recorded = redis.call('GET', KEYS[1])\n\
         if recorded then return recorded end\n\
         redis.call('SET', KEYS[1], ARGV[1])\n\
         return ARGV[1]",
    )
});

/// The shard count recorded for the schedule `prefix`, recording `shards` if there is none.
pub async fn record(redis: &Redis, prefix: &str, shards: u32) -> Result<u32> {
    let key = &shards_key(prefix);
    let recorded: String = redis
        .run("read of the recorded shard count", |mut conn| async move {
            RECORD.key(key).arg(shards).invoke_async(&mut conn).await
        })
        .await?;
    recorded.parse().map_err(|_| {
        RetryError::new(
            ErrorCode::Internal,
            format!("{key} holds {recorded:?}, not a shard count"),
        )
    })
}
