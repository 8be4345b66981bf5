//! Pausing and resuming the schedule, per topic or whole (see `store::gate`).

use super::RetryCore;
use crate::error::Result;
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

    /// Ends the pause of `topic` (`None`: every pause), and wakes every listener. Returns
    /// whether a pause ended.
    pub async fn resume(&self, topic: Option<&str>) -> Result<bool> {
        self.ensure_open()?;
        self.check_shards().await?;
        let ended = gate::resume(&self.schedules, topic, topic.is_none()).await?;
        self.wake.notify();
        Ok(ended)
    }

    /// The pauses in force.
    pub async fn paused(&self) -> Result<Vec<Pause>> {
        self.ensure_open()?;
        gate::paused(&self.schedules[0]).await
    }
}
