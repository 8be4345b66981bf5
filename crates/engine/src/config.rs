//! Resolved configuration of a `KafkaRetry` instance: explicit values, then the environment
//! (`REDIS_URL`, `KAFKA_BROKERS`), then defaults.

use crate::error::{Result, RetryError};
use crate::message::backoff::Backoff;
use crate::message::options::format_js_number;
use std::time::Duration;

/// Default Redis URL when neither config nor `REDIS_URL` gives one.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
/// Default Kafka bootstrap servers when neither config nor `KAFKA_BROKERS` gives them.
pub const DEFAULT_BROKERS: &str = "localhost:9092";
/// Default `maxPublishFailures`: with the listener's publish backoff (0.5 s doubling) the fifth
/// failure comes about 7.5 s after the first, time enough for a topic being created to appear,
/// and few enough attempts that a message the broker refuses does not linger.
pub const DEFAULT_MAX_PUBLISH_FAILURES: u64 = 5;
/// Default `maxReplays`: a dead letter requeued three times that died each time is not requeued
/// by a bulk requeue again unless it is forced (the cause is in the message, not the outage).
pub const DEFAULT_MAX_REPLAYS: u64 = 3;
/// The smallest `maxPublishRate`, messages per second (one every 1,000 s): a smaller one
/// (`1e-300`) is a mistake, and its token bucket's next token would lie beyond any clock.
pub const MIN_PUBLISH_RATE: f64 = 0.001;
/// The largest `maxPublishRate`, messages per second.
pub const MAX_PUBLISH_RATE: f64 = 1.0e9;
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
    /// Replays (requeued, died again) after which a bulk requeue skips a dead letter unless forced.
    pub max_replays: u64,
    /// Most messages per second the listeners of this schedule publish together, across every
    /// process (a token bucket in Redis taken by the claim); `None`: no cap.
    pub max_publish_rate: Option<f64>,
    /// ACL user name for the Redis servers (over the URL's).
    pub username: Option<String>,
    /// Password for the Redis servers (over the URL's).
    pub password: Option<Secret>,
    /// TLS towards the Redis servers: `Some` also for a `rediss://` URL without `tls` config.
    pub tls: Option<TlsConfig>,
    /// The master is found through Redis Sentinel (then `redis_url` is not used).
    pub sentinel: Option<SentinelConfig>,
    /// Replicas that must hold a push (and a listener's ack) before it counts as done (`WAIT`).
    pub wait_replicas: u32,
    /// Longest a `WAIT` for `wait_replicas` may take.
    pub wait_timeout: Duration,
    /// The breaker per topic (`breaker`, docs/breaker.md); `None`: off.
    pub breaker: Option<BreakerConfig>,
}

/// The breaker per topic, resolved (config `breaker: true` or `{ ... }`; docs/breaker.md).
#[derive(Debug, Clone, PartialEq)]
pub struct BreakerConfig {
    /// Failures per attempt in the window at or above which the breaker opens.
    pub failure_ratio: f64,
    /// Fewest failures in the window that open the breaker.
    pub min_failures: u64,
    /// The sliding window failures and attempts are counted over.
    pub window: Duration,
    /// Time between two rounds of probes while open.
    pub probe_interval: Duration,
    /// Most messages one round of probes lets through.
    pub probe_count: u64,
    /// How long the held messages take to go out once it closes (at a rising rate).
    pub ramp: Duration,
}

impl BreakerConfig {
    /// The options as the claim script takes them (`lib/breaker.lua`): six numbers.
    pub fn script_arg(&self) -> String {
        format!(
            "{} {} {} {} {} {}",
            self.failure_ratio,
            self.min_failures,
            self.window.as_millis(),
            self.probe_interval.as_millis(),
            self.probe_count,
            self.ramp.as_millis()
        )
    }
}

/// `config.breaker` as given: `enabled` for `true`/`false`, the options of an object (which
/// enables it) as numbers not yet checked.
#[derive(Debug, Clone, Default)]
pub struct BreakerInput {
    /// Whether the breaker is on (`false` only from `breaker: false`).
    pub enabled: bool,
    /// `failureRatio`.
    pub failure_ratio: Option<f64>,
    /// `minFailures`.
    pub min_failures: Option<f64>,
    /// `windowMs`.
    pub window_ms: Option<f64>,
    /// `probeIntervalMs`.
    pub probe_interval_ms: Option<f64>,
    /// `probeCount`.
    pub probe_count: Option<f64>,
    /// `rampMs`.
    pub ramp_ms: Option<f64>,
}

