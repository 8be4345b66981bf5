//! Ordered retries (issue 23) as `RetryCore` offers them: the entry a park or an ordered push
//! stores, the shard its key's chain lives in, and the calls of `store::ordered`. Nothing here
//! runs unless the caller asks for ordering (`isBlocked`, `park`, `takeTurn`, `endTurn`,
//! `handleInOrder`): `pushToQueue` stays the unordered path.

use super::{PushRequest, RetryCore};
use crate::error::{Result, RetryError};
use crate::message::backoff::random_unit;
use crate::message::headers::{Header, HeaderValue};
use crate::message::ids::message_id;
use crate::message::payload;
use crate::store::dead_letters::DeadLetterItem;
use crate::store::ordered::{chain_shard, Ordered, OrderedMessage};
pub use crate::store::ordered::{Placed, Turn};

/// The header an ordered message carries, on the schedule and on re-publish: the token of its
/// place in its key's chain, so the consumer can tell the head coming back from a new message.
pub const ORDER_HEADER: &str = "retryOrder";

/// How an ordered message is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Not handled: parked or scheduled at once, retry count unchanged (parking spends no retry).
    Park,
    /// Handled and failed: retry count + 1, due after the backoff when it is the head.
    Failed,
}

impl RetryCore {
    fn ordered(&self, topic: &str, key: &str) -> Ordered<'_> {
        let shard = chain_shard(topic, key, self.schedules.len());
        Ordered::new(&self.schedules[shard], self.config.dedupe_window)
    }

    /// Whether messages of `key` on `topic` are held back: one of them waits on the schedule, is
    /// on its way back to the consumer, or is dead-lettered, so a new one must be parked.
    pub async fn is_blocked(&self, topic: &str, key: &str) -> Result<bool> {
        self.ensure_open()?;
        check_topic(topic)?;
        self.check_shards().await?;
        self.ordered(topic, key).is_blocked(topic, key).await
    }

    /// Parks a message behind the message of its key that waits, or schedules it at once when
    /// none does any more (decided in Redis). Its retry count is unchanged.
    pub async fn park(&self, request: PushRequest) -> Result<Placed> {
        self.place(request, Kind::Park).await
    }

    /// Stores a message of an ordered key whose handling failed: the key's head (the message that
    /// came back, or the first failure of its key) is scheduled after the backoff; one behind a
    /// head is parked.
    pub async fn push_in_order(&self, request: PushRequest) -> Result<Placed> {
        self.place(request, Kind::Failed).await
    }

    /// Whether the consumer may handle a message now; parks it when its key is blocked.
    pub async fn take_turn(&self, request: PushRequest) -> Result<Turn> {
        let (topic, key) = (request.topic.clone(), request.event.clone());
        let message = self.ordered_message(request, Kind::Park)?;
        self.check_shards().await?;
        self.ordered(&topic, &key)
            .turn(&topic, &key, &message)
            .await
    }

    /// The message with `token` (its `retryOrder` header) of `key` on `topic` was handled: the
    /// next parked message of the key becomes due now. Returns whether one was released.
    pub async fn end_turn(&self, topic: &str, key: &str, token: &str) -> Result<bool> {
        self.ensure_open()?;
        check_topic(topic)?;
        self.check_shards().await?;
        let released = self.ordered(topic, key).done(topic, key, token).await?;
        self.after_push(released);
        Ok(released.is_some())
    }

    /// `endTurn`: the message `take_turn` let through was handled (`failed` false: its key's
    /// next parked message, if any, becomes due now; a message without a token had no chain to
    /// move) or failed (stored as an ordered retry: `Some` with where it went).
    pub async fn finish_turn(&self, request: PushRequest, failed: bool) -> Result<Option<Placed>> {
        if failed {
            return self.push_in_order(request).await.map(Some);
        }
        let token = request
            .extra
            .iter()
            .find(|h| h.name == ORDER_HEADER)
            .map(|h| String::from_utf8_lossy(h.value.as_bytes()).into_owned());
        if let Some(token) = token {
            self.end_turn(&request.topic, &request.event, &token)
                .await?;
        }
        Ok(None)
    }

    /// Blocked keys and parked messages over every shard.
    pub async fn ordered_counts(&self) -> Result<(u64, u64)> {
        let (mut blocked, mut parked) = (0, 0);
        for schedule in &self.schedules {
            let (b, p) = Ordered::new(schedule, self.config.dedupe_window)
                .count()
                .await?;
            blocked += b;
            parked += p;
        }
        Ok((blocked, parked))
    }

    /// The token of a dead letter that was its key's head in this schedule (ordered retries),
    /// or `None`.
    pub(super) fn ordered_head<'i>(&self, item: &'i DeadLetterItem) -> Option<&'i str> {
        let ours = item
            .key_prefix
            .as_ref()
            .is_none_or(|prefix| prefix == &self.config.key_prefix);
        let token = item.options.get(ORDER_HEADER)?.as_str()?;
        (ours && !token.is_empty() && !item.topic.is_empty()).then_some(token)
    }

    /// A dead letter was removed: when it was its key's head, the key's next parked message is
    /// released (a removed head will not come back; a requeued one does, and releases on its
    /// handling instead).
    pub(super) async fn release_removed_head(&self, item: &DeadLetterItem) -> Result<()> {
        if let Some(token) = self.ordered_head(item) {
            if self.schedules.is_empty() {
                return Ok(());
            }
            let released = self
                .ordered(&item.topic, &item.event)
                .done(&item.topic, &item.event, token)
                .await?;
            self.after_push(released);
        }
        Ok(())
    }

    async fn place(&self, request: PushRequest, kind: Kind) -> Result<Placed> {
        let (topic, key) = (request.topic.clone(), request.event.clone());
        let message = self.ordered_message(request, kind)?;
        self.check_shards().await?;
        let placed = self
            .ordered(&topic, &key)
            .place(&topic, &key, &message)
            .await?;
        if let Placed::Scheduled(due) = placed {
            self.after_push(Some(due));
        }
        Ok(placed)
    }

    /// The entry an ordered call stores, checked as `pushToQueue` checks its arguments.
    fn ordered_message(&self, mut request: PushRequest, kind: Kind) -> Result<OrderedMessage> {
        self.ensure_open()?;
        check_topic(&request.topic)?;
        let msg_id = payload::validate(&request.value)?;
        let token = take_token(&mut request.extra)?;
        let retry_count = match kind {
            Kind::Park => request.options.retry_count,
            Kind::Failed => request.options.retry_count + 1,
        };
        let exhausted = retry_count > request.options.max_retry;
        let delay_ms = match kind {
            Kind::Park => 0,
            // As pushToQueue: an exhausted message is due now, for the listener to dead-letter.
            Kind::Failed if exhausted => 0,
            Kind::Failed => {
                self.config
                    .backoff
                    .delay_ms(request.options.delay_ms, retry_count, random_unit())
            }
        };
        // A parked copy and a failure of the same message are different entries: the kind is in
        // the id, so neither is taken for a redelivery of the other.
        let hashed_topic = match kind {
            Kind::Park => format!("{}\npark", request.topic),
            Kind::Failed => request.topic.clone(),
        };
        let id = message_id(&hashed_topic, msg_id.as_deref(), retry_count);
        let placed_token = if token.is_empty() {
            id.clone()
        } else {
            token.clone()
        };
        request.extra.push(Header {
            name: ORDER_HEADER.to_string(),
            value: HeaderValue::Text(placed_token),
            in_array: false,
        });
        crate::message::headers::check_limits(&request.extra)?;
        let entry = request.into_entry(retry_count, delay_ms);
        let first_failure = kind == Kind::Failed && entry.first_failed_at.is_none();
        Ok(OrderedMessage {
            token,
            id,
            delay_ms,
            entry: entry.encode_after_due(first_failure),
            dedupe: msg_id.is_some(),
        })
    }
}

