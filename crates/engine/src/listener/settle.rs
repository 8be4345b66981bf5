//! Settling finished messages: what each asks of Redis (acknowledge, release to the backoff,
//! count a refusal), in groups by the lease token each holds, so a message that finished early
//! is settled without waiting for the slow ones of its batch.

use super::{Listener, PUBLISH_BACKOFF_MAX, PUBLISH_BACKOFF_MIN};
use crate::error::{Result, RetryError};
use crate::store::schedule::{Acked, Schedule};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A message's schedule id and topic, as the settle scripts take them.
pub(super) type IdTopic = (String, String);

/// What a finished message asks of Redis.
#[derive(Debug)]
pub(super) enum Settle {
    /// Published (or dead-lettered): forget it. `published` when the broker took the message
    /// itself, which ends the publish backoff; `dead_lettered` when it went to the dead letters
    /// (the history counts it so).
    Ack {
        published: bool,
        dead_lettered: bool,
    },
    /// Failed: back on the schedule at the batch's backoff.
    Release,
    /// Refused with an error retrying cannot fix: counted, dead-lettered at the limit.
    Count(RetryError),
    /// Dead-lettering it failed: back on the schedule, uncounted.
    Keep,
}

impl Settle {
    /// A failed publish (released or counted): what `stats().publishFailures` counts.
    pub(super) fn is_failure(&self) -> bool {
        matches!(self, Settle::Release | Settle::Count(_))
    }

    /// Goes back on the schedule (or may): the group then needs the batch's backoff.
    pub(super) fn needs_backoff(&self) -> bool {
        !matches!(self, Settle::Ack { .. })
    }
}

/// One message of a settle, with the token it holds its lease by.
#[derive(Debug)]
pub(super) struct Settling {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) topic: String,
    pub(super) token: u64,
    pub(super) lease_ends: Instant,
    pub(super) settle: Settle,
}

/// A settle group sorted by the Redis call each message takes.
#[derive(Debug, Default)]
struct Sorted {
    /// To acknowledge, in one `ack.lua` call.
    acks: Vec<Acked>,
    /// The earliest lease end of the acknowledged: acks are retried until then.
    ack_ends: Option<Instant>,
    /// Whether the broker took any message itself (which ends the publish backoff).
    published: bool,
    /// To release: `(failed, token, (id, topic))`; `failed` false for the kept ones.
    releases: Vec<(bool, u64, IdTopic)>,
    /// Refusals to count: `(token, index in the batch, (id, topic), the broker's error)`.
    counted: Vec<(u64, usize, IdTopic, RetryError)>,
}

/// Sorts a settle group by what each message asks of Redis, keeping each one's token.
fn sort(group: Vec<Settling>) -> Sorted {
    let mut sorted = Sorted::default();
    for Settling {
        index,
        id,
        topic,
        token,
        lease_ends,
        settle,
    } in group
    {
        match settle {
            Settle::Ack {
                published,
                dead_lettered,
            } => {
                sorted.published |= published;
                sorted.ack_ends = Some(sorted.ack_ends.map_or(lease_ends, |e| e.min(lease_ends)));
                sorted.acks.push(Acked {
                    id,
                    topic,
                    dead_lettered,
                });
            }
            Settle::Release => sorted.releases.push((true, token, (id, topic))),
            Settle::Keep => sorted.releases.push((false, token, (id, topic))),
            Settle::Count(err) => sorted.counted.push((token, index, (id, topic), err)),
        }
    }
    sorted
}

/// The `release.lua` calls of a settle, in order: `(failed, token, ids)`, the failed publishes
/// first, then the kept ones (only the former count as failed in the history), one call per
/// token of each.
fn release_calls(releases: &[(bool, u64, IdTopic)]) -> Vec<(bool, u64, Vec<IdTopic>)> {
    let mut calls = Vec::new();
    for failed in [true, false] {
        let of_kind = releases
            .iter()
            .filter(|(f, _, _)| *f == failed)
            .map(|(_, token, pair)| (*token, pair.clone()))
            .collect();
        for (token, ids) in group_by_token(of_kind) {
            calls.push((failed, token, ids));
        }
    }
    calls
}

