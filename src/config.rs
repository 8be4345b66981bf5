//! Resolved configuration of a `KafkaRetry` instance: explicit values, then the environment
//! (`REDIS_URL`, `KAFKA_BROKERS`), then defaults.

use crate::backoff::Backoff;
use crate::error::{Result, RetryError};
use std::time::Duration;

/// Default Redis URL when neither config nor `REDIS_URL` gives one.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default Kafka bootstrap servers when neither config nor `KAFKA_BROKERS` gives them.
pub const DEFAULT_BROKERS: &str = "localhost:9092";
/// Default `maxPublishFailures`: with the listener's publish backoff (0.5 s doubling) the fifth
/// failure comes about 7.5 s after the first, time enough for a topic being created to appear,
/// and few enough attempts that a message the broker refuses does not linger.
pub const DEFAULT_MAX_PUBLISH_FAILURES: u64 = 5;
/// Default namespace of every Redis key.
pub const DEFAULT_KEY_PREFIX: &str = "kafka-retry";

/// Everything the core needs, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Redis connection URL.
    pub redis_url: String,
    /// Kafka bootstrap servers, comma separated.
    pub brokers: String,
    /// Extra librdkafka properties for the internal producer.
    pub kafka: Vec<(String, String)>,
    /// Namespace of every Redis key of the schedule.
    pub key_prefix: String,
    /// Longest the listener sleeps when nothing is due.
    pub poll_interval: Duration,
    /// How long a claimed message stays invisible to other listeners.
    pub lease: Duration,
    /// Most messages one claim takes.
    pub batch_size: usize,
    /// Longest one Redis operation may take before it fails with `ERR_REDIS_UNAVAILABLE`.
    pub redis_timeout: Duration,
    /// How long a pushed `msgId`/`retryCount` pair is remembered to drop redeliveries.
    pub dedupe_window: Duration,
    /// Whether `redis_url` names the seed nodes of a Redis Cluster (comma separated).
    pub cluster: bool,
    /// How many hash tags (shards) one schedule is spread over.
    pub shards: u32,
    /// How the delay grows per attempt.
    pub backoff: Backoff,
    /// Kafka topic that exhausted messages are also published to.
    pub dead_letter_topic: Option<String>,
    /// Above this many dead letters the listener reports that the cap is passed (nothing is
    /// trimmed).
    pub max_dead_letters: Option<u64>,
    /// Whether the listener picks up buckets written by the original JavaScript class.
    pub migrate_legacy: bool,
    /// Publishes of one message that may fail with an error retrying cannot fix (too large, no
    /// such topic, not authorized) before it is dead-lettered.
    pub max_publish_failures: u64,
}

/// Config as given by the caller; `None` means "not given".
#[derive(Debug, Clone, Default)]
pub struct ConfigInput {
    /// `redisUrl`.
    pub redis_url: Option<String>,
    /// `brokers`, already joined with commas.
    pub brokers: Option<String>,
    /// `kafka`.
    pub kafka: Vec<(String, String)>,
    /// `keyPrefix`.
    pub key_prefix: Option<String>,
    /// `pollIntervalMs`.
    pub poll_interval_ms: Option<f64>,
    /// `leaseMs`.
    pub lease_ms: Option<f64>,
    /// `batchSize`.
    pub batch_size: Option<f64>,
    /// `redisTimeoutMs`.
    pub redis_timeout_ms: Option<f64>,
    /// `dedupeWindowMs`.
    pub dedupe_window_ms: Option<f64>,
    /// `cluster`.
    pub cluster: Option<bool>,
    /// `shards`.
    pub shards: Option<f64>,
    /// `backoff`, already parsed.
    pub backoff: Option<Backoff>,
    /// `deadLetterTopic`.
    pub dead_letter_topic: Option<String>,
    /// `maxDeadLetters`.
    pub max_dead_letters: Option<f64>,
    /// `migrateLegacy`.
    pub migrate_legacy: Option<bool>,
    /// `maxPublishFailures`.
    pub max_publish_failures: Option<f64>,
}

