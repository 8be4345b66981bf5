//! Requeueing dead letters: a dead letter leaves the dead letter queue and enters a schedule, so
//! the operation spans both stores and lives above them (neither store imports the other).

use super::dead_letters::{DeadLetterItem, DeadLetters, INDEX_STEP_FIELDS};
use super::keys::index_key;
use super::schedule::{PushMessage, Schedule};
use crate::error::{ErrorCode, Result, RetryError};
use redis::Script;
use std::sync::LazyLock;

static REQUEUE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("lua/requeue.lua")));

/// Dead letters read per page while requeueing a whole queue.
const PAGE: usize = 200;

/// Schedules dead letter `id` of `dlq` again, due now (Redis's clock) with `retryCount` reset, on the schedule
/// `schedule_for` picks, and removes it from the dead letter queue. On a single Redis server both
/// happen in one script; on a cluster (the keys live in different slots) it is scheduled first and
/// removed second, so a crash in between can requeue it twice but never lose it. Returns `false`
/// when there is no such dead letter; `ERR_INVALID_ARG` when it has no topic to go back to.
pub async fn requeue(
    store: &DeadLetters,
    dlq: &str,
    id: &str,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<bool> {
    requeue_later(store, dlq, id, 0, schedule_for).await
}

/// [`requeue`], due `delay_ms` after now (Redis's clock) instead of now: the same move, in the
/// same script.
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
    let new_id = format!("r:{}", crate::ids::random_id());
    if store.redis().is_cluster() {
        schedule
            .push(PushMessage {
                id: new_id,
                delay_ms,
                entry,
                dedupe: false,
            })
            .await?;
        store.remove(dlq, id).await?;
        return Ok(true);
    }
    let keys = schedule.keys();
    let index = &index_key(dlq);
    let (text, new_id, entry) = (&text, &new_id, &entry);
    let moved: i64 = store
        .redis()
        .run("requeue of a dead letter", |mut conn| async move {
            REQUEUE
                .key(dlq)
                .key(index)
                .key(&keys.due)
                .key(&keys.entries)
                .key(&keys.wake)
                .arg(id)
                .arg(text)
                .arg(new_id)
                .arg(entry)
                .arg(delay_ms)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    Ok(moved == 1)
}

/// Requeues every dead letter of `dlq` (see [`requeue`]). Returns how many were requeued; dead
/// letters that cannot be requeued (no topic) stay where they are.
///
/// Pages through the index newest first; requeued letters leave it, so each page is read at the
/// rank after the letters that stayed: per page an O(1) check and O(page · log N), never a read of
/// the whole hash. Fields the index lacks are indexed as it goes (one bounded `HSCAN` step per page
/// while the hash has more fields than the index) and so reach the pages, mostly as the oldest.
pub async fn requeue_all(
    store: &DeadLetters,
    dlq: &str,
    schedule_for: impl Fn(&DeadLetterItem) -> Schedule,
) -> Result<u64> {
    let mut requeued = 0;
    // Requeued letters leave the index, so the next page starts after the ones that stayed.
    let mut stayed = 0usize;
    // Whether a step indexed fields while letters had stayed: one whose time of death is newer
    // than such a letter's lands before the walk's position, so the walk starts over once more.
    let mut indexed = false;
    // Steps in a row that found nothing while the hash still looked bigger than the index.
    let mut idle = 0u64;
    loop {
        let sizes = store.sync_index(dlq).await?;
        indexed |= sizes.added > 0 && stayed > 0;
        let page = store.page_at(dlq, stayed, PAGE).await?;
        if page.items.is_empty() {
            if page.next.is_some() || sizes.added > 0 {
                // Only stale entries (dropped), or just-indexed fields to read: read on.
                continue;
            }
            if stayed > 0 && indexed {
                stayed = 0;
                indexed = false;
                continue;
            }
            // The index is done; fields it lacks remain while the hash is bigger. Step on until a
            // whole scan cycle found none (a write between its HSET and ZADD, or stale entries
            // outnumbering them: see `dead_letters`).
            idle += 1;
            if !sizes.behind() || idle > sizes.fields / INDEX_STEP_FIELDS as u64 + 2 {
                break;
            }
            continue;
        }
        idle = 0;
        for item in &page.items {
            let moved = match requeue(store, dlq, &item.id, &schedule_for).await {
                Ok(moved) => moved,
                Err(err) if err.code == ErrorCode::InvalidArg => false,
                Err(err) => return Err(err),
            };
            if moved {
                requeued += 1;
            } else {
                stayed += 1;
            }
        }
    }
    Ok(requeued)
}
