//! Requeueing dead letters: a dead letter leaves the dead letter queue and enters a schedule, so
//! the operation spans both stores and lives above them (neither store imports the other).

use super::search::{Filter, Walk};
use super::{DeadLetterItem, DeadLetters};
use crate::error::{ErrorCode, Result, RetryError};
use crate::store::keys::{dead_letter_topics_key, index_key};
use crate::store::schedule::{PushMessage, Schedule};
use crate::store::scripts;
use redis::Script;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tokio::sync::Notify;

/// `lua/dead_letters/requeue.lua` with the libraries it includes.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| scripts::load("dead_letters/requeue"));

/// Schedules dead letter `id` of `dlq` again, due now (Redis's clock) with `retryCount` reset, on the schedule
/// `schedule_for` picks, and removes it from the dead letter queue. On a single Redis server both
/// happen in one script. On a cluster (the keys live in different slots) it is scheduled first,
/// under an id hashed from the dead letter ([`crate::message::ids::requeue_id`]), and removed second: a
/// crash in between never loses it, and running the requeue again finishes it without storing it
/// twice (while it is scheduled, or within `dedupeWindowMs` of its publish). Returns `false` when
/// there is no such dead letter (or another call moved it); `ERR_INVALID_ARG` when it has no
/// topic to go back to.
pub async fn requeue(
    store: &DeadLetters,
    dlq: &str,
    id: &str,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<bool> {
    requeue_later(store, dlq, id, 0, schedule_for).await
}

/// [`requeue`], due `delay_ms` after now (Redis's clock) instead of now.
pub async fn requeue_later(
    store: &DeadLetters,
    dlq: &str,
    id: &str,
    delay_ms: u64,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<bool> {
    let Some(text) = store.get(dlq, id).await? else {
        return Ok(false);
    };
    let item = DeadLetterItem::parse(id, &text).ok_or_else(|| {
        RetryError::invalid_arg(format!(
            "dead letter {id:?} in {dlq:?} has no topic: it cannot be requeued"
        ))
    })?;
    let schedule = &schedule_for(&item);
    let entry = item.requeued_entry().encode_after_due(false);
    if store.redis().is_cluster() {
        // Scheduled under an id of this very record, idempotently, then removed if unchanged:
        // a second run (after a crash in between, or beside another operator's) stores nothing.
        schedule
            .push(PushMessage {
                id: crate::message::ids::requeue_id(dlq, id, &text),
                delay_ms,
                entry,
                dedupe: true,
                topic: item.topic.clone(),
            })
            .await?;
        return store.remove_unchanged(dlq, id, &text).await;
    }
    let new_id = format!("r:{}", crate::message::ids::random_id());
    let keys = schedule.keys();
    let index = &index_key(dlq);
    let dlq_topics = &dead_letter_topics_key(dlq);
    let (text, new_id, entry, topic) = (&text, &new_id, &entry, &item.topic);
    let moved: i64 = store
        .redis()
        .run("requeue of a dead letter", |mut conn| async move {
            REQUEUE
                .key(dlq)
                .key(index)
                .key(&keys.due)
                .key(&keys.entries)
                .key(&keys.wake)
                .key(&keys.topics)
                .key(&keys.history)
                .key(dlq_topics)
                .arg(id)
                .arg(text)
                .arg(new_id)
                .arg(entry)
                .arg(delay_ms)
                .arg(topic)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    Ok(moved == 1)
}

/// Requeues every dead letter of `dlq` (see [`requeue`]). Returns how many were requeued; dead
/// letters that cannot be requeued (no topic) stay where they are.
pub async fn requeue_all(
    store: &DeadLetters,
    dlq: &str,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<u64> {
    requeue_matching(
        store,
        dlq,
        &Filter::default(),
        Pace::default(),
        Limits::default(),
        false,
        &Watch::default(),
        schedule_for,
    )
    .await
    .map(|outcome| outcome.count)
}

/// What a bulk requeue or removal may act on.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    /// Act on at most this many (`None`: every match).
    pub max_count: Option<u64>,
    /// Pass over dead letters replayed this many times or more (`None`: none passed over, as
    /// with `force`).
    pub max_replays: Option<u64>,
}

/// What a bulk requeue did, or would do (dry run).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BulkOutcome {
    /// Requeued (or, dry run, would be).
    pub count: u64,
    /// Matches passed over for their replays (left in the queue): those the walk met, every
    /// one in a dry run or a run that was not stopped by `maxCount`.
    pub skipped: u64,
}

/// How a filtered requeue paces and schedules what it moves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pace {
    /// Most dead letters moved per second (`None`: as fast as Redis takes them).
    pub rate_per_sec: Option<f64>,
    /// How long after the requeue the messages fall due, ms (Redis's clock).
    pub delay_ms: u64,
}

/// A stop for a filtered requeue that is running: set from elsewhere (an `AbortSignal`), it ends
/// the requeue before its next move, or during its wait for the pace.
#[derive(Debug, Default)]
pub struct Stop {
    stopped: AtomicBool,
    notify: Notify,
}

impl Stop {
    /// Stops the requeue this was given to (once it is past the move under way, if any).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Whether [`Self::stop`] was called.
    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Resolves once [`Self::stop`] is called (at once if it was).
    async fn stopped(&self) {
        let notified = self.notify.notified();
        tokio::pin!(notified);
        // Registered before the check, so a stop in between still wakes it.
        notified.as_mut().enable();
        if !self.is_stopped() {
            notified.await;
        }
    }
}

/// What a caller watches a filtered requeue by: a stop, and a function told how many it has
/// moved so far (at most every [`PROGRESS_EVERY`], and once more at the end when it changed).
#[derive(Default)]
pub struct Watch {
    /// Ends the requeue early; it then returns how many it moved until then.
    pub stop: Option<Arc<Stop>>,
    /// Told the count of moved dead letters as the requeue goes.
    pub progress: Option<Box<dyn Fn(u64) + Send + Sync>>,
}

/// The shortest time between two progress reports of a filtered requeue.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(100);

impl Watch {
    /// Whether its stop was set.
    pub fn stopped(&self) -> bool {
        self.stop.as_ref().is_some_and(|stop| stop.is_stopped())
    }

    /// Sleeps until `at`; `false` when the stop came first.
    async fn wait_until(&self, at: tokio::time::Instant) -> bool {
        match &self.stop {
            None => {
                tokio::time::sleep_until(at).await;
                true
            }
            Some(stop) => tokio::select! {
                _ = tokio::time::sleep_until(at) => true,
                _ = stop.stopped() => false,
            },
        }
    }
}

/// Tells a watch's progress function the count of a bulk operation as it goes: at most every
/// [`PROGRESS_EVERY`], and once more at the end when it changed.
pub struct Reporter<'a> {
    watch: &'a Watch,
    last: (u64, tokio::time::Instant),
}

impl<'a> Reporter<'a> {
    /// A reporter for `watch`, nothing reported yet.
    pub fn new(watch: &'a Watch) -> Self {
        Reporter {
            watch,
            last: (0, tokio::time::Instant::now()),
        }
    }

    /// Reports `count` if it changed and the last report is old enough (or this is the `last`).
    pub fn tell(&mut self, count: u64, last: bool) {
        if let Some(progress) = &self.watch.progress {
            let now = tokio::time::Instant::now();
            if count != self.last.0 && (last || now >= self.last.1 + PROGRESS_EVERY) {
                progress(count);
                self.last = (count, now);
            }
        }
    }
}

/// Requeues every dead letter of `dlq` that `filter` matches (each as [`requeue_later`]: atomic
/// on one server), at most `pace.rate_per_sec` per second, due `pace.delay_ms` later, at most
/// `limits.max_count` of them, passing over those replayed `limits.max_replays` times or more;
/// with `dry_run` only counts them. Returns how many, and how many it passed over. A run stopped midway (by `watch.stop`, or a
/// killed process) leaves the rest where they are and can be run again. Dead letters that cannot
/// be requeued (no topic) stay.
// Each argument is a separate concern of the caller (what, where, how fast, how many, whether for
// real, watched by whom, onto which schedule); a struct of them would only rename them.
#[allow(clippy::too_many_arguments)]
pub async fn requeue_matching(
    store: &DeadLetters,
    dlq: &str,
    filter: &Filter,
    pace: Pace,
    limits: Limits,
    dry_run: bool,
    watch: &Watch,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<BulkOutcome> {
    let started = tokio::time::Instant::now();
    let mut walk = Walk::new(store, dlq, filter, dry_run).skipping_replays(limits.max_replays);
    let capped = |count: u64| limits.max_count.is_some_and(|max| count >= max);
    let mut moved = 0u64;
    let mut reporter = Reporter::new(watch);
    // What moved stays moved: a failure tells the caller how many, in the error and through its
    // progress function, instead of leaving it with the last count reported.
    let failed = |err: RetryError, moved: u64, reporter: &mut Reporter| {
        reporter.tell(moved, true);
        if dry_run {
            err
        } else {
            err.after("requeued", moved)
        }
    };
    'walk: loop {
        let items = match walk.next_page().await {
            Ok(Some(items)) => items,
            Ok(None) => break,
            Err(err) => return Err(failed(err, moved, &mut reporter)),
        };
        for item in items {
            if watch.stopped() || capped(moved) {
                break 'walk;
            }
            if let Some(rate) = pace.rate_per_sec {
                if !watch.wait_until(paced(started, moved, rate)).await {
                    break 'walk;
                }
            }
            match requeue_later(store, dlq, &item.id, pace.delay_ms, &schedule_for).await {
                Ok(true) => moved += 1,
                Ok(false) => walk.stayed(),
                Err(err) if err.code == ErrorCode::InvalidArg => walk.stayed(),
                Err(err) => return Err(failed(err, moved, &mut reporter)),
            }
            reporter.tell(moved, false);
        }
    }
    reporter.tell(moved, true);
    let count = if dry_run {
        limits
            .max_count
            .map_or(walk.counted(), |max| walk.counted().min(max))
    } else {
        moved
    };
    Ok(BulkOutcome {
        count,
        skipped: walk.skipped(),
    })
}

/// The latest a requeued message may fall due, ms after the requeue: a year (further away is a
/// mistake: minutes taken for ms, ...).
pub const MAX_DELAY_MS: u64 = 365 * 24 * 3_600_000;

/// The slowest pace a filtered requeue takes, per second (one dead letter every 1,000 s): a
/// smaller rate (`1e-300`) is a mistake, not a pace.
pub const MIN_RATE_PER_SEC: f64 = 0.001;
/// The fastest pace a filtered requeue takes, per second: beyond, it is as fast as Redis anyway.
pub const MAX_RATE_PER_SEC: f64 = 1_000_000.0;

/// When move number `moved` (0 first) of a requeue started at `started` may go at `rate` per
/// second: `moved / rate` seconds after the start, a steady pace. Never panics: a time beyond
/// what a `Duration` or an `Instant` holds is "as late as can be" (callers check the rate first,
/// [`MIN_RATE_PER_SEC`], so that is never reached).
fn paced(started: tokio::time::Instant, moved: u64, rate: f64) -> tokio::time::Instant {
    // About 30 years, as tokio takes for "never".
    const FAR: Duration = Duration::from_secs(86_400 * 365 * 30);
    let wait = Duration::try_from_secs_f64(moved as f64 / rate)
        .unwrap_or(FAR)
        .min(FAR);
    started.checked_add(wait).unwrap_or(started + FAR)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[test]
    fn the_pace_never_panics_whatever_the_rate() {
        let started = Instant::now();
        for rate in [
            1e-300,
            f64::MIN_POSITIVE,
            5e-324,
            0.0,
            -0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
        ] {
            for moved in [0, 1, 3, u64::MAX] {
                let at = paced(started, moved, rate);
                assert!(at >= started, "{rate} {moved}");
            }
        }
        assert_eq!(
            paced(started, 3, 2.0),
            started + Duration::from_millis(1_500)
        );
        assert_eq!(paced(started, 0, 1e-300), started);
    }

    #[tokio::test]
    async fn a_stop_ends_the_wait_for_the_pace_at_once() {
        let stop = Arc::new(Stop::default());
        let watch = Watch {
            stop: Some(stop.clone()),
            progress: None,
        };
        let started = Instant::now();
        let stopper = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            stop.stop();
        });
        let waited = watch.wait_until(started + Duration::from_secs(30)).await;
        stopper.await.unwrap();
        assert!(!waited);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(watch.stopped());
    }

    #[tokio::test]
    async fn a_stop_before_the_wait_and_no_stop_at_all() {
        let stop = Arc::new(Stop::default());
        stop.stop();
        let stopped = Watch {
            stop: Some(stop),
            progress: None,
        };
        assert!(
            !stopped
                .wait_until(Instant::now() + Duration::from_secs(30))
                .await
        );
        let plain = Watch::default();
        assert!(!plain.stopped());
        assert!(
            plain
                .wait_until(Instant::now() + Duration::from_millis(10))
                .await
        );
    }
}
