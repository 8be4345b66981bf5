//! The retry queue as the `KafkaRetry` class exposes it, without any JavaScript types: push,
//! listen, dead-letter, close.

use crate::backoff::random_unit;
use crate::clock::now_ms;
use crate::config::Config;
use crate::connection::SharedRedis;
use crate::entry::{Entry, ErrorInfo};
use crate::error::{Result, RetryError};
use crate::events::{Counters, Observer, StderrObserver};
use crate::listener::{Listener, Wake};
use crate::options::{due_at, RetryOptions};
use crate::payload;
use crate::publisher::Publisher;
use crate::schedule::{Counts, PushMessage, Schedule};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex, Weak};
use tokio::sync::watch;
use tokio::task::JoinHandle;

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
}

/// Listener wake-ups per schedule (Redis URL + key prefix), so a push from any instance in this
/// process wakes the listener of another instance on the same schedule.
type WakeRegistry = Mutex<HashMap<(String, String), Weak<Wake>>>;

static WAKES: LazyLock<WakeRegistry> = LazyLock::new(|| Mutex::new(HashMap::new()));

fn wake_for(config: &Config) -> Arc<Wake> {
    let key = (config.redis_url.clone(), config.key_prefix.clone());
    let mut wakes = WAKES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(wake) = wakes.get(&key).and_then(Weak::upgrade) {
        return wake;
    }
    wakes.retain(|_, w| w.strong_count() > 0);
    let wake = Arc::new(Wake::default());
    wakes.insert(key, Arc::downgrade(&wake));
    wake
}

struct Running {
    task: JoinHandle<()>,
    publisher: Arc<dyn Publisher>,
}

/// The core of one `KafkaRetry` instance. Cheap to create: the Redis connection is shared per URL
/// and opened on first use.
pub struct RetryCore {
    config: Config,
    /// One schedule per shard (hash tag); a single one unless `shards` says otherwise.
    schedules: Vec<Schedule>,
    wake: Arc<Wake>,
    closed: AtomicBool,
    /// Shared with the listener tasks, so a garbage-collected instance does not stop them: the
    /// seed starts its listener with `await new KafkaRetry().queueListener(...)` and keeps no
    /// reference, and that listener must run until the process ends (as the original's timer did).
    stop: Arc<watch::Sender<bool>>,
    listeners: Mutex<Vec<Running>>,
    observer: Arc<dyn Observer>,
    counters: Arc<Counters>,
}

impl RetryCore {
    /// A core for `config`; `observer` receives listener events (stderr when `None`).
    pub fn new(config: Config, observer: Option<Arc<dyn Observer>>) -> Self {
        let redis = SharedRedis::for_url(&config.redis_url, config.cluster, config.redis_timeout);
        let schedules = (0..config.shards)
            .map(|shard| {
                Schedule::new(
                    redis.clone(),
                    &config.key_prefix,
                    shard,
                    config.redis_timeout,
                    config.dedupe_window,
                )
            })
            .collect();
        RetryCore {
            wake: wake_for(&config),
            schedules,
            config,
            closed: AtomicBool::new(false),
            stop: Arc::new(watch::channel(false).0),
            listeners: Mutex::new(Vec::new()),
            observer: observer.unwrap_or_else(|| Arc::new(StderrObserver::default())),
            counters: Arc::new(Counters::default()),
        }
    }

    /// The resolved configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The schedule shard that holds message `id`: a stable hash, so a redelivery of the same
    /// message lands on the same shard and is de-duplicated there.
    fn shard_of(&self, id: &str) -> &Schedule {
        let hash = id.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        &self.schedules[(hash % self.schedules.len() as u64) as usize]
    }

    /// The first shard: every shard shares its Redis connection.
    fn any_schedule(&self) -> &Schedule {
        &self.schedules[0]
    }

