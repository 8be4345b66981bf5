//! What the broker's errors mean: whether retrying can fix a refused publish (`is_permanent`),
//! whether the producer can publish no more (`note_fatal`), and what a timed-out publish names
//! as its cause (the client errors librdkafka reported meanwhile, `LastError`).

use crate::error::{ErrorCode, RetryError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::ClientContext;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// The last client-level error librdkafka reported (a failed SASL authentication, a TLS
/// handshake, a broker down), until a delivery succeeds. librdkafka keeps messages queued through
/// such errors and fails them only at `message.timeout.ms`, as "Message timed out": a timed-out
/// publish names this error too, so the event says why (e.g. the authentication failure).
#[derive(Default)]
pub(super) struct LastError {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Why the handle can publish no more (a fatal error, a fencing; see `note_fatal`).
    fatal: Mutex<Option<String>>,
    is_fatal: AtomicBool,
}

impl LastError {
    /// Records why the handle can publish no more (the first reason is kept).
    pub(super) fn record_fatal(&self, reason: String) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if fatal.is_none() {
            *fatal = Some(reason);
        }
        self.is_fatal.store(true, Ordering::Release);
    }

    /// Why the handle can publish no more, if it cannot.
    pub(super) fn fatal(&self) -> Option<String> {
        if !self.is_fatal.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Records librdkafka's latest client error.
    pub(super) fn record(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.set.store(true, Ordering::Release);
    }

    /// A delivery went through: earlier errors no longer explain anything.
    pub(super) fn clear(&self) {
        if self.set.swap(false, Ordering::AcqRel) {
            *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// The latest client error since the last delivery, if any.
    pub(super) fn get(&self) -> Option<String> {
        if !self.set.load(Ordering::Acquire) {
            return None;
        }
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// rdkafka's client context for the internal producer: records librdkafka's error callbacks.
#[derive(Clone)]
pub(super) struct ProducerContext(pub(super) Arc<LastError>);

impl ClientContext for ProducerContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // `reason` is librdkafka's text, e.g. "sasl_ssl://127.0.0.1:9094/bootstrap: SASL
        // authentication error: Authentication failed during authentication due to invalid
        // credentials with SASL mechanism SCRAM-SHA-512 (after 2ms in state AUTH_REQ)"; it
        // never holds the configured password.
        // "1/1 brokers are down" follows each connection failure: it would hide the failure's
        // cause, so it is kept only when nothing more specific was seen.
        let all_down = error.rdkafka_error_code() == Some(RDKafkaErrorCode::AllBrokersDown);
        if all_down && self.0.get().is_some() {
            return;
        }
        let reason = if reason.is_empty() {
            error.to_string()
        } else {
            reason.to_string()
        };
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.0.record_fatal(reason.clone());
        }
        self.0.record(reason);
    }
}

/// Whether a publish that failed with `code` would fail the same way however often it is retried:
/// the broker refuses the message or the topic itself, not its own state. These are counted per
/// message and, after `maxPublishFailures`, dead-letter it; everything else (broker down, leader
/// moving, timeouts, a full queue, throttling) is transient: released with a backoff, never
/// counted.
///
/// - `MessageSizeTooLarge` (the broker's `max.message.bytes`, or librdkafka's own
///   `message.max.bytes` checked before sending), `InvalidMessageSize`, `MessageBatchTooLarge`,
///   `InvalidRecord`, `InvalidMessage` (a corrupt or refused record): the same bytes are refused
///   again.
/// - `UnknownTopicOrPartition` (the broker's answer, which librdkafka reports once
///   `topic.metadata.propagation.max.ms` passed without the topic appearing; seen on Apache
///   Kafka 4.4 with auto-creation off), `UnknownTopic`/`UnknownPartition` (librdkafka's own):
///   with auto-creation off the topic stays unknown until someone creates it. A topic being created
///   may be reported so for a moment; the count and the backoff between attempts give it time.
/// - `TopicAuthorizationFailed`, `ClusterAuthorizationFailed`: the producer's principal may not
///   write; ACLs are not changed by waiting. `InvalidTopic` (an illegal name), `PolicyViolation`.
///
/// `MessageTimedOut` is transient even though librdkafka reports it for a missing topic when
/// `message.timeout.ms` is shorter than `topic.metadata.propagation.max.ms`: it is what a broker
/// outage looks like too, and an outage must never dead-letter anything.
pub fn is_permanent(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::InvalidMessageSize
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessage
            | RDKafkaErrorCode::UnknownTopicOrPartition
            | RDKafkaErrorCode::UnknownTopic
            | RDKafkaErrorCode::UnknownPartition
            | RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::InvalidTopic
            | RDKafkaErrorCode::PolicyViolation
    )
}

/// The error of a failed publish to `topic`, marked permanent when retrying cannot fix it.
pub(super) fn publish_failed(topic: &str, err: &KafkaError) -> RetryError {
    let permanent = err.rdkafka_error_code().is_some_and(is_permanent);
    RetryError::new(
        ErrorCode::KafkaPublish,
        format!("publishing to topic {topic:?} failed"),
    )
    .caused_by(err)
    .permanent(permanent)
}

/// The error of a failed publish to `topic`; a timed-out one also names the producer's last
/// client error (see `LastError`).
pub(super) fn delivery_failed(topic: &str, err: &KafkaError, last: &LastError) -> RetryError {
    let timed_out = err.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut);
    let failed = publish_failed(topic, err);
    match last.get() {
        Some(reason) if timed_out => {
            failed.caused_by(format_args!("the producer's last broker error: {reason}"))
        }
        _ => failed,
    }
}

