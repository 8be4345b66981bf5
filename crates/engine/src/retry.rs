//! The retry queue as the `KafkaRetry` class exposes it, without any JavaScript types: push,
//! listen, dead-letter, close.

use crate::backoff::random_unit;
use crate::config::Config;
use crate::error::{Result, RetryError};
use crate::events::{ErrorThrottle, Event, Observer, StderrObserver};
use crate::ids::{message_id, shard_index};
use crate::listener::{Listener, Wake};
use crate::options::{format_js_number, RetryOptions};
use crate::payload;
use crate::publisher::Publisher;
use crate::stats::{Counters, Stats};
use crate::store::connection::target::RedisTarget;
use crate::store::connection::{Redis, SharedRedis};
use crate::store::dead_letters::requeue;
use crate::store::dead_letters::search::{
    self as dead_letter_search, Filter, FilterInput, SearchPage,
};
use crate::store::dead_letters::{self, DeadLetterItem, DeadLetters, Page};
use crate::store::entry::{Entry, ErrorInfo};
use crate::store::gate::{self, Pause};
use crate::store::schedule::{migrate, shard_record};
use crate::store::schedule::{Counts, PushDone, PushMessage, Schedule};
use crate::store::tally::{self, History};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

mod jobs;
pub mod ordered;

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
    pub extra: Vec<crate::headers::Header>,
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

/// The options of a filtered requeue or removal, as the caller gave them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct BulkOptions {
    /// Count only, move nothing.
    pub dry_run: bool,
    /// Most dead letters requeued per second.
    pub rate_per_sec: Option<f64>,
    /// Requeued messages fall due this many ms later.
    pub delay_ms: Option<f64>,
}

impl BulkOptions {
    /// Checks the numbers: a rate from [`requeue::MIN_RATE_PER_SEC`] to
    /// [`requeue::MAX_RATE_PER_SEC`], a whole delay from 0 to a year.
    fn parse(self) -> Result<(requeue::Pace, bool)> {
        if let Some(rate) = self.rate_per_sec {
            if !(requeue::MIN_RATE_PER_SEC..=requeue::MAX_RATE_PER_SEC).contains(&rate) {
                return Err(RetryError::invalid_arg(format!(
                    "options.ratePerSec must be a number of dead letters per second from {} to {}, got {}",
                    format_js_number(requeue::MIN_RATE_PER_SEC),
                    format_js_number(requeue::MAX_RATE_PER_SEC),
                    format_js_number(rate)
                )));
            }
        }
        let delay_ms = match self.delay_ms {
            None => 0,
            Some(d) if d.fract() == 0.0 && (0.0..=requeue::MAX_DELAY_MS as f64).contains(&d) => {
                d as u64
            }
            Some(d) => {
                return Err(RetryError::invalid_arg(format!(
                    "options.delayMs must be a whole number of ms from 0 to {} (a year), got {}",
                    requeue::MAX_DELAY_MS,
                    format_js_number(d)
                )))
            }
        };
        Ok((
            requeue::Pace {
                rate_per_sec: self.rate_per_sec,
                delay_ms,
            },
            self.dry_run,
        ))
    }
}

/// A task close() waits for: a listener (with the publisher to flush after it) or the migration.
struct Running {
    task: JoinHandle<()>,
    publisher: Option<Arc<dyn Publisher>>,
}

/// The core of one `KafkaRetry` instance. Cheap to create: the Redis connection is shared per URL
/// and opened on first use.
pub struct RetryCore {
    config: Config,
    redis: Redis,
    dead_letters: DeadLetters,
    /// One schedule per shard (hash tag); a single one unless `shards` says otherwise.
    schedules: Vec<Schedule>,
    wake: Arc<Wake>,
    closed: AtomicBool,
    /// Shared with the listener tasks, so a garbage-collected instance does not stop them: the
    /// seed starts its listener with `await new KafkaRetry().queueListener(...)` and keeps no
    /// reference, and that listener must run until the process ends (as the original's timer did).
    /// `close()` sends `true` and then waits until no receiver is left: every task and requeue
    /// that watches it has ended.
    stop: Arc<watch::Sender<bool>>,
    listeners: Mutex<Vec<Running>>,
    observer: Arc<dyn Observer>,
    counters: Arc<Counters>,
    /// Dead letter hashes of this instance's listeners, for `stats()`.
    dlq_names: Mutex<Vec<String>>,
    /// Set once the shard count recorded in Redis was found equal to this instance's.
    shards_checked: tokio::sync::OnceCell<()>,
}

