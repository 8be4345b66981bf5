//! Where due messages go: the `Publisher` trait, and the package's own rdkafka producer that
//! waits for the broker's acknowledgement (`acks=all`) before a message counts as published.

use crate::error::{ErrorCode, Result, RetryError};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::future::Future;
use std::pin::Pin;
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
    producer: Option<FutureProducer>,
}

impl KafkaPublisher {
    fn producer(&self) -> FutureProducer {
        self.producer.clone().expect("present until dropped")
    }
}

impl Drop for KafkaPublisher {
    fn drop(&mut self) {
        // Destroying a librdkafka handle joins its threads and can wait on unreachable brokers
        // for seconds: never on an async worker thread, where it would stall every listener.
        if let Some(producer) = self.producer.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-retry-producer-drop".to_string())
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
        let producer = config.create().map_err(|err| {
            RetryError::invalid_arg(format!(
                "cannot create the Kafka producer for brokers {brokers:?} (check config.brokers and config.kafka)"
            ))
            .caused_by(err)
        })?;
        Ok(KafkaPublisher {
            producer: Some(producer),
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

/// The librdkafka record of `message`, borrowing its text.
fn record(message: &Outgoing) -> FutureRecord<'_, [u8], [u8]> {
    let mut headers = OwnedHeaders::new_with_capacity(message.headers.len());
    for (key, value) in &message.headers {
        headers = headers.insert(Header {
            key,
            value: Some(value.as_bytes()),
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
        // Handed to librdkafka here, synchronously; the future only waits for the delivery
        // report. `send`, with its queue-full retry loop, made every message's future several
        // hundred bytes larger, and this runs once per fired message.
        let sent = producer
            .send_result(record(&message))
            .map_err(|(err, _)| err);
        match sent {
            Ok(delivery) => Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err((err, _))) => Err(publish_failed(&message.topic, &err)),
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
                        Ok(_) => Ok(()),
                        Err((err, _)) => Err(publish_failed(&message.topic, &err)),
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
}