/// Notes a failed publish whose error means the producer can publish no more: librdkafka's
/// fatal error, or the broker fencing its producer id. An idempotent producer without a
/// `transactional.id` gets PRODUCER_FENCED or INVALID_PRODUCER_EPOCH only when its id and epoch
/// are no longer accepted (Tansu answers an epoch bump after a message timeout so), and
/// librdkafka fails each message with it without marking the handle fatal: every later publish
/// would fail the same way. A new producer gets a new producer id.
pub(super) fn note_fatal(err: &KafkaError, last: &LastError) {
    if matches!(
        err.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::Fatal
                | RDKafkaErrorCode::Fenced
                | RDKafkaErrorCode::ProducerFenced
                | RDKafkaErrorCode::InvalidProducerEpoch
        )
    ) {
        last.record_fatal(err.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_of_the_message_or_topic_are_permanent() {
        for code in [
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidMessageSize,
            RDKafkaErrorCode::MessageBatchTooLarge,
            RDKafkaErrorCode::UnknownTopicOrPartition,
            RDKafkaErrorCode::UnknownTopic,
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::ClusterAuthorizationFailed,
            RDKafkaErrorCode::InvalidTopic,
        ] {
            assert!(is_permanent(code), "{code:?}");
            let err = publish_failed("t", &KafkaError::MessageProduction(code));
            assert!(err.permanent, "{code:?}");
            assert_eq!(err.code, ErrorCode::KafkaPublish);
        }
    }

    #[test]
    fn outages_and_timeouts_are_transient() {
        for code in [
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::QueueFull,
        ] {
            assert!(!is_permanent(code), "{code:?}");
            assert!(!publish_failed("t", &KafkaError::MessageProduction(code)).permanent);
        }
        assert!(!publish_failed("t", &KafkaError::Canceled).permanent);
    }

    fn timed_out() -> KafkaError {
        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut)
    }

    #[test]
    fn a_timed_out_publish_names_the_cause_not_all_brokers_down() {
        let last = Arc::new(LastError::default());
        let context = ProducerContext(last.clone());
        let auth =
            "sasl_ssl://127.0.0.1:9094/bootstrap: SASL authentication error: Authentication failed";
        context.error(KafkaError::Global(RDKafkaErrorCode::Authentication), auth);
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        let text = delivery_failed("t", &timed_out(), &last).to_string();
        assert!(text.contains("Message timed out"), "{text}");
        assert!(
            text.contains(&format!("the producer's last broker error: {auth}")),
            "{text}"
        );

        // other failures are not blamed on it
        let text = delivery_failed(
            "t",
            &KafkaError::MessageProduction(RDKafkaErrorCode::MessageSizeTooLarge),
            &last,
        )
        .to_string();
        assert!(!text.contains("last broker error"), "{text}");

        // a delivery clears it; then "all brokers down" alone is kept
        last.clear();
        assert!(!delivery_failed("t", &timed_out(), &last)
            .to_string()
            .contains("last broker error"));
        context.error(
            KafkaError::Global(RDKafkaErrorCode::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert!(delivery_failed("t", &timed_out(), &last)
            .to_string()
            .contains("last broker error: 1/1 brokers are down"));
    }
}
