//! Retry backoff policies: how long attempt k waits, from the message's base `delay`.
//!
//! Attempt k is the stored `retryCount` (1 for the first retry). The base delay is the message's
//! `delay` option; the `delay` header keeps the base, so every failure computes from the same base.

use crate::error::{Result, RetryError};

/// How the delay grows with the attempt number.
#[derive(Debug, Clone, PartialEq)]
pub enum Policy {
    /// Every attempt waits the base delay (the original class's behaviour; the default).
    Fixed,
    /// Attempt k waits base × multiplier^(k-1), at most `max_delay_ms`.
    Exponential {
        /// Growth factor per attempt (≥ 1).
        multiplier: f64,
        /// Cap of one attempt's delay.
        max_delay_ms: u64,
    },
    /// Attempt k waits `delays_ms[k-1]`; the last value repeats. The base delay is not used.
    List {
        /// Delays of the first attempts, in ms.
        delays_ms: Vec<u64>,
    },
}

/// Randomization of the computed delay, which spreads retries of messages that failed together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jitter {
    /// The computed delay, exactly.
    None,
    /// Uniform in [0, delay].
    Full,
    /// delay/2 plus uniform in [0, delay/2].
    Equal,
}

/// A backoff policy with its jitter.
#[derive(Debug, Clone, PartialEq)]
pub struct Backoff {
    /// The growth policy.
    pub policy: Policy,
    /// The jitter applied after the policy.
    pub jitter: Jitter,
}

/// Default cap of an exponential delay: one day.
pub const DEFAULT_MAX_DELAY_MS: u64 = 24 * 3_600_000;

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            policy: Policy::Fixed,
            jitter: Jitter::None,
        }
    }
}

impl Backoff {
    /// Validates a policy as given in config (`type`, `multiplier`, `maxDelayMs`, `delaysMs`,
    /// `jitter`).
    pub fn parse(
        kind: Option<&str>,
        multiplier: Option<f64>,
        max_delay_ms: Option<f64>,
        delays_ms: Option<Vec<f64>>,
        jitter: Option<&str>,
    ) -> Result<Self> {
        let jitter = match jitter {
            None | Some("none") => Jitter::None,
            Some("full") => Jitter::Full,
            Some("equal") => Jitter::Equal,
            Some(other) => {
                return Err(RetryError::invalid_arg(format!(
                    "config.backoff.jitter must be 'full', 'equal' or 'none', got {other:?}"
                )))
            }
        };
        let policy = match kind.unwrap_or("fixed") {
            "fixed" => Policy::Fixed,
            "exponential" => {
                let multiplier = multiplier.unwrap_or(2.0);
                if !multiplier.is_finite() || !(1.0..=1000.0).contains(&multiplier) {
                    return Err(RetryError::invalid_arg(format!(
                        "config.backoff.multiplier must be a number from 1 to 1000, got {}",
                        crate::message::options::format_js_number(multiplier)
                    )));
                }
                Policy::Exponential {
                    multiplier,
                    max_delay_ms: whole_ms(
                        "config.backoff.maxDelayMs",
                        max_delay_ms.unwrap_or(DEFAULT_MAX_DELAY_MS as f64),
                    )?,
                }
            }
            "list" => {
                let delays = delays_ms.unwrap_or_default();
                if delays.is_empty() {
                    return Err(RetryError::invalid_arg(
                        "config.backoff.delaysMs must be a non-empty array of milliseconds for type 'list'",
                    ));
                }
                let delays_ms = delays
                    .into_iter()
                    .enumerate()
                    .map(|(i, d)| whole_ms(&format!("config.backoff.delaysMs[{i}]"), d))
                    .collect::<Result<Vec<_>>>()?;
                Policy::List { delays_ms }
            }
            other => {
                return Err(RetryError::invalid_arg(format!(
                    "config.backoff.type must be 'fixed', 'exponential' or 'list', got {other:?}"
                )))
            }
        };
        Ok(Backoff { policy, jitter })
    }

    /// The delay before attempt `attempt` (1 = first retry) with base delay `base_ms`, before
    /// jitter.
    pub fn planned_ms(&self, base_ms: u64, attempt: u64) -> u64 {
        let k = attempt.max(1);
        match &self.policy {
            Policy::Fixed => base_ms,
            Policy::Exponential {
                multiplier,
                max_delay_ms,
            } => {
                let exponent = (k - 1).min(1_000) as i32;
                let delay = base_ms as f64 * multiplier.powi(exponent);
                if delay.is_finite() {
                    (delay.round() as u64).min(*max_delay_ms)
                } else {
                    *max_delay_ms
                }
            }
            Policy::List { delays_ms } => {
                let index = ((k - 1) as usize).min(delays_ms.len() - 1);
                delays_ms[index]
            }
        }
    }

