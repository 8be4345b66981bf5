//! The listener loop: claim what is due, publish it (or dead-letter it), then acknowledge or
//! release it, and sleep exactly until the next message is due.

use crate::error::{ErrorCode, Result, RetryError};
use crate::events::{Event, Observer};
use crate::payload::with_fresh_msg_id;
use crate::publisher::{Outgoing, Publisher};
use crate::registry::{get_or_make, registry, Registry};
use crate::stats::Counters;
use crate::store::dead_letters::DeadLetters;
use crate::store::entry::{topic_of, DeadLetter, Entry, ErrorInfo};
use crate::store::schedule::signal;
use crate::store::schedule::{Acked, Claim, Schedule};
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
    /// Held while the dead letter count is read and compared with `max_dead_letters`: dead
    /// letters of one batch are written concurrently, and a count read before another's write
    /// must not reset the "over the cap" flag after that one set it (the cap was then reported
    /// twice).
    pub cap_check: tokio::sync::Mutex<()>,
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
    /// planned wake-up (see `store::schedule::signal`).
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

    /// Publishes (or dead-letters) one claimed batch, settling each message as its publish
    /// finishes: acknowledged when published, released to its backoff when it failed, counted
    /// (and dead-lettered at `maxPublishFailures`) when the broker refused it for good.
    /// `claimed_at`: when the claim was asked for, on this host's monotonic clock (the lease ran
    /// from no earlier than that).
    ///
    /// The lease is per message, not per batch: a finished publish is settled in the next small
    /// group (whatever else finished meanwhile, one Redis call per group), while the publishes
    /// still pending, and the finished ones waiting for their group, get their lease renewed, so
    /// no message is claimed by another listener however slow the rest of its batch is. Each
    /// message keeps its own token (the lease deadline it holds in Redis), so a release, count or
    /// renewal after any number of renewals finds it. A settle and a renewal never run on the
    /// same ids at once: a renewal covers only messages not being settled, and a settle waits
    /// for a renewal in flight, whose new tokens it then uses.
    ///
    /// After a stop (close()), pending publishes get `lease` more; what is still pending then
    /// goes back on the schedule, so close() leaves nothing leased (a publish that still
    /// completes after that is the one case where a message can go out twice).
    async fn process(
        &self,
        schedule: &Schedule,
        claim: Claim,
        claimed_at: Instant,
        mut stop: watch::Receiver<bool>,
    ) {
        let Claim {
            deadline,
            now,
            items,
            ..
        } = claim;
        let first_end = claimed_at + Duration::from_millis(deadline.saturating_sub(now));
        let count = items.len();
        let mut tokens = vec![deadline; count];
        let mut lease_ends = vec![first_end; count];
        let mut stages = vec![Stage::Publishing; count];
        let mut queued: Vec<(usize, Settle)> = Vec::new();
        let mut settled = 0;
        let mut backoff: Option<Duration> = None;
        let mut publishing: FuturesUnordered<_> = items
            .iter()
            .enumerate()
            .map(|(i, (id, json))| async move { (i, self.handle(id, json).await) })
            .collect();
        // Refused messages that reached `maxPublishFailures`, being dead-lettered (rare: boxed).
        let mut dead_lettering: FuturesUnordered<Pending<'_, (usize, Result<()>)>> =
            FuturesUnordered::new();
        let mut settling: Option<Pending<'_, Vec<(usize, RetryError)>>> = None;
        let mut renewing: Option<Pending<'_, Renewed>> = None;
        let renew_every = self.lease / 3;
        // Timers made once per batch, not per finished publish: this loop turns about once per
        // message of the batch.
        let renew = tokio::time::sleep(renew_every);
        tokio::pin!(renew);
        let give_up = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(give_up);
        let mut stopping = false;
        let mut slow_reported = false;
        while settled < count || settling.is_some() || renewing.is_some() {
            if !stopping && *stop.borrow() {
                stopping = true;
                give_up.as_mut().reset((Instant::now() + self.lease).into());
            }
            let can_settle = !queued.is_empty() && settling.is_none() && renewing.is_none();
            let publishes = !publishing.is_empty() || !dead_lettering.is_empty();
            tokio::select! {
                // Finished publishes first: a settle starts only once none is ready, so the
                // publishes that finish together are settled together.
                biased;
                Some((i, outcome)) = publishing.next(), if !publishing.is_empty() => {
                    let settle = match outcome {
                        Ok(dead_lettered) => Settle::Ack { published: true, dead_lettered },
                        Err(err) => {
                            self.report_error(&err);
                            if err.permanent { Settle::Count(err) } else { Settle::Release }
                        }
                    };
                    stages[i] = Stage::Queued;
                    queued.push((i, settle));
                }
                Some((i, outcome)) = dead_lettering.next(), if !dead_lettering.is_empty() => {
                    let settle = match outcome {
                        Ok(()) => Settle::Ack { published: false, dead_lettered: true },
                        // Dead-lettering failed (Redis, or the dead letter topic down): back on
                        // the schedule, uncounted; its count stays at the limit, so the next
                        // refusal dead-letters it at once.
                        Err(err) => {
                            self.report_error(&err);
                            Settle::Keep
                        }
                    };
                    stages[i] = Stage::Queued;
                    queued.push((i, settle));
                }
                _ = std::future::ready(()), if can_settle => {
                    let group = std::mem::take(&mut queued);
                    let fails = group
                        .iter()
                        .filter(|(_, s)| matches!(s, Settle::Release | Settle::Count(_)))
                        .count();
                    if fails > 0 {
                        self.counters
                            .publish_failures
                            .fetch_add(fails as u64, Ordering::Relaxed);
                    }
                    // One backoff step per batch with failures, however many groups settle them.
                    let delay = if group.iter().any(|(_, s)| !matches!(s, Settle::Ack { .. })) {
                        *backoff.get_or_insert_with(|| self.next_backoff())
                    } else {
                        Duration::ZERO
                    };
                    let group: Vec<Settling> = group
                        .into_iter()
                        .map(|(i, settle)| {
                            stages[i] = Stage::Settling;
                            Settling {
                                index: i,
                                id: items[i].0.clone(),
                                topic: topic_of(&items[i].1),
                                token: tokens[i],
                                lease_ends: lease_ends[i],
                                settle,
                            }
                        })
                        .collect();
                    settling = Some(Box::pin(self.settle(schedule, group, delay)));
                }
                reached = async { settling.as_mut().expect("guarded").await }, if settling.is_some() => {
                    settling = None;
                    for stage in stages.iter_mut().filter(|s| **s == Stage::Settling) {
                        *stage = Stage::Settled;
                        settled += 1;
                    }
                    // Refused `maxPublishFailures` times: still leased under their token, to be
                    // dead-lettered (renewed meanwhile like any pending publish).
                    for (i, err) in reached {
                        stages[i] = Stage::Publishing;
                        settled -= 1;
                        let (id, stored) = &items[i];
                        dead_lettering.push(Box::pin(async move {
                            (i, self.dead_letter_refused(id, stored, &err).await)
                        }));
                    }
                }
                _ = &mut renew => {
                    let mut next_renewal = renew_every;
                    if renewing.is_none() {
                        // Everything not being settled: pending publishes and finished ones
                        // waiting for their settle.
                        let waiting: Vec<usize> = (0..count)
                            .filter(|&i| matches!(stages[i], Stage::Publishing | Stage::Queued))
                            .collect();
                        if !slow_reported && publishes && Instant::now() >= claimed_at + self.lease {
                            slow_reported = true;
                            let pending: Vec<&str> = waiting
                                .iter()
                                .filter(|&&i| stages[i] == Stage::Publishing)
                                .map(|&i| items[i].0.as_str())
                                .collect();
                            self.report_error(&RetryError::new(
                                ErrorCode::KafkaPublish,
                                format!(
                                    "{} publishes are still pending after leaseMs ({} ms); their lease is renewed until they finish (first: {:?})",
                                    pending.len(),
                                    self.lease.as_millis(),
                                    pending.first().copied().unwrap_or(""),
                                ),
                            ));
                        }
                        if !waiting.is_empty() {
                            let groups = by_token(&waiting, &tokens, &items);
                            renewing = Some(Box::pin(self.renew(schedule, groups)));
                        }
                    } else {
                        next_renewal = Duration::from_millis(50).min(renew_every);
                    }
                    renew.as_mut().reset((Instant::now() + next_renewal).into());
                }
                renewed = async { renewing.as_mut().expect("guarded").await }, if renewing.is_some() => {
                    renewing = None;
                    let Renewed { asked, groups } = renewed;
                    let mut failed = false;
                    for (indexes, outcome) in groups {
                        match outcome {
                            Ok((token, kept)) => {
                                for &i in &indexes {
                                    tokens[i] = token;
                                    lease_ends[i] = asked + self.lease;
                                }
                                if (kept as usize) < indexes.len() {
                                    self.report_error(&RetryError::new(
                                        ErrorCode::Internal,
                                        format!(
                                            "{} of {} pending messages had lost their lease before it was renewed; another listener may publish them too",
                                            indexes.len() - kept as usize,
                                            indexes.len()
                                        ),
                                    ));
                                }
                            }
                            Err(err) => {
                                failed = true;
                                self.report_error(&err);
                            }
                        }
                    }
                    if failed {
                        let soon = Instant::now() + Duration::from_millis(200).min(renew_every);
                        if soon < renew.deadline().into_std() {
                            renew.as_mut().reset(soon.into());
                        }
                    }
                }
                _ = &mut give_up, if stopping && publishes => {
                    let pending = publishing.len() + dead_lettering.len();
                    self.report_error(&RetryError::new(
                        ErrorCode::KafkaPublish,
                        format!(
                            "closing with {pending} publishes still pending leaseMs ({} ms) after close(): their messages go back on the schedule",
                            self.lease.as_millis()
                        ),
                    ));
                    publishing.clear();
                    dead_lettering.clear();
                    for (i, stage) in stages.iter_mut().enumerate() {
                        if *stage == Stage::Publishing {
                            *stage = Stage::Queued;
                            queued.push((i, Settle::Release));
                        }
                    }
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

    /// The backoff of the failed publishes of one batch: doubles per consecutive batch with
    /// failures (reset by any published message).
    fn next_backoff(&self) -> Duration {
        let failures = self
            .publish_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        (PUBLISH_BACKOFF_MIN * 2u32.saturating_pow(failures.min(16) - 1)).min(PUBLISH_BACKOFF_MAX)
    }

    /// Renews the lease of `groups` (ids sharing a token), one `renew.lua` call per token.
    async fn renew(
        &self,
        schedule: &Schedule,
        groups: Vec<(Vec<usize>, u64, Vec<String>)>,
    ) -> Renewed {
        let asked = Instant::now();
        let mut out = Vec::with_capacity(groups.len());
        for (indexes, token, ids) in groups {
            out.push((indexes, schedule.renew(token, self.lease, &ids).await));
        }
        Renewed { asked, groups: out }
    }

    /// Settles one group of finished messages: acknowledges the published (and dead-lettered),
    /// releases the failed to their backoff and counts the refused, each with its own token.
    /// Returns the refused messages that reached `maxPublishFailures` (still leased under their
    /// token) with the broker's error, for the caller to dead-letter.
    async fn settle(
        &self,
        schedule: &Schedule,
        group: Vec<Settling>,
        delay: Duration,
    ) -> Vec<(usize, RetryError)> {
        let mut acks = Vec::new();
        let mut ack_ends: Option<Instant> = None;
        let mut releases: Vec<(bool, u64, (String, String))> = Vec::new();
        let mut counted: Vec<(u64, usize, (String, String), RetryError)> = Vec::new();
        for Settling {
            index,
            id,
            topic,
            token,
            lease_ends,
            settle,
        } in group
        {
            match settle {
                Settle::Ack {
                    published,
                    dead_lettered,
                } => {
                    if published {
                        self.publish_failures.store(0, Ordering::Relaxed);
                    }
                    ack_ends = Some(ack_ends.map_or(lease_ends, |e| e.min(lease_ends)));
                    acks.push(Acked {
                        id,
                        topic,
                        dead_lettered,
                    });
                }
                Settle::Release => releases.push((true, token, (id, topic))),
                Settle::Keep => releases.push((false, token, (id, topic))),
                Settle::Count(err) => counted.push((token, index, (id, topic), err)),
            }
        }
        if let Some(ends) = ack_ends {
            self.ack_within_lease(schedule, &acks, ends).await;
        }
        // A failed publish goes back on the schedule with its retry count unchanged; if even
        // that fails (Redis down), the lease runs out and the message is claimed again.
        // Failed publishes and kept ones apart: only the former count as failed in the history.
        for failed in [true, false] {
            let of_kind = releases
                .iter()
                .filter(|(f, _, _)| *f == failed)
                .map(|(_, token, pair)| (*token, pair.clone()))
                .collect();
            for (token, ids) in group_by_token(of_kind) {
                if let Err(err) = schedule.release(token, delay, failed, &ids).await {
                    self.report_error(&err);
                }
            }
        }
        if counted.is_empty() {
            return Vec::new();
        }
        // Each refusal is counted in Redis (`release.lua`, beside the schedule, so the count
        // survives restarts and is shared by every listener); below `maxPublishFailures` they go
        // back on the schedule like any failed publish, at it they stay leased under their token
        // for us to dead-letter with the broker's error, then acknowledge.
        let ids: Vec<(u64, (String, String))> = counted
            .iter()
            .map(|(t, _, pair, _)| (*t, pair.clone()))
            .collect();
        let mut reached = Vec::new();
        for (token, ids) in group_by_token(ids) {
            match schedule
                .release_counting(token, delay, self.max_publish_failures, true, &ids)
                .await
            {
                Ok((_, ids)) => reached.extend(ids),
                Err(err) => self.report_error(&err),
            }
        }
        counted
            .into_iter()
            .filter(|(_, _, (id, _), _)| reached.contains(id))
            .map(|(_, index, _, err)| (index, err))
            .collect()
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

    /// Publishes or dead-letters one claimed message. `Ok` means it may be deleted (`Ok(true)`:
    /// it was dead-lettered).
    ///
    /// One of these runs per message of a batch, so its future is kept small: the rare paths
    /// (an unreadable entry, a dead letter) await their Redis calls in boxed futures of their
    /// own. Inlined, their state made every message's future large, and copying it into its task
    /// showed up in profiles of the fire path (`BENCHMARKS.md`).
    async fn handle(&self, id: &str, stored: &str) -> Result<bool> {
        let entry = match Entry::decode(stored) {
            Ok(entry) => entry,
            Err(err) => {
                return Box::pin(self.unreadable(id, stored, err))
                    .await
                    .map(|()| true)
            }
        };
        if entry.exhausted() {
            return Box::pin(self.dead_letter(id, entry)).await.map(|()| true);
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
        Ok(false)
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
            .write(&self.dlq_name, id, &record.to_string(), died_at, None)
            .await
    }

    /// An entry past its retries: to the dead letter hash, then to `deadLetterTopic` (if set).
    ///
    /// The hash first: its write is what `waitReplicas` confirms, and a write the replicas did
    /// not confirm keeps the message scheduled, to be dead-lettered again later. Were the topic
    /// first, each such attempt would publish the dead letter again (for as long as a replica
    /// is missing); this way the topic gets it once the hash holds it for sure. Should the topic
    /// publish then fail, the message stays scheduled too and both are done again (the hash
    /// record is overwritten under the same id; the topic had not got it).
    async fn dead_letter(&self, id: &str, entry: Entry) -> Result<()> {
        let record = DeadLetter::of(id, &entry, self.redis_now(), &self.key_prefix);
        let text = serde_json::to_string(&record).expect("a dead letter serializes");
        self.dead_letters
            .write(
                &self.dlq_name,
                id,
                &text,
                record.died_at,
                Some(&entry.topic),
            )
            .await?;
        if let Some(topic) = &self.dead_letter_topic {
            // Unless the dead letter topic refuses it for good (the message is larger than its
            // `max.message.bytes` too, the topic is missing or not writable): retrying would
            // keep it scheduled forever, so it stays in the hash only, and an error says so.
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
        let _in_order = self.cap_check.lock().await;
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
    async fn ack_within_lease(&self, schedule: &Schedule, acked: &[Acked], lease_ends: Instant) {
        loop {
            match schedule.ack(acked).await {
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

/// A boxed future of one batch (the rare or one-at-a-time work beside its publishes).
type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where one claimed message of a batch stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// Its publish (or dead-lettering) is in flight: its lease is renewed.
    Publishing,
    /// Finished, waiting for the next settle: its lease is renewed.
    Queued,
    /// In the settle in flight (which uses its token): not renewed meanwhile.
    Settling,
    /// Acknowledged or released: no longer ours.
    Settled,
}

/// What a finished message asks of Redis.
enum Settle {
    /// Published (or dead-lettered): forget it. `published` when the broker took the message
    /// itself, which ends the publish backoff; `dead_lettered` when it went to the dead letters
    /// (the history counts it so).
    Ack {
        published: bool,
        dead_lettered: bool,
    },
    /// Failed: back on the schedule at the batch's backoff.
    Release,
    /// Refused with an error retrying cannot fix: counted, dead-lettered at the limit.
    Count(RetryError),
    /// Dead-lettering it failed: back on the schedule, uncounted.
    Keep,
}

/// One message of a settle, with the token it holds its lease by.
struct Settling {
    index: usize,
    id: String,
    topic: String,
    token: u64,
    lease_ends: Instant,
    settle: Settle,
}

/// What `renew.lua` answered: the new token and how many ids it renewed.
type RenewOutcome = Result<(u64, u64)>;

/// A renewal's outcome per token group: the batch indexes and (new token, how many renewed).
struct Renewed {
    asked: Instant,
    groups: Vec<(Vec<usize>, RenewOutcome)>,
}

/// The messages `waiting` (indexes into `items`) grouped by the token they hold their lease by:
/// `(indexes, token, ids)`, one group in the common case.
fn by_token(
    waiting: &[usize],
    tokens: &[u64],
    items: &[(String, String)],
) -> Vec<(Vec<usize>, u64, Vec<String>)> {
    let mut groups: Vec<(Vec<usize>, u64, Vec<String>)> = Vec::new();
    for &i in waiting {
        match groups.iter_mut().find(|(_, token, _)| *token == tokens[i]) {
            Some((indexes, _, ids)) => {
                indexes.push(i);
                ids.push(items[i].0.clone());
            }
            None => groups.push((vec![i], tokens[i], vec![items[i].0.clone()])),
        }
    }
    groups
}

/// `(token, id)` pairs grouped by token, in first-seen order.
fn group_by_token<T>(pairs: Vec<(u64, T)>) -> Vec<(u64, Vec<T>)> {
    let mut groups: Vec<(u64, Vec<T>)> = Vec::new();
    for (token, id) in pairs {
        match groups.iter_mut().find(|(t, _)| *t == token) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((token, vec![id])),
        }
    }
    groups
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
