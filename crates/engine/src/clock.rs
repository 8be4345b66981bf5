//! Time. Redis's clock (`TIME`, read inside the scripts) decides when a message is due and when a
//! lease ends, so hosts whose clocks disagree schedule alike. A listener still needs to know
//! Redis's "now" between script calls (how long to sleep, when its lease ends, a dead letter's
//! time of death): [`RedisClock`] is the last time a script reported plus the time elapsed on
//! this host's monotonic clock since, which no change of the host's wall clock affects.

use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch on this host's clock: only where no Redis time is at hand
/// (interpreting the original class's bucket names, which its hosts' clocks wrote).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Redis's clock as last reported, advanced by this host's monotonic clock.
#[derive(Debug, Default)]
pub struct RedisClock {
    sample: Mutex<Option<(u64, Instant)>>,
}

impl RedisClock {
    /// Records that Redis's clock read `redis_ms` just now.
    pub fn observe(&self, redis_ms: u64) {
        *self.sample.lock().unwrap_or_else(|p| p.into_inner()) = Some((redis_ms, Instant::now()));
    }

    /// Redis's "now" in ms since the epoch, or `None` before any report.
    pub fn now_ms(&self) -> Option<u64> {
        let sample = *self.sample.lock().unwrap_or_else(|p| p.into_inner());
        sample.map(|(ms, at)| ms + at.elapsed().as_millis() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_time_advances_with_the_monotonic_clock() {
        let clock = RedisClock::default();
        assert_eq!(clock.now_ms(), None);
        clock.observe(1_000);
        std::thread::sleep(std::time::Duration::from_millis(20));
        let now = clock.now_ms().unwrap();
        assert!((1_020..1_500).contains(&now), "{now}");
    }
}
