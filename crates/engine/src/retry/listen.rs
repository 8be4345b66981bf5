//! Starting listeners: each publishes what falls due through its publisher (see `listener`), and
//! with `migrateLegacy` the original class's buckets keep moving into the schedule beside it.

use super::{RetryCore, Running};
use crate::error::Result;
use crate::listener::Listener;
use crate::message::ids::shard_index;
use crate::observe::events::Event;
use crate::publisher::Publisher;
use crate::store::schedule::migrate;
use std::sync::Arc;
use tokio::task::JoinHandle;

impl RetryCore {
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
}
