//! The operator jobs of a schedule (see `store::jobs`): records a dashboard keeps in Redis of the
//! bulk operations it runs, so that every dashboard process on the schedule sees them.

use super::RetryCore;
use crate::error::Result;
use crate::store::jobs::{self, Ending, Job, JobKeys, Reported};

impl RetryCore {
    fn job_keys(&self) -> JobKeys {
        JobKeys::new(&self.config.key_prefix)
    }

    /// Starts a job described by `spec` (JSON text of an object), running under a lease of
    /// `lease_ms`; returns it as stored.
    pub async fn start_job(&self, spec: &str, lease_ms: u64) -> Result<Job> {
        self.ensure_open()?;
        let keys = self.job_keys();
        let id = jobs::start(&self.redis, &keys, spec, lease_ms).await?;
        let mut read = jobs::read(&self.redis, &keys, Some(id)).await?;
        read.pop().ok_or_else(|| {
            crate::error::RetryError::new(
                crate::error::ErrorCode::Internal,
                format!("job {id} vanished right after its start"),
            )
        })
    }

    /// A runner's report on run `run` of job `id` (see `store::jobs::report`).
    pub async fn report_job(
        &self,
        id: u64,
        run: u64,
        done: u64,
        lease_ms: u64,
        finish: Option<Ending>,
    ) -> Result<Reported> {
        self.ensure_open()?;
        jobs::report(
            &self.redis,
            &self.job_keys(),
            id,
            run,
            done,
            lease_ms,
            finish,
        )
        .await
    }

    /// Asks job `id` to stop; `None` when there is no such job.
    pub async fn stop_job(&self, id: u64) -> Result<Option<bool>> {
        self.ensure_open()?;
        jobs::stop(&self.redis, &self.job_keys(), id).await
    }

    /// Continues job `id` under a new run and lease; returns it as stored then, or `None` when
    /// there is no such job or it cannot be continued (done, or running under a live lease).
    pub async fn continue_job(&self, id: u64, lease_ms: u64) -> Result<Option<Job>> {
        self.ensure_open()?;
        let keys = self.job_keys();
        match jobs::resume(&self.redis, &keys, id, lease_ms).await? {
            Some(run) if run > 0 => Ok(jobs::read(&self.redis, &keys, Some(id)).await?.pop()),
            _ => Ok(None),
        }
    }

    /// Job `id`, or every kept job of the schedule (newest first) when `id` is `None`.
    pub async fn jobs(&self, id: Option<u64>) -> Result<Vec<Job>> {
        self.ensure_open()?;
        jobs::read(&self.redis, &self.job_keys(), id).await
    }
}
