//! Wake-ups across processes. A push whose message is due before the listeners next look
//! publishes its due time on the schedule's wake channel (push.lua, requeue.lua); a listener
//! subscribes to the channels of its shards and wakes at once, wherever the push came from.
//! Polling (`pollIntervalMs`) stays only as a safety net for when the subscription is down.

use crate::error::{ErrorCode, RetryError};
use crate::store::connection::{is_no_answer, SharedRedis};
use futures::StreamExt;
use std::time::Duration;
use tokio::sync::watch;

/// Longest pause between attempts to subscribe again after the subscription failed.
const RESUBSCRIBE_MAX: Duration = Duration::from_secs(5);

/// How often the subscription is checked with a PING, and how long its answer may take. A
/// subscriber only reads, so a socket whose peer vanished without a FIN or RST (an expired NAT
/// entry, a cut network) would wait for messages forever; a PING that gets no answer shows it,
/// and the subscription is made again on a new connection.
const PING_EVERY: Duration = Duration::from_secs(3);
const PING_TIMEOUT: Duration = Duration::from_secs(2);

/// Subscribes to `channels` on `shared`'s server (a cluster's first seed node, a Sentinel
/// setup's current master, looked up again at each subscription) and calls `on_due` with each announced due time (Redis's
/// clock) until `stop` turns true, subscribing again after a failure or when the connection stops
/// answering PINGs; `on_error` hears about failures (once per outage, not per attempt).
pub async fn listen(
    shared: &SharedRedis,
    channels: Vec<String>,
    on_due: impl Fn(u64),
    on_error: impl Fn(RetryError),
    mut stop: watch::Receiver<bool>,
) {
    let mut failures: u32 = 0;
    let mut attempts: usize = 0;
    while !*stop.borrow() {
        attempts = attempts.wrapping_add(1);
        let subscribed = async {
            let client = shared
                .target()
                .pubsub_client(Duration::from_secs(5), attempts)
                .await?;
            let mut pubsub = client.get_async_pubsub().await?;
            for channel in &channels {
                pubsub.subscribe(channel).await?;
            }
            Ok::<_, redis::RedisError>(pubsub)
        };
        let outcome = tokio::select! {
            outcome = tokio::time::timeout(Duration::from_secs(10), subscribed) => outcome,
            _ = stop.changed() => return,
        };
        match outcome {
            Ok(Ok(pubsub)) => {
                failures = 0;
                let (mut sink, mut messages) = pubsub.split();
                let mut ping = tokio::time::interval(PING_EVERY);
                ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                ping.reset();
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(message) => {
                                if let Ok(due) = message.get_payload::<u64>() {
                                    on_due(due);
                                }
                            }
                            // The connection dropped: subscribe again.
                            None => break,
                        },
                        _ = ping.tick() => {
                            let answered = tokio::select! {
                                answered = tokio::time::timeout(PING_TIMEOUT, sink.ping::<redis::Value>()) => answered,
                                _ = stop.changed() => return,
                            };
                            // An error reply (an ACL without PING) still shows the socket is alive.
                            let alive = match answered {
                                Ok(Ok(_)) => true,
                                Ok(Err(err)) => !is_no_answer(&err),
                                Err(_) => false,
                            };
                            if !alive {
                                on_error(RetryError::new(
                                    ErrorCode::RedisUnavailable,
                                    format!(
                                        "the wake-up subscription at {} did not answer a PING within {} ms; subscribing again on a new connection",
                                        shared.describe(),
                                        PING_TIMEOUT.as_millis()
                                    ),
                                ));
                                break;
                            }
                        }
                        _ = stop.changed() => return,
                    }
                }
            }
            Ok(Err(err)) => {
                if failures == 0 {
                    on_error(
                        RetryError::new(
                            ErrorCode::RedisUnavailable,
                            format!(
                                "cannot subscribe to wake-ups at {}; polling every pollIntervalMs meanwhile",
                                shared.describe()
                            ),
                        )
                        .caused_by(err),
                    );
                }
                failures = failures.saturating_add(1);
            }
            Err(_) => failures = failures.saturating_add(1),
        }
        let pause = (Duration::from_millis(100) * 2u32.saturating_pow(failures.min(8)))
            .min(RESUBSCRIBE_MAX);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = stop.changed() => return,
        }
    }
}
