//! The push path: concurrent pushes to one schedule are gathered into batches, and each batch is
//! one call of the push script, so pushes share round trips and script runs instead of paying
//! one each. A lone push goes out at once; while a call is in flight, the next batch gathers
//! until it is full enough or that call replies, so a burst shares few calls.

use crate::batch::take_waiting;
use crate::error::{ErrorCode, Result, RetryError};
use crate::registry::{get_or_make, registry, Registry};
use crate::store::connection::Redis;
use crate::store::keys::Keys;
use crate::store::scripts;
use redis::Script;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, Notify, Semaphore};

/// `lua/schedule/push.lua` with the libraries it includes.
static PUSH: LazyLock<Script> = LazyLock::new(|| scripts::load("schedule/push"));

/// One message for the push script.
#[derive(Debug, Clone, PartialEq)]
pub struct PushMessage {
    /// Schedule id.
    pub id: String,
    /// How long from now (Redis's clock) it falls due, ms.
    pub delay_ms: u64,
    /// The entry as stored, without its first field: the script writes the due time there
    /// ([`crate::store::entry::Entry::encode_after_due`]).
    pub entry: String,
    /// Whether the id derives from the payload's `msgId` (then redeliveries are dropped).
    pub dedupe: bool,
    /// The topic it goes back to, for the per topic counters and history (`tally.lua`).
    pub topic: String,
}

/// Where one schedule's pushes go: its Redis, its keys and how long pushed ids are remembered.
#[derive(Clone)]
struct Target {
    redis: Redis,
    keys: Keys,
    dedupe_window: Duration,
    /// The breaker hash, while the breaker is on (push.lua counts failures into it).
    breaker: Option<String>,
}