    /// Counters since this instance was created.
    pub fn counters(&self) -> &Counters {
        &self.counters
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
        self.ensure_open()?;
        if request.topic.is_empty() {
            return Err(RetryError::invalid_arg(
                "topic must be a non-empty string, got \"\"",
            ));
        }
        let msg_id = payload::validate(&request.value)?;
        let retry_count = request.options.retry_count + 1;
        let now = now_ms();
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
        let due = due_at(now, waited);
        let id = message_id(&request.topic, msg_id.as_deref(), retry_count);
        let entry = Entry {
            topic: request.topic,
            event: request.event,
            value: request.value,
            delay: request.options.delay_text,
            max_retry: request.options.max_retry,
            retry_count,
            due_at: due,
            first_failed_at: Some(request.options.first_failed_at.unwrap_or(now)),
            last_error: request.error,
            waited_ms: Some(waited),
        };
        let json = serde_json::to_string(&entry).expect("an entry serializes");
        let stored = self
            .shard_of(&id)
            .push(PushMessage {
                id,
                due_ms: due,
                entry_json: json,
                dedupe: msg_id.is_some(),
            })
            .await?;
        self.report_settings_warning();
        if stored {
            self.wake.pushed(due);
        }
        Ok(stored)
    }

    fn report_settings_warning(&self) {
        if let Some(warning) = self.any_schedule().redis().take_warning() {
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
        if dlq_name.is_empty() {
            return Err(RetryError::invalid_arg(
                "dlqName must be a non-empty string, got \"\"",
            ));
        }
        self.any_schedule().ping().await?;
        self.report_settings_warning();
        let listener = Listener {
            schedules: self.schedules.clone(),
            publisher: publisher.clone(),
            dlq_name,
            dead_letter_topic: self.config.dead_letter_topic.clone(),
            batch_size: self.config.batch_size,
            lease: self.config.lease,
            poll_interval: self.config.poll_interval,
            wake: self.wake.clone(),
            observer: self.observer.clone(),
            counters: self.counters.clone(),
        };
        let stop = self.stop.clone();
        let task = tokio::spawn(async move {
            listener.run(stop.subscribe()).await;
            drop(stop);
        });
        let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
        listeners.push(Running { task, publisher });
        Ok(())
    }

    /// Writes one entry into the dead letter hash `dlq_name` under a new unique field, and returns
    /// that field.
    pub async fn push_to_dlq(&self, dlq_name: &str, entry_json: &str) -> Result<String> {
        self.ensure_open()?;
        if dlq_name.is_empty() {
            return Err(RetryError::invalid_arg(
                "dlqName must be a non-empty string, got \"\"",
            ));
        }
        let field = format!("manual:{}", uuid::Uuid::new_v4());
        self.any_schedule()
            .write_dead_letter(dlq_name, &field, entry_json, now_ms())
            .await?;
        Ok(field)
    }

    /// Sizes of the schedule now.
    pub async fn counts(&self) -> Result<Counts> {
        self.ensure_open()?;
        let now = now_ms();
        let mut total = Counts::default();
        for schedule in &self.schedules {
            let counts = schedule.counts(now).await?;
            total.scheduled += counts.scheduled;
            total.due += counts.due;
            total.inflight += counts.inflight;
        }
        Ok(total)
    }

    /// Stops the listeners after their current batch (published and acknowledged, or put back on
    /// the schedule), flushes the publishers and lets go of them. Idempotent.
    pub async fn close(&self) -> Result<()> {
        self.closed.store(true, Ordering::Release);
        let _ = self.stop.send(true);
        let running: Vec<Running> = {
            let mut listeners = self.listeners.lock().unwrap_or_else(|p| p.into_inner());
            listeners.drain(..).collect()
        };
        let mut first_error = None;
        for Running { task, publisher } in running {
            let _ = task.await;
            if let Err(err) = publisher.flush().await {
                first_error.get_or_insert(err);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// Whether `close()` was called.
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }
}

/// The schedule id of a message. With a `msgId` the id is derived from it and the retry count, so
/// a consumer redelivery of the same failure maps to the same id and is stored once; the topic
/// length prefix keeps ids unambiguous whatever characters topic and msgId hold.
pub fn message_id(topic: &str, msg_id: Option<&str>, retry_count: u64) -> String {
    match msg_id {
        Some(msg_id) => format!("m:{retry_count}:{}:{topic}:{msg_id}", topic.len()),
        None => format!("u:{}", uuid::Uuid::new_v4()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_msg_id_are_stable_per_retry_count() {
        assert_eq!(message_id("t", Some("a"), 1), message_id("t", Some("a"), 1));
        assert_ne!(message_id("t", Some("a"), 1), message_id("t", Some("a"), 2));
        assert_ne!(
            message_id("t:x", Some("a"), 1),
            message_id("t", Some("x:a"), 1)
        );
    }

    #[test]
    fn ids_without_msg_id_are_unique() {
        assert_ne!(message_id("t", None, 1), message_id("t", None, 1));
    }
}
