//! One claimed batch, from its claim to its last settle: the publishes run at once, each
//! finished message is settled in the next group, and the batch's lease is renewed while any is
//! not settled. `Batch` holds where each message stands; `Listener::process` drives it.

use super::lease::{next_renewal, retry_renewal, Renewed};
use super::settle::{Settle, Settled, Settling};
use super::Listener;
use crate::error::{ErrorCode, Result, RetryError};
use crate::store::entry::topic_of;
use crate::store::schedule::{Claim, Schedule};
use futures::stream::{FuturesUnordered, StreamExt};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// A boxed future of one batch (the rare or one-at-a-time work beside its publishes).
type Pending<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// Where one claimed message of a batch stands.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    /// Its publish (or dead-lettering) is in flight.
    Publishing,
    /// Finished, waiting for the next settle.
    Queued,
    /// In the settle in flight.
    Settling,
    /// Acknowledged or released: no longer ours.
    Settled,
}

/// Where each message of a claimed batch stands, by its index in the claim, and when the batch's
/// lease ends here.
pub(super) struct Batch {
    lease_end: Instant,
    stages: Vec<Stage>,
    /// Finished messages waiting for the next settle, with what each asks of Redis.
    queued: Vec<(usize, Settle)>,
    settled: usize,
    /// The backoff of this batch's failed publishes, taken once (one step per batch).
    backoff: Option<Duration>,
}

/// The next settle group, taken from the queue.
pub(super) struct Group {
    /// Its messages.
    pub(super) settling: Vec<Settling>,
    /// How many of them failed to publish.
    pub(super) failed: usize,
    /// Whether any goes back on the schedule (so the group needs the batch's backoff).
    pub(super) needs_backoff: bool,
    /// Whether it holds every message of the batch not settled yet (so it may forget the
    /// batch's lease record).
    pub(super) last: bool,
}

impl Batch {
    /// `count` messages all publishing, their lease ending at `lease_end`.
    fn new(count: usize, lease_end: Instant) -> Batch {
        Batch {
            lease_end,
            stages: vec![Stage::Publishing; count],
            queued: Vec::new(),
            settled: 0,
            backoff: None,
        }
    }

    /// Every message was acknowledged or released.
    fn all_settled(&self) -> bool {
        self.settled >= self.stages.len()
    }

    /// Some finished message waits for a settle.
    fn has_queued(&self) -> bool {
        !self.queued.is_empty()
    }

    /// Message `i` finished (published, failed or dead-lettered): queued for the next settle.
    fn finished(&mut self, i: usize, settle: Settle) {
        self.stages[i] = Stage::Queued;
        self.queued.push((i, settle));
    }

    /// Takes every queued message into one settle group, each with the batch's lease end.
    fn take_group(&mut self, items: &[(String, String)]) -> Group {
        let failed = self.queued.iter().filter(|(_, s)| s.is_failure()).count();
        let needs_backoff = self.queued.iter().any(|(_, s)| s.needs_backoff());
        // Drained, not taken: the queue keeps its room for the next group (it grew again from
        // nothing for each group, an allocation per few finished messages).
        let settling = self
            .queued
            .drain(..)
            .map(|(i, settle)| {
                self.stages[i] = Stage::Settling;
                Settling {
                    index: i,
                    id: items[i].0.clone(),
                    topic: topic_of(&items[i].1),
                    lease_ends: self.lease_end,
                    settle,
                }
            })
            .collect();
        let last =
            !self.stages.contains(&Stage::Publishing) && !self.stages.contains(&Stage::Queued);
        Group {
            settling,
            failed,
            needs_backoff,
            last,
        }
    }

    /// The batch's backoff, `next` giving it the first time it is asked for.
    fn backoff(&mut self, next: impl FnOnce() -> Duration) -> Duration {
        *self.backoff.get_or_insert_with(next)
    }