impl RetryCore {
    /// A core for `config`; `observer` receives listener events (stderr when `None`).
    pub fn new(config: Config, observer: Option<Arc<dyn Observer>>) -> Self {
        let shared =
            SharedRedis::for_target(RedisTarget::from_config(&config), config.redis_timeout);
        shared.acquire();
        let shared_key = &shared.url().to_string();
        let redis = Redis::new(shared, config.redis_timeout)
            .with_wait(config.wait_replicas, config.wait_timeout);
        let schedules = (0..config.shards)
            .map(|shard| {
                Schedule::new(
                    redis.clone(),
                    &config.key_prefix,
                    shard,
                    config.dedupe_window,
                )
                .with_max_rate(config.max_publish_rate.unwrap_or(0.0) / config.shards as f64)
            })
            .collect();
        RetryCore {
            wake: Wake::for_schedule(shared_key, &config.key_prefix),
            counters: Counters::for_schedule(shared_key, &config.key_prefix),
            dead_letters: DeadLetters::new(redis.clone()),
            redis,
            schedules,
            config,
            closed: AtomicBool::new(false),
            stop: Arc::new(watch::channel(false).0),
            listeners: Mutex::new(Vec::new()),
            observer: Arc::new(ErrorThrottle::new(
                observer.unwrap_or_else(|| Arc::new(StderrObserver::default())),
            )),
            dlq_names: Mutex::new(Vec::new()),
            shards_checked: tokio::sync::OnceCell::new(),
        }
    }

    /// Checks (once per instance) that the schedule's shard count recorded in Redis is this
    /// instance's `shards`, recording it when none is: an instance with fewer shards than the
    /// schedule would leave the other shards' messages undelivered.
    pub async fn check_shards(&self) -> Result<()> {
        self.shards_checked
            .get_or_try_init(|| async {
                let recorded =
                    shard_record::record(&self.redis, &self.config.key_prefix, self.config.shards)
                        .await?;
                self.same_shards(recorded)
            })
            .await
            .map(drop)
    }

    /// [`RetryCore::check_shards`] for read-only calls: compares with the recorded count when
    /// there is one, and records nothing (a `stats()` before the service's first push must not
    /// fix the schedule's shard count).
    async fn check_shards_read_only(&self) -> Result<()> {
        if self.shards_checked.initialized() {
            return Ok(());
        }
        match shard_record::read(&self.redis, &self.config.key_prefix).await? {
            Some(recorded) => self.same_shards(recorded),
            None => Ok(()),
        }
    }

    fn same_shards(&self, recorded: u32) -> Result<()> {
        if recorded != self.config.shards {
            return Err(RetryError::invalid_arg(format!(
                "config.shards is {}, but the schedule {:?} was created with shards: {recorded} (recorded in Redis at {}): give every instance of a schedule the same shards, or use another keyPrefix",
                self.config.shards,
                self.config.key_prefix,
                crate::store::keys::shards_key(&self.config.key_prefix)
            )));
        }
        Ok(())
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Where events and warnings go (`onEvent`/`logger`, or stderr), throttled.
    pub fn observer(&self) -> Arc<dyn Observer> {
        self.observer.clone()
    }

    fn ensure_open(&self) -> Result<()> {
        if self.closed.load(Ordering::Acquire) {
            Err(RetryError::closed())
        } else {
            Ok(())
        }
    }

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
        match self.prepare_push(request) {
            Err(err) => done(Err(err)),
            Ok((shard, message)) if !self.shards_checked.initialized() => {
                // The first push of this instance waits for the shard count check.
                let core = self.clone();
                tokio::spawn(async move {
                    match core.check_shards().await {
                        Err(err) => done(Err(err)),
                        Ok(()) => core.push_checked(shard, message, done),
                    }
                });
            }
            Ok((shard, message)) => self.push_checked(shard, message, done),
        }
    }