/// The keys of `config.breaker` as an object.
pub const BREAKER_KEYS: &[&str] = &[
    "failureRatio",
    "minFailures",
    "windowMs",
    "probeIntervalMs",
    "probeCount",
    "rampMs",
];

impl BreakerInput {
    /// Checks the options and fills in the defaults (docs/breaker.md): `None` when off.
    pub fn resolve(self) -> Result<Option<BreakerConfig>> {
        if !self.enabled {
            return Ok(None);
        }
        let failure_ratio = match self.failure_ratio {
            None => 0.5,
            Some(r) if r.is_finite() && r > 0.0 && r <= 1_000.0 => r,
            Some(r) => {
                return Err(RetryError::invalid_arg(format!(
                    "config.breaker.failureRatio must be a number above 0 and at most 1000 (failures per attempt), got {}",
                    format_js_number(r)
                )))
            }
        };
        Ok(Some(BreakerConfig {
            failure_ratio,
            min_failures: whole(
                "breaker.minFailures",
                self.min_failures,
                20,
                1,
                1_000_000_000,
            )?,
            window: millis("breaker.windowMs", self.window_ms, 30_000, 100)?,
            probe_interval: millis("breaker.probeIntervalMs", self.probe_interval_ms, 5_000, 10)?,
            probe_count: whole("breaker.probeCount", self.probe_count, 3, 1, 10_000)?,
            ramp: millis("breaker.rampMs", self.ramp_ms, 30_000, 1)?,
        }))
    }
}

/// A password: shown as `***` by `Debug`, so it never reaches a log or a message.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// TLS settings, with ioredis's names. PEM text (strings or Buffers in JavaScript).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TlsConfig {
    /// CA certificates to trust instead of the public ones (`ca`).
    pub ca: Option<Vec<u8>>,
    /// Client certificate chain for mutual TLS (`cert`).
    pub cert: Option<Vec<u8>>,
    /// Client private key for mutual TLS (`key`).
    pub key: Option<Vec<u8>>,
    /// Whether the server's certificate is checked (`rejectUnauthorized`, default true).
    pub reject_unauthorized: bool,
    /// `servername`: accepted only when it is the host connected to (see `resolve_with`).
    pub servername: Option<String>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            ca: None,
            cert: None,
            key: None,
            reject_unauthorized: true,
            servername: None,
        }
    }
}

impl TlsConfig {
    /// The CA and client certificate it gives, as the redis crate takes them; `None` when it
    /// gives neither (the public CAs are trusted then).
    pub fn certificates(&self) -> Option<redis::TlsCertificates> {
        let client_tls = match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            _ => None,
        };
        (client_tls.is_some() || self.ca.is_some()).then(|| redis::TlsCertificates {
            client_tls,
            root_cert: self.ca.clone(),
        })
    }
}

impl std::fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca", &self.ca.as_ref().map(Vec::len))
            .field("cert", &self.cert.as_ref().map(Vec::len))
            .field("key", &self.key.as_ref().map(|_| "***"))
            .field("reject_unauthorized", &self.reject_unauthorized)
            .field("servername", &self.servername)
            .finish()
    }
}

/// Redis Sentinel, with ioredis's shape: `{ sentinels: [{ host, port }], name, password?, tls? }`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SentinelConfig {
    /// The sentinels, asked in turn for the master's address.
    pub sentinels: Vec<(String, u16)>,
    /// The master's name in the sentinels' configuration.
    pub name: String,
    /// ACL user name for the sentinels (`sentinelUsername` in ioredis).
    pub username: Option<String>,
    /// Password for the sentinels (`sentinelPassword` in ioredis).
    pub password: Option<Secret>,
    /// TLS towards the sentinels (the master's is config `tls`).
    pub tls: Option<TlsConfig>,
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
    /// `maxReplays`.
    pub max_replays: Option<f64>,
    /// `maxPublishRate`.
    pub max_publish_rate: Option<f64>,
    /// `username`.
    pub username: Option<String>,
    /// `password`.
    pub password: Option<String>,
    /// `tls`.
    pub tls: Option<TlsConfig>,
    /// `sentinel`.
    pub sentinel: Option<SentinelConfig>,
    /// `waitReplicas`.
    pub wait_replicas: Option<f64>,
    /// `waitTimeoutMs`.
    pub wait_timeout_ms: Option<f64>,
    /// `breaker`.
    pub breaker: Option<BreakerInput>,
}