    /// The settle in flight finished: its messages are settled, except `reached` (refused
    /// `maxPublishFailures` times), which are still leased in the batch and go back to
    /// publishing, their dead-lettering being in flight (renewed meanwhile).
    fn group_settled(&mut self, reached: impl IntoIterator<Item = usize>) {
        for stage in self.stages.iter_mut().filter(|s| **s == Stage::Settling) {
            *stage = Stage::Settled;
            self.settled += 1;
        }
        for i in reached {
            self.stages[i] = Stage::Publishing;
            self.settled -= 1;
        }
    }

    /// The ids of the messages whose publish (or dead-lettering) is pending.
    fn pending<'i>(&self, items: &'i [(String, String)]) -> Vec<&'i str> {
        (0..self.stages.len())
            .filter(|&i| self.stages[i] == Stage::Publishing)
            .map(|i| items[i].0.as_str())
            .collect()
    }

    /// The batch's lease was renewed: it ends at `lease_end`.
    pub(super) fn renewed(&mut self, lease_end: Instant) {
        self.lease_end = lease_end;
    }

    /// Gives up on the pending publishes (closing, `leaseMs` after close()): each is queued to
    /// go back on the schedule.
    fn put_back_pending(&mut self) {
        for (i, stage) in self.stages.iter_mut().enumerate() {
            if *stage == Stage::Publishing {
                *stage = Stage::Queued;
                self.queued.push((i, Settle::Release));
            }
        }
    }
}

