//! The Redis Lua scripts (`src/store/lua/`) driven directly against a real Redis, one test per
//! invariant the scripts hold, each named after it. The scripts are called through the Rust that
//! ships them (`Schedule`, `requeue`), and Redis state is read back with plain commands.
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). Without one the tests are skipped,
//! unless `KAFKA_RETRY_REQUIRE_SERVICES=1` (set by `scripts/test.sh`), when they fail.
//! Every test works under its own random key prefix and deletes its keys when it ends (even on a
//! failure), so the tests run in parallel and against a shared server.

use kafka_retry::clock::now_ms;
use kafka_retry::ids::message_id;
use kafka_retry::store::connection::{redacted, Redis, SharedRedis};
use kafka_retry::store::dead_letters::DeadLetters;
use kafka_retry::store::entry::{DeadLetter, Entry};
use kafka_retry::store::keys::index_key;
use kafka_retry::store::requeue::requeue;
use kafka_retry::store::schedule::{PushMessage, Schedule};
use redis::aio::MultiplexedConnection;
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// Long enough that no lease runs out by itself during a test.
const LEASE: Duration = Duration::from_secs(3600);
/// Long enough that nothing leaves the seen window by itself during a test.
const WINDOW: Duration = Duration::from_secs(600);
const OP_TIMEOUT: Duration = Duration::from_secs(5);

/// The Redis of one test: its own key prefix, a plain connection for reading state, and the
/// crate's connection the scripts run on. Deletes every key under its prefix when dropped.
struct TestRedis {
    url: String,
    test: String,
    prefix: String,
    conn: MultiplexedConnection,
    redis: Redis,
}

static SKIP_SAID: AtomicBool = AtomicBool::new(false);

impl TestRedis {
    /// The Redis for test `test`, or `None` (after saying so once) when none answers and none is
    /// required. Panics when `KAFKA_RETRY_REQUIRE_SERVICES=1` and none answers.
    async fn start(test: &str) -> Option<TestRedis> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        let conn = match probe(&url).await {
            Ok(conn) => conn,
            Err(err) => {
                let url = redacted(&url);
                if std::env::var("KAFKA_RETRY_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!(
                        "lua_scripts: no Redis answers at {url} ({err}), and \
                         KAFKA_RETRY_REQUIRE_SERVICES=1 requires one; start one with \
                         `bash scripts/services.sh start` (or point REDIS_URL at one)"
                    );
                }
                if !SKIP_SAID.swap(true, Ordering::SeqCst) {
                    // Written to stderr directly, not with eprintln!, which the test harness
                    // captures and shows only for failing tests.
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "lua_scripts: skipped, no Redis answers at {url}; start one with bash scripts/services.sh start"
                    );
                }
                return None;
            }
        };
        let prefix = format!("lua-test-{test}-{:016x}", fastrand::u64(..));
        let redis = own_connection(&url, test, "main");
        Some(TestRedis {
            url,
            test: test.to_string(),
            prefix,
            conn,
            redis,
        })
    }

    /// Another connection of the crate's kind, for a second listener or process.
    fn other_connection(&self, tag: &str) -> Redis {
        own_connection(&self.url, &self.test, tag)
    }

    /// This test's schedule, remembering pushed ids for `window`.
    fn schedule(&self, window: Duration) -> Schedule {
        Schedule::new(self.redis.clone(), &self.prefix, 0, window)
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

    async fn zmembers(&self, key: &str) -> Vec<String> {
        redis::cmd("ZRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await
            .expect("ZRANGE")
    }

    async fn hget(&self, key: &str, field: &str) -> Option<String> {
        redis::cmd("HGET")
            .arg(key)
            .arg(field)
            .query_async(&mut self.conn.clone())
            .await
            .expect("HGET")
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

impl Drop for TestRedis {
    /// Deletes every key under this test's prefix, also when the test failed.
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let pattern = format!("*{}*", self.prefix);
        let keys: Vec<String> = match redis::Commands::scan_match(&mut conn, &pattern) {
            Ok(iter) => iter.collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(&keys).exec(&mut conn);
        }
    }
}

/// A plain connection to `url` that answered PING.
async fn probe(url: &str) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|err| err.to_string())?;
    let connect = client.get_multiplexed_async_connection();
    let mut conn = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| "no answer within 2 s".to_string())?
        .map_err(|err| err.to_string())?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|err| err.to_string())?;
    if pong != "PONG" {
        return Err(format!("PING answered {pong:?}"));
    }
    Ok(conn)
}

