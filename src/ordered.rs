//! The ordered-retry methods of `KafkaRetry` (issue 23): arguments read as `pushToQueue` reads
//! them, the core's ordered calls (`engine::retry::ordered`) settled as promises, and
//! `handleInOrder`, whose loop around the user's handler is `lib/handle-in-order.js`.

use crate::args::parse_push;
use crate::class::KafkaRetry;
use crate::convert::string_arg;
use crate::settle::{js_error, settle_with};
use engine::retry::ordered::{Placed, Turn};
use napi::bindgen_prelude::*;
use napi_derive::napi;

/// `lib/handle-in-order.js` (the helper `handleInOrder`): `(retry, topic, message, handler)`.
type HandleArgs<'a> = FnArgs<(Object<'a>, Unknown<'a>, Unknown<'a>, Unknown<'a>)>;

fn placed_text(placed: Placed) -> &'static str {
    match placed {
        Placed::Scheduled(_) => "scheduled",
        Placed::Parked => "parked",
        Placed::Duplicate => "duplicate",
    }
}

#[napi]
impl KafkaRetry {
    /// Ordered retries: whether messages of `key` on `topic` are held back, because one of them
    /// waits on the schedule, is on its way back to the consumer, or is dead-lettered. A message
    /// of a blocked key must be parked (`park`) instead of handled.
    ///
    /// Rejects with `ERR_INVALID_ARG`, `ERR_REDIS_UNAVAILABLE` or `ERR_CLOSED`.
    #[napi(
        ts_args_type = "topic: string, key: string",
        ts_return_type = "Promise<boolean>"
    )]
    pub fn is_blocked<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        key: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, bool>> {
        let args = string_arg("topic", topic.as_ref(), true)
            .and_then(|t| Ok((t, string_arg("key", key.as_ref(), false)?)));
        let core = self.core().clone();
        settle_with(
            env,
            args,
            move |(topic, key)| async move { core.is_blocked(&topic, &key).await },
            |b| b,
        )
    }

    /// Ordered retries: parks a message behind the message of its key (`message.event`) that
    /// waits, to follow it in order once that one is handled; the same arguments as
    /// `pushToQueue`. When nothing of its key waits any more (decided in Redis, so a park racing
    /// the head's handling is never left behind nothing), it is scheduled at once instead.
    /// Parking spends no retry: `retryCount` is stored as given. Parking the same `msgId` twice
    /// stores it once.
    ///
    /// Resolves to `'parked'`, `'scheduled'` or `'duplicate'`. Rejects with `ERR_INVALID_ARG`,
    /// `ERR_REDIS_UNAVAILABLE` or `ERR_CLOSED`.
    #[napi(
        ts_args_type = "topic: string, message: RetryMessage, options?: RetryOptions | RetryOptionsWithHeaders",
        ts_return_type = "Promise<'parked' | 'scheduled' | 'duplicate'>"
    )]
    pub fn park<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        message: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, &'static str>> {
        let request = parse_push(topic.as_ref(), message.as_ref(), options.as_ref());
        let core = self.core().clone();
        settle_with(
            env,
            request,
            move |request| async move { core.park(request).await },
            placed_text,
        )
    }

    /// Ordered retries, the first half of `handleInOrder` for a consumer with its own loop: may
    /// this message be handled now? The arguments are `pushToQueue`'s, with `options` from
    /// `KafkaRetry.headers(headers, ['retryOrder'])` (the token an ordered retry carries). When
    /// its key is blocked the message is parked in the same Redis script.
    ///
    /// Resolves to `'free'` or `'mine'` (handle it, then call `endTurn`), `'parked'` or
    /// `'duplicate'` (a copy of a message already handled or parked: drop it).
    #[napi(
        ts_args_type = "topic: string, message: RetryMessage, options?: RetryOptions | RetryOptionsWithHeaders",
        ts_return_type = "Promise<'free' | 'mine' | 'parked' | 'duplicate'>"
    )]
    pub fn take_turn<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        message: Option<Unknown>,
        options: Option<Unknown>,
    ) -> Result<PromiseRaw<'env, &'static str>> {
        let request = parse_push(topic.as_ref(), message.as_ref(), options.as_ref());
        let core = self.core().clone();
        settle_with(
            env,
            request,
            move |request| async move { core.take_turn(request).await },
            |turn| match turn {
                Turn::Free => "free",
                Turn::Mine => "mine",
                Turn::Parked => "parked",
                Turn::Duplicate => "duplicate",
            },
        )
    }

    /// Ordered retries, the second half of `handleInOrder`: the message `takeTurn` let through
    /// was handled (`failed` false: the next parked message of its key, if any, becomes due now)
    /// or failed (`failed` true, the error in `options.error`: stored as an ordered retry, after
    /// the backoff, with what follows it held behind it).
    ///
    /// Resolves to `'handled'`, `'retried'`, `'parked'` or `'duplicate'`.
    #[napi(
        ts_args_type = "topic: string, message: RetryMessage, options: RetryOptions | RetryOptionsWithHeaders | undefined, failed: boolean",
        ts_return_type = "Promise<'handled' | 'retried' | 'parked' | 'duplicate'>"
    )]
    pub fn end_turn<'env>(
        &self,
        env: &'env Env,
        topic: Option<Unknown>,
        message: Option<Unknown>,
        options: Option<Unknown>,
        failed: Option<bool>,
    ) -> Result<PromiseRaw<'env, &'static str>> {
        let request = parse_push(topic.as_ref(), message.as_ref(), options.as_ref());
        let core = self.core().clone();
        settle_with(
            env,
            request,
            move |request| async move { core.finish_turn(request, failed.unwrap_or(false)).await },
            |placed| match placed {
                None => "handled",
                Some(Placed::Scheduled(_)) => "retried",
                Some(other) => placed_text(other),
            },
        )
    }

    /// Ordered retries around the consumer's handler, for `eachMessage`: `message` is the kafkajs
    /// message (`key`, `value`, `headers`) as received. Parks it when its key is blocked; else
    /// runs `handler(message)` and, when it throws, stores the message as an ordered retry with
    /// `KafkaRetry.headers(message.headers)` and the error; after a retry of this key is handled,
    /// the next parked message of the key is released. Resolves once the message is handled,
    /// parked or stored: to `'handled'`, `'retried'`, `'parked'` or `'duplicate'` (a second
    /// publish of a message already handled: the handler is not called). A message without a key
    /// has no order to keep: it is handled, and pushed as `pushToQueue` pushes when it fails.
    ///
    /// Rejects with `ERR_INVALID_ARG`, `ERR_REDIS_UNAVAILABLE` or `ERR_CLOSED`, and never with
    /// the handler's error (that one is stored with the retry).
    #[napi(
        ts_generic_types = "M extends KafkaMessageLike",
        ts_args_type = "topic: string, message: M, handler: (message: M) => unknown",
        ts_return_type = "Promise<'handled' | 'retried' | 'parked' | 'duplicate'>"
    )]
    pub fn handle_in_order<'env>(
        &self,
        env: &'env Env,
        this: This<'env>,
        topic: Unknown<'env>,
        message: Unknown<'env>,
        handler: Unknown<'env>,
    ) -> Result<Unknown<'env>> {
        // `self` is not read: the helper calls takeTurn/endTurn on `this`, the same instance.
        let _ = self;
        let handle: Function<HandleArgs, Unknown> = crate::helpers::helper(env, "handleInOrder")?;
        handle
            .call(FnArgs::from((this.object, topic, message, handler)))
            .map_err(|e| {
                js_error(
                    env,
                    &engine::error::RetryError::new(engine::error::ErrorCode::Internal, e.reason),
                )
            })
    }
}