impl Listener {
    /// Publishes (or dead-letters) one claimed batch, settling each message as its publish
    /// finishes: acknowledged when published, released to its backoff when it failed, counted
    /// (and dead-lettered at `maxPublishFailures`) when the broker refused it for good.
    /// `claimed_at`: when the claim was asked for, on this host's monotonic clock (the lease ran
    /// from no earlier than that).
    ///
    /// One lease for the whole batch (its name in Redis, `claim.lua`), renewed while any message
    /// of it is not settled, so none is claimed by another listener however slow the rest of
    /// its batch is. A finished publish is settled in the next small group (whatever else
    /// finished meanwhile, one Redis call per group): an acknowledged message's entry is gone,
    /// which is what keeps a later claim of the batch (after a crash) from publishing it again,
    /// and a released one leaves the batch's record. The group that settles the last messages
    /// also forgets the record; if a call failed, the record stays until the lease runs out and
    /// a claim takes what is still stored and unsettled.
    ///
    /// After a stop (close()), pending publishes get `lease` more; what is still pending then
    /// goes back on the schedule, so close() leaves nothing leased (a publish that still
    /// completes after that is the one case where a message can go out twice).
    pub(super) async fn process(
        &self,
        schedule: &Schedule,
        claim: Claim,
        claimed_at: Instant,
        mut stop: watch::Receiver<bool>,
    ) {
        let Claim {
            deadline,
            batch: name,
            now,
            items,
            ..
        } = claim;
        let name = name.as_str();
        let first_end = claimed_at + Duration::from_millis(deadline.saturating_sub(now));
        let mut batch = Batch::new(items.len(), first_end);
        // Whether the record was forgotten, and whether every settle call succeeded.
        let (mut forgotten, mut clean) = (false, true);
        let mut publishing: FuturesUnordered<_> = items
            .iter()
            .enumerate()
            .map(|(i, (id, json))| async move { (i, self.handle(id, json).await) })
            .collect();
        // Refused messages that reached `maxPublishFailures`, being dead-lettered (rare: boxed).
        let mut dead_lettering: FuturesUnordered<Pending<'_, (usize, Result<()>)>> =
            FuturesUnordered::new();
        let mut settling: Option<Pending<'_, Settled>> = None;
        let mut renewing: Option<Pending<'_, Renewed>> = None;
        let renew_every = self.lease / 3;
        // Timers made once per batch, not per finished publish: this loop turns about once per
        // message of the batch.
        let renew = tokio::time::sleep(renew_every);
        tokio::pin!(renew);
        let give_up = tokio::time::sleep(Duration::from_secs(365 * 24 * 3600));
        tokio::pin!(give_up);
        let mut stopping = false;
        let mut slow_reported = false;
        while !batch.all_settled() || settling.is_some() || renewing.is_some() {
            if !stopping && *stop.borrow() {
                stopping = true;
                give_up.as_mut().reset((Instant::now() + self.lease).into());
            }
            let can_settle = batch.has_queued() && settling.is_none();
            let publishes = !publishing.is_empty() || !dead_lettering.is_empty();
            tokio::select! {
                // Finished publishes first: a settle starts only once none is ready, so the
                // publishes that finish together are settled together.
                biased;
                Some((i, outcome)) = publishing.next(), if !publishing.is_empty() => {
                    batch.finished(i, self.settle_publish(outcome));
                }
                Some((i, outcome)) = dead_lettering.next(), if !dead_lettering.is_empty() => {
                    batch.finished(i, self.settle_dead_letter(outcome));
                }
                _ = std::future::ready(()), if can_settle => {
                    let Group { settling: group, failed, needs_backoff, last } = batch.take_group(&items);
                    if failed > 0 {
                        self.counters
                            .publish_failures
                            .fetch_add(failed as u64, Ordering::Relaxed);
                    }
                    // One backoff step per batch with failures, however many groups settle them.
                    let delay = if needs_backoff {
                        batch.backoff(|| self.next_backoff())
                    } else {
                        Duration::ZERO
                    };
                    settling = Some(Box::pin(self.settle(schedule, name, group, delay, last)));
                }
                (reached, finished, ok) = async { settling.as_mut().expect("guarded").await }, if settling.is_some() => {
                    settling = None;
                    forgotten |= finished;
                    clean &= ok;
                    batch.group_settled(reached.iter().map(|(i, _)| *i));
                    for (i, err) in reached {
                        let (id, stored) = &items[i];
                        dead_lettering.push(Box::pin(async move {
                            (i, self.dead_letter_refused(id, stored, &err).await)
                        }));
                    }
                }
                _ = &mut renew => {
                    let in_flight = renewing.is_some();
                    if !in_flight {
                        if !slow_reported && publishes && Instant::now() >= claimed_at + self.lease {
                            slow_reported = true;
                            self.report_slow(&batch.pending(&items));
                        }
                        if !batch.all_settled() || settling.is_some() {
                            renewing = Some(Box::pin(self.renew(schedule, name)));
                        }
                    }
                    let next = next_renewal(in_flight, renew_every);
                    renew.as_mut().reset((Instant::now() + next).into());
                }
                renewed = async { renewing.as_mut().expect("guarded").await }, if renewing.is_some() => {
                    renewing = None;
                    if self.renewed(&mut batch, renewed, items.len()) {
                        let planned = renew.deadline().into_std();
                        if let Some(soon) = retry_renewal(Instant::now(), renew_every, planned) {
                            renew.as_mut().reset(soon.into());
                        }
                    }
                }
                _ = &mut give_up, if stopping && publishes => {
                    let pending = publishing.len() + dead_lettering.len();
                    self.report_error(&RetryError::new(
                        ErrorCode::KafkaPublish,
                        format!(
                            "closing with {pending} publishes still pending leaseMs ({} ms) after close(): their messages go back on the schedule",
                            self.lease.as_millis()
                        ),
                    ));
                    publishing.clear();
                    dead_lettering.clear();
                    batch.put_back_pending();
                }
                // Turns the loop once, to see the stop at its top; a dropped sender stops too.
                changed = stop.changed(), if !stopping => {
                    if changed.is_err() {
                        stopping = true;
                        give_up
                            .as_mut()
                            .reset((Instant::now() + self.lease).into());
                    }
                }
            }
        }
        // The last group could not forget the record (a refusal at the limit was dead-lettered
        // after it): once every message is settled, one more call does.
        if !forgotten && !name.is_empty() && clean {
            if let Err(err) = schedule.ack_batch(name, &[], true).await {
                self.report_error(&err);
            }
        }
    }

