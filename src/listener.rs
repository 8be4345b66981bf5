//! The listener loop: claim what is due, publish it (or dead-letter it), then acknowledge or
//! release it, and sleep exactly until the next message is due.

use crate::error::{ErrorCode, Result, RetryError};
use crate::events::{Event, Observer};
use crate::payload::with_fresh_msg_id;
use crate::publisher::{Outgoing, Publisher};
use crate::registry::{get_or_make, registry, Registry};
use crate::stats::Counters;
use crate::store::dead_letters::DeadLetters;
use crate::store::entry::{DeadLetter, Entry, ErrorInfo};
use crate::store::schedule::{Claim, Schedule};
use crate::store::signal;
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify, Semaphore};
use tokio::task::JoinSet;

/// The earliest time the first failed publish is retried; doubles per consecutive failure.
const PUBLISH_BACKOFF_MIN: Duration = Duration::from_millis(500);
/// The longest wait between publish attempts while the broker (or JS producer) keeps failing.
const PUBLISH_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Claimed batches publishing at once per listener.
const BATCHES_IN_FLIGHT: usize = 4;
/// Longest pause after a failed claim (Redis down) before trying again.
const CLAIM_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// How a listener is told that something due earlier than its planned wake-up was pushed.
#[derive(Default)]
pub struct Wake {
    notify: Notify,
    planned: AtomicU64,
}

/// Wake-ups per schedule (Redis URL, key prefix), so a push from any instance in this process
/// wakes the listener of another instance on the same schedule.
static WAKES: Registry<(String, String), Wake> = registry();

impl Wake {
    /// The wake-up of the schedule `key_prefix` on `redis_url` in this process.
    pub fn for_schedule(redis_url: &str, key_prefix: &str) -> Arc<Wake> {
        let key = (redis_url.to_string(), key_prefix.to_string());
        get_or_make(&WAKES, key, Wake::default)
    }

    /// Called when a message due at `due_ms` (Redis's clock) was pushed, here or in another
    /// process: wakes the listener when that is before its planned wake-up, so messages with
    /// short delays fire on time.
    pub fn pushed(&self, due_ms: u64) {
        if due_ms < self.planned.load(Ordering::Acquire) {
            self.notify.notify_waiters();
        }
    }

    /// Wakes the listener whatever it planned (something is due now).
    pub fn notify(&self) {
        self.notify.notify_waiters();
    }
}

/// Everything one listener loop needs.
pub struct Listener {
    /// The schedule shards it serves, each claimed in turn so all are served fairly.
    pub schedules: Vec<Schedule>,
    /// Where due messages go.
    pub publisher: Arc<dyn Publisher>,
    /// The dead letter store.
    pub dead_letters: DeadLetters,
    /// Name of the dead letter hash.
    pub dlq_name: String,
    /// Kafka topic dead letters are also published to.
    pub dead_letter_topic: Option<String>,
    /// The schedule's key prefix, recorded in dead letters so a requeue finds its way back.
    pub key_prefix: String,
    /// Above this many dead letters, report it.
    pub max_dead_letters: Option<u64>,
    /// Refusals retrying cannot fix (see `publisher::is_permanent`) before a message is
    /// dead-lettered.
    pub max_publish_failures: u64,
    /// Most messages per claim.
    pub batch_size: usize,
    /// Lease of a claim.
    pub lease: Duration,
    /// Longest sleep when nothing is due.
    pub poll_interval: Duration,
    /// Wake-ups from pushes in this process.
    pub wake: Arc<Wake>,
    /// Events and warnings.
    pub observer: Arc<dyn Observer>,
    /// Counters for stats.
    pub counters: Arc<Counters>,
    /// Consecutive failed publish batches, for the backoff of rescheduled messages.
    pub publish_failures: AtomicU32,
}

