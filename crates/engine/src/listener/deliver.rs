//! Where a claimed message goes: published to its topic, or dead-lettered (exhausted, unreadable,
//! or refused by the broker `maxPublishFailures` times), with the dead letter cap watched.

use super::Listener;
use crate::error::{ErrorCode, Result, RetryError};
use crate::message::payload::with_fresh_msg_id;
use crate::observe::events::Event;
use crate::publisher::Outgoing;
use crate::store::entry::{DeadLetter, Entry, ErrorInfo};
use std::sync::atomic::Ordering;

impl Listener {
    /// Dead-letters a message refused `maxPublishFailures` times, the broker's error as its
    /// `error`, and says why in an error event.
    pub(super) async fn dead_letter_refused(
        &self,
        id: &str,
        stored: &str,
        err: &RetryError,
    ) -> Result<()> {
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
    pub(super) async fn handle(&self, id: &str, stored: &str) -> Result<bool> {
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
        let fresh_id = crate::message::ids::random_uuid().to_string();
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
