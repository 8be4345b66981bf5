//! What the queue holds and did: the schedule's sizes, `stats()` and the per-minute history.

use super::RetryCore;
use crate::error::Result;
use crate::observe::stats::Stats;
use crate::store::schedule::Counts;
use crate::store::tally::{self, History};
use crate::store::{breaker, gate};
use std::sync::atomic::Ordering;

impl RetryCore {
    /// Sizes of the schedule and dead letter queue, and the counters since the process started.
    pub async fn stats(&self, dlq: Option<&str>) -> Result<Stats> {
        let counts = self.counts().await?;
        let (blocked_keys, parked_messages) = self.ordered_counts().await?;
        let dlq = dlq.map_or_else(|| self.default_dlq_name(), str::to_string);
        let dead_lettered = self.dead_letters.count(&dlq).await?;
        let cap_exceeded = self
            .config
            .max_dead_letters
            .is_some_and(|max| dead_lettered > max);
        let mut topics = tally::topic_counts(&self.redis, &self.schedules).await?;
        tally::add_dead_letters(&mut topics, &self.dead_letters.topic_counts(&dlq).await?);
        // Read whatever this instance's config: an operator's instance (the CLI, the dashboard)
        // shows the breakers the service's processes keep; without the breaker the hash is absent.
        for (topic, state) in breaker::states(&self.schedules).await? {
            topics.entry(topic).or_default().breaker = Some(state);
        }
        Ok(Stats {
            scheduled: counts.scheduled,
            due: counts.due,
            inflight: counts.inflight,
            late_ms: counts.late_ms,
            topics: tally::without_empty(topics),
            dead_lettered,
            published: self.counters.published.load(Ordering::Relaxed),
            publish_failures: self.counters.publish_failures.load(Ordering::Relaxed),
            dead_lettered_total: self.counters.dead_lettered.load(Ordering::Relaxed),
            dead_letter_cap_exceeded: cap_exceeded,
            paused: gate::paused(&self.schedules[0]).await?,
            blocked_keys,
            parked_messages,
            events_dropped: self.observer.events_dropped(),
        })
    }

    /// Per-minute counts of the last `minutes` minutes (default 60, at most 48 hours): pushed,
    /// published, failed publishes and dead-lettered, for the whole schedule and per topic, as
    /// the scripts recorded them (`store::tally`).
    pub async fn history(&self, minutes: Option<f64>) -> Result<History> {
        self.ensure_open()?;
        let minutes = tally::check_minutes(minutes)?;
        self.check_shards_read_only().await?;
        tally::history(&self.redis, &self.schedules, minutes).await
    }

    /// Sizes of the schedule now.
    pub async fn counts(&self) -> Result<Counts> {
        self.ensure_open()?;
        self.check_shards_read_only().await?;
        let mut total = Counts::default();
        for schedule in &self.schedules {
            let counts = schedule.counts().await?;
            total.scheduled += counts.scheduled;
            total.due += counts.due;
            total.inflight += counts.inflight;
            total.late_ms = total.late_ms.max(counts.late_ms);
        }
        Ok(total)
    }
}
