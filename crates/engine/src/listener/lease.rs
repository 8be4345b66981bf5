//! Keeping a batch's leases while its publishes are pending: `renew.lua` every third of the
//! lease, one call per token, never on the messages a settle is using.

use super::Listener;
use crate::error::{ErrorCode, Result, RetryError};
use crate::store::schedule::Schedule;
use std::time::{Duration, Instant};

/// What `renew.lua` answered: the new token and how many ids it renewed.
type RenewOutcome = Result<(u64, u64)>;

/// The messages of one renewal call: their indexes in the batch, the token they hold their lease
/// by, and their ids.
pub(super) type TokenGroup = (Vec<usize>, u64, Vec<String>);

/// A renewal's outcome per token group: the batch indexes and (new token, how many renewed).
pub(super) struct Renewed {
    pub(super) asked: Instant,
    pub(super) groups: Vec<(Vec<usize>, RenewOutcome)>,
}

/// When the renewal timer fires next: a third of the lease after it fired, or soon (50 ms, at
/// most `every`) when a renewal is still in flight and this turn renewed nothing.
pub(super) fn next_renewal(in_flight: bool, every: Duration) -> Duration {
    if in_flight {
        Duration::from_millis(50).min(every)
    } else {
        every
    }
}

/// After a failed renewal: the earlier moment to try again (200 ms, at most `every`, from `now`),
/// if that is before the renewal already `planned`.
pub(super) fn retry_renewal(now: Instant, every: Duration, planned: Instant) -> Option<Instant> {
    let soon = now + Duration::from_millis(200).min(every);
    (soon < planned).then_some(soon)
}

/// The messages `waiting` (indexes into `items`) grouped by the token they hold their lease by:
/// `(indexes, token, ids)`, one group in the common case.
pub(super) fn by_token(
    waiting: &[usize],
    tokens: &[u64],
    items: &[(String, String)],
) -> Vec<TokenGroup> {
    let mut groups: Vec<TokenGroup> = Vec::new();
    for &i in waiting {
        match groups.iter_mut().find(|(_, token, _)| *token == tokens[i]) {
            Some((indexes, _, ids)) => {
                indexes.push(i);
                ids.push(items[i].0.clone());
            }
            None => groups.push((vec![i], tokens[i], vec![items[i].0.clone()])),
        }
    }
    groups
}

impl Listener {
    /// Renews the lease of `groups` (ids sharing a token), one `renew.lua` call per token.
    pub(super) async fn renew(&self, schedule: &Schedule, groups: Vec<TokenGroup>) -> Renewed {
        let asked = Instant::now();
        let mut out = Vec::with_capacity(groups.len());
        for (indexes, token, ids) in groups {
            out.push((indexes, schedule.renew(token, self.lease, &ids).await));
        }
        Renewed { asked, groups: out }
    }

    /// Reports (once per batch) publishes still pending after `leaseMs`: their lease is renewed.
    pub(super) fn report_slow(&self, pending: &[&str]) {
        self.report_error(&RetryError::new(
            ErrorCode::KafkaPublish,
            format!(
                "{} publishes are still pending after leaseMs ({} ms); their lease is renewed until they finish (first: {:?})",
                pending.len(),
                self.lease.as_millis(),
                pending.first().copied().unwrap_or(""),
            ),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(n: usize) -> Vec<(String, String)> {
        (0..n).map(|i| (format!("id{i}"), String::new())).collect()
    }

    #[test]
    fn renews_every_third_of_the_lease_and_soon_while_a_renewal_is_in_flight() {
        let every = Duration::from_secs(10);
        assert_eq!(next_renewal(false, every), every);
        assert_eq!(next_renewal(true, every), Duration::from_millis(50));
        // A lease shorter than 150 ms: never later than the third of it.
        let short = Duration::from_millis(20);
        assert_eq!(next_renewal(true, short), short);
    }

    #[test]
    fn a_failed_renewal_is_retried_only_when_that_comes_earlier() {
        let now = Instant::now();
        let every = Duration::from_secs(10);
        assert_eq!(
            retry_renewal(now, every, now + every),
            Some(now + Duration::from_millis(200))
        );
        assert_eq!(
            retry_renewal(now, every, now + Duration::from_millis(100)),
            None
        );
        assert_eq!(
            retry_renewal(now, every, now + Duration::from_millis(200)),
            None
        );
        let short = Duration::from_millis(30);
        assert_eq!(
            retry_renewal(now, short, now + Duration::from_secs(1)),
            Some(now + short)
        );
    }

    #[test]
    fn groups_waiting_messages_by_their_token() {
        let items = items(5);
        let tokens = [100, 200, 100, 300, 200];
        assert_eq!(
            by_token(&[0, 1, 2, 4], &tokens, &items),
            vec![
                (vec![0, 2], 100, vec!["id0".to_string(), "id2".to_string()]),
                (vec![1, 4], 200, vec!["id1".to_string(), "id4".to_string()]),
            ]
        );
        assert!(by_token(&[], &tokens, &items).is_empty());
    }
}
