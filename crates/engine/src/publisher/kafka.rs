//! The package's own producer: rdkafka with its bundled librdkafka, `acks=all` and idempotence,
//! replaced by a new one after a fatal error or a fencing.

use super::errors::{delivery_failed, note_fatal, publish_failed, LastError, ProducerContext};
use super::{BoxFuture, Outgoing, Publisher};
use crate::error::{ErrorCode, Result, RetryError};
use crate::observe::events::{Event, Observer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::ClientConfig;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Longest wait between two replacements of a producer that keeps failing fatally.
const REBUILD_BACKOFF_MAX: Duration = Duration::from_secs(10);

/// The internal producer: rdkafka with its bundled librdkafka, replaced by a new one after a
/// fatal error or a fencing.
///
/// Some errors leave an idempotent producer unable to publish for good: librdkafka's fatal
/// errors (some sequence errors, a fenced epoch bump), and the broker fencing its producer id
/// (see `note_fatal`), after which every publish fails the same way. Nothing is lost, since what
/// failed stays scheduled in Redis, but nothing would be published again until the process
/// restarted; so the next publish creates a new producer (a new producer id), at most once per
/// backoff step while new ones keep failing, and an `error` event says why.
pub struct KafkaPublisher {
    brokers: String,
    config: ClientConfig,
    /// The producer in use.
    current: RwLock<Arc<Handle>>,
    /// Replacements since the last successful delivery, for the backoff between them.
    rebuilds: Arc<AtomicU32>,
    /// No replacement before this moment (the backoff).
    rebuild_after: Mutex<Option<Instant>>,
    observer: Arc<dyn Observer>,
}

type RetryProducer = FutureProducer<ProducerContext>;

/// One librdkafka producer and what its client context recorded.
struct Handle {
    /// `None` only while being dropped.
    producer: Option<RetryProducer>,
    context: Arc<LastError>,
}

impl Handle {
    fn producer(&self) -> &RetryProducer {
        self.producer.as_ref().expect("present until dropped")
    }

    /// Why this producer can publish no more, if it cannot. The error callback says so first;
    /// librdkafka's own flag covers a publish that comes before the callback ran.
    fn unusable(&self) -> Option<String> {
        self.context.fatal().or_else(|| {
            let (code, reason) = self.producer().client().fatal_error()?;
            Some(format!("{code:?}: {reason}"))
        })
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        // Destroying a librdkafka handle joins its threads and can wait on unreachable brokers
        // for seconds: never on an async worker thread, where it would stall every listener.
        // Its queued and in-flight messages are purged: their publishes fail and are released.
        if let Some(producer) = self.producer.take() {
            let _ = std::thread::Builder::new()
                .name("kafka-redis-retry-producer-drop".to_string())
                .spawn(move || drop(producer));
        }
    }
}

impl KafkaPublisher {
    /// A producer for `brokers` with the package defaults, overridden by `extra` properties;
    /// `observer` hears about fatal errors and the replacement of the producer.
    pub fn new(
        brokers: &str,
        extra: &[(String, String)],
        observer: Arc<dyn Observer>,
    ) -> Result<Self> {
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
        let handle = create(brokers, &config)?;
        Ok(KafkaPublisher {
            brokers: brokers.to_string(),
            config,
            current: RwLock::new(Arc::new(handle)),
            rebuilds: Arc::new(AtomicU32::new(0)),
            rebuild_after: Mutex::new(None),
            observer,
        })
    }

    /// The producer to publish with: the current one, or, when it had a fatal error or was
    /// fenced, a new one (unless the backoff between replacements has not passed: then an error).
    fn handle(&self) -> Result<Arc<Handle>> {
        {
            let current = self.current.read().unwrap_or_else(|e| e.into_inner());
            if current.unusable().is_none() {
                return Ok(current.clone());
            }
        }
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        // Checked again: another publish may have replaced it meanwhile.
        let Some(reason) = current.unusable() else {
            return Ok(current.clone());
        };
        let fatal = || {
            RetryError::new(
                ErrorCode::KafkaPublish,
                format!("the Kafka producer can publish no more (a fatal error or its producer id fenced: {reason}); a new producer is created after a backoff"),
            )
        };
        let now = Instant::now();
        let mut after = self.rebuild_after.lock().unwrap_or_else(|e| e.into_inner());
        if after.is_some_and(|after| now < after) {
            return Err(fatal());
        }
        let rebuilds = self.rebuilds.fetch_add(1, Ordering::AcqRel);
        let backoff = (Duration::from_secs(1) * 2u32.saturating_pow(rebuilds.min(8)))
            .min(REBUILD_BACKOFF_MAX);
        *after = Some(now + backoff);
        match create(&self.brokers, &self.config) {
            Ok(handle) => {
                // The old handle is destroyed once its last publish let go of it; its queued
                // messages then fail and go back on the schedule.
                *current = Arc::new(handle);
                self.observer.on_notable_event(&Event::from_error(&RetryError::new(
                    ErrorCode::KafkaPublish,
                    format!("the Kafka producer can publish no more (a fatal error or its producer id fenced: {reason}) and was replaced by a new one; publishes that failed meanwhile stay scheduled and are published again"),
                )));
                Ok(current.clone())
            }
            Err(err) => {
                let err = fatal().caused_by(err);
                self.observer.on_event(&Event::from_error(&err));
                Err(err)
            }
        }
    }
}

/// A librdkafka producer with `config`, its client context recording errors.
fn create(brokers: &str, config: &ClientConfig) -> Result<Handle> {
    let context = Arc::new(LastError::default());
    let producer = config
        .create_with_context(ProducerContext(context.clone()))
        .map_err(|err| {
            RetryError::invalid_arg(format!(
                "cannot create the Kafka producer for brokers {brokers:?} (check config.brokers and config.kafka)"
            ))
            .caused_by(err)
        })?;
    Ok(Handle {
        producer: Some(producer),
        context,
    })
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
        let handle = match self.handle() {
            Ok(handle) => handle,
            Err(err) => return Box::pin(std::future::ready(Err(err))),
        };
        let last = handle.context.clone();
        let rebuilds = self.rebuilds.clone();
        let delivered = move |last: &LastError| {
            last.clear();
            rebuilds.store(0, Ordering::Release);
        };
        // Handed to librdkafka here, synchronously; the future only waits for the delivery
        // report. `send`, with its queue-full retry loop, made every message's future several
        // hundred bytes larger, and this runs once per fired message.
        let sent = handle
            .producer()
            .send_result(record(&message))
            .map_err(|(err, _)| err);
        match sent {
            Ok(delivery) => Box::pin(async move {
                match delivery.await {
                    Ok(Ok(_)) => {
                        delivered(&last);
                        Ok(())
                    }
                    Ok(Err((err, _))) => {
                        note_fatal(&err, &last);
                        Err(delivery_failed(&message.topic, &err, &last))
                    }
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
                    match handle
                        .producer()
                        .send(record(&message), Duration::from_secs(5))
                        .await
                    {
                        Ok(_) => {
                            delivered(&last);
                            Ok(())
                        }
                        Err((err, _)) => {
                            note_fatal(&err, &last);
                            Err(delivery_failed(&message.topic, &err, &last))
                        }
                    }
                })
            }
            Err(err) => {
                note_fatal(&err, &last);
                Box::pin(std::future::ready(Err(publish_failed(
                    &message.topic,
                    &err,
                ))))
            }
        }
    }

    fn flush(&self) -> BoxFuture<Result<()>> {
        let handle = self
            .current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        Box::pin(async move {
            // librdkafka's flush blocks its thread: keep it off the async workers.
            tokio::task::spawn_blocking(move || handle.producer().flush(Duration::from_secs(10)))
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

    #[derive(Default)]
    struct Recorder(Mutex<Vec<Event>>);

    impl Observer for Recorder {
        fn on_event(&self, event: &Event) {
            self.0.lock().unwrap().push(event.clone());
        }
    }

    impl Recorder {
        fn messages(&self) -> Vec<String> {
            self.0
                .lock()
                .unwrap()
                .iter()
                .filter_map(|event| match event {
                    Event::Error { message, .. } => Some(message.clone()),
                    _ => None,
                })
                .collect()
        }
    }

    /// A publisher whose broker is never reached (creating a producer connects to nothing).
    fn unreachable_publisher(recorder: Arc<Recorder>) -> KafkaPublisher {
        KafkaPublisher::new("127.0.0.1:1", &[], recorder).unwrap()
    }

    fn current(publisher: &KafkaPublisher) -> Arc<Handle> {
        publisher.current.read().unwrap().clone()
    }
    #[test]
    fn a_fatal_error_of_librdkafka_replaces_the_producer() {
        let recorder = Arc::new(Recorder::default());
        let publisher = unreachable_publisher(recorder.clone());
        let first = current(&publisher);
        assert!(Arc::ptr_eq(&publisher.handle().unwrap(), &first));
        // librdkafka's own fatal error path (its test hook raises a real one): the error
        // callback runs on the producer's polling thread.
        let reason = std::ffi::CString::new("raised by the test").unwrap();
        let raised = unsafe {
            rdkafka::bindings::rd_kafka_test_fatal_error(
                first.producer().client().native_ptr(),
                rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                reason.as_ptr(),
            )
        };
        assert_eq!(
            raised,
            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR
        );
        let second = publisher.handle().unwrap();
        assert!(
            !Arc::ptr_eq(&second, &first),
            "the fatally failed producer is still used"
        );
        assert!(Arc::ptr_eq(&publisher.handle().unwrap(), &second));
        let messages = recorder.messages();
        assert_eq!(messages.len(), 1, "{messages:?}");
        assert!(messages[0].contains("raised by the test"), "{messages:?}");
        assert!(
            messages[0].contains("replaced by a new one"),
            "{messages:?}"
        );
    }

    #[test]
    fn a_fenced_producer_is_replaced_at_most_once_per_backoff_step() {
        let recorder = Arc::new(Recorder::default());
        let publisher = unreachable_publisher(recorder.clone());
        let fenced = KafkaError::MessageProduction(RDKafkaErrorCode::ProducerFenced);
        note_fatal(&fenced, &current(&publisher).context);
        let replaced = publisher.handle().unwrap();
        assert_eq!(recorder.messages().len(), 1);
        // Fenced again at once: no new producer before the backoff has passed; the publish
        // fails with an error saying why.
        note_fatal(&fenced, &replaced.context);
        let err = match publisher.handle() {
            Err(err) => err,
            Ok(_) => panic!("replaced again within the backoff"),
        };
        assert_eq!(err.code, ErrorCode::KafkaPublish);
        assert!(err.to_string().contains("ProducerFenced"), "{err}");
        assert!(Arc::ptr_eq(&current(&publisher), &replaced));
        // Once the backoff has passed, it is replaced.
        *publisher.rebuild_after.lock().unwrap() = Some(Instant::now());
        assert!(!Arc::ptr_eq(&publisher.handle().unwrap(), &replaced));
        assert_eq!(recorder.messages().len(), 2);
        // Other failures leave the producer alone.
        let timed_out = KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut);
        let kept = current(&publisher);
        note_fatal(&timed_out, &kept.context);
        assert!(Arc::ptr_eq(&publisher.handle().unwrap(), &kept));
    }
}
