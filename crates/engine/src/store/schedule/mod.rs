//! The schedule in Redis: a sorted set of message ids scored by due time, a hash of entries, a
//! sorted set of claimed batches scored by lease deadline with their ids in a hash, and a set of recently published ids for
//! de-duplication. Every multi-key change is one Lua script, and all keys of a schedule share one
//! hash tag, so the scripts run unchanged on Redis Cluster. Every time in them is Redis's clock.

pub mod migrate;
mod push;
mod seen;
pub mod shard_record;
pub mod signal;

use self::push::PushBatcher;
pub use self::push::{PushDone, PushMessage};
use crate::clock::RedisClock;
use crate::error::{ErrorCode, Result, RetryError};
use crate::store::connection::Redis;
pub use crate::store::keys::{GateKeys, Keys};
use crate::store::scripts;
use redis::Script;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

// The scripts of `lua/schedule/`, each with the libraries it includes (`store::scripts`).
static CLAIM: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/claim"));
static ACK: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/ack"));
static RELEASE: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/release"));
static RENEW: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/renew"));
static COUNT: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/count"));

/// Messages taken by one claim.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// The lease deadline of this claim (ms, Redis's clock).
    pub deadline: u64,
    /// The name its batch is leased under (empty when nothing was claimed): what lets its
    /// listener renew, release and finish it, and no one else.
    pub batch: String,
    /// When the next message (or expired lease) becomes claimable, if anything is scheduled.
    pub next_wake: Option<u64>,
    /// Redis's clock when it claimed.
    pub now: u64,
    /// `(id, stored entry)` pairs.
    pub items: Vec<(String, String)>,
    /// Breakers this claim opened or closed (`lib/breaker.lua`); almost always none.
    pub breaker: Vec<crate::store::breaker::BreakerChange>,
}

/// A claimed message to forget (`Schedule::ack`), and what became of it: the per topic counts
/// and the history count it (`tally.lua`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    /// Schedule id.
    pub id: String,
    /// Its topic.
    pub topic: String,
    /// Dead-lettered rather than published.
    pub dead_lettered: bool,
}

/// `acked` grouped as `ack.lua` takes them: (kind, topic, ids), kind `o` published or `d`
/// dead-lettered, groups in the order they first appear.
fn ack_groups(acked: &[Acked]) -> Vec<(&'static str, &str, Vec<&str>)> {
    let mut groups: Vec<(&'static str, &str, Vec<&str>)> = Vec::new();
    for a in acked {
        let kind = if a.dead_lettered { "d" } else { "o" };
        match groups
            .iter_mut()
            .find(|(k, t, _)| *k == kind && *t == a.topic)
        {
            Some((_, _, ids)) => ids.push(&a.id),
            None => groups.push((kind, &a.topic, vec![&a.id])),
        }
    }
    groups
}

/// Sizes of the schedule.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Waiting for their due time (or due and not yet claimed).
    pub scheduled: u64,
    /// Already due and not yet claimed.
    pub due: u64,
    /// Claimed by a listener and not yet acknowledged.
    pub inflight: u64,
    /// How long the oldest due message has waited past its due time, ms (0: none due).
    pub late_ms: u64,
}

/// One schedule on one Redis server.
#[derive(Clone)]
pub struct Schedule {
    redis: Redis,
    keys: Keys,
    dedupe_window: Duration,
    batcher: Arc<PushBatcher>,
    clock: Arc<RedisClock>,
    /// The keys of the pauses and the rate cap its claims obey (`store::gate`).
    gate: GateKeys,
    /// Most messages per second its claims take (0: no cap).
    max_rate: f64,
    /// The breaker's options as the claim takes them (`lib/breaker.lua`); empty when off.
    breaker: String,
}

impl Schedule {
    /// Shard `shard` of the schedule `prefix` on `redis`. Published ids derived from a `msgId` are
    /// remembered for `dedupe_window` to drop redeliveries.
    pub fn new(redis: Redis, prefix: &str, shard: u32, dedupe_window: Duration) -> Self {
        let keys = Keys::new(prefix, shard);
        let batcher = PushBatcher::for_schedule(&redis, &keys, dedupe_window, None);
        Schedule {
            redis,
            keys,
            dedupe_window,
            batcher,
            clock: Arc::default(),
            gate: GateKeys::new(prefix, shard),
            max_rate: 0.0,
            breaker: String::new(),
        }
    }

