//! The schedule in Redis: a sorted set of message ids scored by due time, a hash of entries, a
//! sorted set of claimed ids scored by lease deadline, and a set of recently pushed ids for
//! de-duplication. Every multi-key change is one Lua script, and all keys of a schedule share one
//! hash tag, so the scripts run unchanged on Redis Cluster.

use crate::connection::SharedRedis;
use crate::error::{ErrorCode, Result, RetryError};
use redis::aio::ConnectionManager;
use redis::Script;
use std::future::Future;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

static PUSH: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/push.lua")));
static CLAIM: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/claim.lua")));
static ACK: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/ack.lua")));
static RELEASE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/release.lua")));

/// The Redis keys of one schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    /// Sorted set: id -> due time (ms).
    pub due: String,
    /// Sorted set: claimed id -> lease deadline (ms).
    pub lease: String,
    /// Hash: id -> entry JSON.
    pub entries: String,
    /// Sorted set: pushed id -> push time (ms), for dropping redeliveries.
    pub seen: String,
}

impl Keys {
    /// The keys of the schedule named by `prefix`; the braces make them one Redis Cluster slot.
    pub fn new(prefix: &str) -> Self {
        Keys {
            due: format!("{{{prefix}}}:due"),
            lease: format!("{{{prefix}}}:lease"),
            entries: format!("{{{prefix}}}:entries"),
            seen: format!("{{{prefix}}}:seen"),
        }
    }
}

/// Messages taken by one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The lease deadline of this claim (ms); also the token that lets us release them.
    pub deadline: u64,
    /// When the next message (or expired lease) becomes claimable, if anything is scheduled.
    pub next_wake: Option<u64>,
    /// `(id, entry JSON)` pairs.
    pub items: Vec<(String, String)>,
}

/// Sizes of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Waiting for their due time (or due and not yet claimed).
    pub scheduled: u64,
    /// Already due and not yet claimed.
    pub due: u64,
    /// Claimed by a listener and not yet acknowledged.
    pub inflight: u64,
}

/// One schedule on one Redis server.
#[derive(Clone)]
pub struct Schedule {
    redis: Arc<SharedRedis>,
    keys: Keys,
    timeout: Duration,
}

impl Schedule {
    /// A schedule with the keys of `prefix` on `redis`; every operation fails with
    /// `ERR_REDIS_UNAVAILABLE` after `timeout`.
    pub fn new(redis: Arc<SharedRedis>, prefix: &str, timeout: Duration) -> Self {
        Schedule {
            redis,
            keys: Keys::new(prefix),
            timeout,
        }
    }

    /// The shared connection this schedule uses.
    pub fn redis(&self) -> &SharedRedis {
        &self.redis
    }

