//! The schedule in Redis: a sorted set of message ids scored by due time, a hash of entries, a
//! sorted set of claimed ids scored by lease deadline, and a set of recently pushed ids for
//! de-duplication. Every multi-key change is one Lua script, and all keys of a schedule share one
//! hash tag, so the scripts run unchanged on Redis Cluster.

use crate::connection::{RedisConnection, SharedRedis};
use crate::error::{ErrorCode, Result, RetryError};
use redis::Script;
use std::future::Future;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, Semaphore};

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
    /// Hash: id -> entry (`Entry::encode`).
    pub entries: String,
    /// Sorted set: pushed id -> push time (ms), for dropping redeliveries.
    pub seen: String,
}

impl Keys {
    /// The keys of shard `shard` of the schedule named by `prefix`. The braces make one shard's
    /// keys one Redis Cluster slot, so every script touches a single slot; shard 0 is `{prefix}`,
    /// shard n is `{prefix#n}`, so different shards land on different slots (and masters).
    pub fn new(prefix: &str, shard: u32) -> Self {
        let tag = if shard == 0 {
            prefix.to_string()
        } else {
            format!("{prefix}#{shard}")
        };
        Keys {
            due: format!("{{{tag}}}:due"),
            lease: format!("{{{tag}}}:lease"),
            entries: format!("{{{tag}}}:entries"),
            seen: format!("{{{tag}}}:seen"),
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
    /// `(id, stored entry)` pairs.
    pub items: Vec<(String, String)>,
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
}

/// One message for the push script.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// Schedule id.
    pub id: String,
    /// Due time, ms since the epoch.
    pub due_ms: u64,
    /// The entry as stored.
    pub entry: String,
    /// Whether the id derives from the payload's `msgId` (then redeliveries are dropped).
    pub dedupe: bool,
}

/// Most messages one push script call takes.
const PUSH_BATCH_MAX: usize = 512;
/// Push script calls in flight at once per schedule: enough to keep the connection's pipeline
/// busy while the next batch gathers.
const PUSH_BATCHES_IN_FLIGHT: usize = 4;

/// Called once with the outcome of one push, from a runtime thread.
pub type PushDone = Box<dyn FnOnce(Result<bool>) + Send>;

/// A push waiting for its batch; pushes that waited longer than the timeout fail instead of
/// being sent late.
struct Queued {
    message: PushMessage,
    done: PushDone,
    since: std::time::Instant,
}

/// Gathers concurrent pushes to one schedule into batches. A batch is sent as soon as a slot is
/// free, with whatever is waiting then: a lone push goes out at once, a burst shares calls.
struct PushBatcher {
    queue: mpsc::UnboundedSender<Queued>,
    receiver: Mutex<Option<mpsc::UnboundedReceiver<Queued>>>,
    dedupe_window_ms: u64,
}

impl PushBatcher {
    fn new(dedupe_window_ms: u64) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        PushBatcher {
            queue,
            receiver: Mutex::new(Some(receiver)),
            dedupe_window_ms,
        }
    }

    fn submit(&self, message: PushMessage, done: PushDone, schedule: &Schedule) {
        // The worker starts with the first push, inside the caller's runtime.
        if let Some(receiver) = self
            .receiver
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            let worker = schedule.without_batcher();
            tokio::spawn(run_batches(worker, receiver, self.dedupe_window_ms));
        }
        let queued = Queued {
            message,
            done,
            since: std::time::Instant::now(),
        };
        if let Err(mpsc::error::SendError(queued)) = self.queue.send(queued) {
            (queued.done)(Err(RetryError::new(
                ErrorCode::Internal,
                "the push batcher stopped",
            )));
        }
    }
}

async fn run_batches(
    schedule: Schedule,
    mut receiver: mpsc::UnboundedReceiver<Queued>,
    window_ms: u64,
) {
    let slots = Arc::new(Semaphore::new(PUSH_BATCHES_IN_FLIGHT));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let Some(batch) = crate::shared::next_batch(&mut receiver, PUSH_BATCH_MAX).await else {
            return;
        };
        let schedule = schedule.clone();
        tokio::spawn(async move {
            let mut messages = Vec::with_capacity(batch.len());
            let mut dones = Vec::with_capacity(batch.len());
            for queued in batch {
                if queued.since.elapsed() > schedule.timeout {
                    // Redis has been slow or down for a while: fail now rather than store late.
                    (queued.done)(Err(schedule.timed_out("push")));
                } else {
                    messages.push(queued.message);
                    dones.push(queued.done);
                }
            }
            if !messages.is_empty() {
                match schedule
                    .push_batch(crate::clock::now_ms(), window_ms, &messages)
                    .await
                {
                    Ok(stored) => {
                        for (done, stored) in dones.into_iter().zip(stored) {
                            done(Ok(stored));
                        }
                    }
                    Err(err) => {
                        for done in dones {
                            done(Err(err.clone()));
                        }
                    }
                }
            }
            drop(slot);
        });
    }
}

/// Push batchers per schedule (Redis URL + keys), shared by every instance in this process.
static BATCHERS: crate::shared::Registry<(String, String), PushBatcher> = crate::shared::registry();