    /// This schedule with the breaker per topic on (`lib/breaker.lua`): its pushes count
    /// failures, its acks attempts, and its claims decide each topic's breaker and hold an open
    /// topic's messages. Off (the default), none of them touches the breaker hash.
    pub fn with_breaker(mut self, breaker: Option<&crate::config::BreakerConfig>) -> Self {
        if let Some(breaker) = breaker {
            self.breaker = breaker.script_arg();
            self.batcher = PushBatcher::for_schedule(
                &self.redis,
                &self.keys,
                self.dedupe_window,
                Some(&self.gate.breaker),
            );
        }
        self
    }

    /// Whether the breaker is on for this schedule's claims, pushes and acks.
    pub fn breaker_on(&self) -> bool {
        !self.breaker.is_empty()
    }

    /// This schedule with its claims taking at most `per_sec` messages per second, across every
    /// listener (a token bucket in Redis, `gate.lua`); 0 for no cap.
    pub fn with_max_rate(mut self, per_sec: f64) -> Self {
        self.max_rate = per_sec;
        self
    }

    /// The keys of this schedule's pauses and rate cap.
    pub fn gate_keys(&self) -> &GateKeys {
        &self.gate
    }

    /// The Redis this schedule lives on.
    pub fn redis(&self) -> &Redis {
        &self.redis
    }

