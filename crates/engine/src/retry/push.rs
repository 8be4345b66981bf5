//! Storing failed messages: `push`, `pushMany` and the detached push the JavaScript layer batches
//! its promises over; each is validated, given its id, delay and shard, then handed to its
//! schedule's batcher.

use super::RetryCore;
use crate::error::{Result, RetryError};
use crate::message::backoff::random_unit;
use crate::message::ids::{message_id, shard_index};
use crate::message::options::RetryOptions;
use crate::message::payload;
use crate::store::entry::{Entry, ErrorInfo};
use crate::store::schedule::{PushDone, PushMessage};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Called once with the failed pushes of a group (`push_group`), each with its index in the
/// group; empty when every push was stored (or was a redelivery).
pub type GroupDone = Box<dyn FnOnce(Vec<(u32, RetryError)>) + Send>;

/// The pushes of one `push_group` call still waiting for their outcome.
struct Group {
    remaining: AtomicUsize,
    /// The earliest due time stored, `u64::MAX` while none: the listener is woken once per group.
    earliest: AtomicU64,
    failures: Mutex<Vec<(u32, RetryError)>>,
    done: Mutex<Option<GroupDone>>,
    core: Arc<RetryCore>,
}

impl Group {
    /// Records one push's outcome; the last one reports the group.
    fn finish(&self, index: u32, outcome: Result<Option<u64>>) {
        match outcome {
            Ok(Some(due)) => {
                self.earliest.fetch_min(due, Ordering::AcqRel);
            }
            Ok(None) => {}
            Err(err) => self
                .failures
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((index, err)),
        }
        if self.remaining.fetch_sub(1, Ordering::AcqRel) != 1 {
            return;
        }
        let earliest = self.earliest.load(Ordering::Acquire);
        self.core
            .after_push((earliest != u64::MAX).then_some(earliest));
        let failures =
            std::mem::take(&mut *self.failures.lock().unwrap_or_else(|p| p.into_inner()));
        if let Some(done) = self.done.lock().unwrap_or_else(|p| p.into_inner()).take() {
            done(failures);
        }
    }
}

/// One message handed to `pushToQueue`.
#[derive(Debug, Clone, PartialEq)]
pub struct PushRequest {
    /// Topic to re-publish to.
    pub topic: String,
    /// Kafka key (`event`).
    pub event: String,
    /// Payload JSON text.
    pub value: String,
    /// Validated retry options.
    pub options: RetryOptions,
    /// Why it failed, when the consumer said.
    pub error: Option<ErrorInfo>,
    /// The caller's own headers (every option the package does not interpret), checked against
    /// the limits in `headers`.
    pub extra: Vec<crate::message::headers::Header>,
}

impl PushRequest {
    /// The entry the schedule stores for this request, as its `retry_count`-th retry after
    /// `waited_ms`; its due time is written by the script that stores it, from Redis's clock.
    pub(crate) fn into_entry(self, retry_count: u64, waited_ms: u64) -> Entry {
        Entry {
            topic: self.topic,
            event: self.event,
            value: self.value,
            delay: self.options.delay_text,
            max_retry: self.options.max_retry,
            retry_count,
            due_at: 0,
            first_failed_at: self.options.first_failed_at,
            last_error: self.error,
            waited_ms: Some(waited_ms),
            extra: self.extra,
        }
    }
}

impl RetryCore {
    /// Stores one failed message for a later attempt. Resolves only once Redis has it. The stored
    /// `retryCount` is the given one + 1. Returns `false` when the same `msgId` and `retryCount`
    /// was already pushed (a consumer redelivery) and nothing new was stored.
    pub async fn push(&self, request: PushRequest) -> Result<bool> {
        let (shard, message) = self.prepare_push(request)?;
        self.check_shards().await?;
        let stored = self.schedules[shard].push(message).await?;
        self.after_push(stored);
        Ok(stored.is_some())
    }

    /// `push` without a future: `done` gets the same outcome from a runtime thread. Must be
    /// called inside a tokio runtime context. It lets the JavaScript layer resolve many promises
    /// per wake-up of the JS thread instead of paying a task and a wake-up per push.
    pub fn push_detached(self: &Arc<Self>, request: PushRequest, done: PushDone) {
        let since = Instant::now();
        match self.prepare_push(request) {
            Err(err) => done(Err(err)),
            Ok((shard, message)) => self.after_shard_check(move |core, checked| match checked {
                Err(err) => done(Err(err)),
                Ok(()) => core.push_checked(shard, message, since, done),
            }),
        }
    }

    /// Many `push_detached` calls in one (the pushes one tick of JavaScript gathered): each
    /// request is validated and stored exactly as `push_detached` does it, through the same
    /// batchers, and `done` gets, once every push has its outcome, the failed ones by index (an
    /// empty list when all were stored or were redeliveries). A bad request fails alone. `since`
    /// is when the first of them was made: the Redis timeout counts from then for all of them.
    /// Must be called inside a tokio runtime context.
    pub fn push_group(
        self: &Arc<Self>,
        requests: Vec<Result<PushRequest>>,
        since: Instant,
        done: GroupDone,
    ) {
        let mut failures = Vec::new();
        let mut prepared = Vec::with_capacity(requests.len());
        for (index, request) in requests.into_iter().enumerate() {
            match request.and_then(|request| self.prepare_push(request)) {
                Ok((shard, message)) => prepared.push((index as u32, shard, message)),
                Err(err) => failures.push((index as u32, err)),
            }
        }
        if prepared.is_empty() {
            return done(failures);
        }
        let group = Arc::new(Group {
            remaining: AtomicUsize::new(prepared.len()),
            earliest: AtomicU64::new(u64::MAX),
            failures: Mutex::new(failures),
            done: Mutex::new(Some(done)),
            core: self.clone(),
        });
        self.after_shard_check(move |core, checked| {
            for (index, shard, message) in prepared {
                if let Err(err) = &checked {
                    group.finish(index, Err(err.clone()));
                    continue;
                }
                let group = group.clone();
                core.schedules[shard].push_detached(
                    message,
                    since,
                    Box::new(move |outcome| group.finish(index, outcome)),
                );
            }
        });
    }

