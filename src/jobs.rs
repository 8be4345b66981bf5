//! The operator job methods of `KafkaRetry` (`startJob`, `reportJob`, `stopJob`, `continueJob`,
//! `jobs`, `job`): records of long bulk operations kept in Redis beside the schedule (see
//! `engine::store::jobs`), read from JavaScript and settled as promises. The dashboard runs its
//! bulk requeues and removals as such jobs, so every dashboard process on the schedule sees them.

use crate::args::parse_actor;
use crate::class::KafkaRetry;
use crate::convert::{describe, json_text, object_arg, optional_number, optional_string};
use crate::results::{nullable, OperatorJob};
use crate::settle::settle_with;
use engine::error::{Result as CoreResult, RetryError};
use engine::message::options::format_js_number;
use engine::retry::audit::{action, job_target};
use engine::store::jobs::{lease_ms, Ending, Finish, Reported};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// A job id or run number: a whole number from 1 to 2^53.
fn whole(name: &str, value: Option<&Unknown>) -> CoreResult<u64> {
    let invalid = |got: String| {
        RetryError::invalid_arg(format!(
            "{name} must be a whole number from 1 to 9007199254740992, got {got}"
        ))
    };
    let Some(value) = value else {
        return Err(invalid("undefined".into()));
    };
    if value.get_type().ok() != Some(ValueType::Number) {
        return Err(invalid(describe(value)));
    }
    let n: f64 = unsafe { value.cast() }.map_err(|_| invalid(describe(value)))?;
    if n.fract() == 0.0 && (1.0..=9_007_199_254_740_992.0).contains(&n) {
        Ok(n as u64)
    } else {
        Err(invalid(format_js_number(n)))
    }
}

/// `options.leaseMs` of `startJob` / `continueJob` (see `store::jobs::lease_ms`).
fn lease_option(options: Option<&Unknown>) -> CoreResult<u64> {
    let lease = match object_arg("options", options)? {
        Some(object) => optional_number(&object, "leaseMs", "options.leaseMs")?,
        None => None,
    };
    lease_ms(lease).map_err(|err| RetryError::invalid_arg(format!("options.{}", err.message)))
}

/// `reportJob`'s `{ done, state, error, leaseMs }`.
fn parse_report(report: Option<&Unknown>) -> CoreResult<(u64, u64, Option<Ending>)> {
    let object = object_arg("report", report)?.ok_or_else(|| {
        RetryError::invalid_arg("report must be an object { done, state?, error?, leaseMs? }")
    })?;
    let done = match optional_number(&object, "done", "report.done")? {
        Some(n) if n.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&n) => n as u64,
        other => {
            return Err(RetryError::invalid_arg(format!(
                "report.done must be a whole number from 0 to 9007199254740992, got {}",
                other.map_or("undefined".to_string(), format_js_number)
            )))
        }
    };
    let lease = lease_ms(optional_number(&object, "leaseMs", "report.leaseMs")?)
        .map_err(|err| RetryError::invalid_arg(format!("report.{}", err.message)))?;
    let finish = match optional_string(&object, "state", "report.state")? {
        None => None,
        Some(state) => Some((
            Finish::parse(&state)
                .map_err(|err| RetryError::invalid_arg(format!("report.{}", err.message)))?,
            optional_string(&object, "error", "report.error")?,
        )),
    };
    Ok((done, lease, finish))
}

#[napi]
impl KafkaRetry {
    /// Starts an operator job: a record, in Redis beside the schedule, of a long operation the
    /// caller runs (the dashboard's bulk requeues and removals). `spec` (an object, at most
    /// 16 kB of JSON) says what the job is; it is kept as given. The job is `running` while its
    /// runner reports (`reportJob`) within `leaseMs` (default 15000) of the last report, and
    /// `interrupted` once it does not (the process running it is gone); the newest 50 records
    /// are kept. Resolves to the job.
    #[napi(ts_args_type = "spec: Record<string, unknown>, options?: { leaseMs?: number }")]
    pub fn start_job<'env>(
        &self,
        env: &'env Env,
        spec: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, OperatorJob>> {
        let parsed = object_arg("spec", spec.as_ref()).and_then(|object| {
            if object.is_none() {
                return Err(RetryError::invalid_arg("spec must be an object"));
            }
            Ok((
                json_text("spec", spec.as_ref())?,
                lease_option(options.as_ref())?,
            ))
        });
        let core = self.core().clone();
        settle_with(
            env,
            parsed,
            move |(spec, lease)| async move { core.start_job(&spec, lease).await },
            OperatorJob::from,
        )
    }