impl ConfigInput {
    /// Resolves against the process environment.
    pub fn resolve(self) -> Result<Config> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Resolves against the given environment lookup (tests pass their own).
    pub fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let redis_url = non_empty(self.redis_url)
            .or_else(|| non_empty(env("REDIS_URL")))
            .unwrap_or_else(|| DEFAULT_REDIS_URL.to_string());
        let cluster = self.cluster.unwrap_or(false);
        // A cluster is given by its seed nodes, comma separated; a single server by one URL.
        let urls: Vec<&str> = if cluster {
            redis_url.split(',').map(str::trim).collect()
        } else {
            vec![redis_url.as_str()]
        };
        for url in urls {
            redis::Client::open(url).map_err(|err| {
                RetryError::invalid_arg(format!("config.redisUrl is not a Redis URL: {url:?}"))
                    .caused_by(err)
            })?;
        }
        let brokers = non_empty(self.brokers)
            .or_else(|| non_empty(env("KAFKA_BROKERS")))
            .unwrap_or_else(|| DEFAULT_BROKERS.to_string());
        let key_prefix = self
            .key_prefix
            .unwrap_or_else(|| DEFAULT_KEY_PREFIX.to_string());
        if key_prefix.is_empty() || key_prefix.contains(['{', '}']) {
            return Err(RetryError::invalid_arg(format!(
                "config.keyPrefix must be non-empty and free of '{{' and '}}' (they are Redis hash tags), got {key_prefix:?}"
            )));
        }
        Ok(Config {
            redis_url,
            brokers,
            kafka: self.kafka,
            key_prefix,
            poll_interval: millis("pollIntervalMs", self.poll_interval_ms, 1_000, 1)?,
            lease: millis("leaseMs", self.lease_ms, 30_000, 100)?,
            batch_size: whole("batchSize", self.batch_size, 1024, 1, 10_000)? as usize,
            redis_timeout: millis("redisTimeoutMs", self.redis_timeout_ms, 5_000, 10)?,
            dedupe_window: millis("dedupeWindowMs", self.dedupe_window_ms, 3_600_000, 0)?,
            cluster,
            shards: whole("shards", self.shards, 1, 1, 1024)? as u32,
            backoff: self.backoff.unwrap_or_default(),
            dead_letter_topic: match self.dead_letter_topic {
                Some(topic) if topic.is_empty() => {
                    return Err(RetryError::invalid_arg(
                        "config.deadLetterTopic must be a non-empty string, got \"\"",
                    ))
                }
                topic => topic,
            },
            max_dead_letters: match self.max_dead_letters {
                None => None,
                some => Some(whole("maxDeadLetters", some, 0, 0, u64::MAX >> 11)?),
            },
            migrate_legacy: self.migrate_legacy.unwrap_or(false),
            max_publish_failures: whole(
                "maxPublishFailures",
                self.max_publish_failures,
                DEFAULT_MAX_PUBLISH_FAILURES,
                1,
                1_000_000,
            )?,
        })
    }
}

fn millis(name: &str, value: Option<f64>, default: u64, min: u64) -> Result<Duration> {
    whole(name, value, default, min, 365 * 24 * 3_600_000).map(Duration::from_millis)
}

fn whole(name: &str, value: Option<f64>, default: u64, min: u64, max: u64) -> Result<u64> {
    let Some(v) = value else { return Ok(default) };
    if !v.is_finite() || v.fract() != 0.0 || v < min as f64 || v > max as f64 {
        return Err(RetryError::invalid_arg(format!(
            "config.{name} must be a whole number from {min} to {max}, got {v}"
        )));
    }
    Ok(v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_apply_without_config_or_env() {
        let c = ConfigInput::default().resolve_with(|_| None).unwrap();
        assert_eq!(c.redis_url, DEFAULT_REDIS_URL);
        assert_eq!(c.brokers, DEFAULT_BROKERS);
        assert_eq!(c.key_prefix, "kafka-retry");
        assert_eq!(c.poll_interval, Duration::from_millis(1000));
        assert_eq!(c.lease, Duration::from_millis(30_000));
        assert_eq!(c.max_publish_failures, 5);
    }

    #[test]
    fn environment_comes_before_defaults_and_config_before_environment() {
        let env = |k: &str| match k {
            "REDIS_URL" => Some("redis://10.0.0.1:6380".to_string()),
            "KAFKA_BROKERS" => Some("k1:9092,k2:9092".to_string()),
            _ => None,
        };
        let c = ConfigInput::default().resolve_with(env).unwrap();
        assert_eq!(c.redis_url, "redis://10.0.0.1:6380");
        assert_eq!(c.brokers, "k1:9092,k2:9092");
        let c = ConfigInput {
            redis_url: Some("redis://127.0.0.1:7000".into()),
            ..Default::default()
        }
        .resolve_with(env)
        .unwrap();
        assert_eq!(c.redis_url, "redis://127.0.0.1:7000");
    }

    #[test]
    fn bad_values_name_the_key() {
        let cases = [
            ConfigInput {
                redis_url: Some("http://x".into()),
                ..Default::default()
            },
            ConfigInput {
                key_prefix: Some("a{b}".into()),
                ..Default::default()
            },
            ConfigInput {
                lease_ms: Some(-5.0),
                ..Default::default()
            },
            ConfigInput {
                batch_size: Some(0.5),
                ..Default::default()
            },
            ConfigInput {
                poll_interval_ms: Some(f64::INFINITY),
                ..Default::default()
            },
            ConfigInput {
                max_publish_failures: Some(0.0),
                ..Default::default()
            },
        ];
        for input in cases {
            let err = input.resolve_with(|_| None).unwrap_err();
            assert!(err.message.starts_with("config."), "{}", err.message);
        }
    }
}
