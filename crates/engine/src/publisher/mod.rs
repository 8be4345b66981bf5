//! Where due messages go: the `Publisher` trait the listener publishes through, and the
//! package's own rdkafka producer (`kafka`) that waits for the broker's acknowledgement
//! (`acks=all`) before a message counts as published; `errors` says what the broker's errors
//! mean (retrying cannot fix it, the producer can publish no more, why a publish timed out).

use crate::error::Result;
use std::future::Future;
use std::pin::Pin;

mod errors;
mod kafka;

pub use errors::is_permanent;
pub use kafka::KafkaPublisher;

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
    pub extra: Vec<crate::message::headers::Header>,
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
