//! Operator jobs: the records of long bulk operations a dashboard runs (a paced requeue, a
//! removal), kept in Redis beside the schedule (`{keyPrefix}:jobs`, one hash, id -> record) so
//! every dashboard process on the schedule lists them, a stop asked in one reaches the runner in
//! another, and a job whose process died shows as interrupted (its lease, renewed by the
//! runner's reports, ran out by Redis's clock) and can be continued. The package does not run
//! the jobs: the caller does, and reports through [`report`]; what a job does is its `spec`,
//! JSON the caller wrote, kept as it was given.

use super::connection::Redis;
use crate::error::{Result, RetryError};
use crate::store::scripts;
use redis::Script;
use std::sync::LazyLock;

static START: LazyLock<Script> = LazyLock::new(|| scripts::load("jobs/start"));
static BEAT: LazyLock<Script> = LazyLock::new(|| scripts::load("jobs/beat"));
static STOP: LazyLock<Script> = LazyLock::new(|| scripts::load("jobs/stop"));
static CONTINUE: LazyLock<Script> = LazyLock::new(|| scripts::load("jobs/continue"));
static READ: LazyLock<Script> = LazyLock::new(|| scripts::load("jobs/read"));

/// How many job records a schedule keeps (the oldest finished ones go first).
pub const KEPT: u64 = 50;
/// The most JSON a job's spec may hold.
pub const MAX_SPEC_BYTES: usize = 16 * 1024;
/// The lease a runner's report gives its job when the caller names none.
pub const DEFAULT_LEASE_MS: u64 = 15_000;
/// The shortest and longest lease a caller may ask for.
pub const LEASE_RANGE_MS: (u64, u64) = (1_000, 600_000);

/// The keys of a schedule's jobs: shard 0's hash tag.
#[derive(Debug, Clone)]
pub struct JobKeys {
    /// Hash: id -> record (JSON written by the scripts).
    pub records: String,
    /// String: the last id given.
    pub seq: String,
}

impl JobKeys {
    /// The job keys of the schedule `prefix`.
    pub fn new(prefix: &str) -> Self {
        JobKeys {
            records: format!("{{{prefix}}}:jobs"),
            seq: format!("{{{prefix}}}:jobs:seq"),
        }
    }
}

/// One job as the scripts store it, and as the class returns it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Job {
    /// The job's id on its schedule.
    pub id: u64,
    /// What the caller said the job is (its kind, filter, options, who started it, ...).
    pub spec: serde_json::Value,
    /// `running`, `stopping` (a stop was asked; the runner has not seen it yet), `interrupted`
    /// (running, but its lease ran out: the process running it is gone), `stopped`, `failed`
    /// or `done`.
    pub state: String,
    /// Which run of the job this is: 1, then one more per continue. A runner reports with its
    /// run, so a runner that lost the job (continued elsewhere) learns it.
    pub run: u64,
    /// How many dead letters it moved so far, over every run (at least: after an interruption,
    /// what its runner moved after its last report is not counted).
    pub done: u64,
    /// How many times it was continued after an interruption.
    pub interruptions: u64,
    /// When it started, ms since the epoch (Redis's clock), as each time below.
    pub started_at: u64,
    /// When its runner last reported.
    pub updated_at: u64,
    /// When it was last continued, if it was.
    pub continued_at: Option<u64>,
    /// When it finished (stopped, failed or done).
    pub finished_at: Option<u64>,
    /// Until when it counts as running without another report.
    pub lease_until: u64,
    /// The error it failed with.
    pub error: Option<String>,
}

/// A record as the scripts write it (the spec as a JSON string).
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    id: u64,
    spec: String,
    state: String,
    run: u64,
    done: u64,
    #[serde(default)]
    interruptions: u64,
    started_at: u64,
    updated_at: u64,
    continued_at: Option<u64>,
    finished_at: Option<u64>,
    lease_until: u64,
    #[serde(default)]
    stop_requested: bool,
    error: Option<String>,
}