impl ConfigInput {
    /// Resolves against the process environment.
    pub fn resolve(self) -> Result<Config> {
        self.resolve_with(|name| std::env::var(name).ok())
    }

    /// Resolves against the given environment lookup (tests pass their own).
    pub fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let non_empty = |v: Option<String>| v.filter(|s| !s.trim().is_empty());
        let explicit_url = non_empty(self.redis_url.clone()).is_some();
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
        let mut hosts = Vec::new();
        let mut url_tls = false;
        for url in &urls {
            check_unix_socket(url, cfg!(unix))?;
            let client = redis::Client::open(*url).map_err(|err| {
                RetryError::invalid_arg(format!(
                    "config.redisUrl is not a Redis URL: {:?}",
                    crate::config::redacted_url(url)
                ))
                .caused_by(err)
            })?;
            match &client.get_connection_info().addr {
                redis::ConnectionAddr::Tcp(host, _) => hosts.push(host.clone()),
                redis::ConnectionAddr::TcpTls { host, .. } => {
                    url_tls = true;
                    hosts.push(host.clone())
                }
                redis::ConnectionAddr::Unix(_) => {}
            }
        }
        if let Some(sentinel) = &self.sentinel {
            if cluster {
                return Err(RetryError::invalid_arg(
                    "config.sentinel and config.cluster exclude each other: a Redis Cluster fails over by itself",
                ));
            }
            if explicit_url {
                return Err(RetryError::invalid_arg(
                    "config.sentinel and config.redisUrl exclude each other: with Sentinel the master's address comes from the sentinels",
                ));
            }
            if sentinel.sentinels.is_empty() {
                return Err(RetryError::invalid_arg(
                    "config.sentinel.sentinels must list at least one { host, port }",
                ));
            }
            if sentinel.name.is_empty() {
                return Err(RetryError::invalid_arg(
                    "config.sentinel.name must be the master's name in the sentinels' configuration, got \"\"",
                ));
            }
            if let Some(tls) = &sentinel.tls {
                check_tls("config.sentinel.tls", tls, &[])?;
            }
            hosts.clear();
        }
        let tls = match self.tls {
            Some(tls) => Some(tls),
            // A `rediss://` URL alone: TLS with the public CAs.
            None if url_tls && self.sentinel.is_none() => Some(TlsConfig::default()),
            None => None,
        };
        if let Some(tls) = &tls {
            check_tls("config.tls", tls, &hosts)?;
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
        let wait_replicas = whole("waitReplicas", self.wait_replicas, 0, 0, 1_000)? as u32;
        let wait_timeout = millis("waitTimeoutMs", self.wait_timeout_ms, 1_000, 1)?;
        let redis_timeout = millis("redisTimeoutMs", self.redis_timeout_ms, 5_000, 10)?;
        // A WAIT runs within the operation's redisTimeoutMs: one as long fails as "no answer"
        // (and, with Sentinel, drops the master's connection) instead of saying how many replicas
        // confirmed.
        if wait_replicas > 0 && wait_timeout >= redis_timeout {
            return Err(RetryError::invalid_arg(format!(
                "config.waitTimeoutMs ({} ms) must be shorter than config.redisTimeoutMs ({} ms): the WAIT for replicas runs within the Redis operation's timeout",
                wait_timeout.as_millis(),
                redis_timeout.as_millis()
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
            redis_timeout,
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
            max_replays: whole(
                "maxReplays",
                self.max_replays,
                DEFAULT_MAX_REPLAYS,
                1,
                1_000_000,
            )?,
            max_publish_rate: match self.max_publish_rate {
                None => None,
                Some(rate) if (MIN_PUBLISH_RATE..=MAX_PUBLISH_RATE).contains(&rate) => Some(rate),
                Some(rate) => {
                    return Err(RetryError::invalid_arg(format!(
                        "config.maxPublishRate must be a number of messages per second from {} to {}, got {}",
                        format_js_number(MIN_PUBLISH_RATE),
                        format_js_number(MAX_PUBLISH_RATE),
                        format_js_number(rate)
                    )))
                }
            },
            username: non_empty(self.username),
            password: self.password.filter(|p| !p.is_empty()).map(Secret),
            tls,
            sentinel: self.sentinel,
            wait_replicas,
            wait_timeout,
            breaker: self.breaker.unwrap_or_default().resolve()?,
        })
    }
}

/// Checks TLS settings where they are given, so a bad PEM is an `ERR_INVALID_ARG` of the
/// constructor rather than a failed connect later. `hosts`: the hosts connected to, when known
/// before connecting (`servername` must be one of them; none known: `servername` is refused).
fn check_tls(name: &str, tls: &TlsConfig, hosts: &[String]) -> Result<()> {
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(RetryError::invalid_arg(format!(
            "{name}.cert and {name}.key go together (mutual TLS): got only {}",
            if tls.cert.is_some() { "cert" } else { "key" }
        )));
    }
    if let Some(servername) = &tls.servername {
        // rustls (through the redis crate) checks the certificate against the host connected
        // to and sends that host as SNI; another name cannot be given to it.
        if hosts.is_empty() || hosts.iter().any(|host| host != servername) {
            return Err(RetryError::invalid_arg(format!(
                "{name}.servername {servername:?} is not supported unless it is the host connected to ({}): the certificate is checked against that host; connect by the name the certificate carries, or set {name}.rejectUnauthorized: false",
                if hosts.is_empty() { "known only after connecting here".to_string() } else { hosts.join(", ") }
            )));
        }
    }
    if let Some(ca) = &tls.ca {
        if !String::from_utf8_lossy(ca).contains("-----BEGIN CERTIFICATE-----") {
            return Err(RetryError::invalid_arg(format!(
                "{name}.ca must be PEM text (-----BEGIN CERTIFICATE-----...), got {} bytes without a certificate",
                ca.len()
            )));
        }
    }
    if let Some(certificates) = tls.certificates() {
        redis::Client::build_with_tls("rediss://localhost", certificates).map_err(|err| {
            RetryError::invalid_arg(format!(
                "{name} holds a certificate or key that cannot be read (PEM expected)"
            ))
            .caused_by(err)
        })?;
    }
    Ok(())
}

/// A Unix socket URL (`redis+unix://`, `unix://`, `valkey+unix://`) where the platform has no Unix
/// sockets (`unix_sockets` is `cfg!(unix)`; false on Windows) is refused here, by name: the redis
/// crate would refuse it too, but as a URL that is not valid, which sends users looking for a typo.
fn check_unix_socket(url: &str, unix_sockets: bool) -> Result<()> {
    let scheme = url.trim().split_once("://").map(|(scheme, _)| scheme);
    let is_unix = scheme.is_some_and(|scheme| {
        ["unix", "redis+unix", "valkey+unix"]
            .iter()
            .any(|unix| scheme.eq_ignore_ascii_case(unix))
    });
    if is_unix && !unix_sockets {
        return Err(RetryError::invalid_arg(format!(
            "config.redisUrl {:?} is a Unix socket, and {} has no Unix sockets: give Redis's TCP address (redis://host:port or rediss://host:port)",
            redacted_url(url.trim()),
            if std::env::consts::OS == "windows" { "Windows" } else { "this platform" }
        )));
    }
    Ok(())
}

/// The URL without its password, for messages (`store::connection::target::redacted` applies it to a
/// list of cluster seeds).
pub fn redacted_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    // Everything up to the last '@' is hidden: a password may itself hold '@', '/' or '?', and
    // hiding too much (an '@' in a query value) is safe where hiding too little is not.
    let (hidden, place) = match rest.rsplit_once('@') {
        Some((_, place)) => ("***@", place),
        None => ("", rest),
    };
    // A password can also be a query parameter (`redis+unix:///run/redis.sock?pass=...`).
    let place = match place.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((name, _))
                        if name.eq_ignore_ascii_case("pass")
                            || name.eq_ignore_ascii_case("password") =>
                    {
                        format!("{name}=***")
                    }
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => place.to_string(),
    };
    format!("{scheme}://{hidden}{place}")
}

