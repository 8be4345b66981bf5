//! The Redis Lua scripts (`crates/engine/lua/`) driven directly against a real Redis, one test
//! per invariant the scripts hold, each named after it, in one file per group of scripts:
//! `schedule`, `seen` (the seen window of push and ack), `dead_letters`, `gates`, `ordered`,
//! `counts` (the per topic counts and history every script keeps), `jobs`, `audit`; `loading` loads every
//! resolved script into Redis. The scripts are called through the Rust that
//! ships them (`Schedule`, `requeue`), and Redis state is read back with plain commands.
//!
//! Every time in the scripts is Redis's clock (`TIME`): nothing here passes a time in. A test
//! that needs "after the lease ended" claims with a short lease and waits (by Redis's clock) past
//! its deadline; "due now" is a push with delay 0, "far in the future" a large delay; and due
//! times are checked against `TIME` read before and after the call that set them.
//!
//! The Redis of each test: `tests/common`.

mod audit;
mod breaker;
#[path = "../common/mod.rs"]
mod common;
mod counts;
mod dead_letters;
mod gates;
mod jobs;
mod loading;
mod ordered;
mod schedule;
mod seen;

use common::TestRedis;
use futures::StreamExt;
use kafka_redis_retry_engine::message::headers::{Header, HeaderValue};
use kafka_redis_retry_engine::message::ids::message_id;
use kafka_redis_retry_engine::store::dead_letters::requeue::{requeue, requeue_later};
use kafka_redis_retry_engine::store::dead_letters::DeadLetters;
use kafka_redis_retry_engine::store::entry::{DeadLetter, Entry};
use kafka_redis_retry_engine::store::gate;
use kafka_redis_retry_engine::store::keys::index_key;
use kafka_redis_retry_engine::store::schedule::{Acked, Counts, PushMessage, Schedule};
use kafka_redis_retry_engine::store::tally;
use redis::aio::PubSubStream;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// Names this binary's keys and messages.
const SUITE: &str = "lua_scripts";
/// Long enough that no lease runs out by itself during a test.
const LEASE: Duration = Duration::from_secs(3600);
/// A lease a test waits out.
const SHORT_LEASE: Duration = Duration::from_millis(300);
/// The listener's longest sleep, as claims record it in the wake key.
const POLL: Duration = Duration::from_secs(1);
/// Long enough that nothing leaves the seen window by itself during a test.
const WINDOW: Duration = Duration::from_secs(600);
/// Far enough in the future that nothing falls due by itself during a test, ms.
const LATER: u64 = 600_000;

fn ms(duration: Duration) -> u64 {
    duration.as_millis() as u64
}

impl TestRedis {
    /// This test's schedule, remembering pushed ids for `window`.
    fn schedule(&self, window: Duration) -> Schedule {
        Schedule::new(self.redis.clone(), &self.prefix, 0, window)
    }

    /// Redis's clock now (`TIME`), ms since the epoch.
    async fn redis_time_ms(&self) -> u64 {
        let (secs, micros): (u64, u64) = redis::cmd("TIME")
            .query_async(&mut self.conn.clone())
            .await
            .expect("TIME");
        secs * 1_000 + micros / 1_000
    }

    /// Waits until Redis's clock reads `at` or later.
    async fn sleep_until(&self, at: u64) {
        loop {
            let now = self.redis_time_ms().await;
            if now >= at {
                return;
            }
            tokio::time::sleep(Duration::from_millis(at - now)).await;
        }
    }

    /// The messages published on `channel` from now on.
    async fn subscribe(&self, channel: &str) -> PubSubStream {
        let client = redis::Client::open(self.url.as_str()).expect("a Redis URL");
        let mut pubsub = client
            .get_async_pubsub()
            .await
            .expect("a pub/sub connection");
        pubsub.subscribe(channel).await.expect("SUBSCRIBE");
        pubsub.into_on_message()
    }

    async fn zscore(&self, key: &str, member: &str) -> Option<u64> {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(key)
            .arg(member)
            .query_async(&mut self.conn.clone())
            .await
            .expect("ZSCORE");
        score.map(|s| s as u64)
    }

    /// Every id leased on the schedule with `keys`, with its lease deadline, in lease order: the
    /// ids of each batch in the lease set (`claim.lua`) whose entry is still stored (an acked one
    /// is not leased), and ids leased one by one (before 0.4).
    async fn leases(
        &self,
        keys: &kafka_redis_retry_engine::store::keys::Keys,
    ) -> Vec<(String, u64)> {
        let members: Vec<(String, f64)> = redis::cmd("ZRANGE")
            .arg(&keys.lease)
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .await
            .expect("ZRANGE");
        let mut out = Vec::new();
        for (member, score) in members {
            if !member.starts_with("b:") {
                out.push((member, score as u64));
                continue;
            }
            let record = self.hget(&keys.batches, &member).await.unwrap_or_default();
            for id in record.split('\n').skip(1) {
                if self.hget(&keys.entries, id).await.is_some() {
                    out.push((id.to_string(), score as u64));
                }
            }
        }
        out
    }

    /// The ids leased on the schedule with `keys` ([`TestRedis::leases`]).
    async fn leased(&self, keys: &kafka_redis_retry_engine::store::keys::Keys) -> Vec<String> {
        self.leases(keys)
            .await
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    }

    /// The lease deadline `id` is held by, if leased ([`TestRedis::leases`]).
    async fn lease_of(
        &self,
        keys: &kafka_redis_retry_engine::store::keys::Keys,
        id: &str,
    ) -> Option<u64> {
        self.leases(keys)
            .await
            .into_iter()
            .find(|(i, _)| i == id)
            .map(|(_, d)| d)
    }

