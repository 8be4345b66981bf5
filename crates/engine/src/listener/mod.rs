//! The listener: claim what is due, publish it (or dead-letter it), then acknowledge or release
//! it, and sleep exactly until the next message is due. A room per part: this file holds the
//! claim loop; `batch` drives one claimed batch to its last settle, `settle` acknowledges,
//! releases and counts finished messages in groups, `lease` renews the batch's one lease while
//! any of it is pending, `deliver` publishes or dead-letters one message, and `wake` is how a push
//! wakes the loop early.

use crate::error::RetryError;
use crate::observe::events::{Event, Observer};
use crate::observe::stats::Counters;
use crate::publisher::Publisher;
use crate::store::dead_letters::DeadLetters;
use crate::store::schedule::signal;
use crate::store::schedule::Schedule;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

mod batch;
mod deliver;
mod lease;
mod settle;
mod wake;

pub use deliver::dead_letter_message;
pub use wake::Wake;

/// The earliest time the first failed publish is retried; doubles per consecutive failure.
const PUBLISH_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest wait between publish attempts while the broker (or JS producer) keeps failing.
const PUBLISH_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Claimed batches publishing at once per listener.
const BATCHES_IN_FLIGHT: usize = 4;
/// Longest pause after a failed claim (Redis down) before trying again.
const CLAIM_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Everything one listener loop needs.
pub struct Listener {
    /// The schedule shards it serves, each claimed in turn so all are served fairly.
    pub schedules: Vec<Schedule>,
    /// Where due messages go.
    pub publisher: Arc<dyn Publisher>,
    /// The dead letter store.
    pub dead_letters: DeadLetters,
    /// Name of the dead letter hash.
    pub dlq_name: String,
    /// Kafka topic dead letters are also published to.
    pub dead_letter_topic: Option<String>,
    /// The schedule's key prefix, recorded in dead letters so a requeue finds its way back.
    pub key_prefix: String,
    /// Above this many dead letters, report it.
    pub max_dead_letters: Option<u64>,
    /// Refusals retrying cannot fix (see `publisher::is_permanent`) before a message is
    /// dead-lettered.
    pub max_publish_failures: u64,
    /// Most messages per claim.
    pub batch_size: usize,
    /// Lease of a claim.
    pub lease: Duration,
    /// Longest sleep when nothing is due.
    pub poll_interval: Duration,
    /// Wake-ups from pushes in this process.
    pub wake: Arc<Wake>,
    /// Events and warnings.
    pub observer: Arc<dyn Observer>,
    /// Counters for stats.
    pub counters: Arc<Counters>,
    /// Consecutive failed publish batches, for the backoff of rescheduled messages.
    pub publish_failures: AtomicU32,
    /// Held while the dead letter count is read and compared with `max_dead_letters`: dead
    /// letters of one batch are written concurrently, and a count read before another's write
    /// must not reset the "over the cap" flag after that one set it (the cap was then reported
    /// twice).
    pub cap_check: tokio::sync::Mutex<()>,
}