fn millis(name: &str, value: Option<f64>, default: u64, min: u64) -> Result<Duration> {
    whole(name, value, default, min, 365 * 24 * 3_600_000).map(Duration::from_millis)
}

fn whole(name: &str, value: Option<f64>, default: u64, min: u64, max: u64) -> Result<u64> {
    let Some(v) = value else { return Ok(default) };
    if !v.is_finite() || v.fract() != 0.0 || v < min as f64 || v > max as f64 {
        return Err(RetryError::invalid_arg(format!(
            "config.{name} must be a whole number from {min} to {max}, got {}",
            format_js_number(v)
        )));
    }
    Ok(v as u64)
}

/// Fails with `ERR_INVALID_ARG` on the first key of `given` that `known` does not hold, naming it
/// and the closest known key (or, with none close, every known key): a misspelt key would
/// otherwise be ignored and its default used without a word. `name` is the object's name in
/// the message (`config`, `config.tls`).
pub fn check_keys<S: AsRef<str>>(name: &str, given: &[S], known: &[&str]) -> Result<()> {
    let Some(unknown) = given
        .iter()
        .map(AsRef::as_ref)
        .find(|key| !known.contains(key))
    else {
        return Ok(());
    };
    let hint = match closest_key(unknown, known) {
        Some(close) => format!("did you mean `{close}`?"),
        None => format!("known keys: {}", known.join(", ")),
    };
    Err(RetryError::invalid_arg(format!(
        "{name} has no key `{unknown}` ({hint})"
    )))
}