    /// A runner's report on its job: `done` (how many it moved so far, over every run), a fresh
    /// lease (`leaseMs`, default 15000), and at the end its `state` (`'done'`, `'stopped'` or
    /// `'failed'`, with `error`). Resolves to `'running'` (go on), `'stop'` (someone asked it to
    /// stop: stop, then report `'stopped'`) or `'lost'` (the job is no longer this run's: it was
    /// continued elsewhere, or finished; stop without reporting again).
    #[napi(
        ts_args_type = "id: number, run: number, report: { done: number, state?: 'done' | 'stopped' | 'failed', error?: string, leaseMs?: number }",
        ts_return_type = "Promise<'running' | 'stop' | 'lost'>"
    )]
    pub fn report_job<'env>(
        &self,
        env: &'env Env,
        id: Option<Unknown>,
        run: Option<Unknown>,
        report: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, String>> {
        let parsed = whole("id", id.as_ref()).and_then(|id| {
            Ok((
                id,
                whole("run", run.as_ref())?,
                parse_report(report.as_ref())?,
            ))
        });
        let core = self.core().clone();
        settle_with(
            env,
            parsed,
            move |(id, run, (done, lease, finish))| async move {
                core.report_job(id, run, done, lease, finish).await
            },
            |reported| {
                match reported {
                    Reported::Running => "running",
                    Reported::StopAsked => "stop",
                    Reported::Lost => "lost",
                }
                .to_string()
            },
        )
    }

    /// Asks job `id` to stop: its runner, in whichever process, stops before its next move (an
    /// interrupted job is marked stopped at once). Resolves to `false` when it was not running
    /// (or there is no such job). Recorded in the audit log as `jobStop` by `actor`.
    #[napi(
        ts_args_type = "id: number, options?: { actor?: string }",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn stop_job<'env>(
        &self,
        env: &'env Env,
        id: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let core = self.core().clone();
        let parsed =
            whole("id", id.as_ref()).and_then(|id| Ok((id, parse_actor(options.as_ref())?)));
        settle_with(
            env,
            parsed,
            move |(id, actor)| async move {
                let stop = async { Ok(core.stop_job(id).await? == Some(true)) };
                core.audited(actor, action::JOB_STOP, job_target(id), false, stop)
                    .await
            },
            |asked| asked,
        )
    }

    /// Takes over a stopped, failed or interrupted job to run it again: resolves to the job under
    /// its next `run` (the caller then runs its spec again and reports with that run), or `null`
    /// when it is done, running under a live lease (elsewhere), or unknown. Of two callers at
    /// once, one gets it. Recorded in the audit log as `jobContinue` by `actor`.
    #[napi(ts_args_type = "id: number, options?: { leaseMs?: number, actor?: string }")]
    pub fn continue_job<'env>(
        &self,
        env: &'env Env,
        id: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, Either<OperatorJob, Null>>> {
        let parsed = whole("id", id.as_ref()).and_then(|id| {
            Ok((
                id,
                lease_option(options.as_ref())?,
                parse_actor(options.as_ref())?,
            ))
        });
        let core = self.core().clone();
        settle_with(
            env,
            parsed,
            move |(id, lease, actor)| async move {
                let resume = core.continue_job(id, lease);
                core.audited(actor, action::JOB_CONTINUE, job_target(id), false, resume)
                    .await
            },
            |job| nullable(job.map(OperatorJob::from)),
        )
    }

    /// The operator jobs kept for this schedule, newest first.
    #[napi]
    pub fn jobs<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Vec<OperatorJob>>> {
        let core = self.core().clone();
        settle_with(
            env,
            Ok(()),
            move |()| async move { core.jobs(None).await },
            |jobs| jobs.into_iter().map(OperatorJob::from).collect(),
        )
    }

    /// Operator job `id`, or `null` when there is none (never started, or no longer kept).
    #[napi(ts_args_type = "id: number")]
    pub fn job<'env>(
        &self,
        env: &'env Env,
        id: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, Either<OperatorJob, Null>>> {
        let core = self.core().clone();
        settle_with(
            env,
            whole("id", id.as_ref()),
            move |id| async move { Ok(core.jobs(Some(id)).await?.pop()) },
            |job| nullable(job.map(OperatorJob::from)),
        )
    }
}