    /// Takes a renewal's outcome into `batch`, reporting a lease that was lost and failed calls.
    /// Returns whether the call failed (to try again soon).
    pub(super) fn renewed(&self, batch: &mut Batch, renewed: Renewed, count: usize) -> bool {
        let Renewed { asked, outcome } = renewed;
        match outcome {
            Ok((_, true)) => {
                batch.renewed(asked + self.lease);
                false
            }
            Ok((_, false)) => {
                self.report_error(&RetryError::new(
                    ErrorCode::Internal,
                    format!(
                        "a batch of {count} messages had lost its lease before it was renewed; another listener may publish its pending messages too"
                    ),
                ));
                false
            }
            Err(err) => {
                self.report_error(&err);
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("id{i}"), format!(r#"{{"topic":"t{i}"}}"#)))
            .collect()
    }

    fn published() -> Settle {
        Settle::Ack {
            published: true,
            dead_lettered: false,
        }
    }

    fn refused() -> Settle {
        Settle::Count(RetryError::new(ErrorCode::KafkaPublish, "refused"))
    }

    #[test]
    fn a_finished_message_is_settled_in_the_next_group_under_the_batch_lease() {
        let items = items(3);
        let start = Instant::now();
        let mut batch = Batch::new(3, start);
        batch.finished(1, published());
        assert_eq!(batch.pending(&items), vec!["id0", "id2"]);
        let later = start + Duration::from_secs(3);
        batch.renewed(later);
        let group = batch.take_group(&items);
        assert_eq!(group.failed, 0);
        assert!(!group.needs_backoff);
        assert!(!group.last, "two are still publishing");
        let [one] = group.settling.as_slice() else {
            panic!("one message settles")
        };
        assert_eq!(
            (one.index, one.id.as_str(), one.topic.as_str()),
            (1, "id1", "t1")
        );
        assert_eq!(one.lease_ends, later);
        assert!(!batch.has_queued());
        batch.group_settled([]);
        assert!(!batch.all_settled());
        batch.finished(0, Settle::Release);
        batch.finished(2, refused());
        let group = batch.take_group(&items);
        assert_eq!(group.failed, 2);
        assert!(group.needs_backoff);
        assert!(group.last, "the last two: the group may forget the batch");
        let indexes: Vec<usize> = group.settling.iter().map(|s| s.index).collect();
        assert_eq!(indexes, vec![0, 2]);
        batch.group_settled([]);
        assert!(batch.all_settled());
        assert!(batch.pending(&items).is_empty());
    }

    #[test]
    fn refused_at_the_limit_go_back_to_publishing_until_dead_lettered() {
        let items = items(2);
        let mut batch = Batch::new(2, Instant::now());
        batch.finished(0, refused());
        batch.finished(1, published());
        let group = batch.take_group(&items);
        assert_eq!(group.settling.len(), 2);
        assert!(group.last);
        batch.group_settled([0]);
        assert!(!batch.all_settled());
        // Still leased in the batch: renewed while its dead-lettering is in flight.
        assert_eq!(batch.pending(&items), vec!["id0"]);
        batch.finished(0, Settle::Keep);
        let group = batch.take_group(&items);
        assert_eq!(group.failed, 0);
        assert!(group.needs_backoff);
        assert!(group.last);
        batch.group_settled([]);
        assert!(batch.all_settled());
    }

    #[test]
    fn one_backoff_per_batch() {
        let mut batch = Batch::new(1, Instant::now());
        let mut asked = 0;
        for _ in 0..3 {
            let delay = batch.backoff(|| {
                asked += 1;
                Duration::from_millis(500)
            });
            assert_eq!(delay, Duration::from_millis(500));
        }
        assert_eq!(asked, 1);
    }

    #[test]
    fn closing_puts_back_only_the_pending_publishes() {
        let items = items(3);
        let mut batch = Batch::new(3, Instant::now());
        batch.finished(1, published());
        batch.put_back_pending();
        let group = batch.take_group(&items);
        let settles: Vec<(usize, bool)> = group
            .settling
            .iter()
            .map(|s| (s.index, matches!(s.settle, Settle::Release)))
            .collect();
        assert_eq!(settles, vec![(1, false), (0, true), (2, true)]);
        assert_eq!(group.failed, 2);
        batch.group_settled([]);
        assert!(batch.all_settled());
    }
}
