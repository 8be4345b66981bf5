//! What the class's methods resolve to and what `onEvent` receives, as `#[napi(object)]` types:
//! `napi build` writes their TypeScript into `index.d.ts` from these definitions (the `///` on
//! each field is the TSDoc users read), and the same types build the JavaScript values, so the
//! declared shape is the delivered one. Each is made from the engine's type by a `From` that
//! destructures it whole: a field the engine adds fails to compile here until it is given a place.
//!
//! Numbers are `f64` (a JavaScript number, as the JSON these replaced gave); `Option` fields of a
//! `use_nullable` type are always present, `null` when unknown, as before.

use engine::observe::events::Event;
use engine::observe::stats::Stats;
use engine::store::audit::Entry;
use engine::store::dead_letters::reasons::{Reason, Reasons};
use engine::store::dead_letters::requeue::BulkOutcome;
use engine::store::dead_letters::search::SearchPage;
use engine::store::dead_letters::DeadLetterItem;
use engine::store::entry::ErrorInfo;
use engine::store::gate::Pause;
use engine::store::jobs::Job;
use engine::store::tally::{History, Series, TopicCounts};
use napi::bindgen_prelude::{Either, Null};
use napi_derive::napi;
use std::collections::BTreeMap;

/// Counts and times as JavaScript numbers.
fn number(n: u64) -> f64 {
    n as f64
}

/// A result that may be absent as JavaScript gets it: `null` (declared `T | null`; an `Option`
/// would be declared `T | undefined | null`).
pub fn nullable<T>(value: Option<T>) -> Either<T, Null> {
    value.map_or(Either::B(Null), Either::A)
}

fn numbers(ns: Vec<u64>) -> Vec<f64> {
    ns.into_iter().map(number).collect()
}

/// The error a message failed with, as the dead letter keeps it.
#[napi(object, object_from_js = false)]
pub struct DeadLetterError {
    /// `error.message` (a string error's text).
    pub message: String,
    /// `error.name` (`'Error'` for a string error).
    pub name: String,
}

impl From<ErrorInfo> for DeadLetterError {
    fn from(ErrorInfo { message, name }: ErrorInfo) -> Self {
        DeadLetterError { message, name }
    }
}

/// One dead letter.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct DeadLetter {
    /// Its field in the dead letter hash (pass it to `requeueDeadLetter` / `removeDeadLetter`).
    pub id: String,
    /// The topic it was meant for.
    pub topic: String,
    /// The Kafka key.
    pub event: String,
    /// The payload, parsed (as the original class's dead letters held it); a string only when the payload is not JSON.
    #[napi(ts_type = "unknown")]
    pub value: serde_json::Value,
    /// The retry options at death, as header strings (`delay`, `maxRetry`, `retryCount`, `executeAt`), then the caller's own headers as `JSON.stringify` writes them (a `Buffer` as `{ type: 'Buffer', data }`).
    #[napi(ts_type = "Record<string, unknown>")]
    pub options: Option<serde_json::Value>,
    /// The last failure's error, when known.
    pub error: Option<DeadLetterError>,
    /// When it first failed (ms since the epoch), when known.
    pub first_failed_at: Option<f64>,
    /// When it was dead-lettered (ms since the epoch); 0 when unknown (written by other tools).
    pub died_at: f64,
    /// The `keyPrefix` of the schedule it came from, where a requeue sends it back; `null` when unknown.
    pub key_prefix: Option<String>,
    /// How often it was requeued and died again (its `replays` header; 0 when never). A bulk requeue passes over it at `maxReplays` unless `force: true`.
    pub replays: f64,
}

impl From<DeadLetterItem> for DeadLetter {
    fn from(item: DeadLetterItem) -> Self {
        let DeadLetterItem {
            id,
            topic,
            event,
            value,
            payload: _, // the payload's text, for a requeue: `value` is what JavaScript sees
            options,
            error,
            first_failed_at,
            died_at,
            key_prefix,
            replays,
        } = item;
        DeadLetter {
            replays: number(replays),
            id,
            topic,
            event,
            value,
            options: (!options.is_null()).then_some(options),
            error: error.map(DeadLetterError::from),
            first_failed_at: first_failed_at.map(number),
            died_at: number(died_at),
            key_prefix,
        }
    }
}

/// A page of dead letters, newest first.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct DeadLetterPage {
    /// The dead letters of the page.
    pub items: Vec<DeadLetter>,
    /// Pass back as `{ cursor }` for the next page; `null` after the last.
    pub cursor: Option<String>,
    /// Dead letters this call read: a filtered page reads at most 5,000, so it may hold fewer than `limit` items (even none) and still have a `cursor`.
    pub scanned: f64,
}