    /// Stores a batch of failed messages (`pushMany`): every request is validated first, and an
    /// invalid one fails the whole batch with its index in the message, nothing stored. Then each
    /// is stored exactly as `push` stores it (same id, so a redelivered batch is stored once),
    /// through the same batchers, so a batch shares script calls with concurrent pushes. Resolves
    /// once Redis holds every message, to how many were newly stored (the others were
    /// redeliveries). A Redis failure rejects the batch; some messages may be stored by then, and
    /// pushing the batch again stores each message with a `msgId` once.
    pub async fn push_many(&self, requests: Vec<PushRequest>) -> Result<usize> {
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
    fn push_checked(self: &Arc<Self>, shard: usize, message: PushMessage, done: PushDone) {
        let core = self.clone();
        self.schedules[shard].push_detached(
            message,
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
        crate::headers::check_limits(&request.extra)?;
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
    fn after_push(&self, stored: Option<u64>) {
        self.report_settings_warning();
        if let Some(due) = stored {
            self.wake.pushed(due);
        }
    }

    fn report_settings_warning(&self) {
        if let Some(warning) = self.redis.shared().take_warning() {
            self.observer.warn(&warning);
        }
    }

    /// Starts a listener that publishes due messages through `publisher` and dead-letters
    /// exhausted ones into the hash `dlq_name`. Fails if Redis is not reachable.
    pub async fn start_listener(
        &self,
        publisher: Arc<dyn Publisher>,
        dlq_name: String,
    ) -> Result<()> {
        self.ensure_open()?;
        self.redis.ping().await?;
        self.check_shards().await?;
        self.report_settings_warning();
        let listener = Listener {
            schedules: self.schedules.clone(),
            publisher: publisher.clone(),
            dead_letters: self.dead_letters.clone(),
            dlq_name,
            dead_letter_topic: self.config.dead_letter_topic.clone(),
            key_prefix: self.config.key_prefix.clone(),
            max_dead_letters: self.config.max_dead_letters,
            max_publish_failures: self.config.max_publish_failures,
            batch_size: self.config.batch_size,
            lease: self.config.lease,
            poll_interval: self.config.poll_interval,
            wake: self.wake.clone(),
            observer: self.observer.clone(),
            counters: self.counters.clone(),
            publish_failures: Default::default(),
            cap_check: Default::default(),
        };
        let stop = self.stop.clone();
        // Checked again under the lock close() drains: a close() during the PING above either
        // sees this listener and waits for it, or this sees the close and starts nothing.
        let mut running = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        self.ensure_open()?;
        self.dlq_names
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener.dlq_name.clone());
        if self.config.migrate_legacy {
            running.push(Running {
                task: self.spawn_migration(),
                publisher: None,
            });
        }
        let task = tokio::spawn(async move {
            listener.run(stop.subscribe()).await;
            drop(stop);
        });
        running.push(Running {
            task,
            publisher: Some(publisher),
        });
        Ok(())
    }

    /// Keeps moving the original class's buckets into the schedule while the listener runs (a
    /// service switching over may still have an old instance writing them), every 10 s.
    fn spawn_migration(&self) -> JoinHandle<()> {
        let redis = self.redis.clone();
        let schedules = self.schedules.clone();
        let observer = self.observer.clone();
        let mut stop = self.stop.subscribe();
        tokio::spawn(async move {
            while !*stop.borrow() {
                let shard_of = |id: &str| schedules[shard_index(id, schedules.len())].clone();
                if let Err(err) = migrate::migrate(&redis, shard_of).await {
                    observer.on_event(&Event::from_error(&err));
                }
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(10)) => {}
                    _ = stop.changed() => {}
                }
            }
        })
    }

    /// Schedules every message the original JavaScript class left in its per-minute buckets,
    /// each exactly once. Returns how many were scheduled.
    pub async fn migrate_legacy(&self) -> Result<u64> {
        self.ensure_open()?;
        self.check_shards().await?;
        let schedules = &self.schedules;
        let shard_of = |id: &str| schedules[shard_index(id, schedules.len())].clone();
        let migrated = migrate::migrate(&self.redis, shard_of).await?;
        if migrated > 0 {
            self.wake.notify();
        }
        Ok(migrated)
    }

    /// The dead letter hash `stats()` counts: the listener's, else `<keyPrefix>:dead-letters`.
    pub fn default_dlq_name(&self) -> String {
        let names = self.dlq_names.lock().unwrap_or_else(|p| p.into_inner());
        names
            .first()
            .cloned()
            .unwrap_or_else(|| format!("{}:dead-letters", self.config.key_prefix))
    }

