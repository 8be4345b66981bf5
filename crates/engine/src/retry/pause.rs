//! Pausing and resuming the schedule, per topic or whole (see `store::gate`).

use super::RetryCore;
use crate::error::Result;
use crate::observe::events::Event;
use crate::store::breaker;
use crate::store::gate::{self, Pause};

impl RetryCore {
    /// Pauses `topic` (`None`: the whole schedule) in every listener, until `until_ms` (ms since
    /// the epoch, Redis's clock) or until resumed (see `store::gate`). Returns `false` when
    /// `until_ms` is already past.
    pub async fn pause(&self, topic: Option<&str>, until_ms: Option<u64>) -> Result<bool> {
        self.ensure_open()?;
        self.check_shards().await?;
        gate::pause(&self.schedules, topic, until_ms).await
    }

    /// Ends the pause of `topic` (`None`: every pause) and closes its breaker (`None`: every
    /// topic's; `store::breaker`), and wakes every listener. Returns whether a pause ended or a
    /// breaker closed.
    pub async fn resume(&self, topic: Option<&str>) -> Result<bool> {
        self.ensure_open()?;
        self.check_shards().await?;
        let ended = gate::resume(&self.schedules, topic, topic.is_none()).await?;
        let closed = breaker::reset(&self.schedules, topic).await?;
        for topic in &closed {
            self.observer.on_notable_event(&Event::BreakerClose {
                topic: topic.clone(),
                open_ms: 0,
                held: 0,
                by_hand: true,
            });
        }
        self.wake.notify();
        Ok(ended || !closed.is_empty())
    }

    /// The pauses in force.
    pub async fn paused(&self) -> Result<Vec<Pause>> {
        self.ensure_open()?;
        gate::paused(&self.schedules[0]).await
    }
}
