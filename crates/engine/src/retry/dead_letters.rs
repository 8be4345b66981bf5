//! The dead letter queue as the caller works it: read, search, requeue, remove, and write by hand.

use super::RetryCore;
use crate::error::{Result, RetryError};
use crate::message::options::format_js_number;
use crate::message::payload;
use crate::store::dead_letters::reasons::{self as dead_letter_reasons, Reasons};
use crate::store::dead_letters::requeue;
use crate::store::dead_letters::search::{
    self as dead_letter_search, Filter, FilterInput, SearchPage,
};
use crate::store::dead_letters::{self, DeadLetterItem, Page};
use crate::store::schedule::Schedule;

/// The options of a filtered requeue or removal, as the caller gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BulkOptions {
    /// Count only, move nothing.
    pub dry_run: bool,
    /// Most dead letters requeued per second.
    pub rate_per_sec: Option<f64>,
    /// Requeued messages fall due this many ms later.
    pub delay_ms: Option<f64>,
    /// Act on at most this many (`maxCount`).
    pub max_count: Option<f64>,
    /// Requeue dead letters at `maxReplays` too (`force`).
    pub force: bool,
}

/// The largest `maxCount`: JavaScript's largest safe integer.
pub const MAX_COUNT_LIMIT: f64 = 9_007_199_254_740_992.0;

impl BulkOptions {
    /// `maxCount`: a whole number from 0 to 2^53.
    fn max_count(&self) -> Result<Option<u64>> {
        match self.max_count {
            None => Ok(None),
            Some(n) if n.fract() == 0.0 && (0.0..=MAX_COUNT_LIMIT).contains(&n) => {
                Ok(Some(n as u64))
            }
            Some(n) => Err(RetryError::invalid_arg(format!(
                "options.maxCount must be a whole number from 0 to 9007199254740992, got {}",
                format_js_number(n)
            ))),
        }
    }

    /// Checks the numbers: a rate from [`requeue::MIN_RATE_PER_SEC`] to
    /// [`requeue::MAX_RATE_PER_SEC`], a whole delay from 0 to a year.
    fn parse(self) -> Result<(requeue::Pace, bool)> {
        if let Some(rate) = self.rate_per_sec {
            if !(requeue::MIN_RATE_PER_SEC..=requeue::MAX_RATE_PER_SEC).contains(&rate) {
                return Err(RetryError::invalid_arg(format!(
                    "options.ratePerSec must be a number of dead letters per second from {} to {}, got {}",
                    format_js_number(requeue::MIN_RATE_PER_SEC),
                    format_js_number(requeue::MAX_RATE_PER_SEC),
                    format_js_number(rate)
                )));
            }
        }
        let delay_ms = match self.delay_ms {
            None => 0,
            Some(d) if d.fract() == 0.0 && (0.0..=requeue::MAX_DELAY_MS as f64).contains(&d) => {
                d as u64
            }
            Some(d) => {
                return Err(RetryError::invalid_arg(format!(
                    "options.delayMs must be a whole number of ms from 0 to {} (a year), got {}",
                    requeue::MAX_DELAY_MS,
                    format_js_number(d)
                )))
            }
        };
        Ok((
            requeue::Pace {
                rate_per_sec: self.rate_per_sec,
                delay_ms,
            },
            self.dry_run,
        ))
    }
}

