//! Keeping a batch's lease while its publishes are pending: `renew.lua` every third of the
//! lease, one call per batch however many messages it holds.

use super::Listener;
use crate::error::{ErrorCode, Result, RetryError};
use crate::store::schedule::Schedule;
use std::time::{Duration, Instant};

/// A renewal's outcome: when it was asked, and (new deadline, whether the batch was still ours).
pub(super) struct Renewed {
    pub(super) asked: Instant,
    pub(super) outcome: Result<(u64, bool)>,
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

impl Listener {
    /// Renews the lease of `batch` (one `renew.lua` call).
    pub(super) async fn renew(&self, schedule: &Schedule, batch: &str) -> Renewed {
        let asked = Instant::now();
        let outcome = schedule.renew(batch, self.lease).await;
        Renewed { asked, outcome }
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
}