impl Job {
    /// The record `raw` as seen at `now` (Redis's clock): a running job whose lease ran out is
    /// `interrupted`, one asked to stop `stopping`.
    fn parse(raw: &str, now: u64) -> Result<Job> {
        let stored: Stored = serde_json::from_str(raw).map_err(|err| {
            RetryError::new(
                crate::error::ErrorCode::Internal,
                format!("unreadable job record: {err}"),
            )
        })?;
        let state = match stored.state.as_str() {
            "running" if stored.lease_until <= now => "interrupted".to_string(),
            "running" if stored.stop_requested => "stopping".to_string(),
            other => other.to_string(),
        };
        Ok(Job {
            id: stored.id,
            spec: serde_json::from_str(&stored.spec).unwrap_or(serde_json::Value::Null),
            state,
            run: stored.run,
            done: stored.done,
            interruptions: stored.interruptions,
            started_at: stored.started_at,
            updated_at: stored.updated_at,
            continued_at: stored.continued_at,
            finished_at: stored.finished_at,
            lease_until: stored.lease_until,
            error: stored.error,
        })
    }
}

/// What a runner's report learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reported {
    /// Go on.
    Running,
    /// Someone asked the job to stop: stop before the next move, then report `stopped`.
    StopAsked,
    /// The job is no longer this run's (continued elsewhere, finished, or gone): stop, and do
    /// not report again.
    Lost,
}

/// A job's final state, as its runner reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// Everything it matched was moved.
    Done,
    /// Stopped on request (or when the process closed).
    Stopped,
    /// Ended by an error.
    Failed,
}

impl Finish {
    /// The state name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Done => "done",
            Finish::Stopped => "stopped",
            Finish::Failed => "failed",
        }
    }

    /// `done`, `stopped` or `failed`; anything else is `ERR_INVALID_ARG`.
    pub fn parse(text: &str) -> Result<Finish> {
        match text {
            "done" => Ok(Finish::Done),
            "stopped" => Ok(Finish::Stopped),
            "failed" => Ok(Finish::Failed),
            other => Err(RetryError::invalid_arg(format!(
                "state must be 'done', 'stopped' or 'failed', got {other:?}"
            ))),
        }
    }
}

/// How a run ended, as its runner reports it: the final state and, for a failure, its error.
pub type Ending = (Finish, Option<String>);

/// Checks a spec (JSON text of an object, at most [`MAX_SPEC_BYTES`]).
pub fn check_spec(spec: &str) -> Result<()> {
    if spec.len() > MAX_SPEC_BYTES {
        return Err(RetryError::invalid_arg(format!(
            "spec must be at most {MAX_SPEC_BYTES} bytes of JSON, got {}",
            spec.len()
        )));
    }
    match serde_json::from_str::<serde_json::Value>(spec) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        _ => Err(RetryError::invalid_arg(
            "spec must be an object (serializable to JSON)",
        )),
    }
}

/// Checks a lease in ms (a whole number within [`LEASE_RANGE_MS`]); `None` is the default.
pub fn lease_ms(value: Option<f64>) -> Result<u64> {
    let (min, max) = LEASE_RANGE_MS;
    match value {
        None => Ok(DEFAULT_LEASE_MS),
        Some(ms) if ms.fract() == 0.0 && (min as f64..=max as f64).contains(&ms) => Ok(ms as u64),
        Some(ms) => Err(RetryError::invalid_arg(format!(
            "leaseMs must be a whole number of ms from {min} to {max}, got {}",
            crate::message::options::format_js_number(ms)
        ))),
    }
}

/// Starts a job running (run 1) with `spec`; returns its id.
pub async fn start(redis: &Redis, keys: &JobKeys, spec: &str, lease_ms: u64) -> Result<u64> {
    check_spec(spec)?;
    redis
        .run("start of a job", |mut conn| async move {
            START
                .key(&keys.records)
                .key(&keys.seq)
                .arg(spec)
                .arg(lease_ms)
                .arg(KEPT)
                .invoke_async(&mut conn)
                .await
        })
        .await
}

