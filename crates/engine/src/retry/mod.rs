//! The retry queue as the `KafkaRetry` class exposes it, without any JavaScript types: push,
//! listen, dead-letter, close. A room per concern: this file holds the core itself (what it owns,
//! its construction, the shard count check and `close()`); `push` stores failed messages,
//! `listen` starts listeners (and the legacy migration beside them), `pause` gates the schedule,
//! `dead_letters` reads, requeues and removes dead letters, `stats` counts, `ordered` serves
//! ordered retries, `jobs` the dashboard's operator jobs and `audit` records operator actions.

use crate::config::Config;
use crate::error::{Result, RetryError};
use crate::listener::Wake;
use crate::observe::events::{ErrorThrottle, Observer, StderrObserver};
use crate::observe::stats::Counters;
use crate::publisher::Publisher;
use crate::store::connection::target::RedisTarget;
use crate::store::connection::{Redis, SharedRedis};
use crate::store::dead_letters::DeadLetters;
use crate::store::schedule::shard_record;
use crate::store::schedule::Schedule;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub mod audit;
mod dead_letters;
mod jobs;
mod listen;
pub mod ordered;
mod pause;
mod push;
mod stats;

pub use dead_letters::BulkOptions;
pub use push::{GroupDone, PushRequest};

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
                .with_breaker(config.breaker.as_ref())
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

    fn report_settings_warning(&self) {
        if let Some(warning) = self.redis.shared().take_warning() {
            self.observer.warn(&warning);
        }
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