    /// The keys of this schedule.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Stores and schedules one message. Returns its due time (Redis's clock), or `None` when the
    /// id was already pushed (a redelivered consumer message) and nothing was stored.
    ///
    /// Concurrent pushes to the same schedule in this process are gathered into one script call
    /// (see `PushBatcher`), so they share round trips instead of paying one each.
    pub async fn push(&self, message: PushMessage) -> Result<Option<u64>> {
        let (reply, stored) = oneshot::channel();
        self.push_detached(
            message,
            Instant::now(),
            Box::new(move |result| {
                let _ = reply.send(result);
            }),
        );
        match tokio::time::timeout(self.redis.timeout(), stored).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RetryError::new(
                ErrorCode::Internal,
                "the push batcher stopped",
            )),
            Err(_) => Err(self.redis.timed_out("push")),
        }
    }

    /// Stores and schedules one message without waiting: `done` gets the outcome (as `push`
    /// returns it) from a runtime thread. `since` is when the caller made the push: the Redis
    /// timeout counts from then. Must be called inside a tokio runtime context.
    pub fn push_detached(&self, message: PushMessage, since: Instant, done: PushDone) {
        self.batcher.submit(message, since, done);
    }

    /// Redis's clock now, as this schedule's last claim reported it and this host's monotonic
    /// clock advanced it; `None` before the first claim.
    pub fn now_ms(&self) -> Option<u64> {
        self.clock.now_ms()
    }

    /// Claims up to `limit` due messages with a lease of `lease`, and records that this listener
    /// looks again within `poll` at the latest (see claim.lua).
    pub async fn claim(&self, limit: usize, lease: Duration, poll: Duration) -> Result<Claim> {
        let (keys, gate, rate, breaker) = (&self.keys, &self.gate, self.max_rate, &self.breaker);
        let reply: Vec<redis::Value> = self
            .redis
            .run("claim", |mut conn| async move {
                CLAIM
                    .key(&keys.due)
                    .key(&keys.lease)
                    .key(&keys.entries)
                    .key(&keys.wake)
                    .key(&gate.paused)
                    .key(&gate.parked)
                    .key(&gate.rate)
                    .key(&keys.topics)
                    .key(&keys.history)
                    .key(&keys.batches)
                    .key(&gate.breaker)
                    .arg(limit)
                    .arg(lease.as_millis() as u64)
                    .arg(poll.as_millis() as u64)
                    .arg(rate)
                    .arg(breaker)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        let claim = parse_claim(reply)?;
        self.clock.observe(claim.now);
        Ok(claim)
    }

    /// Forgets messages that were published or dead-lettered, whatever batch they were claimed
    /// in.
    pub async fn ack(&self, acked: &[Acked]) -> Result<()> {
        if acked.is_empty() {
            return Ok(());
        }
        self.ack_batch("", acked, false).await
    }

    /// Forgets messages of `batch` that were published or dead-lettered, and with `finish` the
    /// batch's lease record (every message of it settled).
    pub async fn ack_batch(&self, batch: &str, acked: &[Acked], finish: bool) -> Result<()> {
        if acked.is_empty() && !finish {
            return Ok(());
        }
        let keys = &self.keys;
        let window = self.dedupe_window.as_millis() as u64;
        let groups = &ack_groups(acked);
        let seen = &seen::seen_args(
            window,
            groups.iter().flat_map(|(_, _, ids)| ids.iter().copied()),
        );
        let breaker = self.breaker_on().then_some(&self.gate.breaker);
        self.redis
            .run_replicated("ack", &keys.lease, |mut conn| async move {
                let mut call = ACK.key(&keys.lease);
                call.key(&keys.entries)
                    .key(&keys.seen)
                    .key(&keys.failures)
                    .key(&keys.topics)
                    .key(&keys.history)
                    .key(&keys.batches)
                    .key(&keys.due);
                if let Some(breaker) = breaker {
                    call.key(breaker);
                }
                call.arg(window)
                    .arg(batch)
                    .arg(if finish { "1" } else { "0" })
                    .arg(groups.len())
                    .arg(seen.fields.len())
                    .arg(seen.set_ids.len());
                for (kind, topic, ids) in groups {
                    call.arg(*kind).arg(*topic).arg(ids.len());
                }
                for (field, records) in &seen.fields {
                    call.arg(&field[..]).arg(&records[..]);
                }
                for id in &seen.set_ids {
                    call.arg(*id);
                }
                for (_, _, ids) in groups {
                    for id in ids {
                        call.arg(*id);
                    }
                }
                call.invoke_async::<i64>(&mut conn).await.map(drop)
            })
            .await
    }

    /// Puts claimed messages (`(id, topic)`) back on the schedule, due `delay` from now, if still
    /// leased in `batch`; `failed` counts them as failed publishes in the history. Returns how
    /// many moved.
    pub async fn release(
        &self,
        batch: &str,
        delay: Duration,
        failed: bool,
        ids: &[(String, String)],
    ) -> Result<u64> {
        Ok(self.release_counting(batch, delay, 0, failed, ids).await?.0)
    }

    /// [`Schedule::release`], counting one more failure that retrying cannot fix per id when
    /// `max_failures` > 0 (in the schedule's failures hash, so the count outlives this listener):
    /// an id whose count reaches `max_failures` is not moved but stays leased in `batch`, and is
    /// returned beside how many moved, for the caller to dead-letter and ack.
    pub async fn release_counting(
        &self,
        batch: &str,
        delay: Duration,
        max_failures: u64,
        failed: bool,
        ids: &[(String, String)],
    ) -> Result<(u64, Vec<String>)> {
        if ids.is_empty() {
            return Ok((0, Vec::new()));
        }
        let keys = &self.keys;
        let reply: Vec<redis::Value> = self
            .redis
            .run("release", |mut conn| async move {
                let mut call = RELEASE.key(&keys.due);
                call.key(&keys.lease)
                    .key(&keys.wake)
                    .key(&keys.failures)
                    .key(&keys.topics)
                    .key(&keys.history)
                    .key(&keys.batches)
                    .arg(batch)
                    .arg(delay.as_millis() as u64)
                    .arg(max_failures)
                    .arg(if failed { "1" } else { "0" });
                for (id, topic) in ids {
                    call.arg(id).arg(topic);
                }
                call.invoke_async(&mut conn).await
            })
            .await?;
        use redis::FromRedisValue;
        let mut values = reply.into_iter();
        let moved = values
            .next()
            .and_then(|v| u64::from_redis_value(&v).ok())
            .ok_or_else(|| RetryError::new(ErrorCode::Internal, "unexpected release reply"))?;
        let reached = values
            .map(|v| String::from_redis_value(&v))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|_| RetryError::new(ErrorCode::Internal, "unexpected release reply"))?;
        Ok((moved, reached))
    }

    /// Extends the lease of `batch`, if still ours, to `lease` from now. Returns the new deadline
    /// and whether it was extended (false: its lease ran out and another claim took it).
    pub async fn renew(&self, batch: &str, lease: Duration) -> Result<(u64, bool)> {
        let keys = &self.keys;
        let (deadline, kept): (u64, u64) = self
            .redis
            .run("lease renewal", |mut conn| async move {
                RENEW
                    .key(&keys.lease)
                    .arg(batch)
                    .arg(lease.as_millis() as u64)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok((deadline, kept == 1))
    }

    /// How many messages are scheduled, due and in flight now (held ones, parked by a pause or
    /// the breaker, are scheduled and due).
    pub async fn counts(&self) -> Result<Counts> {
        let (keys, parked) = (&self.keys, &self.gate.parked);
        let (scheduled, due, inflight, late_ms): (u64, u64, u64, u64) = self
            .redis
            .run("count", |mut conn| async move {
                COUNT
                    .key(&keys.due)
                    .key(&keys.topics)
                    .key(parked)
                    .invoke_async(&mut conn)
                    .await
            })
            .await?;
        Ok(Counts {
            scheduled,
            due,
            inflight,
            late_ms,
        })
    }
}

/// A bulk string reply as text, its bytes moved, not copied (two per claimed message).
fn owned_text(value: redis::Value) -> Option<String> {
    match value {
        redis::Value::BulkString(bytes) => String::from_utf8(bytes).ok(),
        other => redis::FromRedisValue::from_owned_redis_value(other).ok(),
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
    // Redis's clock, or (when a breaker opened or closed) it followed by the transitions.
    let (now, breaker) = match values.next() {
        Some(redis::Value::Array(stamped)) => {
            let mut stamped = stamped.into_iter();
            let now = stamped
                .next()
                .and_then(|v| u64::from_redis_value(&v).ok())
                .ok_or_else(|| bad("no time"))?;
            let rest: Vec<redis::Value> = stamped.collect();
            let changes = crate::store::breaker::parse_changes(&rest).map_err(|what| bad(&what))?;
            (now, changes)
        }
        other => (
            other
                .and_then(|v| u64::from_redis_value(&v).ok())
                .ok_or_else(|| bad("no time"))?,
            Vec::new(),
        ),
    };
    let batch = match values.next() {
        None => return Err(bad("no batch")),
        Some(redis::Value::Nil) => String::new(),
        Some(v) => String::from_redis_value(&v).map_err(|_| bad("batch"))?,
    };
    let mut items = Vec::with_capacity(values.len() / 2);
    while let Some(id) = values.next() {
        let Some(entry) = values.next() else {
            return Err(bad("odd item list"));
        };
        let id = owned_text(id).ok_or_else(|| bad("id"))?;
        let entry = owned_text(entry).ok_or_else(|| bad("entry"))?;
        items.push((id, entry));
    }
    Ok(Claim {
        deadline,
        batch,
        next_wake,
        now,
        items,
        breaker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value;

    #[test]
    fn acks_are_grouped_by_what_became_of_them_and_topic() {
        let acked = |id: &str, topic: &str, dead_lettered| Acked {
            id: id.into(),
            topic: topic.into(),
            dead_lettered,
        };
        let all = [
            acked("1", "a", false),
            acked("2", "b", false),
            acked("3", "a", true),
            acked("4", "a", false),
        ];
        assert_eq!(
            ack_groups(&all),
            vec![
                ("o", "a", vec!["1", "4"]),
                ("o", "b", vec!["2"]),
                ("d", "a", vec!["3"]),
            ]
        );
    }

    #[test]
    fn claim_reply_is_parsed() {
        let reply = vec![
            Value::Int(1_000),
            Value::Int(1_500),
            Value::Int(900),
            Value::BulkString(b"b:900:id1".to_vec()),
            Value::BulkString(b"id1".to_vec()),
            Value::BulkString(b"{}".to_vec()),
        ];
        let claim = parse_claim(reply).unwrap();
        assert_eq!(claim.deadline, 1_000);
        assert_eq!(claim.next_wake, Some(1_500));
        assert_eq!(claim.now, 900);
        assert_eq!(claim.batch, "b:900:id1");
        assert_eq!(claim.items, vec![("id1".to_string(), "{}".to_string())]);
        let empty =
            parse_claim(vec![Value::Int(5), Value::Nil, Value::Int(4), Value::Nil]).unwrap();
        assert_eq!(empty.batch, "");
        assert!(empty.items.is_empty());
        assert_eq!(empty.next_wake, None);
        assert!(empty.items.is_empty());
        assert!(parse_claim(vec![Value::Int(5), Value::Nil]).is_err());
        assert!(parse_claim(vec![Value::Int(5), Value::Nil, Value::Int(4)]).is_err());
    }
}
