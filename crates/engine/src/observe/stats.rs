//! What the package counts and reports: counters since the process started (per schedule, shared
//! by every instance in the process), the `stats()` snapshot and its Prometheus text.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, LazyLock, Mutex};

/// Counters since the process started, one set per schedule (see [`Counters::for_schedule`]).
#[derive(Debug, Default)]
pub struct Counters {
    /// Messages re-published and acknowledged.
    pub published: AtomicU64,
    /// Publish attempts that failed (the message was rescheduled).
    pub publish_failures: AtomicU64,
    /// Messages dead-lettered.
    pub dead_lettered: AtomicU64,
    /// Whether the dead letters were last seen above `maxDeadLetters` (so the event fires once
    /// per crossing, not per message).
    pub cap_exceeded: AtomicBool,
}

/// Counters per schedule (Redis URL, key prefix), kept for the life of the process so `stats()`
/// counts since the process started, whichever instance asks.
type CounterRegistry = Mutex<HashMap<(String, String), Arc<Counters>>>;
static COUNTERS: LazyLock<CounterRegistry> = LazyLock::new(|| Mutex::new(HashMap::new()));

impl Counters {
    /// The counters of the schedule `key_prefix` on `redis_url` in this process.
    pub fn for_schedule(redis_url: &str, key_prefix: &str) -> Arc<Counters> {
        let key = (redis_url.to_string(), key_prefix.to_string());
        let mut counters = COUNTERS.lock().unwrap_or_else(|p| p.into_inner());
        counters.entry(key).or_default().clone()
    }
}

/// What `stats()` reports.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Stats {
    /// Messages waiting in the schedule (not yet claimed), with those a pause or the breaker holds.
    pub scheduled: u64,
    /// Of those, already due.
    pub due: u64,
    /// Claimed by a listener and not yet acknowledged.
    pub inflight: u64,
    /// How long the oldest due message has waited past its due time, ms (0: none due; held
    /// messages do not count: holding them was asked).
    pub late_ms: u64,
    /// Per topic: scheduled, due, leased and dead letters (`store::tally`).
    pub topics: std::collections::BTreeMap<String, crate::store::tally::TopicCounts>,
    /// Dead letters in the dead letter hash.
    pub dead_lettered: u64,
    /// Messages re-published since the process started.
    pub published: u64,
    /// Failed publish attempts since the process started (each was rescheduled).
    pub publish_failures: u64,
    /// Messages dead-lettered since the process started.
    pub dead_lettered_total: u64,
    /// Whether the dead letters exceed `maxDeadLetters`.
    pub dead_letter_cap_exceeded: bool,
    /// The pauses in force (`store::gate`).
    pub paused: Vec<crate::store::gate::Pause>,
    /// Keys of ordered retries whose messages are held back (`store::ordered`).
    pub blocked_keys: u64,
    /// Messages parked behind their key's head (ordered retries).
    pub parked_messages: u64,
    /// Listener events this instance dropped since it was made: its `onEvent` was behind by more
    /// than `events::MAX_WAITING_EVENTS` (0 without `onEvent`).
    pub events_dropped: u64,
}