impl From<SearchPage> for DeadLetterPage {
    fn from(page: SearchPage) -> Self {
        let SearchPage {
            items,
            cursor,
            scanned,
        } = page;
        DeadLetterPage {
            items: items.into_iter().map(DeadLetter::from).collect(),
            cursor,
            scanned: number(scanned),
        }
    }
}

/// One failure reason of `deadLetterReasons()`.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct DeadLetterReason {
    /// The error (`Name: message`) with its variable parts masked: numbers `<n>`, hex and long ids `<id>`, UUIDs `<uuid>`, addresses and URLs `<addr>`, e-mails `<email>`, quoted values `'…'`; `(no error recorded)` for dead letters without one. Pass it as the filter's `reason`.
    pub reason: String,
    /// Dead letters read with this reason.
    pub count: f64,
    /// Of them, per topic.
    pub topics: BTreeMap<String, f64>,
    /// One full error text of the reason (the newest dead letter's).
    pub example: String,
    /// The newest time of death among them (ms since the epoch).
    pub last_at: f64,
}

/// What `deadLetterReasons()` resolves to.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct DeadLetterReasons {
    /// Largest count first.
    pub reasons: Vec<DeadLetterReason>,
    /// Dead letters read: the newest, at most 10,000.
    pub scanned: f64,
    /// Dead letters the queue holds.
    pub total: f64,
    /// Whether the queue holds more than were read (then the counts are of the newest `scanned`).
    pub truncated: bool,
}

impl From<Reasons> for DeadLetterReasons {
    fn from(found: Reasons) -> Self {
        let Reasons {
            reasons,
            scanned,
            total,
            truncated,
        } = found;
        DeadLetterReasons {
            reasons: reasons
                .into_iter()
                .map(|r| {
                    let Reason {
                        reason,
                        count,
                        topics,
                        example,
                        last_at,
                    } = r;
                    DeadLetterReason {
                        reason,
                        count: number(count),
                        topics: topics.into_iter().map(|(t, n)| (t, number(n))).collect(),
                        example,
                        last_at: number(last_at),
                    }
                })
                .collect(),
            scanned: number(scanned),
            total: number(total),
            truncated,
        }
    }
}

/// What `requeueDeadLettersDetailed()` resolves to.
#[napi(object, object_from_js = false)]
pub struct RequeueOutcome {
    /// Dead letters requeued (dry run: that would be); the number `requeueDeadLetters()` resolves to.
    pub requeued: f64,
    /// Matching dead letters passed over because they were replayed `maxReplays` times or more (left in the queue; `force: true` requeues them). Those the requeue met: all of them unless `maxCount` stopped it first.
    pub skipped: f64,
}

impl From<BulkOutcome> for RequeueOutcome {
    fn from(outcome: BulkOutcome) -> Self {
        let BulkOutcome { count, skipped } = outcome;
        RequeueOutcome {
            requeued: number(count),
            skipped: number(skipped),
        }
    }
}

/// A pause in force (`paused()`, `stats().paused`).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct RetryPause {
    /// The paused topic; `null` for the whole schedule.
    pub topic: Option<String>,
    /// When it ends by itself (ms since the epoch, by Redis's clock); `null`: when `resume()`d.
    pub until_ms: Option<f64>,
}

impl From<Pause> for RetryPause {
    fn from(Pause { topic, until_ms }: Pause) -> Self {
        RetryPause {
            topic,
            until_ms: until_ms.map(number),
        }
    }
}

/// One operator action of the audit log (`auditLog()`).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct AuditEntry {
    /// Its id in the log.
    pub id: String,
    /// When it was recorded, ms since the epoch (Redis's clock).
    pub at: f64,
    /// Who acted: the method's `actor` option, `api` when none was given (the CLI gives
    /// `user@host`, the dashboard its token's name).
    pub actor: String,
    /// What was done.
    #[napi(
        ts_type = "'requeue' | 'remove' | 'pause' | 'resume' | 'jobStop' | 'jobContinue' | (string & {})"
    )]
    pub action: String,
    /// What it was done to: `{ dlq, filter }` (a filtered requeue or removal), `{ dlq, id }` (one
    /// dead letter), `{ topic }` (a pause or resume; `null`: the whole schedule), `{ job }`.
    #[napi(
        ts_type = "{ dlq?: string, filter?: DeadLetterFilter, id?: string, topic?: string | null, job?: number }"
    )]
    pub target: serde_json::Value,
    /// How many dead letters it requeued or removed; for a pause, resume or job action 1 when it
    /// took effect, else 0. For a failed action, what it did before failing. (Dry runs are not
    /// recorded.)
    pub count: f64,
    /// `ok`, or the code of the error it failed with.
    #[napi(ts_type = "'ok' | ErrorCode")]
    pub outcome: String,
    /// The message of the error it failed with (and its causes); `null` when it did not fail.
    pub error: Option<String>,
}

