//! Where due messages go: the `Publisher` trait, and the package's own rdkafka producer that
//! waits for the broker's acknowledgement (`acks=all`) before a message counts as published.

use crate::error::{ErrorCode, Result, RetryError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One message to publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Outgoing {
    /// Destination topic.
    pub topic: String,
    /// Kafka key (the original's `event`).
    pub key: String,
    /// Payload text.
    pub value: String,
    /// Headers, in order.
    pub headers: Vec<(&'static str, String)>,
    /// The caller's own headers, after `headers` (none of them has a name in `headers`).
    pub extra: Vec<crate::headers::Header>,
}

/// A boxed future, so publishers can be trait objects.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// Something that publishes a message and resolves once it is safely stored by the broker.
/// Resolving `Ok` is what allows the schedule to delete the message, so implementations must not
/// resolve before the publish is acknowledged.
pub trait Publisher: Send + Sync {
    /// Publishes one message.
    fn publish(&self, message: Outgoing) -> BoxFuture<Result<()>>;

    /// Waits for everything handed over so far (called by `close()`); no-op by default.
    fn flush(&self) -> BoxFuture<Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

/// The internal producer: rdkafka with its bundled librdkafka.
pub struct KafkaPublisher {
    /// `None` only while being dropped.
    producer: Option<RetryProducer>,
    context: Arc<LastError>,
}

type RetryProducer = FutureProducer<ProducerContext>;

/// The last client-level error librdkafka reported (a failed SASL authentication, a TLS
/// handshake, a broker down), until a delivery succeeds. librdkafka keeps messages queued through
/// such errors and fails them only at `message.timeout.ms`, as "Message timed out": a timed-out
/// publish names this error too, so the event says why (e.g. the authentication failure).
#[derive(Default)]
struct LastError {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
}

impl LastError {
    fn record(&self, reason: String) {
        *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason);
        self.set.store(true, Ordering::Release);
    }

    /// A delivery went through: earlier errors no longer explain anything.
    fn clear(&self) {
        if self.set.swap(false, Ordering::AcqRel) {
            *self.reason.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    fn get(&self) -> Option<String> {
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
struct ProducerContext(Arc<LastError>);

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
        self.0.record(reason);
    }
}

impl KafkaPublisher {
    fn producer(&self) -> RetryProducer {
        self.producer.clone().expect("present until dropped")
    }
}

impl Drop for KafkaPublisher {
    fn drop(&mut self) {
        // Destroying a librdkafka handle joins its threads and can wait on unreachable brokers
        // for seconds: never on an async worker thread, where it would stall every listener.
        if let Some(producer) = self.producer.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-redis-retry-producer-drop".to_string())
                .spawn(move || drop(producer));
        }
    }
}

impl KafkaPublisher {
    /// A producer for `brokers` with the package defaults, overridden by `extra` properties.
    pub fn new(brokers: &str, extra: &[(String, String)]) -> Result<Self> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            // The schedule deletes a message only after this ack, so only the strongest ack will do.
            .set("acks", "all")
            // Fail a publish in bounded time during a broker outage; the message then goes back on
            // the schedule instead of waiting inside librdkafka for five minutes.
            .set("message.timeout.ms", "30000")
            // A topic librdkafka has not seen yet is waited for this long, then its messages fail
            // with `UnknownTopicOrPartition` (what Apache Kafka 4.4 with auto-creation off gave):
            // shorter than `message.timeout.ms`, so a missing topic is reported as missing (an
            // error retrying cannot fix, see `is_permanent`), not as a timeout; librdkafka's
            // default equals the timeout above, and which came first was a race.
            .set("topic.metadata.propagation.max.ms", "10000")
            .set("linger.ms", "2")
            // The Java client's and kafkajs's partitioner (murmur2 of the key), not librdkafka's
            // CRC32 default: a retried message lands on the partition the other messages of its
            // key use, so it neither overtakes nor trails them on another partition.
            .set("partitioner", "murmur2_random")
            // librdkafka resends a produce request whose answer it lost; idempotence makes the
            // broker drop such a repeat instead of writing the message twice.
            .set("enable.idempotence", "true")
            // After a broker outage, reconnect within a second instead of librdkafka's 10 s
            // ceiling, so rescheduled messages go out soon after the broker is back.
            .set("reconnect.backoff.max.ms", "1000");
        for (key, value) in extra {
            config.set(key, value);
        }
        let context = Arc::new(LastError::default());
        let producer = config
            .create_with_context(ProducerContext(context.clone()))
            .map_err(|err| {
            RetryError::invalid_arg(format!(
                "cannot create the Kafka producer for brokers {brokers:?} (check config.brokers and config.kafka)"
            ))
            .caused_by(err)
        })?;
        Ok(KafkaPublisher {
            producer: Some(producer),
            context,
        })
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
fn publish_failed(topic: &str, err: &KafkaError) -> RetryError {
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
fn delivery_failed(topic: &str, err: &KafkaError, last: &LastError) -> RetryError {
    let timed_out = err.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageTimedOut);
    let failed = publish_failed(topic, err);
    match last.get() {
        Some(reason) if timed_out => {
            failed.caused_by(format_args!("the producer's last broker error: {reason}"))
        }
        _ => failed,
    }
}

/// The librdkafka record of `message`, borrowing its text.
fn record(message: &Outgoing) -> FutureRecord<'_, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len() + message.extra.len());
    for (key, value) in &message.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
        });
    }
    // The caller's own headers, byte for byte (an array's elements as headers of one name).
    for header in &message.extra {
        headers = headers.insert(Header {
            key: &header.name,
            value: Some(header.value.as_bytes()),
        });
    }
    FutureRecord::to(&message.topic)
        .key(message.key.as_bytes())
        .payload(message.value.as_bytes())
        .headers(headers)
}