/// A runner's report for run `run` of job `id`: `done` so far, its lease renewed for
/// `lease_ms`, and with `finish` its end (`error` the text of a failure).
pub async fn report(
    redis: &Redis,
    keys: &JobKeys,
    id: u64,
    run: u64,
    done: u64,
    lease_ms: u64,
    finish: Option<Ending>,
) -> Result<Reported> {
    let (state, error) = match &finish {
        Some((finish, error)) => (finish.as_str(), error.clone().unwrap_or_default()),
        None => ("", String::new()),
    };
    let reply: i64 = redis
        .run("report of a job", |mut conn| async move {
            BEAT.key(&keys.records)
                .arg(id)
                .arg(run)
                .arg(done)
                .arg(lease_ms)
                .arg(state)
                .arg(error)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    Ok(match reply {
        0 => Reported::Running,
        1 => Reported::StopAsked,
        _ => Reported::Lost,
    })
}

/// Asks job `id` to stop (see `lua/jobs/stop.lua`). `Some(false)` when it was not running, `None`
/// when there is no such job.
pub async fn stop(redis: &Redis, keys: &JobKeys, id: u64) -> Result<Option<bool>> {
    let reply: i64 = redis
        .run("stop of a job", |mut conn| async move {
            STOP.key(&keys.records)
                .arg(id)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    Ok((reply >= 0).then_some(reply == 1))
}

/// Continues job `id` under a new run (see `lua/jobs/continue.lua`): the new run number, `Some(0)`
/// when it cannot be continued (done, or running elsewhere), `None` when there is no such job.
pub async fn resume(redis: &Redis, keys: &JobKeys, id: u64, lease_ms: u64) -> Result<Option<u64>> {
    let reply: i64 = redis
        .run("continue of a job", |mut conn| async move {
            CONTINUE
                .key(&keys.records)
                .arg(id)
                .arg(lease_ms)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    Ok(u64::try_from(reply).ok())
}

/// Job `id`, or every job (newest first) when `id` is `None`.
pub async fn read(redis: &Redis, keys: &JobKeys, id: Option<u64>) -> Result<Vec<Job>> {
    let which = id.map(|id| id.to_string()).unwrap_or_default();
    let reply: Vec<redis::Value> = redis
        .run("read of the jobs", |mut conn| async move {
            READ.key(&keys.records)
                .arg(which)
                .invoke_async(&mut conn)
                .await
        })
        .await?;
    let mut values = reply.into_iter();
    let now: u64 = match values.next() {
        Some(value) => redis::from_redis_value(&value).unwrap_or(0),
        None => 0,
    };
    let mut jobs = Vec::new();
    for value in values {
        let raw: String = redis::from_redis_value(&value).map_err(|err| {
            RetryError::new(
                crate::error::ErrorCode::Internal,
                format!("unreadable job record: {err}"),
            )
        })?;
        jobs.push(Job::parse(&raw, now)?);
    }
    jobs.sort_by_key(|job| std::cmp::Reverse(job.id));
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECORD: &str = r#"{"id":3,"spec":"{\"kind\":\"requeue\",\"since\":1765000000123}","state":"running","run":2,"done":7,"startedAt":100,"updatedAt":150,"leaseUntil":200,"stopRequested":false}"#;

    #[test]
    fn a_running_job_whose_lease_ran_out_is_interrupted() {
        let job = Job::parse(RECORD, 199).unwrap();
        assert_eq!(job.state, "running");
        assert_eq!(job.spec["since"], 1765000000123u64);
        assert_eq!(Job::parse(RECORD, 200).unwrap().state, "interrupted");
        let asked = RECORD.replace("\"stopRequested\":false", "\"stopRequested\":true");
        assert_eq!(Job::parse(&asked, 150).unwrap().state, "stopping");
        let stopped = RECORD.replace("\"running\"", "\"stopped\"");
        assert_eq!(Job::parse(&stopped, 500).unwrap().state, "stopped");
    }

    #[test]
    fn a_spec_is_a_bounded_object_and_a_lease_a_bounded_whole_number() {
        assert!(check_spec(r#"{"kind":"remove"}"#).is_ok());
        for bad in ["[]", "3", "\"x\"", "{"] {
            assert!(check_spec(bad).is_err(), "{bad}");
        }
        let big = format!(r#"{{"a":"{}"}}"#, "x".repeat(MAX_SPEC_BYTES));
        assert!(check_spec(&big).is_err());
        assert_eq!(lease_ms(None).unwrap(), DEFAULT_LEASE_MS);
        assert_eq!(lease_ms(Some(5000.0)).unwrap(), 5000);
        for bad in [
            0.0,
            -0.0,
            1e-300,
            999.0,
            1500.5,
            1e308,
            f64::NAN,
            f64::INFINITY,
        ] {
            assert!(lease_ms(Some(bad)).is_err(), "{bad}");
        }
        assert!(Finish::parse("done").is_ok());
        assert!(Finish::parse("running").is_err());
    }
}
