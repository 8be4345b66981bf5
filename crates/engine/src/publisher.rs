//! Where due messages go: the `Publisher` trait, and the package's own rdkafka producer that
//! waits for the broker's acknowledgement (`acks=all`) before a message counts as published.

use crate::error::{ErrorCode, Result, RetryError};
use crate::events::{Event, Observer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{ClientConfig, ClientContext};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Longest wait between two replacements of a producer that keeps failing fatally.
const REBUILD_BACKOFF_MAX: Duration = Duration::from_secs(10);

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

/// The last client-level error librdkafka reported (a failed SASL authentication, a TLS
/// handshake, a broker down), until a delivery succeeds. librdkafka keeps messages queued through
/// such errors and fails them only at `message.timeout.ms`, as "Message timed out": a timed-out
/// publish names this error too, so the event says why (e.g. the authentication failure).
#[derive(Default)]
struct LastError {
    set: AtomicBool,
    reason: Mutex<Option<String>>,
    /// Why the handle can publish no more (a fatal error, a fencing; see `note_fatal`).
    fatal: Mutex<Option<String>>,
    is_fatal: AtomicBool,
}

impl LastError {
    fn record_fatal(&self, reason: String) {
        let mut fatal = self.fatal.lock().unwrap_or_else(|e| e.into_inner());
        if fatal.is_none() {
            *fatal = Some(reason);
        }
        self.is_fatal.store(true, Ordering::Release);
    }

    /// Why the handle can publish no more, if it cannot.
    fn fatal(&self) -> Option<String> {
        if !self.is_fatal.load(Ordering::Acquire) {
            return None;
        }
        self.fatal.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

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
        if error.rdkafka_error_code() == Some(RDKafkaErrorCode::Fatal) {
            self.0.record_fatal(reason.clone());
        }
        self.0.record(reason);
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

/// Notes a failed publish whose error means the producer can publish no more: librdkafka's
/// fatal error, or the broker fencing its producer id. An idempotent producer without a
/// `transactional.id` gets PRODUCER_FENCED or INVALID_PRODUCER_EPOCH only when its id and epoch
/// are no longer accepted (Tansu answers an epoch bump after a message timeout so), and
/// librdkafka fails each message with it without marking the handle fatal: every later publish
/// would fail the same way. A new producer gets a new producer id.
fn note_fatal(err: &KafkaError, last: &LastError) {
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
