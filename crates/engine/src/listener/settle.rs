//! Settling finished messages: what each asks of Redis (acknowledge, release to the backoff,
//! count a refusal), in groups under their batch's lease, so a message that finished early is
//! settled without waiting for the slow ones of its batch; the last group also forgets the
//! batch's lease record.

use super::{Listener, PUBLISH_BACKOFF_MAX, PUBLISH_BACKOFF_MIN};
use crate::error::{Result, RetryError};
use crate::store::schedule::{Acked, Schedule};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// A message's schedule id and topic, as the settle scripts take them.
pub(super) type IdTopic = (String, String);

/// What a settle did: the refused messages that reached `maxPublishFailures` (batch index, the
/// broker's error), whether it forgot the batch's lease record, whether every call succeeded.
pub(super) type Settled = (Vec<(usize, RetryError)>, bool, bool);

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

/// One message of a settle, with when its batch's lease ends here.
#[derive(Debug)]
pub(super) struct Settling {
    pub(super) index: usize,
    pub(super) id: String,
    pub(super) topic: String,
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
    /// To release: `(failed, (id, topic))`; `failed` false for the kept ones.
    releases: Vec<(bool, IdTopic)>,
    /// Refusals to count: `(index in the batch, (id, topic), the broker's error)`.
    counted: Vec<(usize, IdTopic, RetryError)>,
}

/// Sorts a settle group by what each message asks of Redis.
fn sort(group: Vec<Settling>) -> Sorted {
    let mut sorted = Sorted::default();
    for Settling {
        index,
        id,
        topic,
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
            Settle::Release => sorted.releases.push((true, (id, topic))),
            Settle::Keep => sorted.releases.push((false, (id, topic))),
            Settle::Count(err) => sorted.counted.push((index, (id, topic), err)),
        }
    }
    sorted
}

/// The `release.lua` calls of a settle, in order: `(failed, ids)`, the failed publishes first,
/// then the kept ones (only the former count as failed in the history).
fn release_calls(releases: &[(bool, IdTopic)]) -> Vec<(bool, Vec<IdTopic>)> {
    [true, false]
        .into_iter()
        .map(|failed| {
            let ids: Vec<IdTopic> = releases
                .iter()
                .filter(|(f, _)| *f == failed)
                .map(|(_, pair)| pair.clone())
                .collect();
            (failed, ids)
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect()
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

    /// Settles one group of finished messages of `batch`: releases the failed to their backoff,
    /// counts the refused, then acknowledges the published (and dead-lettered), and with
    /// `finish` (no other message of the batch left) forgets the batch's lease record in that
    /// same call, unless a call failed or a refusal reached the limit. Returns the refused
    /// messages that reached `maxPublishFailures` (still leased in the batch) with the broker's
    /// error, for the caller to dead-letter; whether the batch's record was forgotten; whether
    /// every call succeeded.
    pub(super) async fn settle(
        &self,
        schedule: &Schedule,
        batch: &str,
        group: Vec<Settling>,
        delay: Duration,
        finish: bool,
    ) -> Settled {
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
        // Any failed call leaves the record: once the lease runs out, a claim takes what is
        // still stored and not settled.
        let mut clean = true;
        // A failed publish goes back on the schedule with its retry count unchanged; if even
        // that fails (Redis down), the lease runs out and the message is claimed again.
        for (failed, ids) in release_calls(&releases) {
            if let Err(err) = schedule.release(batch, delay, failed, &ids).await {
                clean = false;
                self.report_error(&err);
            }
        }
        // Each refusal is counted in Redis (`release.lua`, beside the schedule, so the count
        // survives restarts and is shared by every listener); below `maxPublishFailures` they go
        // back on the schedule like any failed publish, at it they stay leased in the batch for
        // us to dead-letter with the broker's error, then acknowledge.
        let mut reached = Vec::new();
        if !counted.is_empty() {
            let ids: Vec<IdTopic> = counted.iter().map(|(_, pair, _)| pair.clone()).collect();
            match schedule
                .release_counting(batch, delay, self.max_publish_failures, true, &ids)
                .await
            {
                Ok((_, ids)) => reached = ids,
                Err(err) => {
                    clean = false;
                    self.report_error(&err);
                }
            }
        }
        let finish = finish && clean && reached.is_empty();
        let mut finished = false;
        if !acks.is_empty() || finish {
            let ends = ack_ends.unwrap_or_else(Instant::now);
            let acked = self
                .ack_within_lease(schedule, batch, &acks, finish, ends)
                .await;
            clean &= acked;
            finished = acked && finish;
        }
        let reached = counted
            .into_iter()
            .filter(|(_, (id, _), _)| reached.contains(id))
            .map(|(index, _, err)| (index, err))
            .collect();
        (reached, finished, clean)
    }

    /// Acknowledges published ids (and with `finish` forgets the batch), retrying while the
    /// lease lasts: giving up early would only make another listener publish them again.
    /// Returns whether it succeeded.
    async fn ack_within_lease(
        &self,
        schedule: &Schedule,
        batch: &str,
        acked: &[Acked],
        finish: bool,
        lease_ends: Instant,
    ) -> bool {
        loop {
            match schedule.ack_batch(batch, acked, finish).await {
                Ok(()) => return true,
                Err(err) => {
                    self.report_error(&err);
                    if Instant::now() + Duration::from_millis(200) >= lease_ends {
                        return false;
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

    fn settling(index: usize, ends: Instant, settle: Settle) -> Settling {
        Settling {
            index,
            id: format!("id{index}"),
            topic: "t".to_string(),
            lease_ends: ends,
            settle,
        }
    }

    fn pair(id: &str) -> IdTopic {
        (id.to_string(), "t".to_string())
    }

    #[test]
    fn sorts_a_group_by_call() {
        let now = Instant::now();
        let later = now + Duration::from_secs(5);
        let refused = RetryError::new(ErrorCode::KafkaPublish, "too large");
        let sorted = sort(vec![
            settling(
                0,
                later,
                Settle::Ack {
                    published: false,
                    dead_lettered: true,
                },
            ),
            settling(1, later, Settle::Release),
            settling(2, later, Settle::Count(refused)),
            settling(3, later, Settle::Keep),
            settling(
                4,
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
            vec![(true, pair("id1")), (false, pair("id3"))]
        );
        assert_eq!(sorted.counted.len(), 1);
        let (index, ids, err) = &sorted.counted[0];
        assert_eq!((*index, ids), (2, &pair("id2")));
        assert_eq!(err.message, "too large");
    }

    #[test]
    fn a_group_of_dead_letters_only_does_not_end_the_backoff() {
        let sorted = sort(vec![settling(
            0,
            Instant::now(),
            Settle::Ack {
                published: false,
                dead_lettered: true,
            },
        )]);
        assert!(!sorted.published);
        let sorted = sort(vec![settling(0, Instant::now(), Settle::Release)]);
        assert_eq!(sorted.ack_ends, None);
        assert!(sorted.acks.is_empty());
    }

    #[test]
    fn releases_the_failed_before_the_kept() {
        let calls = release_calls(&[
            (false, pair("k1")),
            (true, pair("f1")),
            (true, pair("f2")),
            (false, pair("k2")),
        ]);
        assert_eq!(
            calls,
            vec![
                (true, vec![pair("f1"), pair("f2")]),
                (false, vec![pair("k1"), pair("k2")]),
            ]
        );
        assert!(release_calls(&[]).is_empty());
        assert_eq!(
            release_calls(&[(false, pair("k"))]),
            vec![(false, vec![pair("k")])]
        );
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