impl Target {
    /// Runs the push script for a batch; one result per message: its due time (Redis's clock)
    /// when stored, `None` when it was already pushed.
    async fn push_batch(&self, batch: &[PushMessage]) -> Result<Vec<Option<u64>>> {
        let (keys, breaker) = (&self.keys, &self.breaker);
        let window_ms = self.dedupe_window.as_millis() as u64;
        let stored: Vec<u64> = self
            .redis
            .run_replicated("push", &keys.due, |mut conn| async move {
                let mut call = PUSH.key(&keys.due);
                call.key(&keys.entries)
                    .key(&keys.seen)
                    .key(&keys.wake)
                    .key(&keys.topics)
                    .key(&keys.history);
                if let Some(breaker) = breaker {
                    call.key(breaker);
                }
                call.arg(window_ms);
                for message in batch {
                    call.arg(&message.id)
                        .arg(message.delay_ms)
                        .arg(&message.entry)
                        .arg(if message.dedupe { "1" } else { "0" })
                        .arg(&message.topic);
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
        Ok(stored
            .into_iter()
            .map(|due| (due > 0).then_some(due))
            .collect())
    }
}

/// Most messages one push script call takes.
const PUSH_BATCH_MAX: usize = 512;
/// Push script calls in flight at once per schedule: enough to keep the connection's pipeline
/// busy while the next batch gathers.
const PUSH_BATCHES_IN_FLIGHT: usize = 4;
/// While another call is in flight, the next batch waits for a reply unless this many pushes
/// are already waiting: single pushes under load then share one call per round trip (half the
/// calls at 256 callers) and cost less CPU on both sides, while a `pushMany` batch of at least
/// this size still goes at once, pipelined (BENCHMARKS.md). With nothing in flight a push
/// goes out at once, so a lone push waits for nothing.
const PUSH_BATCH_FILL: usize = 32;

/// Called once with the outcome of one push, from a runtime thread: its due time (Redis's clock)
/// when stored, `None` when it was already pushed (a redelivery).
pub type PushDone = Box<dyn FnOnce(Result<Option<u64>>) + Send>;

/// A push waiting for its batch; pushes that waited longer than the timeout fail instead of
/// being sent late.
struct Queued {
    message: PushMessage,
    done: PushDone,
    since: std::time::Instant,
}

/// The push queue of one schedule; its worker starts with the first push.
pub(super) struct PushBatcher {
    queue: mpsc::UnboundedSender<Queued>,
    /// What the worker needs, taken when it starts.
    worker: Mutex<Option<(Target, mpsc::UnboundedReceiver<Queued>)>>,
}

impl PushBatcher {
    fn new(target: Target) -> Self {
        let (queue, receiver) = mpsc::unbounded_channel();
        PushBatcher {
            queue,
            worker: Mutex::new(Some((target, receiver))),
        }
    }

    /// The batcher of the schedule with `keys` on `redis`, shared by every instance in this
    /// process that uses the same settings (an instance with another timeout or dedupe window
    /// gets its own, so its settings hold for its pushes).
    pub(super) fn for_schedule(
        redis: &Redis,
        keys: &Keys,
        dedupe_window: Duration,
        breaker: Option<&str>,
    ) -> Arc<PushBatcher> {
        let key = BatcherKey {
            url: redis.shared().url().to_string(),
            due_key: keys.due.clone(),
            timeout: redis.timeout(),
            dedupe_window,
            wait: redis.wait(),
            breaker: breaker.map(str::to_string),
        };
        get_or_make(&BATCHERS, key, || {
            PushBatcher::new(Target {
                redis: redis.clone(),
                keys: keys.clone(),
                dedupe_window,
                breaker: breaker.map(str::to_string),
            })
        })
    }

    /// Queues one push made at `since` (its wait counts against the Redis timeout from then);
    /// `done` gets its outcome.
    pub(super) fn submit(&self, message: PushMessage, since: std::time::Instant, done: PushDone) {
        // The worker starts with the first push, inside the caller's runtime.
        if let Some((target, receiver)) =
            self.worker.lock().unwrap_or_else(|p| p.into_inner()).take()
        {
            tokio::spawn(run_batches(target, receiver));
        }
        let queued = Queued {
            message,
            done,
            since,
        };
        if let Err(mpsc::error::SendError(queued)) = self.queue.send(queued) {
            (queued.done)(Err(RetryError::new(
                ErrorCode::Internal,
                "the push batcher stopped",
            )));
        }
    }
}

/// Sends what is queued, a batch per free slot (gathering while another call is in flight),
/// until the last schedule using the batcher is gone (the worker holds no schedule, so it does
/// not keep the batcher alive).
async fn run_batches(target: Target, mut receiver: mpsc::UnboundedReceiver<Queued>) {
    let slots = Arc::new(Semaphore::new(PUSH_BATCHES_IN_FLIGHT));
    let replied = Arc::new(Notify::new());
    // Calls in flight besides the one being gathered (whose slot is held).
    let others_in_flight =
        |slots: &Semaphore| PUSH_BATCHES_IN_FLIGHT - 1 - slots.available_permits();
    let timeout = target.redis.timeout();
    // The oldest push taken off the queue while checking for expired ones, not yet sent.
    let mut oldest: Option<Queued> = None;
    loop {
        // A hung Redis holds every slot for a whole timeout per call: pushes waiting for a slot
        // meanwhile fail once they have waited the timeout, not after the calls ahead of them.
        // (A free slot is taken without arming that check's timer.)
        let slot = loop {
            if let Ok(slot) = slots.clone().try_acquire_owned() {
                break slot;
            }
            tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(slot) => break slot,
                    Err(_) => return,
                },
                _ = tokio::time::sleep(expiry_check(timeout)) => {
                    fail_expired(&mut receiver, &mut oldest, &target);
                }
            }
        };
        let first = match oldest.take() {
            Some(queued) => queued,
            None => match receiver.recv().await {
                Some(queued) => queued,
                None => return,
            },
        };
        // Registered before the check, so a reply between the two is not missed. Waiting does
        // not poll the queue: pushes arriving meanwhile wake nobody.
        let reply = replied.notified();
        tokio::pin!(reply);
        reply.as_mut().enable();
        if others_in_flight(&slots) > 0 && receiver.len() + 1 < PUSH_BATCH_FILL {
            reply.await;
        }
        let mut batch = vec![first];
        take_waiting(&mut receiver, &mut batch, PUSH_BATCH_MAX);
        let target = target.clone();
        let replied = replied.clone();
        tokio::spawn(async move {
            let mut messages = Vec::with_capacity(batch.len());
            let mut dones = Vec::with_capacity(batch.len());
            // The call may take what is left of the timeout of its oldest push: a push waits at
            // most `redisTimeoutMs` in all, queue and call together.
            let mut deadline = None;
            for queued in batch {
                if queued.since.elapsed() > target.redis.timeout() {
                    // Redis has been slow or down for a while: fail now rather than store late.
                    (queued.done)(Err(target.redis.timed_out("push")));
                } else {
                    deadline.get_or_insert(queued.since + target.redis.timeout());
                    messages.push(queued.message);
                    dones.push(queued.done);
                }
            }
            if let Some(deadline) = deadline {
                let call = target.push_batch(&messages);
                let outcome = tokio::time::timeout_at(deadline.into(), call)
                    .await
                    .unwrap_or_else(|_| Err(target.redis.timed_out("push")));
                match outcome {
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
            replied.notify_waiters();
        });
    }
}

/// How often pushes waiting for a free slot are checked for having waited past `timeout`.
fn expiry_check(timeout: Duration) -> Duration {
    (timeout / 10).clamp(Duration::from_millis(10), Duration::from_millis(250))
}

/// Fails the pushes at the front of the queue that waited past the Redis timeout (the queue is in
/// arrival order: the first one still in time ends the check and is kept in `oldest`).
fn fail_expired(
    receiver: &mut mpsc::UnboundedReceiver<Queued>,
    oldest: &mut Option<Queued>,
    target: &Target,
) {
    let timeout = target.redis.timeout();
    loop {
        let queued = match oldest.take() {
            Some(queued) => queued,
            None => match receiver.try_recv() {
                Ok(queued) => queued,
                Err(_) => return,
            },
        };
        if queued.since.elapsed() <= timeout {
            *oldest = Some(queued);
            return;
        }
        (queued.done)(Err(target.redis.timed_out("push")));
    }
}

/// What makes two instances share a batcher: the same schedule and the same settings.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct BatcherKey {
    url: String,
    due_key: String,
    timeout: Duration,
    dedupe_window: Duration,
    wait: Option<(u32, Duration)>,
    breaker: Option<String>,
}

/// Push batchers, shared by every instance in this process with the same key.
static BATCHERS: Registry<BatcherKey, PushBatcher> = registry();