    /// A page of dead letters, newest first.
    pub async fn list_dead_letters(
        &self,
        dlq: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page> {
        self.ensure_open()?;
        self.dead_letters.list(dlq, limit, cursor).await
    }

    /// Dead letter `id` of `dlq`, if there is one.
    pub async fn dead_letter(&self, dlq: &str, id: &str) -> Result<Option<DeadLetterItem>> {
        self.ensure_open()?;
        self.dead_letters.item(dlq, id).await
    }

    /// A page of the dead letters `filter` matches, newest first, bounded per call (see
    /// `store::dead_letters::search`).
    pub async fn search_dead_letters(
        &self,
        dlq: &str,
        filter: FilterInput,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<SearchPage> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        dead_letter_search::search(&self.dead_letters, dlq, &filter, limit, cursor).await
    }

    /// Schedules dead letter `id` again (retry count reset), due `delay_ms` from now, and removes
    /// it from `dlq`.
    pub async fn requeue_dead_letter(&self, dlq: &str, id: &str, delay_ms: u64) -> Result<bool> {
        self.ensure_open()?;
        let moved = requeue::requeue_later(&self.dead_letters, dlq, id, delay_ms, |item| {
            self.requeue_target(item)
        })
        .await?;
        if moved {
            self.wake.notify();
        }
        Ok(moved)
    }

    /// Where a requeued dead letter goes: shard 0 (which every listener serves, whatever its
    /// `shards`) of the schedule it came from, or of this instance's schedule when unknown.
    fn requeue_target(&self, item: &DeadLetterItem) -> Schedule {
        match &item.key_prefix {
            Some(prefix) if prefix != &self.config.key_prefix => {
                Schedule::new(self.redis.clone(), prefix, 0, self.config.dedupe_window)
            }
            _ => self.schedules[0].clone(),
        }
    }

    /// Requeues every dead letter of `dlq` (a filtered requeue of `{}`, so `close()` stops it
    /// too). Returns how many were requeued; dead letters that cannot be requeued (no topic) stay
    /// where they are.
    pub async fn requeue_all_dead_letters(&self, dlq: &str) -> Result<u64> {
        self.requeue_matching_dead_letters(
            dlq,
            FilterInput::default(),
            BulkOptions::default(),
            requeue::Watch::default(),
        )
        .await
    }

    /// Requeues the dead letters of `dlq` that `filter` matches (see
    /// `requeue::requeue_matching`), or with `dry_run` counts them, reporting to `watch` and
    /// stopping when it says so. Returns how many.
    pub async fn requeue_matching_dead_letters(
        &self,
        dlq: &str,
        filter: FilterInput,
        options: BulkOptions,
        mut watch: requeue::Watch,
    ) -> Result<u64> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        let (pace, dry_run) = options.parse()?;
        // close() stops it like its signal would, and waits until this receiver is dropped,
        // after the move under way. Subscribed after ensure_open: a close() since has sent.
        let mut closing = self.stop.subscribe();
        if *closing.borrow() {
            return Err(RetryError::closed());
        }
        let stop = watch.stop.get_or_insert_with(Default::default).clone();
        let requeue = requeue::requeue_matching(
            &self.dead_letters,
            dlq,
            &filter,
            pace,
            dry_run,
            &watch,
            |item| self.requeue_target(item),
        );
        tokio::pin!(requeue);
        let moved = tokio::select! {
            moved = &mut requeue => moved?,
            _ = closing.changed() => {
                stop.stop();
                requeue.await?
            }
        };
        if moved > 0 && !dry_run {
            self.wake.notify();
        }
        Ok(moved)
    }

    /// Removes the dead letters of `dlq` that `filter` matches, or with `dry_run` counts them,
    /// reporting to `watch` and stopping when it says so (or at `close()`), between removals.
    /// Returns how many.
    pub async fn remove_matching_dead_letters(
        &self,
        dlq: &str,
        filter: FilterInput,
        dry_run: bool,
        watch: requeue::Watch,
    ) -> Result<u64> {
        self.ensure_open()?;
        let filter = Filter::parse(filter)?;
        // close() waits until this receiver is dropped, after the removal under way.
        let closing = self.stop.subscribe();
        if *closing.borrow() {
            return Err(RetryError::closed());
        }
        let mut heads = Vec::new();
        let mut reporter = requeue::Reporter::new(&watch);
        let removed = dead_letter_search::remove_matching_then(
            &self.dead_letters,
            dlq,
            &filter,
            dry_run,
            |removed| {
                reporter.tell(removed, false);
                !watch.stopped() && !*closing.borrow()
            },
            |item| {
                if self.ordered_head(&item).is_some() {
                    heads.push(item);
                }
            },
        )
        .await?;
        reporter.tell(removed, true);
        for item in heads {
            self.release_removed_head(&item).await?;
        }
        Ok(removed)
    }

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

    /// Removes dead letter `id` from `dlq`. Returns whether it was there.
    pub async fn remove_dead_letter(&self, dlq: &str, id: &str) -> Result<bool> {
        self.ensure_open()?;
        let (removed, item) = self.dead_letters.take(dlq, id).await?;
        // A removed ordered head releases its key (`ordered.rs`).
        if let Some(item) = item {
            self.release_removed_head(&item).await?;
        }
        Ok(removed)
    }