/// `(token, id)` pairs grouped by token, in first-seen order.
pub(super) fn group_by_token<T>(pairs: Vec<(u64, T)>) -> Vec<(u64, Vec<T>)> {
    let mut groups: Vec<(u64, Vec<T>)> = Vec::new();
    for (token, id) in pairs {
        match groups.iter_mut().find(|(t, _)| *t == token) {
            Some((_, ids)) => ids.push(id),
            None => groups.push((token, vec![id])),
        }
    }
    groups
}

/// The backoff after `failures` consecutive batches with failed publishes (1 for the first):
/// from [`PUBLISH_BACKOFF_MIN`], doubling, at most [`PUBLISH_BACKOFF_MAX`].
pub(super) fn publish_backoff(failures: u32) -> Duration {
    (PUBLISH_BACKOFF_MIN * 2u32.saturating_pow(failures.clamp(1, 16) - 1)).min(PUBLISH_BACKOFF_MAX)
}

impl Listener {
    /// What a publish's outcome asks of Redis; a failure is reported.
    pub(super) fn settle_publish(&self, outcome: Result<bool>) -> Settle {
        match outcome {
            Ok(dead_lettered) => Settle::Ack {
                published: true,
                dead_lettered,
            },
            Err(err) => {
                self.report_error(&err);
                if err.permanent {
                    Settle::Count(err)
                } else {
                    Settle::Release
                }
            }
        }
    }

    /// What dead-lettering a refused message asks of Redis; a failure is reported.
    pub(super) fn settle_dead_letter(&self, outcome: Result<()>) -> Settle {
        match outcome {
            Ok(()) => Settle::Ack {
                published: false,
                dead_lettered: true,
            },
            // Dead-lettering failed (Redis, or the dead letter topic down): back on the
            // schedule, uncounted; its count stays at the limit, so the next refusal
            // dead-letters it at once.
            Err(err) => {
                self.report_error(&err);
                Settle::Keep
            }
        }
    }

    /// The backoff of the failed publishes of one batch: doubles per consecutive batch with
    /// failures (reset by any published message).
    pub(super) fn next_backoff(&self) -> Duration {
        let failures = self
            .publish_failures
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        publish_backoff(failures)
    }

    /// Settles one group of finished messages: acknowledges the published (and dead-lettered),
    /// releases the failed to their backoff and counts the refused, each with its own token.
    /// Returns the refused messages that reached `maxPublishFailures` (still leased under their
    /// token) with the broker's error, for the caller to dead-letter.
    pub(super) async fn settle(
        &self,
        schedule: &Schedule,
        group: Vec<Settling>,
        delay: Duration,
    ) -> Vec<(usize, RetryError)> {
        let Sorted {
            acks,
            ack_ends,
            published,
            releases,
            counted,
        } = sort(group);
        if published {
            self.publish_failures.store(0, Ordering::Relaxed);
        }
        if let Some(ends) = ack_ends {
            self.ack_within_lease(schedule, &acks, ends).await;
        }
        // A failed publish goes back on the schedule with its retry count unchanged; if even
        // that fails (Redis down), the lease runs out and the message is claimed again.
        for (failed, token, ids) in release_calls(&releases) {
            if let Err(err) = schedule.release(token, delay, failed, &ids).await {
                self.report_error(&err);
            }
        }
        if counted.is_empty() {
            return Vec::new();
        }
        // Each refusal is counted in Redis (`release.lua`, beside the schedule, so the count
        // survives restarts and is shared by every listener); below `maxPublishFailures` they go
        // back on the schedule like any failed publish, at it they stay leased under their token
        // for us to dead-letter with the broker's error, then acknowledge.
        let ids: Vec<(u64, IdTopic)> = counted
            .iter()
            .map(|(t, _, pair, _)| (*t, pair.clone()))
            .collect();
        let mut reached = Vec::new();
        for (token, ids) in group_by_token(ids) {
            match schedule
                .release_counting(token, delay, self.max_publish_failures, true, &ids)
                .await
            {
                Ok((_, ids)) => reached.extend(ids),
                Err(err) => self.report_error(&err),
            }
        }
        counted
            .into_iter()
            .filter(|(_, _, (id, _), _)| reached.contains(id))
            .map(|(_, index, _, err)| (index, err))
            .collect()
    }