/// A connection of the crate's own kind that no other test shares. The crate shares one
/// connection per URL per process, and a connection lives on the runtime that opened it, which
/// ends with its test; so each test (and tag) gets a distinct URL: the same server with a query
/// parameter that the Redis client ignores.
fn own_connection(url: &str, test: &str, tag: &str) -> Redis {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, format!("#{fragment}")),
        None => (url, String::new()),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let tagged = format!("{base}{separator}lua-test={test}-{tag}{fragment}");
    Redis::new(
        SharedRedis::for_url(&tagged, false, Duration::from_secs(2)),
        OP_TIMEOUT,
    )
}

/// A stored entry as the retry path writes it.
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
    }
}

fn entry_text(value: &str, due_at: u64) -> String {
    entry("orders", value, 1, due_at).encode()
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

fn message(id: &str, due_ms: u64, entry: &str) -> PushMessage {
    PushMessage {
        id: id.to_string(),
        due_ms,
        entry: entry.to_string(),
        dedupe: id.starts_with("m:"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_takes_only_due_ids_and_leases_them() {
    let Some(t) = TestRedis::start("claim_takes_only_due_ids_and_leases_them").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let now = now_ms();
    let (due_id, later_id) = (msg_id(), msg_id());
    let (due_at, later_at) = (now - 1_000, now + 600_000);
    let (due_text, later_text) = (entry_text(r#"{"n":1}"#, due_at), entry_text("{}", later_at));
    assert!(schedule
        .push(message(&due_id, due_at, &due_text))
        .await
        .unwrap());
    assert!(schedule
        .push(message(&later_id, later_at, &later_text))
        .await
        .unwrap());

    let claim = schedule.claim(now, 10, LEASE).await.unwrap();
    assert_eq!(claim.items, vec![(due_id.clone(), due_text)]);
    assert_eq!(claim.deadline, now + LEASE.as_millis() as u64);
    assert_eq!(t.zscore(&keys.lease, &due_id).await, Some(claim.deadline));
    assert_eq!(t.zscore(&keys.due, &due_id).await, None);
    assert_eq!(t.zscore(&keys.due, &later_id).await, Some(later_at));
    assert_eq!(t.zscore(&keys.lease, &later_id).await, None);
    // The earliest of the next due message and the earliest lease deadline: here the due one.
    assert!(later_at < claim.deadline);
    assert_eq!(claim.next_wake, Some(later_at));

    // With nothing scheduled, the next wake-up is when the lease runs out.
    t.zrem(&keys.due, &later_id).await;
    let again = schedule.claim(now, 10, LEASE).await.unwrap();
    assert!(again.items.is_empty(), "{:?}", again.items);
    assert_eq!(again.next_wake, Some(claim.deadline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claim_before_the_lease_ends_gets_nothing() {
    let Some(t) = TestRedis::start("a_second_claim_before_the_lease_ends_gets_nothing").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let now = now_ms();
    let id = msg_id();
    let text = entry_text("{}", now);
    assert!(schedule.push(message(&id, now, &text)).await.unwrap());
    let lease = Duration::from_secs(30);

    let first = schedule.claim(now, 10, lease).await.unwrap();
    assert_eq!(first.items, vec![(id.clone(), text.clone())]);
    for at in [now, now + 1, first.deadline - 1] {
        let second = schedule.claim(at, 10, lease).await.unwrap();
        assert!(
            second.items.is_empty(),
            "claimed at {at}: {:?}",
            second.items
        );
    }
    assert_eq!(t.zscore(&keys.lease, &id).await, Some(first.deadline));

    // Once the lease ran out the message is claimable again, under a new deadline.
    let after = first.deadline + 1;
    let third = schedule.claim(after, 10, lease).await.unwrap();
    assert_eq!(third.items, vec![(id.clone(), text)]);
    assert_eq!(third.deadline, after + lease.as_millis() as u64);
    assert_eq!(t.zscore(&keys.lease, &id).await, Some(third.deadline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_after_another_listener_reclaimed_is_refused_by_the_lease_token() {
    let Some(t) =
        TestRedis::start("release_after_another_listener_reclaimed_is_refused_by_the_lease_token")
            .await
    else {
        return;
    };
    let a = t.schedule(WINDOW);
    let b = Schedule::new(t.other_connection("b"), &t.prefix, 0, WINDOW);
    let keys = a.keys().clone();
    let now = now_ms();
    let id = msg_id();
    assert!(a
        .push(message(&id, now, &entry_text("{}", now)))
        .await
        .unwrap());
    let lease = Duration::from_secs(30);

    let claim_a = a.claim(now, 10, lease).await.unwrap();
    assert_eq!(claim_a.items.len(), 1);
    // A stalls past its lease; B claims the message.
    let claim_b = b.claim(claim_a.deadline + 1, 10, lease).await.unwrap();
    assert_eq!(claim_b.items.len(), 1);
    assert_ne!(claim_a.deadline, claim_b.deadline);

    let moved = a
        .release(claim_a.deadline, now + 5_000, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(moved, 0, "a stale lease token must not release");
    assert_eq!(t.zscore(&keys.lease, &id).await, Some(claim_b.deadline));
    assert_eq!(t.zscore(&keys.due, &id).await, None);

    let due = now + 7_000;
    let moved = b
        .release(claim_b.deadline, due, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(t.zscore(&keys.due, &id).await, Some(due));
    assert_eq!(t.zscore(&keys.lease, &id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_forgets_the_message_and_its_lease() {
    let Some(t) = TestRedis::start("ack_forgets_the_message_and_its_lease").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let now = now_ms();
    let (id, kept) = (msg_id(), msg_id());
    assert!(schedule
        .push(message(&id, now, &entry_text("{}", now)))
        .await
        .unwrap());
    let claim = schedule.claim(now, 1, LEASE).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    // A message not acknowledged stays: ack touches only the ids it is given.
    assert!(schedule
        .push(message(&kept, now, &entry_text("{}", now)))
        .await
        .unwrap());

    schedule.ack(std::slice::from_ref(&id)).await.unwrap();
    assert_eq!(t.hget(&keys.entries, &id).await, None);
    assert_eq!(t.zscore(&keys.lease, &id).await, None);
    assert_eq!(t.zscore(&keys.due, &id).await, None);
    assert!(t.hget(&keys.entries, &kept).await.is_some());
    assert_eq!(t.zscore(&keys.due, &kept).await, Some(now));

    // Not even past the lease deadline does it come back.
    let later = schedule.claim(claim.deadline + 1, 10, LEASE).await.unwrap();
    let ids: Vec<&str> = later.items.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec![kept.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_puts_back_without_spending_a_retry() {
    let Some(t) = TestRedis::start("release_puts_back_without_spending_a_retry").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let now = now_ms();
    let id = msg_id();
    let text = entry_text(r#"{"msgId":"x","n":1}"#, now);
    assert!(schedule.push(message(&id, now, &text)).await.unwrap());
    let claim = schedule.claim(now, 10, LEASE).await.unwrap();
    assert_eq!(claim.items, vec![(id.clone(), text.clone())]);

    let due = now + 42_000;
    let moved = schedule
        .release(claim.deadline, due, std::slice::from_ref(&id))
        .await
        .unwrap();
    assert_eq!(moved, 1);
    assert_eq!(t.zscore(&keys.due, &id).await, Some(due));
    assert_eq!(t.zscore(&keys.lease, &id).await, None);
    assert_eq!(
        t.hget(&keys.entries, &id).await.as_deref(),
        Some(text.as_str())
    );

    // Claimed again when the new due time comes, with the entry (and its retry count) as pushed.
    assert!(schedule
        .claim(due - 1, 10, LEASE)
        .await
        .unwrap()
        .items
        .is_empty());
    let again = schedule.claim(due, 10, LEASE).await.unwrap();
    assert_eq!(again.items, vec![(id, text.clone())]);
    assert_eq!(Entry::decode(&again.items[0].1).unwrap().retry_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_the_same_id_twice_stores_once() {
    let Some(t) = TestRedis::start("push_of_the_same_id_twice_stores_once").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let now = now_ms();

    // One after the other.
    let id = msg_id();
    let (first, second) = (
        entry_text(r#""first""#, now),
        entry_text(r#""second""#, now),
    );
    assert!(schedule.push(message(&id, now, &first)).await.unwrap());
    assert!(!schedule
        .push(message(&id, now + 9_000, &second))
        .await
        .unwrap());
    assert_eq!(
        t.hget(&keys.entries, &id).await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(t.zmembers(&keys.due).await, vec![id.clone()]);
    assert_eq!(t.zscore(&keys.due, &id).await, Some(now));

    // At once, through one schedule (the pushes usually share a batch: one script call) and
    // through two connections (two script calls racing on the server).
    let other = Schedule::new(t.other_connection("other"), &t.prefix, 0, WINDOW);
    for (round, racer) in [("batched", &schedule), ("racing", &other)] {
        let id = msg_id();
        let (a, b) = (entry_text(r#""a""#, now), entry_text(r#""b""#, now));
        let (stored_a, stored_b) = tokio::join!(
            schedule.push(message(&id, now, &a)),
            racer.push(message(&id, now, &b))
        );
        let (stored_a, stored_b) = (stored_a.unwrap(), stored_b.unwrap());
        assert!(
            stored_a ^ stored_b,
            "{round}: stored {stored_a} and {stored_b}"
        );
        let winner = if stored_a { &a } else { &b };
        assert_eq!(
            t.hget(&keys.entries, &id).await.as_ref(),
            Some(winner),
            "{round}"
        );
        let due = t.zmembers(&keys.due).await;
        assert_eq!(due.iter().filter(|d| **d == id).count(), 1, "{round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seen_window_drops_a_redelivery_after_ack() {
    let Some(t) = TestRedis::start("the_seen_window_drops_a_redelivery_after_ack").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();

    /// Pushes `id` due now, claims and acknowledges it, as a listener whose publish succeeded.
    /// Returns the time just before the ack: the ack remembers the id from then or a bit later.
    async fn push_claim_ack(schedule: &Schedule, id: &str) -> u64 {
        let now = now_ms();
        assert!(schedule
            .push(message(id, now, &entry_text("{}", now)))
            .await
            .unwrap());
        let claim = schedule.claim(now, 10, LEASE).await.unwrap();
        assert_eq!(claim.items.len(), 1);
        assert_eq!(claim.items[0].0, id);
        let acked = now_ms();
        schedule.ack(&[id.to_string()]).await.unwrap();
        acked
    }
    async fn push_again(schedule: &Schedule, id: &str) -> bool {
        let now = now_ms();
        schedule
            .push(message(id, now, &entry_text("{}", now)))
            .await
            .unwrap()
    }

    // An id from the payload's msgId: its redelivery within the window is dropped.
    let id = msg_id();
    push_claim_ack(&schedule, &id).await;
    assert!(!push_again(&schedule, &id).await);
    assert_eq!(t.hget(&keys.entries, &id).await, None);
    assert_eq!(t.zscore(&keys.due, &id).await, None);

    // A random id is not remembered: the same sequence stores it again.
    let id = random_msg_id();
    push_claim_ack(&schedule, &id).await;
    assert!(push_again(&schedule, &id).await);
    assert!(t.hget(&keys.entries, &id).await.is_some());
    assert!(t.zscore(&keys.due, &id).await.is_some());

    // Each id is forgotten when its own window has passed, even while later acks keep the seen
    // set alive. (Its own prefix: pushes to one schedule's keys go through one batcher per
    // process, with the window of the schedule that pushed first.)
    let window = Duration::from_millis(1_500);
    let window_ms = window.as_millis() as u64;
    let short = Schedule::new(t.redis.clone(), &format!("{}-short", t.prefix), 0, window);
    let (first, second) = (msg_id(), msg_id());
    let first_acked = push_claim_ack(&short, &first).await;
    assert!(
        !push_again(&short, &first).await,
        "a redelivery right after the ack is within even a short window"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let second_acked = push_claim_ack(&short, &second).await;
    let past_first = first_acked + window_ms + 300;
    tokio::time::sleep(Duration::from_millis(past_first.saturating_sub(now_ms()))).await;
    assert!(
        now_ms() < second_acked + window_ms,
        "too slow: the second id's window passed before the first id was pushed again"
    );
    assert!(
        push_again(&short, &first).await,
        "the first id's window has passed"
    );
    assert!(t.hget(&short.keys().entries, &first).await.is_some());
    assert!(t.zscore(&short.keys().due, &first).await.is_some());
    assert!(
        !push_again(&short, &second).await,
        "the second id is still within its window"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_drops_ids_without_an_entry() {
    let Some(t) = TestRedis::start("claim_drops_ids_without_an_entry").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let now = now_ms();
    let orphan = msg_id();
    t.zadd(&keys.due, now - 2_000, &orphan).await;
    let id = msg_id();
    let text = entry_text("{}", now - 1_000);
    assert!(schedule
        .push(message(&id, now - 1_000, &text))
        .await
        .unwrap());

    let claim = schedule.claim(now, 10, LEASE).await.unwrap();
    assert_eq!(claim.items, vec![(id.clone(), text)]);
    assert_eq!(t.zscore(&keys.lease, &orphan).await, None);
    assert_eq!(t.zscore(&keys.due, &orphan).await, None);
    assert_eq!(t.zmembers(&keys.lease).await, vec![id]);
    // And it does not come back when the lease runs out.
    let later = schedule.claim(claim.deadline + 1, 10, LEASE).await.unwrap();
    assert!(later.items.iter().all(|(i, _)| *i != orphan));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_moves_a_dead_letter_atomically() {
    let Some(t) = TestRedis::start("requeue_moves_a_dead_letter_atomically").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let store = DeadLetters::new(t.redis.clone());
    let dlq = format!("{}:dlq", t.prefix);
    let now = now_ms();
    let id = msg_id();
    let dead = entry("orders", r#"{"msgId":"dead","n":7}"#, 4, now - 5_000);
    let record = serde_json::to_string(&DeadLetter::of(&id, &dead, now - 4_000, &t.prefix))
        .expect("a dead letter serializes");
    store.write(&dlq, &id, &record, now - 4_000).await.unwrap();
    assert_eq!(t.zscore(&index_key(&dlq), &id).await, Some(now - 4_000));

    let moved = requeue(&store, &dlq, &id, |_| schedule.clone())
        .await
        .unwrap();
    assert!(moved);
    assert_eq!(store.get(&dlq, &id).await.unwrap(), None);
    assert_eq!(t.zscore(&index_key(&dlq), &id).await, None);
    let due = t.zmembers(&keys.due).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let new_id = &due[0];
    assert_ne!(new_id, &id);
    let due_at = t.zscore(&keys.due, new_id).await.unwrap();
    assert!(due_at >= now && due_at <= now_ms(), "due at {due_at}");
    let stored = t.hget(&keys.entries, new_id).await.expect("an entry");
    let requeued = Entry::decode(&stored).unwrap();
    assert_eq!(requeued.retry_count, 0);
    assert_eq!(requeued.max_retry, dead.max_retry);
    assert_eq!(
        (&requeued.topic, &requeued.event, &requeued.value),
        (&dead.topic, &dead.event, &dead.value)
    );
    // It is claimable like any pushed message.
    let claim = schedule.claim(now_ms(), 10, LEASE).await.unwrap();
    assert_eq!(claim.items, vec![(new_id.clone(), stored)]);

    // Requeued once only, and a dead letter that never was is not requeued.
    assert!(!requeue(&store, &dlq, &id, |_| schedule.clone())
        .await
        .unwrap());
    assert!(!requeue(&store, &dlq, "m:never-dead", |_| schedule.clone())
        .await
        .unwrap());
    assert_eq!(t.zmembers(&keys.lease).await, vec![new_id.clone()]);
    assert!(t.zmembers(&keys.due).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_exclusive_under_concurrency() {
    let Some(t) = TestRedis::start("claims_are_exclusive_under_concurrency").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let now = now_ms();
    let ids: Vec<String> = (0..200).map(|_| msg_id()).collect();
    let pushes = ids
        .iter()
        .enumerate()
        .map(|(n, id)| schedule.push(message(id, now - n as u64, &entry_text("{}", now))));
    for stored in futures::future::join_all(pushes).await {
        assert!(stored.unwrap());
    }

    // Four listeners, each on its own connection, claim until nothing is left.
    let listeners: Vec<_> = (0..4)
        .map(|n| {
            let schedule = Schedule::new(
                t.other_connection(&format!("listener{n}")),
                &t.prefix,
                0,
                WINDOW,
            );
            tokio::spawn(async move {
                let mut claimed = Vec::new();
                // Bounded, so a claim that hands out the same ids forever fails instead of hanging.
                for _ in 0..100 {
                    let claim = schedule.claim(now, 16, LEASE).await.unwrap();
                    if claim.items.is_empty() {
                        break;
                    }
                    claimed.extend(claim.items.into_iter().map(|(id, _)| id));
                    tokio::task::yield_now().await;
                }
                claimed
            })
        })
        .collect();
    let mut times: HashMap<String, usize> = HashMap::new();
    let mut per_listener = Vec::new();
    for listener in listeners {
        let claimed = listener.await.unwrap();
        per_listener.push(claimed.len());
        for id in claimed {
            *times.entry(id).or_default() += 1;
        }
    }
    let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "claimed more than once: {twice:?}");
    let all: HashSet<String> = ids.into_iter().collect();
    let claimed: HashSet<String> = times.into_keys().collect();
    assert_eq!(claimed, all, "claims per listener: {per_listener:?}");
}