    /// Sizes of the schedule and dead letter queue, and the counters since the process started.
    pub async fn stats(&self, dlq: Option<&str>) -> Result<Stats> {
        let counts = self.counts().await?;
        let (blocked_keys, parked_messages) = self.ordered_counts().await?;
        let dlq = dlq.map_or_else(|| self.default_dlq_name(), str::to_string);
        let dead_lettered = self.dead_letters.count(&dlq).await?;
        let cap_exceeded = self
            .config
            .max_dead_letters
            .is_some_and(|max| dead_lettered > max);
        let mut topics = tally::topic_counts(&self.redis, &self.schedules).await?;
        tally::add_dead_letters(&mut topics, &self.dead_letters.topic_counts(&dlq).await?);
        Ok(Stats {
            scheduled: counts.scheduled,
            due: counts.due,
            inflight: counts.inflight,
            late_ms: counts.late_ms,
            topics: tally::without_empty(topics),
            dead_lettered,
            published: self.counters.published.load(Ordering::Relaxed),
            publish_failures: self.counters.publish_failures.load(Ordering::Relaxed),
            dead_lettered_total: self.counters.dead_lettered.load(Ordering::Relaxed),
            dead_letter_cap_exceeded: cap_exceeded,
            paused: gate::paused(&self.schedules[0]).await?,
            blocked_keys,
            parked_messages,
            events_dropped: self.observer.events_dropped(),
        })
    }

    /// Per-minute counts of the last `minutes` minutes (default 60, at most 48 hours): pushed,
    /// published, failed publishes and dead-lettered, for the whole schedule and per topic, as
    /// the scripts recorded them (`store::tally`).
    pub async fn history(&self, minutes: Option<f64>) -> Result<History> {
        self.ensure_open()?;
        let minutes = tally::check_minutes(minutes)?;
        self.check_shards_read_only().await?;
        tally::history(&self.redis, &self.schedules, minutes).await
    }

    /// Writes one entry into the dead letter hash `dlq_name` under a new unique field, and returns
    /// that field.
    pub async fn push_to_dlq(&self, dlq_name: &str, entry_json: &str) -> Result<String> {
        self.ensure_open()?;
        if serde_json::from_str::<&serde_json::value::RawValue>(entry_json).is_err() {
            return Err(RetryError::invalid_arg(format!(
                "entry must be an object or JSON text, got {}",
                payload::preview(entry_json)
            )));
        }
        // Indexed at the time of death the entry states (listing walks the index, counting reads
        // the record: they must agree), else now; one it states wrongly is refused.
        let stated = dead_letters::stated_died_at(entry_json)?;
        let field = format!("manual:{}", crate::ids::random_uuid());
        // Counted under its topic when it names one (a record of this package's shape).
        let topic = DeadLetterItem::parse(&field, entry_json).map(|item| item.topic);
        let died_at = match stated {
            Some(died_at) => died_at,
            None => self.redis.time_ms().await?,
        };
        self.dead_letters
            .write(dlq_name, &field, entry_json, died_at, topic.as_deref())
            .await?;
        Ok(field)
    }

    /// Sizes of the schedule now.
    pub async fn counts(&self) -> Result<Counts> {
        self.ensure_open()?;
        self.check_shards_read_only().await?;
        let mut total = Counts::default();
        for schedule in &self.schedules {
            let counts = schedule.counts().await?;
            total.scheduled += counts.scheduled;
            total.due += counts.due;
            total.inflight += counts.inflight;
            total.late_ms = total.late_ms.max(counts.late_ms);
        }
        Ok(total)
    }

    /// Stops the listeners after their current batch (published and acknowledged, or put back on
    /// the schedule), flushes the publishers and lets go of them, and closes the Redis connection
    /// when no other open instance in this process uses it. Idempotent.
    pub async fn close(&self) -> Result<()> {
        let first_close = !self.closed.swap(true, Ordering::AcqRel);
        let _ = self.stop.send(true);
        let running: Vec<Running> = {
            let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            listeners.drain(..).collect()
        };
        let mut first_error = None;
        for Running { task, publisher } in running {
            let _ = task.await;
            if let Some(publisher) = publisher {
                if let Err(err) = publisher.flush().await {
                    first_error.get_or_insert(err);
                }
            }
        }
        // The requeues the send above stopped: each drops its receiver after its last move.
        self.stop.closed().await;
        if first_close {
            // After the listeners' last acks: the connection closes if no other instance uses it.
            self.redis.shared().release();
            self.redis.release_waits();
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}