fn batcher_for(url: &str, keys: &Keys, dedupe_window_ms: u64) -> Arc<PushBatcher> {
    let key = (url.to_string(), keys.due.clone());
    crate::shared::get_or_make(&BATCHERS, key, || PushBatcher::new(dedupe_window_ms))
}

/// One schedule on one Redis server.
#[derive(Clone)]
pub struct Schedule {
    redis: Arc<SharedRedis>,
    keys: Keys,
    timeout: Duration,
    dedupe_window: Duration,
    batcher: Arc<PushBatcher>,
}

impl Schedule {
    /// Shard `shard` of the schedule `prefix` on `redis`; every operation fails with
    /// `ERR_REDIS_UNAVAILABLE` after `timeout`. Pushed ids are remembered for `dedupe_window` to
    /// drop redeliveries.
    pub fn new(
        redis: Arc<SharedRedis>,
        prefix: &str,
        shard: u32,
        timeout: Duration,
        dedupe_window: Duration,
    ) -> Self {
        let keys = Keys::new(prefix, shard);
        let batcher = batcher_for(redis.url(), &keys, dedupe_window.as_millis() as u64);
        Schedule {
            redis,
            keys,
            timeout,
            dedupe_window,
            batcher,
        }
    }

    /// A copy for the batch worker that does not keep the batcher alive (no cycle): the worker
    /// ends when the last schedule using the batcher is gone.
    fn without_batcher(&self) -> Schedule {
        Schedule {
            batcher: Arc::new(PushBatcher::new(0)),
            ..self.clone()
        }
    }

    /// The shared connection this schedule uses.
    pub fn redis(&self) -> &SharedRedis {
        &self.redis
    }

    /// The shared connection, as an owned handle.
    pub fn redis_arc(&self) -> Arc<SharedRedis> {
        self.redis.clone()
    }

    /// The keys of this schedule.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// Runs one Redis operation within the timeout, mapping failures to `ERR_REDIS_UNAVAILABLE`.
    pub(crate) async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        self.redis.run(self.timeout, what, op).await
    }

    /// The longest one Redis operation may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
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
    ///
    /// Concurrent pushes to the same schedule in this process are gathered into one script call
    /// (see `PushBatcher`), so they share round trips instead of paying one each.
    pub async fn push(&self, message: PushMessage) -> Result<bool> {
        let (reply, stored) = oneshot::channel();
        self.push_detached(
            message,
            Box::new(move |result| {
                let _ = reply.send(result);
            }),
        );
        match tokio::time::timeout(self.timeout, stored).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(RetryError::new(
                ErrorCode::Internal,
                "the push batcher stopped",
            )),
            Err(_) => Err(self.timed_out("push")),
        }
    }

    /// Stores and schedules one message without waiting: `done` gets the outcome (as `push`
    /// returns it) from a runtime thread. Must be called inside a tokio runtime context.
    pub fn push_detached(&self, message: PushMessage, done: PushDone) {
        self.batcher.submit(message, done, self);
    }

    fn timed_out(&self, what: &str) -> RetryError {
        self.redis.timed_out(self.timeout, what)
    }

    /// Runs the push script for a batch; one result per message.
    async fn push_batch(
        &self,
        now_ms: u64,
        window_ms: u64,
        batch: &[PushMessage],
    ) -> Result<Vec<bool>> {
        let keys = &self.keys;
        let stored: Vec<i64> = self
            .run("push", |mut conn| async move {
                let mut call = PUSH.key(&keys.due);
                call.key(&keys.entries)
                    .key(&keys.seen)
                    .arg(now_ms)
                    .arg(window_ms);
                for message in batch {
                    call.arg(&message.id)
                        .arg(message.due_ms)
                        .arg(&message.entry)
                        .arg(if message.dedupe { "1" } else { "0" });
                }
                call.invoke_async(&mut conn).await
            })
            .await?;
        if stored.len() != batch.len() {
            return Err(RetryError::new(
                ErrorCode::Internal,
                "push script answered for a different number of messages",
            ));
        }
        Ok(stored.into_iter().map(|s| s == 1).collect())
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
        let (now, window) = (
            crate::clock::now_ms(),
            self.dedupe_window.as_millis() as u64,
        );
        self.run("ack", |mut conn| async move {
            let mut call = ACK.key(&keys.lease);
            call.key(&keys.entries).key(&keys.seen).arg(now).arg(window);
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

    /// Writes one dead letter into the hash `dlq_name` under `field`, and indexes it by time of
    /// death for paging. Writing the same field twice (a retried dead-lettering after a crash)
    /// leaves one copy.
    pub async fn write_dead_letter(
        &self,
        dlq_name: &str,
        field: &str,
        record: &str,
        died_at: u64,
    ) -> Result<()> {
        crate::dead_letters::DeadLetters::new(self.redis.clone(), self.timeout)
            .write(dlq_name, field, record, died_at)
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
        let k = Keys::new("svc", 0);
        for key in [&k.due, &k.lease, &k.entries, &k.seen] {
            assert!(key.starts_with("{svc}:"), "{key}");
        }
        let k = Keys::new("svc", 3);
        for key in [&k.due, &k.lease, &k.entries, &k.seen] {
            assert!(key.starts_with("{svc#3}:"), "{key}");
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