impl Publisher for KafkaPublisher {
    fn publish(&self, message: Outgoing) -> BoxFuture<Result<()>> {
        let producer = self.producer();
        let last = self.context.clone();
        // Handed to librdkafka here, synchronously; the future only waits for the delivery
        // report. `send`, with its queue-full retry loop, made every message's future several
        // hundred bytes larger, and this runs once per fired message.
        let sent = producer
            .send_result(record(&message))
            .map_err(|(err, _)| err);
        match sent {
            Ok(delivery) => Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => {
                        last.clear();
                        Ok(())
                    }
                    Ok(Err((err, _))) => Err(delivery_failed(&message.topic, &err, &last)),
                    Err(canceled) => Err(RetryError::new(
                        ErrorCode::KafkaPublish,
                        format!("publishing to topic {:?} failed", message.topic),
                    )
                    .caused_by(canceled)),
                }
            }),
            // librdkafka's queue is full: wait for room (rare; the listener bounds its batches).
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                Box::pin(async move {
                    match producer
                        .send(record(&message), Duration::from_secs(5))
                        .await
                    {
                        Ok(_) => {
                            last.clear();
                            Ok(())
                        }
                        Err((err, _)) => Err(delivery_failed(&message.topic, &err, &last)),
                    }
                })
            }
            Err(err) => Box::pin(std::future::ready(Err(publish_failed(
                &message.topic,
                &err,
            )))),
        }
    }

    fn flush(&self) -> BoxFuture<Result<()>> {
        let producer = self.producer();
        Box::pin(async move {
            // librdkafka's flush blocks its thread: keep it off the async workers.
            tokio::task::spawn_blocking(move || producer.flush(Duration::from_secs(10)))
                .await
                .map_err(|err| {
                    RetryError::new(ErrorCode::Internal, "flush task failed").caused_by(err)
                })?
                .map_err(|err| {
                    RetryError::new(
                        ErrorCode::KafkaPublish,
                        "flushing the Kafka producer failed",
                    )
                    .caused_by(err)
                })
        })
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