/// The known key `given` most likely meant: the nearest by edit distance, ignoring case, `_` and
/// `-` (`redis_url`, `redisURL` → `redisUrl`), within a third of its length (at least 1); else
/// one that holds `given` or is held by it (`prefix` → `keyPrefix`, `kafkaBrokers` →
/// `brokers`), the nearest of those. `None` when nothing is close.
pub fn closest_key<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let fold = |s: &str| -> Vec<char> {
        s.chars()
            .filter(|c| *c != '_' && *c != '-')
            .flat_map(char::to_lowercase)
            .collect()
    };
    let given = fold(given);
    // (key, distance, close by distance, one holds the other)
    let candidates: Vec<(&'a str, usize, bool, bool)> = known
        .iter()
        .map(|&key| {
            let folded = fold(key);
            let distance = edit_distance(&given, &folded);
            let near = distance <= (folded.len() / 3).max(1);
            let holds = given.len() >= 3
                && (contains(&folded, &given) || (folded.len() >= 3 && contains(&given, &folded)));
            (key, distance, near, holds)
        })
        .collect();
    let nearest = |pick: fn(&(&'a str, usize, bool, bool)) -> bool| {
        candidates
            .iter()
            .filter(|c| pick(c))
            .min_by_key(|c| c.1)
            .map(|c| c.0)
    };
    nearest(|c| c.2).or_else(|| nearest(|c| c.3))
}

fn contains(haystack: &[char], needle: &[char]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Edit distance counting an insertion, a deletion, a substitution or a swap of two neighbours
/// as one edit (optimal string alignment): `tsl` is one edit from `tls`.
fn edit_distance(a: &[char], b: &[char]) -> usize {
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEYS: &[&str] = &[
        "redisUrl",
        "brokers",
        "kafka",
        "keyPrefix",
        "tls",
        "leaseMs",
    ];

    #[test]
    fn closest_key_forgives_case_separators_and_small_typos() {
        assert_eq!(closest_key("redisURL", KEYS), Some("redisUrl"));
        assert_eq!(closest_key("redis_url", KEYS), Some("redisUrl"));
        assert_eq!(closest_key("redisUrI", KEYS), Some("redisUrl"));
        assert_eq!(closest_key("broker", KEYS), Some("brokers"));
        assert_eq!(closest_key("leaseMS", KEYS), Some("leaseMs"));
        assert_eq!(closest_key("tsl", KEYS), Some("tls"), "a swap is one edit");
        assert_eq!(closest_key("abc", KEYS), None);
        assert_eq!(closest_key("tlss", KEYS), Some("tls"));
    }

    #[test]
    fn closest_key_takes_a_key_that_holds_the_given_one_or_is_held_by_it() {
        assert_eq!(closest_key("prefix", KEYS), Some("keyPrefix"));
        assert_eq!(closest_key("url", KEYS), Some("redisUrl"));
        assert_eq!(closest_key("kafkaBrokers", KEYS), Some("brokers"));
    }

    #[test]
    fn closest_key_is_none_when_nothing_is_close() {
        assert_eq!(closest_key("foo", KEYS), None);
        assert_eq!(closest_key("", KEYS), None);
        assert_eq!(closest_key("dlqName", KEYS), None);
    }

    #[test]
    fn edit_distance_counts_insertions_deletions_substitutions() {
        let d = |a: &str, b: &str| {
            edit_distance(
                &a.chars().collect::<Vec<_>>(),
                &b.chars().collect::<Vec<_>>(),
            )
        };
        assert_eq!(d("kitten", "sitting"), 3);
        assert_eq!(d("", "abc"), 3);
        assert_eq!(d("abc", ""), 3);
        assert_eq!(d("same", "same"), 0);
        assert_eq!(d("ab", "ba"), 1);
    }

    #[test]
    fn check_keys_names_the_unknown_key_and_the_closest_or_lists_them_all() {
        assert!(check_keys::<&str>("config", &[], KEYS).is_ok());
        assert!(check_keys("config", &["redisUrl", "tls"], KEYS).is_ok());
        let err = check_keys("config", &["redisUrl", "redisURL"], KEYS).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidArg);
        assert_eq!(
            err.message,
            "config has no key `redisURL` (did you mean `redisUrl`?)"
        );
        let err = check_keys("config.tls", &["foo"], KEYS).unwrap_err();
        assert_eq!(
            err.message,
            "config.tls has no key `foo` (known keys: redisUrl, brokers, kafka, keyPrefix, tls, leaseMs)"
        );
    }

    #[test]
    fn a_unix_socket_url_is_refused_by_name_where_there_are_no_unix_sockets() {
        for url in [
            "redis+unix:///run/redis.sock",
            " REDIS+UNIX:///run/redis.sock?db=1",
            "unix:///run/redis.sock",
            "valkey+unix:///run/valkey.sock",
        ] {
            let err = check_unix_socket(url, false).unwrap_err();
            assert_eq!(err.code, crate::error::ErrorCode::InvalidArg, "{url}");
            assert!(
                err.message.starts_with("config.redisUrl ")
                    && err.message.contains("is a Unix socket")
                    && err.message.contains("redis://host:port"),
                "{}",
                err.message
            );
            // Where Unix sockets exist the URL goes on to the redis crate.
            assert!(check_unix_socket(url, true).is_ok(), "{url}");
        }
        // The password in the URL's query stays out of the message.
        let err = check_unix_socket("redis+unix:///s.sock?pass=s3cret", false).unwrap_err();
        assert!(!err.message.contains("s3cret"), "{}", err.message);
        for url in [
            "redis://127.0.0.1:6379",
            "rediss://cache:6380",
            "unixhost:1",
        ] {
            assert!(check_unix_socket(url, false).is_ok(), "{url}");
        }
    }

    #[test]
    fn resolving_a_unix_socket_url_follows_the_platform() {
        let input = ConfigInput {
            redis_url: Some("redis+unix:///run/redis.sock".into()),
            ..Default::default()
        };
        let resolved = input.resolve_with(|_| None);
        if cfg!(unix) {
            assert_eq!(resolved.unwrap().redis_url, "redis+unix:///run/redis.sock");
        } else {
            assert!(resolved.unwrap_err().message.contains("is a Unix socket"));
        }
    }

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

    #[test]
    fn rediss_urls_turn_tls_on_and_bad_tls_settings_name_the_key() {
        let c = ConfigInput {
            redis_url: Some("rediss://:pw@cache.example.com:6380".into()),
            ..Default::default()
        }
        .resolve_with(|_| None)
        .unwrap();
        assert_eq!(c.tls, Some(TlsConfig::default()));
        let tls = |tls: TlsConfig| ConfigInput {
            redis_url: Some("rediss://cache.example.com:6380".into()),
            tls: Some(tls),
            ..Default::default()
        };
        let err = |input: ConfigInput| input.resolve_with(|_| None).unwrap_err().message;
        assert!(err(tls(TlsConfig {
            key: Some(b"k".to_vec()),
            ..Default::default()
        }))
        .starts_with("config.tls.cert and config.tls.key go together"));
        assert!(err(tls(TlsConfig {
            ca: Some(b"garbage".to_vec()),
            ..Default::default()
        }))
        .starts_with("config.tls.ca must be PEM"));
        assert!(err(tls(TlsConfig {
            servername: Some("other.example.com".into()),
            ..Default::default()
        }))
        .contains("cache.example.com"));
        tls(TlsConfig {
            servername: Some("cache.example.com".into()),
            ..Default::default()
        })
        .resolve_with(|_| None)
        .unwrap();
    }

    #[test]
    fn sentinel_excludes_cluster_and_an_explicit_url() {
        let sentinel = SentinelConfig {
            sentinels: vec![("10.0.0.1".into(), 26379)],
            name: "mymaster".into(),
            username: None,
            password: Some(Secret("s".into())),
            tls: None,
        };
        let with = |input: ConfigInput| ConfigInput {
            sentinel: Some(sentinel.clone()),
            ..input
        };
        let ok = with(ConfigInput::default())
            .resolve_with(|k| (k == "REDIS_URL").then(|| "redis://ignored:1".to_string()))
            .unwrap();
        assert_eq!(ok.sentinel.as_ref().unwrap().name, "mymaster");
        assert!(!format!("{ok:?}").contains("\"s\""));
        for input in [
            ConfigInput {
                cluster: Some(true),
                ..Default::default()
            },
            ConfigInput {
                redis_url: Some("redis://x:1".into()),
                ..Default::default()
            },
        ] {
            let err = with(input).resolve_with(|_| None).unwrap_err();
            assert!(
                err.message.starts_with("config.sentinel and config."),
                "{}",
                err.message
            );
        }
    }

    #[test]
    fn wait_replicas_defaults_to_none() {
        let c = ConfigInput::default().resolve_with(|_| None).unwrap();
        assert_eq!(
            (c.wait_replicas, c.wait_timeout),
            (0, Duration::from_secs(1))
        );
        let err = ConfigInput {
            wait_replicas: Some(-1.0),
            ..Default::default()
        }
        .resolve_with(|_| None)
        .unwrap_err();
        assert!(err.message.starts_with("config.waitReplicas"));
    }

    #[test]
    fn wait_timeout_must_be_shorter_than_redis_timeout() {
        let with = |wait: f64, redis: Option<f64>, replicas: f64| {
            ConfigInput {
                wait_replicas: Some(replicas),
                wait_timeout_ms: Some(wait),
                redis_timeout_ms: redis,
                ..Default::default()
            }
            .resolve_with(|_| None)
        };
        let err = with(5_000.0, None, 1.0).unwrap_err();
        assert_eq!(err.code, crate::error::ErrorCode::InvalidArg);
        assert!(err.message.starts_with("config.waitTimeoutMs (5000 ms) must be shorter than config.redisTimeoutMs (5000 ms)"), "{}", err.message);
        assert!(with(3_000.0, Some(2_000.0), 1.0).is_err());
        assert!(with(1_999.0, Some(2_000.0), 1.0).is_ok());
        // Without waitReplicas no WAIT is sent: nothing to check.
        assert!(with(9_000.0, None, 0.0).is_ok());
    }

    #[test]
    fn every_password_form_is_redacted() {
        for (url, shown) in [
            ("redis://u:p@ss@host:6379/0", "redis://***@host:6379/0"),
            ("redis://:pw@host", "redis://***@host"),
            ("redis://u:p/ss?x@host:1", "redis://***@host:1"),
            (
                "redis+unix:///run/redis.sock?pass=s3cret",
                "redis+unix:///run/redis.sock?pass=***",
            ),
            (
                "redis://host:6379/0?db=1&password=s3cret&protocol=resp3",
                "redis://host:6379/0?db=1&password=***&protocol=resp3",
            ),
            ("redis+unix:///s.sock?PASS=a@b", "redis+unix://***@b"),
            ("redis://host:6379", "redis://host:6379"),
        ] {
            let redacted = redacted_url(url);
            assert_eq!(redacted, shown, "{url}");
            for secret in ["p@ss", "s3cret", ":pw", "p/ss", "a@"] {
                assert!(!redacted.contains(secret), "{url} -> {redacted}");
            }
        }
    }
}