    /// Acknowledges published ids, retrying while the lease lasts: giving up early would only
    /// make another listener publish them again.
    async fn ack_within_lease(&self, schedule: &Schedule, acked: &[Acked], lease_ends: Instant) {
        loop {
            match schedule.ack(acked).await {
                Ok(()) => return,
                Err(err) => {
                    self.report_error(&err);
                    if Instant::now() + Duration::from_millis(200) >= lease_ends {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    fn settling(index: usize, token: u64, ends: Instant, settle: Settle) -> Settling {
        Settling {
            index,
            id: format!("id{index}"),
            topic: "t".to_string(),
            token,
            lease_ends: ends,
            settle,
        }
    }

    fn pair(id: &str) -> IdTopic {
        (id.to_string(), "t".to_string())
    }

    #[test]
    fn groups_by_token_in_first_seen_order() {
        let groups = group_by_token(vec![(7, "a"), (3, "b"), (7, "c"), (5, "d"), (3, "e")]);
        assert_eq!(
            groups,
            vec![(7, vec!["a", "c"]), (3, vec!["b", "e"]), (5, vec!["d"])]
        );
        assert!(group_by_token::<&str>(Vec::new()).is_empty());
    }

    #[test]
    fn sorts_a_group_by_call_keeping_each_token() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let refused = RetryError::new(ErrorCode::KafkaPublish, "too large");
        let sorted = sort(vec![
            settling(
                0,
                10,
                later,
                Settle::Ack {
                    published: false,
                    dead_lettered: true,
                },
            ),
            settling(1, 10, later, Settle::Release),
            settling(2, 11, later, Settle::Count(refused)),
            settling(3, 12, later, Settle::Keep),
            settling(
                4,
                12,
                now,
                Settle::Ack {
                    published: true,
                    dead_lettered: false,
                },
            ),
        ]);
        // The earliest lease end of the acknowledged bounds the ack's retries.
        assert_eq!(sorted.ack_ends, Some(now));
        assert!(sorted.published);
        let acked: Vec<(&str, bool)> = sorted
            .acks
            .iter()
            .map(|a| (a.id.as_str(), a.dead_lettered))
            .collect();
        assert_eq!(acked, vec![("id0", true), ("id4", false)]);
        assert_eq!(
            sorted.releases,
            vec![(true, 10, pair("id1")), (false, 12, pair("id3"))]
        );
        assert_eq!(sorted.counted.len(), 1);
        let (token, index, ids, err) = &sorted.counted[0];
        assert_eq!((*token, *index, ids), (11, 2, &pair("id2")));
        assert_eq!(err.message, "too large");
    }

    #[test]
    fn a_group_of_dead_letters_only_does_not_end_the_backoff() {
        let sorted = sort(vec![settling(
            0,
            1,
            Instant::now(),
            Settle::Ack {
                published: false,
                dead_lettered: true,
            },
        )]);
        assert!(!sorted.published);
        let sorted = sort(vec![settling(0, 1, Instant::now(), Settle::Release)]);
        assert_eq!(sorted.ack_ends, None);
        assert!(sorted.acks.is_empty());
    }

    #[test]
    fn releases_the_failed_before_the_kept_one_call_per_token() {
        let calls = release_calls(&[
            (false, 2, pair("k1")),
            (true, 1, pair("f1")),
            (true, 2, pair("f2")),
            (false, 2, pair("k2")),
            (true, 1, pair("f3")),
        ]);
        assert_eq!(
            calls,
            vec![
                (true, 1, vec![pair("f1"), pair("f3")]),
                (true, 2, vec![pair("f2")]),
                (false, 2, vec![pair("k1"), pair("k2")]),
            ]
        );
        assert!(release_calls(&[]).is_empty());
    }

    #[test]
    fn publish_backoff_doubles_from_the_minimum_to_the_maximum() {
        assert_eq!(publish_backoff(1), Duration::from_millis(500));
        assert_eq!(publish_backoff(2), Duration::from_secs(1));
        assert_eq!(publish_backoff(3), Duration::from_secs(2));
        assert_eq!(publish_backoff(7), Duration::from_secs(30));
        assert_eq!(publish_backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn only_acknowledged_messages_skip_the_backoff() {
        let refused = || RetryError::new(ErrorCode::KafkaPublish, "x");
        let ack = Settle::Ack {
            published: true,
            dead_lettered: false,
        };
        assert!(!ack.needs_backoff() && !ack.is_failure());
        assert!(Settle::Release.needs_backoff() && Settle::Release.is_failure());
        assert!(Settle::Count(refused()).needs_backoff() && Settle::Count(refused()).is_failure());
        assert!(Settle::Keep.needs_backoff() && !Settle::Keep.is_failure());
    }
}