    /// The delay to wait, with jitter drawn from `random` (uniform in [0, 1)).
    pub fn delay_ms(&self, base_ms: u64, attempt: u64, random: f64) -> u64 {
        let planned = self.planned_ms(base_ms, attempt);
        let random = random.clamp(0.0, 1.0);
        match self.jitter {
            Jitter::None => planned,
            Jitter::Full => (planned as f64 * random).round() as u64,
            Jitter::Equal => {
                planned / 2 + (((planned - planned / 2) as f64) * random).round() as u64
            }
        }
    }
}

fn whole_ms(name: &str, value: f64) -> Result<u64> {
    if !value.is_finite()
        || value < 0.0
        || value.fract() != 0.0
        || value > 10.0 * 365.0 * 86_400_000.0
    {
        return Err(RetryError::invalid_arg(format!(
            "{name} must be a whole number of milliseconds from 0 to ten years, got {}",
            crate::message::options::format_js_number(value)
        )));
    }
    Ok(value as u64)
}

/// A uniform random number in [0, 1) for jitter.
pub fn random_unit() -> f64 {
    fastrand::f64()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exponential(multiplier: f64, max: u64) -> Backoff {
        Backoff {
            policy: Policy::Exponential {
                multiplier,
                max_delay_ms: max,
            },
            jitter: Jitter::None,
        }
    }

    #[test]
    fn fixed_waits_the_base_every_time() {
        let b = Backoff::default();
        for k in 1..10 {
            assert_eq!(b.delay_ms(60_000, k, 0.7), 60_000);
        }
    }

    #[test]
    fn exponential_multiplies_per_attempt_and_caps() {
        let b = exponential(2.0, 10_000);
        let delays: Vec<u64> = (1..=6).map(|k| b.planned_ms(1_000, k)).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 8_000, 10_000, 10_000]);
        // A huge attempt number does not overflow.
        assert_eq!(b.planned_ms(1_000, u64::MAX), 10_000);
        assert_eq!(exponential(3.0, u64::MAX).planned_ms(100, 3), 900);
    }

    #[test]
    fn list_uses_the_attempts_entry_and_repeats_the_last() {
        let b = Backoff {
            policy: Policy::List {
                delays_ms: vec![100, 1_000, 5_000],
            },
            jitter: Jitter::None,
        };
        let delays: Vec<u64> = (1..=5).map(|k| b.planned_ms(60_000, k)).collect();
        assert_eq!(delays, [100, 1_000, 5_000, 5_000, 5_000]);
    }

    #[test]
    fn jitter_stays_in_its_range() {
        let mut full = exponential(1.0, u64::MAX);
        full.jitter = Jitter::Full;
        assert_eq!(full.delay_ms(1_000, 1, 0.0), 0);
        assert_eq!(full.delay_ms(1_000, 1, 0.5), 500);
        assert_eq!(full.delay_ms(1_000, 1, 0.999_999), 1_000);
        let mut equal = full.clone();
        equal.jitter = Jitter::Equal;
        assert_eq!(equal.delay_ms(1_000, 1, 0.0), 500);
        assert_eq!(equal.delay_ms(1_000, 1, 1.0), 1_000);
        for _ in 0..1_000 {
            let d = equal.delay_ms(1_000, 1, random_unit());
            assert!((500..=1_000).contains(&d));
        }
    }

    #[test]
    fn random_unit_is_in_range() {
        for _ in 0..10_000 {
            let r = random_unit();
            assert!((0.0..1.0).contains(&r));
        }
    }

    #[test]
    fn parse_validates_every_field() {
        assert_eq!(
            Backoff::parse(None, None, None, None, None).unwrap(),
            Backoff::default()
        );
        let b = Backoff::parse(
            Some("exponential"),
            Some(3.0),
            Some(60_000.0),
            None,
            Some("equal"),
        )
        .unwrap();
        assert_eq!(b.jitter, Jitter::Equal);
        assert_eq!(b.planned_ms(1_000, 3), 9_000);
        for (kind, mult, max, list, jitter, needle) in [
            (Some("linear"), None, None, None, None, "backoff.type"),
            (
                Some("exponential"),
                Some(0.5),
                None,
                None,
                None,
                "multiplier",
            ),
            (
                Some("exponential"),
                None,
                Some(-1.0),
                None,
                None,
                "maxDelayMs",
            ),
            (Some("list"), None, None, Some(vec![]), None, "delaysMs"),
            (
                Some("list"),
                None,
                None,
                Some(vec![1.5]),
                None,
                "delaysMs[0]",
            ),
            (None, None, None, None, Some("half"), "jitter"),
        ] {
            let err = Backoff::parse(kind, mult, max, list, jitter).unwrap_err();
            assert!(
                err.message.contains(needle),
                "{} should name {needle}",
                err.message
            );
        }
    }
}