    /// Runs `then` once this instance's shard count has been checked: at once after the first
    /// check, else from a task that waits for it (the first pushes of an instance).
    fn after_shard_check(
        self: &Arc<Self>,
        then: impl FnOnce(&Arc<Self>, Result<()>) + Send + 'static,
    ) {
        if self.shards_checked.initialized() {
            return then(self, Ok(()));
        }
        let core = self.clone();
        tokio::spawn(async move {
            let checked = core.check_shards().await;
            then(&core, checked)
        });
    }

    /// Stores a batch of failed messages (`pushMany`): every request is validated first, and an
    /// invalid one fails the whole batch with its index in the message, nothing stored. Then each
    /// is stored exactly as `push` stores it (same id, so a redelivered batch is stored once),
    /// through the same batchers, so a batch shares script calls with concurrent pushes. Resolves
    /// once Redis holds every message, to how many were newly stored (the others were
    /// redeliveries). A Redis failure rejects the batch; some messages may be stored by then, and
    /// pushing the batch again stores each message with a `msgId` once.
    pub async fn push_many(&self, requests: Vec<PushRequest>) -> Result<usize> {
        let since = Instant::now();
        self.ensure_open()?;
        let prepared = requests
            .into_iter()
            .enumerate()
            .map(|(index, request)| self.prepare_push(request).map_err(|e| e.in_item(index)))
            .collect::<Result<Vec<_>>>()?;
        if prepared.is_empty() {
            return Ok(0);
        }
        self.check_shards().await?;
        let total = prepared.len();
        // One channel for the whole batch instead of a future per message: each outcome is a send.
        let (sender, mut outcomes) = tokio::sync::mpsc::unbounded_channel();
        for (shard, message) in prepared {
            let sender = sender.clone();
            self.schedules[shard].push_detached(
                message,
                since,
                Box::new(move |outcome| {
                    let _ = sender.send(outcome);
                }),
            );
        }
        drop(sender);
        let (mut answered, mut stored, mut failed) = (0, 0, 0);
        let (mut earliest, mut failure) = (None::<u64>, None);
        while let Some(outcome) = outcomes.recv().await {
            answered += 1;
            match outcome {
                Ok(Some(due)) => {
                    stored += 1;
                    earliest = Some(earliest.map_or(due, |e| e.min(due)));
                }
                Ok(None) => {}
                Err(err) => {
                    failed += 1;
                    failure.get_or_insert(err);
                }
            }
        }
        self.after_push(earliest);
        if answered < total && failure.is_none() {
            failure = Some(RetryError::new(
                crate::error::ErrorCode::Internal,
                "the push batcher stopped",
            ));
        }
        match failure {
            None => Ok(stored),
            Some(mut err) => {
                err.message = format!(
                    "pushMany could not store every item ({} of {total} failed): {}",
                    failed + (total - answered),
                    err.message
                );
                Err(err)
            }
        }
    }

    /// Hands a push whose instance passed the shard count check to its schedule's batcher.
    fn push_checked(
        self: &Arc<Self>,
        shard: usize,
        message: PushMessage,
        since: Instant,
        done: PushDone,
    ) {
        let core = self.clone();
        self.schedules[shard].push_detached(
            message,
            since,
            Box::new(move |result| {
                if let Ok(stored) = result {
                    core.after_push(stored);
                }
                done(result)
            }),
        );
    }

    /// Validates a push and builds what the schedule stores: the shard and the message.
    fn prepare_push(&self, request: PushRequest) -> Result<(usize, PushMessage)> {
        self.ensure_open()?;
        if request.topic.is_empty() {
            return Err(RetryError::invalid_arg(
                "topic must be a non-empty string, got \"\"",
            ));
        }
        let msg_id = payload::validate(&request.value)?;
        crate::message::headers::check_limits(&request.extra)?;
        let retry_count = request.options.retry_count + 1;
        // An exhausted message is due now: the listener dead-letters it right away instead of
        // after one more delay (the dead letter hash name belongs to the listener).
        let exhausted = retry_count > request.options.max_retry;
        let waited = if exhausted {
            0
        } else {
            let base = request.options.delay_ms;
            self.config
                .backoff
                .delay_ms(base, retry_count, random_unit())
        };
        let id = message_id(&request.topic, msg_id.as_deref(), retry_count);
        let entry = request.into_entry(retry_count, waited);
        // Without a `firstFailedAt` this is the first failure: it failed when pushed, a time the
        // script's clock gives (see `Entry::encode_after_due`).
        let text = entry.encode_after_due(entry.first_failed_at.is_none());
        let shard = shard_index(&id, self.schedules.len());
        let message = PushMessage {
            id,
            delay_ms: waited,
            entry: text,
            dedupe: msg_id.is_some(),
            topic: entry.topic,
        };
        Ok((shard, message))
    }

    /// `stored`: the pushed message's due time when it was stored.
    pub(super) fn after_push(&self, stored: Option<u64>) {
        self.report_settings_warning();
        if let Some(due) = stored {
            self.wake.pushed(due);
        }
    }
}