impl Listener {
    /// Runs until `stop` turns true, then waits for the batches being published: each is
    /// finished (published and acknowledged, or released) before this returns, so close() leaves
    /// nothing claimed, unless a publish stays pending for `lease` after the stop (see `process`).
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let this = Arc::new(self);
        let signals = tokio::spawn(this.clone().hear_pushes(stop.clone()));
        // Several claimed batches publish at once, so the broker's round trips overlap instead of
        // a batch waiting for the slowest ack of the one before; each holds a slot.
        let slots = Arc::new(Semaphore::new(BATCHES_IN_FLIGHT));
        let mut publishing = JoinSet::new();
        this.claim_loop(&mut stop, &slots, &mut publishing).await;
        // close(): every claimed batch finishes (published and acknowledged, or put back).
        while publishing.join_next().await.is_some() {}
        let _ = signals.await;
    }

    /// Wakes this listener when a push in any process announces a message due before its
    /// planned wake-up (see `store::signal`).
    async fn hear_pushes(self: Arc<Self>, stop: watch::Receiver<bool>) {
        let redis = self.schedules[0].redis();
        let channels = self
            .schedules
            .iter()
            .map(|s| s.keys().wake.clone())
            .collect();
        let wake = self.wake.clone();
        signal::listen(
            redis.shared(),
            channels,
            |due| wake.pushed(due),
            |err| self.report_error(&err),
            stop,
        )
        .await;
    }

    async fn claim_loop(
        self: &Arc<Self>,
        stop: &mut watch::Receiver<bool>,
        slots: &Arc<Semaphore>,
        publishing: &mut JoinSet<()>,
    ) {
        let mut claim_failures: u32 = 0;
        while !*stop.borrow() {
            let notified = self.wake.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            // Until the claims are done any push may be due before our next wake-up: hear them all.
            self.wake.planned.store(u64::MAX, Ordering::Release);
            // Every time below is Redis's clock, turned into a moment on this host's monotonic
            // clock per claim, so the host's wall clock never matters.
            let mut wake_at = Instant::now() + self.poll_interval;
            let mut planned = u64::MAX;
            let mut any_full = false;
            let mut any_failed = false;
            for schedule in &self.schedules {
                let slot = tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => return,
                    },
                    _ = stop.changed() => return,
                };
                // Claimed only once a slot is free: a claim starts its lease, and a batch that
                // waited for a slot would spend its lease waiting.
                let asked = Instant::now();
                match schedule
                    .claim(self.batch_size, self.lease, self.poll_interval)
                    .await
                {
                    Ok(claim) => {
                        any_full |= claim.items.len() >= self.batch_size;
                        if let Some(next) = claim.next_wake {
                            planned = planned.min(next);
                            let wait = Duration::from_millis(next.saturating_sub(claim.now));
                            wake_at = wake_at.min(asked + wait);
                        }
                        if !claim.items.is_empty() {
                            let this = self.clone();
                            let schedule = schedule.clone();
                            let stop = stop.clone();
                            publishing.spawn(async move {
                                this.process(&schedule, claim, asked, stop).await;
                                drop(slot);
                            });
                        }
                    }
                    Err(err) => {
                        any_failed = true;
                        self.report_error(&err);
                    }
                }
            }
            // Reap finished batches so the set does not grow.
            while publishing.try_join_next().is_some() {}
            self.observer.flush();
            if any_failed {
                claim_failures = claim_failures.saturating_add(1);
                let pause = (Duration::from_millis(100) * 2u32.saturating_pow(claim_failures))
                    .min(CLAIM_BACKOFF_MAX);
                wake_at = wake_at.min(Instant::now() + pause);
            } else {
                claim_failures = 0;
                if any_full {
                    continue;
                }
            }
            // A push due before `planned` wakes us (in-process, or announced by another).
            let planned = self.schedules[0].now_ms().map_or(planned, |now| {
                let poll_end = now + self.poll_interval.as_millis() as u64;
                planned.min(poll_end)
            });
            self.wake.planned.store(planned, Ordering::Release);
            tokio::select! {
                _ = tokio::time::sleep_until(wake_at.into()) => {}
                _ = &mut notified => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Publishes (or dead-letters) one claimed batch, then acknowledges what was published and
    /// releases what failed. `claimed_at`: when the claim was asked for, on this host's monotonic
    /// clock (the lease ran from no earlier than that).
    ///
    /// A publish never outlives its lease: while publishes are pending, the lease of their
    /// messages is renewed, so no other listener claims and publishes them while the first
    /// publish may still succeed, however slow the producer. After a stop (close()), pending
    /// publishes get `lease` more; what is still pending then goes back on the schedule, so
    /// close() leaves nothing leased (a publish that still completes after that is the one case
    /// where a message can go out twice).
    async fn process(
        &self,
        schedule: &Schedule,
        claim: Claim,
        claimed_at: Instant,
        mut stop: watch::Receiver<bool>,
    ) {
        let Claim {
            mut deadline,
            now,
            items,
            ..
        } = claim;
        let mut lease_ends = claimed_at + Duration::from_millis(deadline.saturating_sub(now));
        let mut outcomes: Vec<Option<Result<()>>> = (0..items.len()).map(|_| None).collect();
        let mut pending = items.len();
        let mut gave_up = false;
        {
            let mut publishing: FuturesUnordered<_> = items
                .iter()
                .enumerate()
                .map(|(i, (id, json))| async move { (i, self.handle(id, json).await) })
                .collect();
            let renew_every = self.lease / 3;
            // Timers made once per batch, not per finished publish: this loop turns once per
            // message of the batch.
            let renew = tokio::time::sleep(renew_every);
            tokio::pin!(renew);
            let give_up = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
            tokio::pin!(give_up);
            let mut stopping = false;
            let mut slow_reported = false;
            loop {
                if !stopping && *stop.borrow() {
                    stopping = true;
                    give_up.as_mut().reset((Instant::now() + self.lease).into());
                }
                tokio::select! {
                    // Finished publishes first: the common case costs no timer or channel poll.
                    biased;
                    next = publishing.next() => match next {
                        Some((i, outcome)) => {
                            outcomes[i] = Some(outcome);
                            pending -= 1;
                        }
                        None => break,
                    },
                    _ = &mut renew => {
                        let waiting: Vec<String> = items
                            .iter()
                            .zip(&outcomes)
                            .filter(|(_, outcome)| outcome.is_none())
                            .map(|((id, _), _)| id.clone())
                            .collect();
                        if !slow_reported && Instant::now() >= claimed_at + self.lease {
                            slow_reported = true;
                            self.report_error(&RetryError::new(
                                ErrorCode::KafkaPublish,
                                format!(
                                    "{} publishes are still pending after leaseMs ({} ms); their lease is renewed until they finish (first: {:?})",
                                    waiting.len(),
                                    self.lease.as_millis(),
                                    waiting.first().map(String::as_str).unwrap_or(""),
                                ),
                            ));
                        }
                        let asked = Instant::now();
                        let next_renewal = match schedule.renew(deadline, self.lease, &waiting).await {
                            Ok((renewed_until, renewed)) => {
                                deadline = renewed_until;
                                lease_ends = asked + self.lease;
                                if (renewed as usize) < waiting.len() {
                                    self.report_error(&RetryError::new(
                                        ErrorCode::Internal,
                                        format!(
                                            "{} of {} pending messages had lost their lease before it was renewed; another listener may publish them too",
                                            waiting.len() - renewed as usize,
                                            waiting.len()
                                        ),
                                    ));
                                }
                                renew_every
                            }
                            Err(err) => {
                                self.report_error(&err);
                                Duration::from_millis(200).min(renew_every)
                            }
                        };
                        renew.as_mut().reset((Instant::now() + next_renewal).into());
                    }
                    _ = &mut give_up, if stopping => {
                        gave_up = true;
                        break;
                    }
                    // Turns the loop once, to see the stop at its top; a dropped sender stops too.
                    changed = stop.changed(), if !stopping => {
                        if changed.is_err() {
                            stopping = true;
                            give_up
                                .as_mut()
                                .reset((Instant::now() + self.lease).into());
                        }
                    }
                }
            }
        }
        if gave_up {
            self.report_error(&RetryError::new(
                ErrorCode::KafkaPublish,
                format!(
                    "closing with {pending} publishes still pending leaseMs ({} ms) after close(): their messages go back on the schedule",
                    self.lease.as_millis()
                ),
            ));
        }
        let mut done = Vec::with_capacity(items.len());
        let mut failed = Vec::new();
        // Refused by the broker for the message or topic itself (see `publisher::is_permanent`).
        let mut refused = Vec::new();
        for ((id, stored), outcome) in items.into_iter().zip(outcomes) {
            match outcome {
                Some(Ok(())) => done.push(id),
                Some(Err(err)) => {
                    self.report_error(&err);
                    if err.permanent {
                        refused.push((id, stored, err));
                    } else {
                        failed.push(id);
                    }
                }
                None => failed.push(id),
            }
        }
        if !done.is_empty() {
            self.publish_failures.store(0, Ordering::Relaxed);
            self.ack_within_lease(schedule, &done, lease_ends).await;
        }
        if !failed.is_empty() || !refused.is_empty() {
            self.counters
                .publish_failures
                .fetch_add((failed.len() + refused.len()) as u64, Ordering::Relaxed);
            let failures = self
                .publish_failures
                .fetch_add(1, Ordering::Relaxed)
                .saturating_add(1);
            let backoff = (PUBLISH_BACKOFF_MIN * 2u32.saturating_pow(failures.min(16) - 1))
                .min(PUBLISH_BACKOFF_MAX);
            // A failed publish goes back on the schedule with its retry count unchanged; if even
            // that fails (Redis down), the lease runs out and the message is claimed again.
            if let Err(err) = schedule.release(deadline, backoff, &failed).await {
                self.report_error(&err);
            }
            if !refused.is_empty() {
                Box::pin(self.refused(schedule, deadline, backoff, refused, lease_ends)).await;
            }
        }
    }

    /// Messages the broker refused with an error retrying cannot fix: each refusal is counted in
    /// Redis (`release.lua`, beside the schedule, so the count survives restarts and is shared by
    /// every listener); below `maxPublishFailures` they go back on the schedule like any failed
    /// publish, at it they are dead-lettered with the broker's error, then acknowledged.
    async fn refused(
        &self,
        schedule: &Schedule,
        deadline: u64,
        backoff: Duration,
        refused: Vec<(String, String, RetryError)>,
        lease_ends: Instant,
    ) {
        let ids: Vec<String> = refused.iter().map(|(id, _, _)| id.clone()).collect();
        let reached = match schedule
            .release_counting(deadline, backoff, self.max_publish_failures, &ids)
            .await
        {
            Ok((_, reached)) => reached,
            Err(err) => return self.report_error(&err),
        };
        let mut dead = Vec::with_capacity(reached.len());
        let mut kept = Vec::new();
        for (id, stored, err) in refused {
            if !reached.contains(&id) {
                continue;
            }
            match self.dead_letter_refused(&id, &stored, &err).await {
                Ok(()) => dead.push(id),
                Err(err) => {
                    self.report_error(&err);
                    kept.push(id);
                }
            }
        }
        self.ack_within_lease(schedule, &dead, lease_ends).await;
        // Dead-lettering failed (Redis, or the dead letter topic down): back on the schedule,
        // uncounted; its count stays at the limit, so the next refusal dead-letters it at once.
        if let Err(err) = schedule.release(deadline, backoff, &kept).await {
            self.report_error(&err);
        }
    }

    /// Dead-letters a message refused `maxPublishFailures` times, the broker's error as its
    /// `error`, and says why in an error event.
    async fn dead_letter_refused(&self, id: &str, stored: &str, err: &RetryError) -> Result<()> {
        let mut entry = Entry::decode(stored).map_err(|cause| {
            RetryError::new(ErrorCode::Internal, format!("entry {id:?} is not readable"))
                .caused_by(cause)
        })?;
        entry.last_error = Some(ErrorInfo {
            message: err.to_string(),
            name: "KafkaPublishError".to_string(),
        });
        let topic = entry.topic.clone();
        self.dead_letter(id, entry).await?;
        self.report_error(
            &RetryError::new(
                ErrorCode::KafkaPublish,
                format!(
                    "message {id:?} for topic {topic:?} was refused by the broker {} times with an error retrying cannot fix (maxPublishFailures); dead-lettered into {:?}",
                    self.max_publish_failures, self.dlq_name
                ),
            )
            .caused_by(err),
        );
        Ok(())
    }

    /// Publishes or dead-letters one claimed message. `Ok` means it may be deleted.
    ///
    /// One of these runs per message of a batch, so its future is kept small: the rare paths
    /// (an unreadable entry, a dead letter) await their Redis calls in boxed futures of their
    /// own. Inlined, their state made every message's future large, and copying it into its task
    /// showed up in profiles of the fire path (`BENCHMARKS.md`).
    async fn handle(&self, id: &str, stored: &str) -> Result<()> {
        let entry = match Entry::decode(stored) {
            Ok(entry) => entry,
            Err(err) => return Box::pin(self.unreadable(id, stored, err)).await,
        };
        if entry.exhausted() {
            return Box::pin(self.dead_letter(id, entry)).await;
        }
        let fresh_id = crate::ids::random_uuid().to_string();
        // Only an `onEvent` handler sees Retry events: without one, no copies per message.
        let names = self
            .observer
            .wants_events()
            .then(|| (entry.topic.clone(), entry.event.clone()));
        let (due_at, retry_count) = (entry.due_at, entry.retry_count);
        let message = Outgoing {
            value: with_fresh_msg_id(&entry.value, &fresh_id),
            headers: entry.headers(),
            extra: entry.extra,
            topic: entry.topic,
            key: entry.event,
        };
        self.publisher.publish(message).await?;
        self.counters.published.fetch_add(1, Ordering::Relaxed);
        if let Some((topic, event)) = names {
            self.observer.on_event(&Event::Retry {
                id: id.to_string(),
                topic,
                event,
                retry_count,
                late_ms: self.redis_now().saturating_sub(due_at),
            });
        }
        Ok(())
    }

    /// An entry that cannot be read: not ours to drop, so its raw text goes to the dead letter
    /// queue for a human.
    async fn unreadable(&self, id: &str, stored: &str, err: String) -> Result<()> {
        self.report_error(
            &RetryError::new(
                ErrorCode::Internal,
                format!("entry {id:?} is not readable; dead-lettering it as is"),
            )
            .caused_by(err),
        );
        let died_at = self.redis_now();
        let record = serde_json::json!({ "id": id, "raw": stored, "diedAt": died_at });
        self.dead_letters
            .write(&self.dlq_name, id, &record.to_string(), died_at)
            .await
    }

    /// An entry past its retries: to `deadLetterTopic` (if set), then to the dead letter hash.
    async fn dead_letter(&self, id: &str, entry: Entry) -> Result<()> {
        let record = DeadLetter::of(id, &entry, self.redis_now(), &self.key_prefix);
        if let Some(topic) = &self.dead_letter_topic {
            // Published first: should it fail, the message stays scheduled and is tried again.
            // Unless the dead letter topic refuses it for good (the message is larger than its
            // `max.message.bytes` too, the topic is missing or not writable): retrying would
            // keep it scheduled forever, so it goes to the hash only, and an error says so.
            match self
                .publisher
                .publish(dead_letter_message(topic, &record))
                .await
            {
                Ok(()) => {}
                Err(err) if err.permanent => self.report_error(
                    &RetryError::new(
                        ErrorCode::KafkaPublish,
                        format!(
                            "the dead letter topic {topic:?} refused message {id:?} with an error retrying cannot fix; it is dead-lettered into {:?} only",
                            self.dlq_name
                        ),
                    )
                    .caused_by(err),
                ),
                Err(err) => return Err(err),
            }
        }
        let text = serde_json::to_string(&record).expect("a dead letter serializes");
        self.dead_letters
            .write(&self.dlq_name, id, &text, record.died_at)
            .await?;
        self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
        self.observer.on_event(&Event::DeadLetter {
            id: id.to_string(),
            topic: entry.topic,
            event: entry.event,
            dlq_name: self.dlq_name.clone(),
        });
        if let Some(max) = self.max_dead_letters {
            self.check_cap(max).await;
        }
        Ok(())
    }

    /// Reports once when the dead letter queue passes `max` (and again after it went back under).
    async fn check_cap(&self, max: u64) {
        match self.dead_letters.count(&self.dlq_name).await {
            Ok(count) if count > max => {
                if !self.counters.cap_exceeded.swap(true, Ordering::AcqRel) {
                    self.observer.on_event(&Event::DeadLetterCap {
                        dlq_name: self.dlq_name.clone(),
                        count,
                        max,
                    });
                }
            }
            Ok(_) => self.counters.cap_exceeded.store(false, Ordering::Release),
            Err(err) => self.report_error(&err),
        }
    }

    /// Acknowledges published ids, retrying while the lease lasts: giving up early would only
    /// make another listener publish them again.
    async fn ack_within_lease(&self, schedule: &Schedule, ids: &[String], lease_ends: Instant) {
        loop {
            match schedule.ack(ids).await {
                Ok(()) => return,
                Err(err) => {
                    self.report_error(&err);
                    if Instant::now() + Duration::from_millis(200) >= lease_ends {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Redis's clock now, as the last claim reported it (this host's clock before any claim).
    fn redis_now(&self) -> u64 {
        self.schedules[0]
            .now_ms()
            .unwrap_or_else(crate::clock::now_ms)
    }

    fn report_error(&self, err: &RetryError) {
        self.observer.on_event(&Event::from_error(err));
    }
}

/// The Kafka message of a dead letter: the original key and value, and headers saying where it
/// came from, how often it was tried, since when it failed, why, and when it died.
pub fn dead_letter_message(topic: &str, record: &DeadLetter) -> Outgoing {
    let mut headers = vec![
        ("originalTopic", record.topic.clone()),
        ("retryCount", record.options.retry_count.clone()),
        ("maxRetry", record.options.max_retry.clone()),
        ("diedAt", record.died_at.to_string()),
    ];
    if let Some(first) = record.first_failed_at {
        headers.push(("firstFailedAt", first.to_string()));
    }
    if let Some(error) = &record.error {
        headers.push(("lastError", error.message.clone()));
        headers.push(("lastErrorName", error.name.clone()));
    }
    // The caller's own headers follow; these names are the package's and win.
    let extra = record
        .extra
        .iter()
        .filter(|h| !headers.iter().any(|(name, _)| *name == h.name))
        .cloned()
        .collect();
    Outgoing {
        topic: topic.to_string(),
        key: record.event.clone(),
        value: record.value.clone(),
        headers,
        extra,
    }
}