/// A page of the audit log (`auditLog()`).
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct AuditPage {
    /// Newest first.
    pub entries: Vec<AuditEntry>,
    /// Pass it as `cursor` for the next (older) page; `null` on the last page.
    pub cursor: Option<String>,
}

impl From<(Vec<Entry>, Option<String>)> for AuditPage {
    fn from((entries, cursor): (Vec<Entry>, Option<String>)) -> Self {
        AuditPage {
            entries: entries
                .into_iter()
                .map(|e| AuditEntry {
                    id: e.id,
                    at: number(e.at),
                    actor: e.actor,
                    action: e.action,
                    target: e.target,
                    count: number(e.count),
                    outcome: e.outcome,
                    error: e.error,
                })
                .collect(),
            cursor,
        }
    }
}

/// An operator job (`startJob`, `jobs()`): the record, kept in Redis beside the schedule, of a
/// long bulk operation a dashboard runs, which every process on the schedule can list, stop and
/// continue.
#[napi(object, object_from_js = false, use_nullable = true)]
pub struct OperatorJob {
    /// Its id on the schedule.
    pub id: f64,
    /// What the job is, as its starter gave it (the dashboard: kind, dead letter queue, filter, pace, who started it, the dry run's count).
    #[napi(ts_type = "Record<string, unknown>")]
    pub spec: serde_json::Value,
    /// `interrupted`: running, but its runner stopped reporting (its process is gone); `stopping`: a stop was asked and not yet seen.
    #[napi(ts_type = "'running' | 'stopping' | 'interrupted' | 'stopped' | 'failed' | 'done'")]
    pub state: String,
    /// 1, then one more per `continueJob`.
    pub run: f64,
    /// How many it moved so far, over every run (at least: after an interruption, what its runner moved after its last report is not counted).
    pub done: f64,
    /// How many times it was continued after an interruption.
    pub interruptions: f64,
    /// When it started (ms since the epoch, Redis's clock), as every time here.
    pub started_at: f64,
    /// When its runner last reported.
    pub updated_at: f64,
    /// When it was last continued, if it was.
    pub continued_at: Option<f64>,
    /// When it finished (stopped, failed or done).
    pub finished_at: Option<f64>,
    /// Until when it counts as running without another report.
    pub lease_until: f64,
    /// The error it failed with.
    pub error: Option<String>,
}

impl From<Job> for OperatorJob {
    fn from(job: Job) -> Self {
        let Job {
            id,
            spec,
            state,
            run,
            done,
            interruptions,
            started_at,
            updated_at,
            continued_at,
            finished_at,
            lease_until,
            error,
        } = job;
        OperatorJob {
            id: number(id),
            spec,
            state,
            run: number(run),
            done: number(done),
            interruptions: number(interruptions),
            started_at: number(started_at),
            updated_at: number(updated_at),
            continued_at: continued_at.map(number),
            finished_at: finished_at.map(number),
            lease_until: number(lease_until),
            error,
        }
    }
}

/// One topic in `stats().topics`.
#[napi(object, object_from_js = false)]
pub struct RetryTopicStats {
    /// Messages of the topic waiting on the schedule (including those a pause holds).
    pub scheduled: f64,
    /// Of those, due: counted from the start of the minute they fall due in (up to 60 s early), or held by a pause.
    pub due: f64,
    /// Claimed by a listener and not yet acknowledged.
    pub leased: f64,
    /// Dead letters of the topic in the dead letter hash `stats()` was asked about (those this package wrote; records other tools write are not counted).
    pub dead_letters: f64,
    /// Its breaker (config `breaker`, docs/breaker.md), for a topic the breaker has counted: `closed` (also while held messages go out over the ramp), `open` (due retries held), `halfOpen` (held, a round of probes out).
    #[napi(ts_type = "'closed' | 'open' | 'halfOpen'")]
    pub breaker: Option<String>,
}

impl From<TopicCounts> for RetryTopicStats {
    fn from(counts: TopicCounts) -> Self {
        let TopicCounts {
            scheduled,
            due,
            leased,
            dead_letters,
            breaker,
        } = counts;
        RetryTopicStats {
            scheduled: number(scheduled),
            due: number(due),
            leased: number(leased),
            dead_letters: number(dead_letters),
            breaker: breaker.map(|state| state.as_str().to_string()),
        }
    }
}

