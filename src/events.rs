//! What the listener reports: events for the caller's callback and warnings for the logger.

use crate::error::RetryError;
use crate::ids::fnv1a;
use std::sync::atomic::{AtomicU64, Ordering};

/// Something the listener did or ran into.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A due message was re-published.
    Retry {
        /// Message id in the schedule.
        id: String,
        /// Destination topic.
        topic: String,
        /// Kafka key.
        event: String,
        /// The `retryCount` it was published with.
        retry_count: u64,
        /// Milliseconds between its due time and the broker's ack.
        late_ms: u64,
    },
    /// A message ran out of retries and went to the dead letter queue.
    DeadLetter {
        /// Message id (also its field in the dead letter hash).
        id: String,
        /// Topic it was meant for.
        topic: String,
        /// Kafka key.
        event: String,
        /// Name of the dead letter hash.
        dlq_name: String,
    },
    /// The dead letter queue holds more than `maxDeadLetters` (reported when it first passes
    /// the cap; nothing is trimmed).
    DeadLetterCap {
        /// Name of the dead letter hash.
        dlq_name: String,
        /// How many dead letters it holds.
        count: u64,
        /// The cap.
        max: u64,
    },
    /// Something failed; the listener carries on (a failed publish goes back on the schedule).
    Error {
        /// The error code (`ERR_...`).
        code: String,
        /// What went wrong.
        message: String,
    },
}

impl Event {
    /// The `Error` event of `err`.
    pub fn from_error(err: &RetryError) -> Self {
        Event::Error {
            code: err.code.as_ref().to_string(),
            message: err.to_string(),
        }
    }
}

/// Receives events and log lines. The napi layer forwards them to JavaScript.
pub trait Observer: Send + Sync {
    /// Called for every event.
    fn on_event(&self, event: &Event);
    /// Whether events other than errors are wanted at all: when not, the listener does not build
    /// a `Retry` event per published message just to drop it.
    fn wants_events(&self) -> bool {
        true
    }
    /// A warning worth a human's attention (written to stderr by default).
    fn warn(&self, message: &str) {
        eprintln!("kafka-retry: warning: {message}");
    }
}

/// The default observer: errors and warnings go to stderr, other events nowhere. Never a line per
/// tick; repeated identical errors are written once until a different one happens.
#[derive(Default)]
pub struct StderrObserver {
    last_error_hash: AtomicU64,
}

impl Observer for StderrObserver {
    fn on_event(&self, event: &Event) {
        if let Event::Error { code, message } = event {
            let hash = fnv1a(code) ^ fnv1a(message);
            if self.last_error_hash.swap(hash, Ordering::Relaxed) != hash {
                eprintln!("kafka-retry: {code}: {message}");
            }
        }
    }

    fn wants_events(&self) -> bool {
        false
    }
}
