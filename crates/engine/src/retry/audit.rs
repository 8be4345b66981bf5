//! Operator actions recorded as they are done (see `store::audit`): the binding runs each
//! operator method through [`RetryCore::audited`], which checks the caller's `actor`, runs the
//! action, and records its outcome, success or failure, in the schedule's audit stream.

use super::RetryCore;
use crate::error::{Result, RetryError};
use crate::message::options::format_js_number;
use crate::store::audit::{self, Entry, Record};
use crate::store::dead_letters::search::FilterInput;
use crate::store::jobs::Job;
use crate::store::keys;
use serde_json::{json, Value};
use std::future::Future;

/// The actions recorded, as their names in the log.
pub mod action {
    /// `requeueDeadLetters`, `requeueAllDeadLetters`, `requeueDeadLetter`.
    pub const REQUEUE: &str = "requeue";
    /// `removeDeadLetters`, `removeDeadLetter`.
    pub const REMOVE: &str = "remove";
    /// `pause`.
    pub const PAUSE: &str = "pause";
    /// `resume`.
    pub const RESUME: &str = "resume";
    /// `stopJob`: an operator job asked to stop.
    pub const JOB_STOP: &str = "jobStop";
    /// `continueJob`: an interrupted operator job continued.
    pub const JOB_CONTINUE: &str = "jobContinue";
}

/// How many messages an action's result stands for, as the log counts it.
pub trait Counted {
    /// The count recorded.
    fn count(&self) -> u64;
}

impl Counted for u64 {
    fn count(&self) -> u64 {
        *self
    }
}

impl Counted for crate::store::dead_letters::requeue::BulkOutcome {
    fn count(&self) -> u64 {
        self.count
    }
}

impl Counted for bool {
    fn count(&self) -> u64 {
        u64::from(*self)
    }
}

impl Counted for Option<bool> {
    fn count(&self) -> u64 {
        u64::from(self.unwrap_or(false))
    }
}

impl Counted for Option<Job> {
    fn count(&self) -> u64 {
        u64::from(self.is_some())
    }
}

/// The target of an action on dead letter queue `dlq` with `filter` (only the keys given).
pub fn filter_target(dlq: &str, filter: &FilterInput) -> Value {
    let mut given = serde_json::to_value(filter).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut given {
        map.retain(|_, v| !v.is_null() && v != "");
    }
    json!({ "dlq": dlq, "filter": given })
}

/// The target of an action on dead letter `id` of `dlq`.
pub fn item_target(dlq: &str, id: &str) -> Value {
    json!({ "dlq": dlq, "id": id })
}

/// The target of a pause or resume: `topic` (`null`: the whole schedule, or for a resume every
/// pause).
pub fn topic_target(topic: Option<&str>) -> Value {
    json!({ "topic": topic })
}

/// The target of an action on operator job `id`.
pub fn job_target(id: u64) -> Value {
    json!({ "job": id })
}

impl RetryCore {
    fn audit_key(&self) -> String {
        keys::audit_key(&self.config.key_prefix)
    }

    /// Runs operator action `op` (named `action`, on `target`) for `actor` (`None`: the
    /// default, `api`), then records what it did. A bad `actor` fails before the action runs. An
    /// action that fails is recorded with its error's code and what it did before failing. A
    /// dry run is not recorded: it changes nothing, and the dashboard counts matches with dry
    /// runs on every filtered page, which would crowd the changes out of a bounded log. A record
    /// that cannot be written does not undo or fail a done action: it is a warning (none for an
    /// action that failed: its own error is what the caller hears).
    pub async fn audited<T: Counted>(
        &self,
        actor: Option<String>,
        action: &'static str,
        target: Value,
        dry_run: bool,
        op: impl Future<Output = Result<T>>,
    ) -> Result<T> {
        if let Some(actor) = &actor {
            audit::check_actor(actor)?;
        }
        let outcome = op.await;
        if dry_run {
            return outcome;
        }
        let record = Record {
            actor: actor.unwrap_or_else(|| audit::DEFAULT_ACTOR.to_string()),
            action,
            target,
            count: match &outcome {
                Ok(done) => done.count(),
                Err(err) => err.done_before.map_or(0, |(_, n)| n),
            },
            outcome: match &outcome {
                Ok(_) => "ok".to_string(),
                Err(err) => err.code.as_ref().to_string(),
            },
            error: outcome.as_ref().err().map(ToString::to_string),
        };
        // After close() the connection may be gone: the action's own error says so already.
        if !self.is_closed() {
            let written = audit::record(&self.redis, &self.audit_key(), &record).await;
            // A failed action's error already tells the caller (Redis gone fails both alike).
            if let (Err(err), Ok(_)) = (written, &outcome) {
                self.observer.warn(&format!(
                    "the audit log did not record {action} by {}: {err}",
                    record.actor
                ));
            }
        }
        outcome
    }

    /// A page of the audit log, newest first (see `store::audit::read`).
    pub async fn audit_log(&self, query: AuditQuery) -> Result<(Vec<Entry>, Option<String>)> {
        self.ensure_open()?;
        let (limit, since) = query.parse()?;
        audit::read(
            &self.redis,
            &self.audit_key(),
            limit,
            since,
            query.cursor.as_deref(),
        )
        .await
    }
}

/// `auditLog()`'s options as the caller gave them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditQuery {
    /// Most entries: 1 to `audit::MAX_LIMIT`, default `audit::DEFAULT_LIMIT`.
    pub limit: Option<f64>,
    /// Only entries recorded at or after this, ms since the epoch.
    pub since: Option<f64>,
    /// The `cursor` of the previous page.
    pub cursor: Option<String>,
}

impl AuditQuery {
    fn parse(&self) -> Result<(usize, Option<u64>)> {
        let limit = match self.limit {
            None => audit::DEFAULT_LIMIT,
            Some(l) if l.fract() == 0.0 && (1.0..=audit::MAX_LIMIT as f64).contains(&l) => {
                l as usize
            }
            Some(l) => {
                return Err(RetryError::invalid_arg(format!(
                    "options.limit must be a whole number from 1 to {}, got {}",
                    audit::MAX_LIMIT,
                    format_js_number(l)
                )))
            }
        };
        let since = match self.since {
            None => None,
            Some(s) if s.fract() == 0.0 && (0.0..=9.0e15).contains(&s) => Some(s as u64),
            Some(s) => {
                return Err(RetryError::invalid_arg(format!(
                    "options.since must be a time in ms since the epoch (a whole number, 0 or more), got {}",
                    format_js_number(s)
                )))
            }
        };
        Ok((limit, since))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_checked() {
        assert_eq!(AuditQuery::default().parse().unwrap(), (100, None));
        let q = AuditQuery {
            limit: Some(5.0),
            since: Some(7.0),
            cursor: None,
        };
        assert_eq!(q.parse().unwrap(), (5, Some(7)));
        for (limit, since) in [(Some(0.0), None), (Some(1.5), None), (None, Some(-1.0))] {
            let q = AuditQuery {
                limit,
                since,
                cursor: None,
            };
            assert!(q.parse().is_err(), "{limit:?} {since:?}");
        }
    }

    #[test]
    fn a_filter_target_names_only_what_was_given() {
        let filter = FilterInput {
            topic: Some("orders".into()),
            search: Some(String::new()),
            ..FilterInput::default()
        };
        assert_eq!(
            filter_target("dlq", &filter),
            json!({ "dlq": "dlq", "filter": { "topic": "orders" } })
        );
    }
}