/// What `stats()` resolves to.
#[napi(object, object_from_js = false)]
pub struct RetryStats {
    /// Messages waiting in the schedule (not yet claimed), with those a pause or the breaker holds.
    pub scheduled: f64,
    /// Of those, already due.
    pub due: f64,
    /// Claimed by a listener and not yet acknowledged.
    pub inflight: f64,
    /// How long the oldest due message has waited past its due time, ms (0: none is due; held
    /// messages do not count: holding them was asked).
    pub late_ms: f64,
    /// Per topic (every topic with a message scheduled, leased or dead-lettered), from counters the scripts keep as they work: no scan.
    pub topics: BTreeMap<String, RetryTopicStats>,
    /// Dead letters in the dead letter hash.
    pub dead_lettered: f64,
    /// Re-published since the process started.
    pub published: f64,
    /// Failed publish attempts since the process started (each was rescheduled, or dead-lettered at `maxPublishFailures`).
    pub publish_failures: f64,
    /// Dead-lettered since the process started.
    pub dead_lettered_total: f64,
    /// Whether the dead letters exceed `maxDeadLetters`.
    pub dead_letter_cap_exceeded: bool,
    /// The pauses in force (see `pause()`).
    pub paused: Vec<RetryPause>,
    /// Ordered retries: keys whose messages are held back behind a message that waits, is on its way back to the consumer, or is dead-lettered.
    pub blocked_keys: f64,
    /// Ordered retries: messages parked behind their key's head.
    pub parked_messages: f64,
    /// Listener events this instance could not give `onEvent`, since it was made: events reach `onEvent` in batches, and up to 65,536 wait while it is behind; beyond, they are dropped and counted here (and an `error` event says how many). 0 without `onEvent`.
    pub events_dropped: f64,
}

impl From<Stats> for RetryStats {
    fn from(stats: Stats) -> Self {
        let Stats {
            scheduled,
            due,
            inflight,
            late_ms,
            topics,
            dead_lettered,
            published,
            publish_failures,
            dead_lettered_total,
            dead_letter_cap_exceeded,
            paused,
            blocked_keys,
            parked_messages,
            events_dropped,
        } = stats;
        RetryStats {
            scheduled: number(scheduled),
            due: number(due),
            inflight: number(inflight),
            late_ms: number(late_ms),
            topics: topics
                .into_iter()
                .map(|(topic, counts)| (topic, counts.into()))
                .collect(),
            dead_lettered: number(dead_lettered),
            published: number(published),
            publish_failures: number(publish_failures),
            dead_lettered_total: number(dead_lettered_total),
            dead_letter_cap_exceeded,
            paused: paused.into_iter().map(RetryPause::from).collect(),
            blocked_keys: number(blocked_keys),
            parked_messages: number(parked_messages),
            events_dropped: number(events_dropped),
        }
    }
}

/// Per-minute counts; index `i` is the minute starting at `from + i * 60000`.
#[napi(object, object_from_js = false)]
pub struct RetryHistorySeries {
    /// Messages stored on the schedule: pushed, requeued from the dead letters, migrated.
    pub pushed: Vec<f64>,
    /// Messages published (and acknowledged).
    pub published: Vec<f64>,
    /// Publishes that failed (the message went back on the schedule).
    pub failed: Vec<f64>,
    /// Messages dead-lettered.
    pub dead_lettered: Vec<f64>,
}

impl From<Series> for RetryHistorySeries {
    fn from(series: Series) -> Self {
        let Series {
            pushed,
            published,
            failed,
            dead_lettered,
        } = series;
        RetryHistorySeries {
            pushed: numbers(pushed),
            published: numbers(published),
            failed: numbers(failed),
            dead_lettered: numbers(dead_lettered),
        }
    }
}

/// What `history()` resolves to: the whole schedule's series, and each topic's. The last minute is the current one, still counting.
#[napi(object, object_from_js = false)]
pub struct RetryHistory {
    /// The start of the first minute (ms since the epoch, Redis's clock).
    pub from: f64,
    /// How many minutes each series holds.
    pub minutes: u32,
    /// Messages stored on the schedule per minute: pushed, requeued from the dead letters, migrated.
    pub pushed: Vec<f64>,
    /// Messages published (and acknowledged) per minute.
    pub published: Vec<f64>,
    /// Failed publishes per minute.
    pub failed: Vec<f64>,
    /// Messages dead-lettered per minute.
    pub dead_lettered: Vec<f64>,
    /// Per topic with any count in the range.
    pub topics: BTreeMap<String, RetryHistorySeries>,
}