impl Listener {
    /// Runs until `stop` turns true, then waits for the batches being published: each is
    /// finished (published and acknowledged, or released) before this returns, so close() leaves
    /// nothing claimed, unless a publish stays pending for `lease` after the stop (see `process`).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let signals = tokio::spawn(this.clone().hear_pushes(stop.clone()));
        // Several claimed batches publish at once, so the broker's round trips overlap instead of
        // a batch waiting for the slowest ack of the one before; each holds a slot.
        let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
        let mut publishing = JoinSet::new();
        this.claim_loop(&mut stop, &slots, &mut publishing).await;
        // close(): every claimed batch finishes (published and acknowledged, or put back).
        while publishing.join_next().await.is_some() {}
        let _ = signals.await;
    }

    /// Wakes this listener when a push in any process announces a message due before its
    /// planned wake-up (see `store::schedule::signal`).
    async fn hear_pushes(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let redis = self.schedules[0].redis();
        let channels = self
            .schedules
            .iter()
            .map(|s| s.keys().wake.clone())
            .collect();
        let wake = self.wake.clone();
        signal::listen(
            redis.shared(),
            channels,
            |due| wake.pushed(due),
            |err| self.report_error(&err),
            stop,
        )
        .await;
    }

    /// Claims from every shard in turn while a slot is free, spawning a `process` per
    /// non-empty claim, then sleeps until the earliest next due time, a push due before it, or
    /// the stop.
    async fn claim_loop(
        self: &Arc<Self>,
        stop: &mut watch::Receiver<bool>,
        slots: &Arc<Semaphore>,
        publishing: &mut JoinSet<()>,
    ) {
        let mut claim_failures: u32 = 0;
        while !*stop.borrow() {
            let notified = self.wake.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Until the claims are done any push may be due before our next wake-up: hear them all.
            self.wake.planned.store(u64::MAX, Ordering::Release);
            // Every time below is Redis's clock, turned into a moment on this host's monotonic
            // clock per claim, so the host's wall clock never matters.
            let mut wake_at = Instant::now() + self.poll_interval;
            let mut planned = u64::MAX;
            let mut any_full = false;
            let mut any_failed = false;
            for schedule in &self.schedules {
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    _ = stop.changed() => return,
                };
                // Claimed only once a slot is free: a claim starts its lease, and a batch that
                // waited for a slot would spend its lease waiting.
                let asked = Instant::now();
                match schedule
                    .claim(self.batch_size, self.lease, self.poll_interval)
                    .await
                {
                    Ok(claim) => {
                        self.report_breaker(&claim.breaker);
                        any_full |= claim.items.len() >= self.batch_size;
                        if let Some(next) = claim.next_wake {
                            planned = planned.min(next);
                            let wait = Duration::from_millis(next.saturating_sub(claim.now));
                            wake_at = wake_at.min(asked + wait);
                        }
                        if !claim.items.is_empty() {
                            let this = self.clone();
                            let schedule = schedule.clone();
                            let stop = stop.clone();
                            publishing.spawn(async move {
                                this.process(&schedule, claim, asked, stop).await;
                                drop(slot);
                            });
                        }
                    }
                    Err(err) => {
                        any_failed = true;
                        self.report_error(&err);
                    }
                }
            }
            // Reap finished batches so the set does not grow.
            while publishing.try_join_next().is_some() {}
            self.observer.flush();
            if any_failed {
                claim_failures = claim_failures.saturating_add(1);
                wake_at = wake_at.min(Instant::now() + claim_pause(claim_failures));
            } else {
                claim_failures = 0;
                if any_full {
                    continue;
                }
            }
            // A push due before `planned` wakes us (in-process, or announced by another).
            let planned = self.schedules[0].now_ms().map_or(planned, |now| {
                let poll_end = now + self.poll_interval.as_millis() as u64;
                planned.min(poll_end)
            });
            self.wake.planned.store(planned, Ordering::Release);
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                _ = &mut notified => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Redis's clock now, as the last claim reported it (this host's clock before any claim).
    fn redis_now(&self) -> u64 {
        self.schedules[0]
            .now_ms()
            .unwrap_or_else(crate::clock::now_ms)
    }

    /// Reports the breakers a claim opened or closed (`store::breaker`): rare, so never
    /// throttled.
    fn report_breaker(&self, changes: &[crate::store::breaker::BreakerChange]) {
        let number = |change: &crate::store::breaker::BreakerChange, key: &str| {
            change.detail.get(key).and_then(|v| v.as_u64()).unwrap_or(0)
        };
        for change in changes {
            let event = if change.opened {
                Event::BreakerOpen {
                    topic: change.topic.clone(),
                    failures: number(change, "failures"),
                    attempts: number(change, "attempts"),
                }
            } else {
                Event::BreakerClose {
                    topic: change.topic.clone(),
                    open_ms: number(change, "openMs"),
                    held: number(change, "held"),
                    by_hand: false,
                }
            };
            self.observer.on_notable_event(&event);
        }
    }

    /// Reports `err` as an error event.
    fn report_error(&self, err: &RetryError) {
        self.observer.on_event(&Event::from_error(err));
    }
}

/// The pause after `failures` consecutive rounds with a failed claim (Redis down): from 200 ms,
/// doubling, at most [`CLAIM_BACKOFF_MAX`].
fn claim_pause(failures: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(failures)).min(CLAIM_BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_claim_is_retried_sooner_than_the_poll_but_backs_off() {
        assert_eq!(claim_pause(1), Duration::from_millis(200));
        assert_eq!(claim_pause(2), Duration::from_millis(400));
        assert_eq!(claim_pause(4), Duration::from_millis(1600));
        assert_eq!(claim_pause(5), CLAIM_BACKOFF_MAX);
        assert_eq!(claim_pause(u32::MAX), CLAIM_BACKOFF_MAX);
    }
}