fn check_topic(topic: &str) -> Result<()> {
    if topic.is_empty() {
        return Err(RetryError::invalid_arg(
            "topic must be a non-empty string, got \"\"",
        ));
    }
    Ok(())
}

/// Takes the `retryOrder` header out of the caller's headers (the package writes its own): its
/// text, or empty when absent or empty.
fn take_token(extra: &mut Vec<Header>) -> Result<String> {
    let mut token = String::new();
    let mut error = None;
    extra.retain(|header| {
        if header.name != ORDER_HEADER {
            return true;
        }
        match std::str::from_utf8(header.value.as_bytes()) {
            Ok(text) => token = text.to_string(),
            Err(_) => {
                error = Some(RetryError::invalid_arg(format!(
                    "options.{ORDER_HEADER} must be text (a token the package wrote), got {} bytes that are not UTF-8",
                    header.value.as_bytes().len()
                )))
            }
        }
        false
    });
    match error {
        Some(err) => Err(err),
        None => Ok(token),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_header_is_taken_out_of_the_callers_headers() {
        let header = |name: &str, value: &[u8]| Header {
            name: name.to_string(),
            value: HeaderValue::Bytes(value.to_vec()),
            in_array: false,
        };
        let mut extra = vec![
            header("traceparent", b"00-x"),
            header(ORDER_HEADER, b"m:abc"),
        ];
        assert_eq!(take_token(&mut extra).unwrap(), "m:abc");
        assert_eq!(extra, vec![header("traceparent", b"00-x")]);
        let mut none = vec![header("traceparent", b"00-x")];
        assert_eq!(take_token(&mut none).unwrap(), "");
        let mut bad = vec![header(ORDER_HEADER, &[0xff, 0xfe])];
        assert_eq!(
            take_token(&mut bad).unwrap_err().code.as_ref(),
            "ERR_INVALID_ARG"
        );
    }
}