    /// The keys of this schedule.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs one Redis operation within the timeout, mapping failures to `ERR_REDIS_UNAVAILABLE`.
    async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.redis.connection().await?;
            op(conn).await.map_err(|err| RetryError::redis(what, err))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(RetryError::new(
                ErrorCode::RedisUnavailable,
                format!(
                    "Redis {what} got no answer within {} ms from {}",
                    self.timeout.as_millis(),
                    crate::connection::redacted(self.redis.url())
                ),
            )),
        }
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        self.run("PING", |mut conn| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
        })
        .await
    }

    /// Stores and schedules one message. Returns `false` when the id was already pushed within
    /// `dedupe_window` (a redelivered consumer message) and nothing was stored.
    pub async fn push(
        &self,
        id: &str,
        due_ms: u64,
        entry_json: &str,
        now_ms: u64,
        dedupe_window: Option<Duration>,
    ) -> Result<bool> {
        let keys = &self.keys;
        let window = dedupe_window.map_or(0, |w| w.as_millis() as u64);
        let stored: i64 = self
            .run("push", |mut conn| async move {
                PUSH.key(&keys.due)
                    .key(&keys.entries)
                    .key(&keys.seen)
                    .arg(id)
                    .arg(due_ms)
                    .arg(entry_json)
                    .arg(now_ms)
                    .arg(window)
                    .arg(if dedupe_window.is_some() { "1" } else { "0" })
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(stored == 1)
    }

    /// Claims up to `limit` due messages with a lease of `lease` from `now_ms`.
    pub async fn claim(&self, now_ms: u64, limit: usize, lease: Duration) -> Result<Claim> {
        let keys = &self.keys;
        let reply: Vec<redis::Value> = self
            .run("claim", |mut conn| async move {
                CLAIM
                    .key(&keys.due)
                    .key(&keys.lease)
                    .key(&keys.entries)
                    .arg(now_ms)
                    .arg(limit)
                    .arg(lease.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        parse_claim(reply)
    }

    /// Forgets messages that were published or dead-lettered.
    pub async fn ack(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let keys = &self.keys;
        self.run("ack", |mut conn| async move {
            let mut call = ACK.key(&keys.lease);
            call.key(&keys.entries);
            for id in ids {
                call.arg(id);
            }
            call.invoke_async::<i64>(&mut conn).await.map(drop)
        })
        .await
    }

    /// Puts claimed messages back on the schedule, due at `due_ms`, if still leased under
    /// `deadline`. Returns how many moved.
    pub async fn release(&self, deadline: u64, due_ms: u64, ids: &[String]) -> Result<u64> {
        if ids.is_empty() {
            return Ok(0);
        }
        let keys = &self.keys;
        self.run("release", |mut conn| async move {
            let mut call = RELEASE.key(&keys.due);
            call.key(&keys.lease).arg(deadline).arg(due_ms);
            for id in ids {
                call.arg(id);
            }
            call.invoke_async::<u64>(&mut conn).await
        })
        .await
    }

    /// Writes one dead letter into the hash `dlq_name` under `field`. Writing the same field
    /// twice (a retried dead-lettering after a crash) leaves one copy.
    pub async fn write_dead_letter(&self, dlq_name: &str, field: &str, record: &str) -> Result<()> {
        self.run("HSET of the dead letter queue", |mut conn| async move {
            redis::cmd("HSET")
                .arg(dlq_name)
                .arg(field)
                .arg(record)
                .query_async::<i64>(&mut conn)
                .await
                .map(drop)
        })
        .await
    }

    /// How many messages are scheduled, due and in flight at `now_ms`.
    pub async fn counts(&self, now_ms: u64) -> Result<Counts> {
        let keys = &self.keys;
        let (scheduled, due, inflight): (u64, u64, u64) = self
            .run("count", |mut conn| async move {
                redis::pipe()
                    .zcard(&keys.due)
                    .zcount(&keys.due, "-inf", now_ms)
                    .zcard(&keys.lease)
                    .query_async(&mut conn)
                    .await
            })
            .await?;
        Ok(Counts {
            scheduled,
            due,
            inflight,
        })
    }
}

fn parse_claim(reply: Vec<redis::Value>) -> Result<Claim> {
    use redis::FromRedisValue;
    let bad = |what: &str| {
        RetryError::new(
            ErrorCode::Internal,
            format!("unexpected claim reply: {what}"),
        )
    };
    let mut values = reply.into_iter();
    let deadline = values
        .next()
        .and_then(|v| u64::from_redis_value(&v).ok())
        .ok_or_else(|| bad("no deadline"))?;
    let next_wake = match values.next() {
        None => return Err(bad("no next wake-up")),
        Some(redis::Value::Nil) => None,
        Some(v) => u64::from_redis_value(&v).ok(),
    };
    let rest: Vec<redis::Value> = values.collect();
    let mut items = Vec::with_capacity(rest.len() / 2);
    for pair in rest.chunks(2) {
        let [id, entry] = pair else {
            return Err(bad("odd item list"));
        };
        let id = String::from_redis_value(id).map_err(|_| bad("id"))?;
        let entry = String::from_redis_value(entry).map_err(|_| bad("entry"))?;
        items.push((id, entry));
    }
    Ok(Claim {
        deadline,
        next_wake,
        items,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn keys_share_one_hash_tag() {
        let k = Keys::new("svc");
        for key in [&k.due, &k.lease, &k.entries, &k.seen] {
            assert!(key.starts_with("{svc}:"), "{key}");
        }
    }

    #[test]
    fn claim_reply_is_parsed() {
        let reply = vec![
            Value::Int(1_000),
            Value::Int(1_500),
            Value::BulkString(b"id1".to_vec()),
            Value::BulkString(b"{}".to_vec()),
        ];
        let claim = parse_claim(reply).unwrap();
        assert_eq!(claim.deadline, 1_000);
        assert_eq!(claim.next_wake, Some(1_500));
        assert_eq!(claim.items, vec![("id1".to_string(), "{}".to_string())]);
        let empty = parse_claim(vec![Value::Int(5), Value::Nil]).unwrap();
        assert_eq!(empty.next_wake, None);
        assert!(empty.items.is_empty());
    }
}