impl From<History> for RetryHistory {
    fn from(history: History) -> Self {
        let History {
            from,
            minutes,
            schedule,
            topics,
        } = history;
        // The schedule's series sit beside `from` and `minutes`, as the JSON flattened them.
        let RetryHistorySeries {
            pushed,
            published,
            failed,
            dead_lettered,
        } = schedule.into();
        RetryHistory {
            from: number(from),
            minutes,
            pushed,
            published,
            failed,
            dead_lettered,
            topics: topics
                .into_iter()
                .map(|(topic, series)| (topic, series.into()))
                .collect(),
        }
    }
}

/// What the listener reports to `onEvent`, told apart by `type`.
///
/// `onEvent` receives these through JSON (`serde`): the batches cross to the JavaScript thread as
/// one value; `types_test.rs` holds the JSON's keys to the declared ones.
#[napi(
    discriminant = "type",
    discriminant_case = "camelCase",
    object_from_js = false
)]
#[derive(serde::Serialize)]
#[serde(
    tag = "type",
    rename_all = "camelCase",
    rename_all_fields = "camelCase"
)]
pub enum RetryEvent {
    /// A due message was re-published.
    Retry {
        /// Its id in the schedule.
        id: String,
        /// The topic it was published to.
        topic: String,
        /// Its Kafka key.
        event: String,
        /// The `retryCount` it was published with.
        retry_count: f64,
        /// Milliseconds between its due time and the broker's ack.
        late_ms: f64,
    },
    /// A message ran out of retries (or was refused for good) and went to the dead letter queue.
    DeadLetter {
        /// Its id, also its field in the dead letter hash.
        id: String,
        /// The topic it was meant for.
        topic: String,
        /// Its Kafka key.
        event: String,
        /// The dead letter hash.
        dlq_name: String,
    },
    /// The dead letter queue holds more than `maxDeadLetters` (reported when it first passes the cap; nothing is trimmed).
    DeadLetterCap {
        /// The dead letter hash.
        dlq_name: String,
        /// How many dead letters it holds.
        count: f64,
        /// The cap.
        max: f64,
    },
    /// A topic's breaker opened: its due retries are held, a few probes go out every `probeIntervalMs` (docs/breaker.md).
    BreakerOpen {
        /// The topic.
        topic: String,
        /// Failures (retries that came back failed) in the window when it opened.
        failures: f64,
        /// Attempts (retries published) in the window when it opened.
        attempts: f64,
    },
    /// A topic's breaker closed: its probes went through (the held messages go out over `rampMs`), or `resume(topic)` closed it (`byHand`).
    BreakerClose {
        /// The topic.
        topic: String,
        /// How long it was open, ms (0 when closed by hand).
        open_ms: f64,
        /// Messages it held when it closed (0 when closed by hand).
        held: f64,
        /// Whether `resume(topic)` closed it.
        by_hand: bool,
    },
    /// Something failed; the listener carries on (a failed publish goes back on the schedule).
    Error {
        /// The error code.
        #[napi(ts_type = "ErrorCode")]
        code: String,
        /// What went wrong.
        message: String,
    },
}

impl From<&Event> for RetryEvent {
    fn from(event: &Event) -> Self {
        match event.clone() {
            Event::Retry {
                id,
                topic,
                event,
                retry_count,
                late_ms,
            } => RetryEvent::Retry {
                id,
                topic,
                event,
                retry_count: number(retry_count),
                late_ms: number(late_ms),
            },
            Event::DeadLetter {
                id,
                topic,
                event,
                dlq_name,
            } => RetryEvent::DeadLetter {
                id,
                topic,
                event,
                dlq_name,
            },
            Event::DeadLetterCap {
                dlq_name,
                count,
                max,
            } => RetryEvent::DeadLetterCap {
                dlq_name,
                count: number(count),
                max: number(max),
            },
            Event::BreakerOpen {
                topic,
                failures,
                attempts,
            } => RetryEvent::BreakerOpen {
                topic,
                failures: number(failures),
                attempts: number(attempts),
            },
            Event::BreakerClose {
                topic,
                open_ms,
                held,
                by_hand,
            } => RetryEvent::BreakerClose {
                topic,
                open_ms: number(open_ms),
                held: number(held),
                by_hand,
            },
            Event::Error { code, message } => RetryEvent::Error { code, message },
        }
    }
}
