//! Requeueing dead letters: a dead letter leaves the dead letter queue and enters a schedule, so
//! the operation spans both stores and lives above them (neither store imports the other).

use super::dead_letters::{DeadLetterItem, DeadLetters};
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
                delay_ms: 0,
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
    let mut requeued = 0;
    // Requeued letters leave the index, so the next page starts after the ones that stayed.
    let mut stayed = 0usize;
    loop {
        let cursor = stayed.to_string();
        let page = store.list(dlq, PAGE, Some(&cursor)).await?;
        if page.items.is_empty() {
            break;
        }
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
        if page.cursor.is_none() {
            break;
        }
    }
    Ok(requeued)
}