impl RetryCore {
    /// The dead letter hash `stats()` counts: the listener's, else `<keyPrefix>:dead-letters`.
    pub fn default_dlq_name(&self) -> String {
        let names = self.dlq_names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}:dead-letters", self.config.key_prefix))
    }

    /// A page of dead letters, newest first.
    pub async fn list_dead_letters(
        &self,
        dlq: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page> {
        self.ensure_open()?;
        self.dead_letters.list(dlq, limit, cursor).await
    }

    /// Dead letter `id` of `dlq`, if there is one.
    pub async fn dead_letter(&self, dlq: &str, id: &str) -> Result<Option<DeadLetterItem>> {
        self.ensure_open()?;
        self.dead_letters.item(dlq, id).await
    }

    /// A page of the dead letters `filter` matches, newest first, bounded per call (see
    /// `store::dead_letters::search`).
    pub async fn search_dead_letters(
        &self,
        dlq: &str,
        filter: FilterInput,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<SearchPage> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        dead_letter_search::search(&self.dead_letters, dlq, &filter, limit, cursor).await
    }

    /// Schedules dead letter `id` again (retry count reset), due `delay_ms` from now, and removes
    /// it from `dlq`.
    pub async fn requeue_dead_letter(&self, dlq: &str, id: &str, delay_ms: u64) -> Result<bool> {
        self.ensure_open()?;
        let moved = requeue::requeue_later(&self.dead_letters, dlq, id, delay_ms, |item| {
            self.requeue_target(item)
        })
        .await?;
        if moved {
            self.wake.notify();
        }
        Ok(moved)
    }

    /// Where a requeued dead letter goes: shard 0 (which every listener serves, whatever its
    /// `shards`) of the schedule it came from, or of this instance's schedule when unknown.
    fn requeue_target(&self, item: &DeadLetterItem) -> Schedule {
        match &item.key_prefix {
            Some(prefix) if prefix != &self.config.key_prefix => {
                Schedule::new(self.redis.clone(), prefix, 0, self.config.dedupe_window)
            }
            _ => self.schedules[0].clone(),
        }
    }

    /// Requeues every dead letter of `dlq` (a filtered requeue of `{}`, so `close()` stops it
    /// too). Returns how many were requeued; dead letters that cannot be requeued (no topic) stay
    /// where they are.
    pub async fn requeue_all_dead_letters(&self, dlq: &str) -> Result<u64> {
        self.requeue_matching_dead_letters(
            dlq,
            FilterInput::default(),
            BulkOptions::default(),
            requeue::Watch::default(),
        )
        .await
        .map(|outcome| outcome.count)
    }

    /// The failure reasons of the newest dead letters of `dlq` that `filter` matches (see
    /// `store::dead_letters::reasons`).
    pub async fn dead_letter_reasons(&self, dlq: &str, filter: FilterInput) -> Result<Reasons> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        dead_letter_reasons::reasons(&self.dead_letters, dlq, &filter).await
    }

    /// Requeues the dead letters of `dlq` that `filter` matches (see
    /// `requeue::requeue_matching`), at most `maxCount`, passing over those replayed
    /// `maxReplays` times unless `force`; or with `dry_run` counts them, reporting to `watch` and
    /// stopping when it says so. Returns how many, and how many it passed over.
    pub async fn requeue_matching_dead_letters(
        &self,
        dlq: &str,
        filter: FilterInput,
        options: BulkOptions,
        mut watch: requeue::Watch,
    ) -> Result<requeue::BulkOutcome> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        let limits = requeue::Limits {
            max_count: options.max_count()?,
            max_replays: (!options.force).then_some(self.config.max_replays),
        };
        let (pace, dry_run) = options.parse()?;
        // close() stops it like its signal would, and waits until this receiver is dropped,
        // after the move under way. Subscribed after ensure_open: a close() since has sent.
        let mut closing = self.stop.subscribe();
        if *closing.borrow() {
            return Err(RetryError::closed());
        }
        let stop = watch.stop.get_or_insert_with(Default::default).clone();
        let requeue = requeue::requeue_matching(
            &self.dead_letters,
            dlq,
            &filter,
            pace,
            limits,
            dry_run,
            &watch,
            |item| self.requeue_target(item),
        );
        tokio::pin!(requeue);
        let moved = tokio::select! {
            moved = &mut requeue => moved?,
            _ = closing.changed() => {
                stop.stop();
                requeue.await?
            }
        };
        if moved.count > 0 && !dry_run {
            self.wake.notify();
        }
        Ok(moved)
    }

    /// Removes the dead letters of `dlq` that `filter` matches, at most `maxCount` of them, or
    /// with `dryRun` counts them, reporting to `watch` and stopping when it says so (or at
    /// `close()`), between removals. Returns how many.
    pub async fn remove_matching_dead_letters(
        &self,
        dlq: &str,
        filter: FilterInput,
        options: BulkOptions,
        watch: requeue::Watch,
    ) -> Result<u64> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        let max_count = options.max_count()?;
        let dry_run = options.dry_run;
        // close() waits until this receiver is dropped, after the removal under way.
        let closing = self.stop.subscribe();
        if *closing.borrow() {
            return Err(RetryError::closed());
        }
        let mut heads = Vec::new();
        let mut reporter = requeue::Reporter::new(&watch);
        let removed = dead_letter_search::remove_matching_then(
            &self.dead_letters,
            dlq,
            &filter,
            dry_run,
            |removed| {
                reporter.tell(removed, false);
                !watch.stopped() && !*closing.borrow() && max_count.is_none_or(|max| removed < max)
            },
            |item| {
                if self.ordered_head(&item).is_some() {
                    heads.push(item);
                }
            },
        )
        .await?;
        // A dry run counts every match: what a capped removal would remove is at most the cap.
        let removed = match (dry_run, max_count) {
            (true, Some(max)) => removed.min(max),
            _ => removed,
        };
        reporter.tell(removed, true);
        for item in heads {
            self.release_removed_head(&item).await?;
        }
        Ok(removed)
    }

    /// Removes dead letter `id` from `dlq`. Returns whether it was there.
    pub async fn remove_dead_letter(&self, dlq: &str, id: &str) -> Result<bool> {
        self.ensure_open()?;
        let (removed, item) = self.dead_letters.take(dlq, id).await?;
        // A removed ordered head releases its key (`ordered.rs`).
        if let Some(item) = item {
            self.release_removed_head(&item).await?;
        }
        Ok(removed)
    }

    /// Writes one entry into the dead letter hash `dlq_name` under a new unique field, and returns
    /// that field.
    pub async fn push_to_dlq(&self, dlq_name: &str, entry_json: &str) -> Result<String> {
        self.ensure_open()?;
        if serde_json::from_str::<&serde_json::value::RawValue>(entry_json).is_err() {
            return Err(RetryError::invalid_arg(format!(
                "entry must be an object or JSON text, got {}",
                payload::preview(entry_json)
            )));
        }
        // Indexed at the time of death the entry states (listing walks the index, counting reads
        // the record: they must agree), else now; one it states wrongly is refused.
        let stated = dead_letters::stated_died_at(entry_json)?;
        let field = format!("manual:{}", crate::message::ids::random_uuid());
        // Counted under its topic when it names one (a record of this package's shape).
        let topic = DeadLetterItem::parse(&field, entry_json).map(|item| item.topic);
        let died_at = match stated {
            Some(died_at) => died_at,
            None => self.redis.time_ms().await?,
        };
        self.dead_letters
            .write(dlq_name, &field, entry_json, died_at, topic.as_deref())
            .await?;
        Ok(field)
    }
}