    async fn zmembers(&self, key: &str) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .expect("ZRANGE")
    }

    /// The seen buckets of the schedule with `keys` (this test's own keys only, its prefix, so
    /// KEYS is fine here).
    async fn seen_buckets(
        &self,
        keys: &kafka_redis_retry_engine::store::keys::Keys,
    ) -> Vec<String> {
        redis::cmd("KEYS")
            .arg(format!("{}:*", keys.seen))
            .query_async(&mut self.conn.clone())
            .await
            .expect("KEYS")
    }

    async fn hget(&self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut self.conn.clone())
            .await
            .expect("HGET")
    }

    async fn get(&self, key: &str) -> Option<String> {
        redis::cmd("GET")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .expect("GET")
    }

    async fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut self.conn.clone())
            .await
            .expect("PTTL")
    }

    async fn del(&self, key: &str) {
        redis::cmd("DEL")
            .arg(key)
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .expect("DEL");
    }

    async fn zadd(&self, key: &str, score: u64, member: &str) {
        redis::cmd("ZADD")
            .arg(key)
            .arg(score)
            .arg(member)
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .expect("ZADD");
    }

    async fn zrem(&self, key: &str, member: &str) {
        redis::cmd("ZREM")
            .arg(key)
            .arg(member)
            .query_async::<i64>(&mut self.conn.clone())
            .await
            .expect("ZREM");
    }
}

/// The next due time announced on a subscribed wake channel within `within`, if any.
async fn announcement(messages: &mut PubSubStream, within: Duration) -> Option<u64> {
    match tokio::time::timeout(within, messages.next()).await {
        Ok(Some(message)) => Some(
            message
                .get_payload::<u64>()
                .unwrap_or_else(|err| panic!("an announced due time: {err}")),
        ),
        Ok(None) => panic!("the subscription ended"),
        Err(_) => None,
    }
}

/// A stored entry as the retry path writes it (`due_at` is what the script wrote).
fn entry(topic: &str, value: &str, retry_count: u64, due_at: u64) -> Entry {
    Entry {
        topic: topic.to_string(),
        event: "OrderFailed".to_string(),
        value: value.to_string(),
        delay: "0.5".to_string(),
        max_retry: 3,
        retry_count,
        due_at,
        first_failed_at: Some(due_at.saturating_sub(30_000)),
        last_error: None,
        waited_ms: Some(30_000),
        extra: Vec::new(),
    }
}

/// What a push sends: the stored entry without its due time, which the script writes.
fn tail(value: &str) -> String {
    // A first failure a while ago, by any clock: the field is carried verbatim.
    entry("orders", value, 1, 1_700_000_000_000).encode_after_due(false)
}

/// The entry as stored by a push of `tail` that the script made due at `due`.
fn stored(due: u64, tail: &str) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let (mut n, mut digits) = (due, Vec::new());
    loop {
        digits.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    format!("{}\n{tail}", String::from_utf8(digits).unwrap())
}

/// An `m:` id, as derived from a payload's msgId (the seen window remembers these).
fn msg_id() -> String {
    message_id(
        "orders",
        Some(&format!("msg-{:016x}", fastrand::u64(..))),
        1,
    )
}

/// A `u:` id, as given to a payload without a msgId (never remembered).
fn random_msg_id() -> String {
    message_id("orders", None, 1)
}

fn message(id: &str, delay_ms: u64, entry: &str) -> PushMessage {
    PushMessage {
        id: id.to_string(),
        delay_ms,
        entry: entry.to_string(),
        dedupe: id.starts_with("m:"),
        topic: kafka_redis_retry_engine::store::entry::topic_of(&format!("0\n{entry}")),
    }
}

/// Claimed messages of "orders" (what `tail` pushes), acknowledged as published.
fn acked(ids: &[&str]) -> Vec<Acked> {
    ids.iter()
        .map(|id| Acked {
            id: id.to_string(),
            topic: "orders".into(),
            dead_lettered: false,
        })
        .collect()
}

/// Claimed messages of "orders" as a release takes them: (id, topic).
fn published(ids: &[&str]) -> Vec<(String, String)> {
    ids.iter()
        .map(|id| (id.to_string(), "orders".to_string()))
        .collect()
}

/// Pushes a message that the script must store; returns its due time.
async fn push_new(schedule: &Schedule, id: &str, delay_ms: u64, entry: &str) -> u64 {
    schedule
        .push(message(id, delay_ms, entry))
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{id} was not stored"))
}

/// What a push of a message for `topic` sends.
fn tail_for(topic: &str, value: &str) -> String {
    entry(topic, value, 1, 1_700_000_000_000).encode_after_due(false)
}

/// The per topic counts of the test's schedule, as `stats().topics` reads them.
async fn topic_counts(
    t: &TestRedis,
    schedule: &Schedule,
) -> std::collections::BTreeMap<String, (u64, u64, u64)> {
    tally::without_empty(
        tally::topic_counts(&t.redis, std::slice::from_ref(schedule))
            .await
            .unwrap(),
    )
    .into_iter()
    .map(|(topic, c)| (topic, (c.scheduled, c.due, c.leased)))
    .collect()
}

/// The history's totals over the last few minutes of one topic: (pushed, published, failed, dead).
async fn history_totals(t: &TestRedis, schedule: &Schedule, topic: &str) -> (u64, u64, u64, u64) {
    let h = tally::history(&t.redis, std::slice::from_ref(schedule), 5)
        .await
        .unwrap();
    let Some(s) = h.topics.get(topic) else {
        return (0, 0, 0, 0);
    };
    let sum = |v: &Vec<u64>| v.iter().sum::<u64>();
    (
        sum(&s.pushed),
        sum(&s.published),
        sum(&s.failed),
        sum(&s.dead_lettered),
    )
}