impl Stats {
    /// The stats as Prometheus text exposition, labelled with the schedule's key prefix.
    pub fn prometheus(&self, prefix: &str) -> String {
        let label = escape_label(prefix);
        let metrics: [(&str, &str, &str, u64); 11] = [
            (
                "kafka_retry_scheduled",
                "gauge",
                "Messages waiting in the schedule.",
                self.scheduled,
            ),
            (
                "kafka_retry_due",
                "gauge",
                "Scheduled messages already due.",
                self.due,
            ),
            (
                "kafka_retry_inflight",
                "gauge",
                "Messages claimed by a listener and not yet acknowledged.",
                self.inflight,
            ),
            (
                "kafka_retry_dead_letters",
                "gauge",
                "Messages in the dead letter hash.",
                self.dead_lettered,
            ),
            (
                "kafka_retry_published_total",
                "counter",
                "Messages re-published since the process started.",
                self.published,
            ),
            (
                "kafka_retry_publish_failures_total",
                "counter",
                "Failed publish attempts since the process started.",
                self.publish_failures,
            ),
            (
                "kafka_retry_dead_lettered_total",
                "counter",
                "Messages dead-lettered since the process started.",
                self.dead_lettered_total,
            ),
            (
                "kafka_retry_dead_letter_cap_exceeded",
                "gauge",
                "1 when the dead letters exceed maxDeadLetters.",
                self.dead_letter_cap_exceeded as u64,
            ),
            (
                "kafka_retry_blocked_keys",
                "gauge",
                "Ordered retries: keys held back behind a message of theirs.",
                self.blocked_keys,
            ),
            (
                "kafka_retry_parked_messages",
                "gauge",
                "Ordered retries: messages parked behind their key's head.",
                self.parked_messages,
            ),
            (
                "kafka_retry_events_dropped_total",
                "counter",
                "Listener events onEvent was too far behind to be given, since the instance was made.",
                self.events_dropped,
            ),
        ];
        let mut text = String::new();
        for (name, kind, help, value) in metrics {
            text.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name}{{prefix=\"{label}\"}} {value}\n"
            ));
        }
        // Per topic gauges: every topic of `topics`, labelled with the prefix and the topic.
        type Read = fn(&crate::store::tally::TopicCounts) -> u64;
        let per_topic: [(&str, &str, Read); 4] = [
            (
                "kafka_retry_topic_scheduled",
                "Messages of the topic waiting in the schedule.",
                |c| c.scheduled,
            ),
            (
                "kafka_retry_topic_due",
                "Scheduled messages of the topic due (from the start of their due minute).",
                |c| c.due,
            ),
            (
                "kafka_retry_topic_leased",
                "Messages of the topic claimed by a listener and not yet acknowledged.",
                |c| c.leased,
            ),
            (
                "kafka_retry_topic_dead_letters",
                "Dead letters of the topic in the dead letter hash.",
                |c| c.dead_letters,
            ),
        ];
        for (name, help, read) in per_topic {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} gauge\n"));
            for (topic, counts) in &self.topics {
                text.push_str(&format!(
                    "{name}{{prefix=\"{label}\",topic=\"{}\"}} {}\n",
                    escape_label(topic),
                    read(counts)
                ));
            }
        }
        // The breaker: only topics it has counted (config `breaker` on), 1 while it holds them.
        let name = "kafka_retry_topic_breaker_open";
        text.push_str(&format!(
            "# HELP {name} 1 while the topic's breaker is open or half-open (its retries held), 0 when closed.\n# TYPE {name} gauge\n"
        ));
        for (topic, counts) in &self.topics {
            if let Some(state) = counts.breaker {
                let open = state != crate::store::breaker::BreakerState::Closed;
                text.push_str(&format!(
                    "{name}{{prefix=\"{label}\",topic=\"{}\"}} {}\n",
                    escape_label(topic),
                    open as u8
                ));
            }
        }
        text
    }
}

/// A label value as the text exposition writes it.
fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_names_every_metric_once() {
        let stats = Stats {
            scheduled: 3,
            due: 1,
            inflight: 2,
            dead_lettered: 4,
            published: 10,
            publish_failures: 1,
            dead_lettered_total: 5,
            dead_letter_cap_exceeded: true,
            paused: Vec::new(),
            blocked_keys: 0,
            parked_messages: 0,
            events_dropped: 7,
            late_ms: 0,
            topics: [(
                "or\"ders".to_string(),
                crate::store::tally::TopicCounts {
                    scheduled: 5,
                    due: 2,
                    leased: 1,
                    dead_letters: 3,
                    breaker: Some(crate::store::breaker::BreakerState::HalfOpen),
                },
            )]
            .into(),
        };
        let text = stats.prometheus("svc\"x");
        assert!(text.contains("kafka_retry_scheduled{prefix=\"svc\\\"x\"} 3\n"));
        assert!(text.contains("# TYPE kafka_retry_published_total counter\n"));
        assert!(text.contains("kafka_retry_dead_letter_cap_exceeded{prefix=\"svc\\\"x\"} 1\n"));
        assert!(text.contains("# TYPE kafka_retry_parked_messages gauge\n"));
        assert!(text.contains("# TYPE kafka_retry_events_dropped_total counter\n"));
        assert!(text.contains("kafka_retry_events_dropped_total{prefix=\"svc\\\"x\"} 7\n"));
        assert_eq!(text.matches("# HELP").count(), 16);
        assert!(text.contains(
            "kafka_retry_topic_breaker_open{prefix=\"svc\\\"x\",topic=\"or\\\"ders\"} 1\n"
        ));
        assert!(text.contains(
            "kafka_retry_topic_dead_letters{prefix=\"svc\\\"x\",topic=\"or\\\"ders\"} 3\n"
        ));
        assert!(text.contains("# TYPE kafka_retry_topic_due gauge\n"));
    }
}
