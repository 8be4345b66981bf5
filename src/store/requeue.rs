//! Requeueing dead letters: a dead letter leaves the dead letter queue and enters a schedule, so
//! the operation spans both stores and lives above them (neither store imports the other).

use super::dead_letter_search::{Filter, Walk};
use super::dead_letters::{DeadLetterItem, DeadLetters};
use super::keys::{dead_letter_topics_key, index_key};
use super::schedule::{PushMessage, Schedule};
use crate::error::{ErrorCode, Result, RetryError};
use redis::Script;
use std::sync::LazyLock;
use std::time::Duration;

// The per topic counters and history (tally.lua) are functions the requeue calls: their file first.
static REQUEUE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        include_str!("lua/tally.lua"),
        include_str!("lua/base36.lua"),
        include_str!("lua/requeue.lua")
    ))
});

/// Schedules dead letter `id` of `dlq` again, due now (Redis's clock) with `retryCount` reset, on the schedule
/// `schedule_for` picks, and removes it from the dead letter queue. On a single Redis server both
/// happen in one script. On a cluster (the keys live in different slots) it is scheduled first,
/// under an id hashed from the dead letter ([`crate::ids::requeue_id`]), and removed second: a
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
                id: crate::ids::requeue_id(dlq, id, &text),
                delay_ms,
                entry,
                dedupe: true,
                topic: item.topic.clone(),
            })
            .await?;
        return store.remove_unchanged(dlq, id, &text).await;
    }
    let new_id = format!("r:{}", crate::ids::random_id());
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
        false,
        schedule_for,
    )
    .await
}

/// How a filtered requeue paces and schedules what it moves.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Pace {
    /// Most dead letters moved per second (`None`: as fast as Redis takes them).
    pub rate_per_sec: Option<f64>,
    /// How long after the requeue the messages fall due, ms (Redis's clock).
    pub delay_ms: u64,
}

/// Requeues every dead letter of `dlq` that `filter` matches (each as [`requeue_later`]: atomic
/// on one server), at most `pace.rate_per_sec` per second, due `pace.delay_ms` later; with
/// `dry_run` only counts them. Returns how many. A run stopped midway (a killed process) leaves
/// the rest where they are and can be run again. Dead letters that cannot be requeued (no topic)
/// stay.
pub async fn requeue_matching(
    store: &DeadLetters,
    dlq: &str,
    filter: &Filter,
    pace: Pace,
    dry_run: bool,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<u64> {
    let started = tokio::time::Instant::now();
    let mut walk = Walk::new(store, dlq, filter, dry_run);
    let mut moved = 0u64;
    while let Some(items) = walk.next_page().await? {
        for item in items {
            if let Some(rate) = pace.rate_per_sec {
                // The n-th move waits until n / rate seconds after the start: a steady pace.
                let at = started + Duration::from_secs_f64(moved as f64 / rate);
                tokio::time::sleep_until(at).await;
            }
            match requeue_later(store, dlq, &item.id, pace.delay_ms, &schedule_for).await {
                Ok(true) => moved += 1,
                Ok(false) => walk.stayed(),
                Err(err) if err.code == ErrorCode::InvalidArg => walk.stayed(),
                Err(err) => return Err(err),
            }
        }
    }
    Ok(if dry_run { walk.counted() } else { moved })
}
