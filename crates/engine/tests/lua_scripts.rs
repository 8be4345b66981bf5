//! The Redis Lua scripts (`src/store/lua/`) driven directly against a real Redis, one test per
//! invariant the scripts hold, each named after it. The scripts are called through the Rust that
//! ships them (`Schedule`, `requeue`), and Redis state is read back with plain commands.
//!
//! Every time in the scripts is Redis's clock (`TIME`): nothing here passes a time in. A test
//! that needs "after the lease ended" claims with a short lease and waits (by Redis's clock) past
//! its deadline; "due now" is a push with delay 0, "far in the future" a large delay; and due
//! times are checked against `TIME` read before and after the call that set them.
//!
//! The Redis of each test: `tests/common`.

mod common;

use common::TestRedis;
use futures::StreamExt;
use kafka_redis_retry_engine::headers::{Header, HeaderValue};
use kafka_redis_retry_engine::ids::message_id;
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

/// Long enough that no lease runs out by itself during a test.
/// Names this binary's keys and messages.
const SUITE: &str = "lua_scripts";
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_takes_only_due_ids_and_leases_them() {
    let Some(t) = TestRedis::start(SUITE, "claim_takes_only_due_ids_and_leases_them").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let (due_id, later_id) = (msg_id(), msg_id());
    let (due_tail, later_tail) = (tail(r#"{"n":1}"#), tail("{}"));
    let due_at = push_new(&schedule, &due_id, 0, &due_tail).await;
    let later_at = push_new(&schedule, &later_id, LATER, &later_tail).await;

    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(due_at <= claim.now && claim.now < later_at);
    assert_eq!(
        claim.items,
        vec![(due_id.clone(), stored(due_at, &due_tail))]
    );
    assert_eq!(claim.deadline, claim.now + ms(LEASE));
    assert_eq!(t.zscore(&keys.lease, &due_id).await, Some(claim.deadline));
    assert_eq!(t.zscore(&keys.due, &due_id).await, None);
    assert_eq!(t.zscore(&keys.due, &later_id).await, Some(later_at));
    assert_eq!(t.zscore(&keys.lease, &later_id).await, None);
    // The earliest of the next due message and the earliest lease deadline: here the due one.
    assert!(later_at < claim.deadline);
    assert_eq!(claim.next_wake, Some(later_at));
    // The listener looks again at the next wake-up or after its poll interval, whichever is first.
    let planned = claim.now + ms(POLL);
    assert_eq!(t.get(&keys.wake).await, Some(planned.to_string()));

    // With nothing scheduled, the next wake-up is when the lease runs out.
    t.zrem(&keys.due, &later_id).await;
    let again = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(again.items.is_empty(), "{:?}", again.items);
    assert_eq!(again.next_wake, Some(claim.deadline));
    assert_eq!(again.deadline, again.now + ms(LEASE));
    assert_eq!(
        t.get(&keys.wake).await,
        Some((again.now + ms(POLL)).to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_claim_before_the_lease_ends_gets_nothing() {
    let Some(t) =
        TestRedis::start(SUITE, "a_second_claim_before_the_lease_ends_gets_nothing").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let id = msg_id();
    let text = tail("{}");
    let due = push_new(&schedule, &id, 0, &text).await;
    let text = stored(due, &text);
    let lease = Duration::from_millis(1_500);

    let first = schedule.claim(10, lease, POLL).await.unwrap();
    assert_eq!(first.items, vec![(id.clone(), text.clone())]);
    // Claim over and over until the lease has run out: every claim before the deadline gets
    // nothing, and the first at or after it gets the message, under a new deadline.
    let mut before = 0;
    let third = loop {
        assert!(before < 500, "the lease never ran out");
        let claim = schedule.claim(10, lease, POLL).await.unwrap();
        if claim.now >= first.deadline {
            break claim;
        }
        assert!(
            claim.items.is_empty(),
            "claimed at {} under a lease until {}: {:?}",
            claim.now,
            first.deadline,
            claim.items
        );
        assert_eq!(t.zscore(&keys.lease, &id).await, Some(first.deadline));
        before += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        before >= 2,
        "too slow: only {before} claims within the lease"
    );

    assert_eq!(third.items, vec![(id.clone(), text)]);
    assert_eq!(third.deadline, third.now + ms(lease));
    assert_eq!(t.zscore(&keys.lease, &id).await, Some(third.deadline));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_after_another_listener_reclaimed_is_refused_by_the_lease_token() {
    let Some(t) = TestRedis::start(
        SUITE,
        "release_after_another_listener_reclaimed_is_refused_by_the_lease_token",
    )
    .await
    else {
        return;
    };
    let a = t.schedule(WINDOW);
    let b = Schedule::new(t.other_connection("b"), &t.prefix, 0, WINDOW);
    let keys = a.keys().clone();
    let id = msg_id();
    push_new(&a, &id, 0, &tail("{}")).await;

    let claim_a = a.claim(10, SHORT_LEASE, POLL).await.unwrap();
    assert_eq!(claim_a.items.len(), 1);
    // A stalls past its lease; B claims the message.
    t.sleep_until(claim_a.deadline + 1).await;
    let claim_b = b.claim(10, LEASE, POLL).await.unwrap();
    assert!(claim_b.now > claim_a.deadline);
    assert_eq!(claim_b.items.len(), 1);
    assert_ne!(claim_a.deadline, claim_b.deadline);

    let moved = a
        .release(
            claim_a.deadline,
            Duration::from_secs(5),
            true,
            &published(&[&id]),
        )
        .await
        .unwrap();
    assert_eq!(moved, 0, "a stale lease token must not release");
    assert_eq!(t.zscore(&keys.lease, &id).await, Some(claim_b.deadline));
    assert_eq!(t.zscore(&keys.due, &id).await, None);

    let delay = 7_000;
    let before = t.redis_time_ms().await;
    let moved = b
        .release(
            claim_b.deadline,
            Duration::from_millis(delay),
            true,
            &published(&[&id]),
        )
        .await
        .unwrap();
    let after = t.redis_time_ms().await;
    assert_eq!(moved, 1);
    let due = t.zscore(&keys.due, &id).await.expect("due again");
    assert!(
        (before + delay..=after + delay).contains(&due),
        "due at {due}, released between {before} and {after}"
    );
    assert_eq!(t.zscore(&keys.lease, &id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_forgets_the_message_and_its_lease() {
    let Some(t) = TestRedis::start(SUITE, "ack_forgets_the_message_and_its_lease").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let (id, kept) = (msg_id(), msg_id());
    push_new(&schedule, &id, 0, &tail("{}")).await;
    let claim = schedule.claim(1, SHORT_LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    // A message not acknowledged stays: ack touches only the ids it is given.
    let kept_due = push_new(&schedule, &kept, 0, &tail("{}")).await;

    schedule.ack(&acked(&[&id])).await.unwrap();
    assert_eq!(t.hget(&keys.entries, &id).await, None);
    assert_eq!(t.zscore(&keys.lease, &id).await, None);
    assert_eq!(t.zscore(&keys.due, &id).await, None);
    assert!(t.hget(&keys.entries, &kept).await.is_some());
    assert_eq!(t.zscore(&keys.due, &kept).await, Some(kept_due));

    // Not even past the lease deadline does it come back.
    t.sleep_until(claim.deadline + 1).await;
    let later = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(later.now > claim.deadline);
    let ids: Vec<&str> = later.items.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec![kept.as_str()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_puts_back_without_spending_a_retry() {
    let Some(t) = TestRedis::start(SUITE, "release_puts_back_without_spending_a_retry").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let id = msg_id();
    let text = tail(r#"{"msgId":"x","n":1}"#);
    let pushed_due = push_new(&schedule, &id, 0, &text).await;
    let text = stored(pushed_due, &text);
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items, vec![(id.clone(), text.clone())]);

    let delay = 1_500;
    let before = t.redis_time_ms().await;
    let moved = schedule
        .release(
            claim.deadline,
            Duration::from_millis(delay),
            true,
            &published(&[&id]),
        )
        .await
        .unwrap();
    let after = t.redis_time_ms().await;
    assert_eq!(moved, 1);
    let due = t.zscore(&keys.due, &id).await.expect("due again");
    assert!(
        (before + delay..=after + delay).contains(&due),
        "due at {due}, released between {before} and {after}"
    );
    assert_eq!(t.zscore(&keys.lease, &id).await, None);
    assert_eq!(
        t.hget(&keys.entries, &id).await.as_deref(),
        Some(text.as_str())
    );

    // Claimed again when the new due time comes (not before), with the entry (and its retry
    // count) as pushed.
    let mut before_due = 0;
    let again = loop {
        assert!(before_due < 500, "never claimed again");
        let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
        if claim.now >= due {
            break claim;
        }
        assert!(
            claim.items.is_empty(),
            "claimed at {} though due at {due}: {:?}",
            claim.now,
            claim.items
        );
        before_due += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(before_due >= 1, "too slow: no claim before the due time");
    assert_eq!(again.items, vec![(id, text.clone())]);
    assert_eq!(Entry::decode(&again.items[0].1).unwrap().retry_count, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_of_the_same_id_twice_stores_once() {
    let Some(t) = TestRedis::start(SUITE, "push_of_the_same_id_twice_stores_once").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();

    // One after the other.
    let id = msg_id();
    let (first, second) = (tail(r#""first""#), tail(r#""second""#));
    let due = push_new(&schedule, &id, 0, &first).await;
    assert_eq!(
        schedule.push(message(&id, 9_000, &second)).await.unwrap(),
        None
    );
    assert_eq!(t.hget(&keys.entries, &id).await, Some(stored(due, &first)));
    assert_eq!(t.zmembers(&keys.due).await, vec![id.clone()]);
    assert_eq!(t.zscore(&keys.due, &id).await, Some(due));

    // At once, through one schedule (the pushes usually share a batch: one script call) and
    // through two connections (two script calls racing on the server).
    let other = Schedule::new(t.other_connection("other"), &t.prefix, 0, WINDOW);
    for (round, racer) in [("batched", &schedule), ("racing", &other)] {
        let id = msg_id();
        let (a, b) = (tail(r#""a""#), tail(r#""b""#));
        let (stored_a, stored_b) = tokio::join!(
            schedule.push(message(&id, 0, &a)),
            racer.push(message(&id, 0, &b))
        );
        let (stored_a, stored_b) = (stored_a.unwrap(), stored_b.unwrap());
        let winner = match (stored_a, stored_b) {
            (Some(due), None) => stored(due, &a),
            (None, Some(due)) => stored(due, &b),
            _ => panic!("{round}: stored {stored_a:?} and {stored_b:?}"),
        };
        assert_eq!(t.hget(&keys.entries, &id).await, Some(winner), "{round}");
        let due = t.zmembers(&keys.due).await;
        assert_eq!(due.iter().filter(|d| **d == id).count(), 1, "{round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_message_of_a_call_gets_the_due_time_of_its_own_delay() {
    let Some(t) = TestRedis::start(
        SUITE,
        "every_message_of_a_call_gets_the_due_time_of_its_own_delay",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    // Runs of equal delays and changes between them, pushed at once so that they share script
    // calls (the script works out a due time once per run of equal delays).
    let delays = [LATER, LATER, 0, LATER, 5_000, 5_000, LATER + 1, 0, 0, LATER];
    let pushes: Vec<(String, u64, String)> = delays
        .iter()
        .enumerate()
        .map(|(i, &delay)| (msg_id(), delay, tail(&format!("{{\"n\":{i}}}"))))
        .collect();
    let before = t.redis_time_ms().await;
    let dues = futures::future::join_all(
        pushes
            .iter()
            .map(|(id, delay, text)| schedule.push(message(id, *delay, text))),
    )
    .await;
    let after = t.redis_time_ms().await;
    for ((id, delay, text), due) in pushes.iter().zip(dues) {
        let due = due
            .unwrap()
            .unwrap_or_else(|| panic!("{id} was not stored"));
        assert!(
            before + delay <= due && due <= after + delay,
            "{id}: due {due} for a delay of {delay} pushed between {before} and {after}"
        );
        assert_eq!(t.zscore(&keys.due, id).await, Some(due));
        assert_eq!(t.hget(&keys.entries, id).await, Some(stored(due, text)));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seen_window_drops_a_redelivery_after_ack() {
    let Some(t) = TestRedis::start(SUITE, "the_seen_window_drops_a_redelivery_after_ack").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();

    /// Pushes `id` due now, claims and acknowledges it, as a listener whose publish succeeded.
    /// Returns Redis's clock just before and just after the ack: the ack remembers the id from a
    /// moment between the two.
    async fn push_claim_ack(t: &TestRedis, schedule: &Schedule, id: &str) -> (u64, u64) {
        push_new(schedule, id, 0, &tail("{}")).await;
        let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
        assert_eq!(claim.items.len(), 1);
        assert_eq!(claim.items[0].0, id);
        let before = t.redis_time_ms().await;
        schedule.ack(&acked(&[id])).await.unwrap();
        (before, t.redis_time_ms().await)
    }
    async fn push_again(schedule: &Schedule, id: &str) -> bool {
        schedule
            .push(message(id, 0, &tail("{}")))
            .await
            .unwrap()
            .is_some()
    }

    // An id from the payload's msgId: its redelivery within the window is dropped.
    let id = msg_id();
    push_claim_ack(&t, &schedule, &id).await;
    assert!(!push_again(&schedule, &id).await);
    assert_eq!(t.hget(&keys.entries, &id).await, None);
    assert_eq!(t.zscore(&keys.due, &id).await, None);

    // A random id is not remembered: the same sequence stores it again.
    let id = random_msg_id();
    push_claim_ack(&t, &schedule, &id).await;
    assert!(push_again(&schedule, &id).await);
    assert!(t.hget(&keys.entries, &id).await.is_some());
    assert!(t.zscore(&keys.due, &id).await.is_some());

    // Each id is remembered for its whole window and forgotten at the latest half a window later
    // (the seen bucket that holds it expires whole), even while later acks keep writing. (Its own
    // prefix: pushes to one schedule's keys go through one batcher per process, with the window
    // of the schedule that pushed first.)
    let window = Duration::from_millis(4_000);
    let window_ms = ms(window);
    let short = Schedule::new(t.redis.clone(), &format!("{}-short", t.prefix), 0, window);
    let (first, second) = (msg_id(), msg_id());
    let (_, first_acked) = push_claim_ack(&t, &short, &first).await;
    assert!(
        !push_again(&short, &first).await,
        "a redelivery right after the ack is within even a short window"
    );
    tokio::time::sleep(Duration::from_millis(3_000)).await;
    let (second_acked, _) = push_claim_ack(&t, &short, &second).await;
    // Past the first id's window and its bucket's half window by Redis's clock, whenever within
    // it the ack remembered it.
    t.sleep_until(first_acked + window_ms + window_ms / 2 + 50)
        .await;
    assert!(
        push_again(&short, &first).await,
        "the first id's window has passed"
    );
    assert!(t.hget(&short.keys().entries, &first).await.is_some());
    assert!(t.zscore(&short.keys().due, &first).await.is_some());
    let again = push_again(&short, &second).await;
    let pushed_by = t.redis_time_ms().await;
    assert!(
        pushed_by < second_acked + window_ms,
        "too slow: the second id's window passed before it was pushed again"
    );
    assert!(!again, "the second id is still within its window");
}

/// Acks `ids` as a listener does after their publish: pushed due now, claimed, acknowledged.
async fn push_claim_ack_all(schedule: &Schedule, ids: &[String]) {
    for chunk in ids.chunks(500) {
        for id in chunk {
            push_new(schedule, id, 0, &tail("{}")).await;
        }
        let claim = schedule.claim(chunk.len(), LEASE, POLL).await.unwrap();
        assert_eq!(claim.items.len(), chunk.len());
        let claimed: Vec<&str> = claim.items.iter().map(|(id, _)| id.as_str()).collect();
        schedule.ack(&acked(&claimed)).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_id_costs_at_most_40_bytes() {
    let Some(t) = TestRedis::start(SUITE, "a_remembered_id_costs_at_most_40_bytes").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    const N: usize = 60_000;
    let ids: Vec<String> = (0..N).map(|_| msg_id()).collect();
    push_claim_ack_all(&schedule, &ids).await;
    let mut conn = t.conn.clone();
    let buckets = t.seen_buckets(&keys).await;
    assert!(!buckets.is_empty(), "the acks remembered nothing");
    let mut bytes = 0u64;
    for key in &buckets {
        let used: Option<u64> = redis::cmd("MEMORY")
            .arg("USAGE")
            .arg(key)
            .query_async(&mut conn)
            .await
            .expect("MEMORY USAGE");
        bytes += used.unwrap_or(0);
    }
    let per_id = bytes as f64 / N as f64;
    println!(
        "{N} remembered ids in {} keys: {per_id:.1} bytes per id",
        buckets.len()
    );
    assert!(per_id <= 40.0, "{per_id:.1} bytes per remembered id");
    // No sorted set member for them.
    assert_eq!(t.zmembers(&keys.seen).await.len(), 0);
    // And every one of them is still recognised.
    for id in ids.iter().step_by(97) {
        assert_eq!(
            schedule.push(message(id, 0, &tail("{}"))).await.unwrap(),
            None,
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seen_bucket_matches_whole_records_only() {
    let Some(t) = TestRedis::start(SUITE, "a_seen_bucket_matches_whole_records_only").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    // Two ids with the same first two characters share a field of the bucket: their records are
    // "aaaaaaaaaaBBBBBBBBBB" and "CCCCCCCCCCdddddddddd". An id whose rest spans the two is not seen.
    let first = "m:XYaaaaaaaaaaBBBBBBBBBB".to_string();
    let second = "m:XYCCCCCCCCCCdddddddddd".to_string();
    push_claim_ack_all(&schedule, &[first.clone(), second.clone()]).await;
    let spanning = "m:XYBBBBBBBBBBCCCCCCCCCC";
    assert!(schedule
        .push(message(spanning, 0, &tail("{}")))
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        schedule
            .push(message(&first, 0, &tail("{}")))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        schedule
            .push(message(&second, 0, &tail("{}")))
            .await
            .unwrap(),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_seen_field_spills_into_longer_fields_and_stays_short() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_full_seen_field_spills_into_longer_fields_and_stays_short",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    // 300 ids sharing their first two characters ("XY"): a field takes 128 of them, the others go
    // to fields named by three characters, so looking one up never reads more than 128 records.
    let ids: Vec<String> = (0..300)
        .map(|_| {
            let random = msg_id();
            format!("m:XY{}", &random[4..])
        })
        .collect();
    push_claim_ack_all(&schedule, &ids).await;
    let mut conn = t.conn.clone();
    let buckets = t.seen_buckets(&keys).await;
    assert_eq!(buckets.len(), 1, "{buckets:?}");
    let fields: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&buckets[0])
        .query_async(&mut conn)
        .await
        .expect("HGETALL");
    assert_eq!(
        fields["XY"].len(),
        128 * 20,
        "the two-character field is full, no more"
    );
    let spilled: usize = fields
        .iter()
        .filter(|(name, _)| name.len() == 3)
        .map(|(name, records)| {
            assert!(name.starts_with("XY"), "{name}");
            assert_eq!(records.len() % 19, 0, "{name}: {records}");
            records.len() / 19
        })
        .sum();
    assert_eq!(spilled, 300 - 128);
    // Every one of them is recognised, in either kind of field; a new id of the same head is not.
    for id in &ids {
        assert_eq!(
            schedule.push(message(id, 0, &tail("{}"))).await.unwrap(),
            None,
            "{id}"
        );
    }
    let fresh = format!("m:XY{}", &msg_id()[4..]);
    assert!(schedule
        .push(message(&fresh, 0, &tail("{}")))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_seen_set_of_the_previous_format_is_still_honoured() {
    let Some(t) =
        TestRedis::start(SUITE, "a_seen_set_of_the_previous_format_is_still_honoured").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    // Legacy ids still go to the sorted set (any length) and are honoured from there.
    let legacy = format!("legacy:{}:0", t.prefix);
    push_claim_ack_all(&schedule, std::slice::from_ref(&legacy)).await;
    assert!(t.zscore(&keys.seen, &legacy).await.is_some());
    let mut stored = message(&legacy, 0, &tail("{}"));
    stored.dedupe = true;
    assert_eq!(schedule.push(stored).await.unwrap(), None);
    // Acked by a listener of the previous version: the id in the sorted set, scored by its ack.
    let now = t.redis_time_ms().await;
    let (recent, old) = (msg_id(), msg_id());
    t.zadd(&keys.seen, now, &recent).await;
    t.zadd(&keys.seen, now - ms(WINDOW) - 1_000, &old).await;
    assert_eq!(
        schedule
            .push(message(&recent, 0, &tail("{}")))
            .await
            .unwrap(),
        None
    );
    assert!(schedule
        .push(message(&old, 0, &tail("{}")))
        .await
        .unwrap()
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claim_drops_ids_without_an_entry() {
    let Some(t) = TestRedis::start(SUITE, "claim_drops_ids_without_an_entry").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let orphan = msg_id();
    t.zadd(&keys.due, t.redis_time_ms().await - 2_000, &orphan)
        .await;
    let id = msg_id();
    let text = tail("{}");
    let due = push_new(&schedule, &id, 0, &text).await;

    let claim = schedule.claim(10, SHORT_LEASE, POLL).await.unwrap();
    assert_eq!(claim.items, vec![(id.clone(), stored(due, &text))]);
    assert_eq!(t.zscore(&keys.lease, &orphan).await, None);
    assert_eq!(t.zscore(&keys.due, &orphan).await, None);
    assert_eq!(t.zmembers(&keys.lease).await, vec![id.clone()]);
    // And it does not come back when the lease runs out (while the claimed message does).
    t.sleep_until(claim.deadline + 1).await;
    let later = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(later.now > claim.deadline);
    assert!(later.items.iter().all(|(i, _)| *i != orphan));
    assert_eq!(later.items.len(), 1, "{:?}", later.items);
    assert_eq!(later.items[0].0, id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_moves_a_dead_letter_atomically() {
    let Some(t) = TestRedis::start(SUITE, "requeue_moves_a_dead_letter_atomically").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let store = DeadLetters::new(t.redis.clone());
    let dlq = format!("{}:dlq", t.prefix);
    let now = t.redis_time_ms().await;
    let id = msg_id();
    let mut dead = entry("orders", r#"{"msgId":"dead","n":7}"#, 4, now - 5_000);
    // The caller's own headers go back onto the schedule with it, byte for byte.
    dead.extra = vec![
        Header {
            name: "tenant".into(),
            value: HeaderValue::Text("acme".into()),
            in_array: false,
        },
        Header {
            name: "bin".into(),
            value: HeaderValue::Bytes(vec![0, 255, 10]),
            in_array: true,
        },
    ];
    let record = serde_json::to_string(&DeadLetter::of(&id, &dead, now - 4_000, &t.prefix))
        .expect("a dead letter serializes");
    store
        .write(&dlq, &id, &record, now - 4_000, None)
        .await
        .unwrap();
    assert_eq!(t.zscore(&index_key(&dlq), &id).await, Some(now - 4_000));
    let mut wake = t.subscribe(&keys.wake).await;

    let before = t.redis_time_ms().await;
    let moved = requeue(&store, &dlq, &id, |_| schedule.clone())
        .await
        .unwrap();
    let after = t.redis_time_ms().await;
    assert!(moved);
    assert_eq!(store.get(&dlq, &id).await.unwrap(), None);
    assert_eq!(t.zscore(&index_key(&dlq), &id).await, None);
    let due = t.zmembers(&keys.due).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let new_id = &due[0];
    assert_ne!(new_id, &id);
    // Due now, by Redis's clock, and announced to the listeners.
    let due_at = t.zscore(&keys.due, new_id).await.unwrap();
    assert!(
        (before..=after).contains(&due_at),
        "due at {due_at}, requeued between {before} and {after}"
    );
    assert_eq!(
        announcement(&mut wake, Duration::from_secs(1)).await,
        Some(due_at)
    );
    let stored = t.hget(&keys.entries, new_id).await.expect("an entry");
    let requeued = Entry::decode(&stored).unwrap();
    assert_eq!(requeued.due_at, due_at);
    assert_eq!(requeued.retry_count, 0);
    assert_eq!(requeued.max_retry, dead.max_retry);
    assert_eq!(
        (&requeued.topic, &requeued.event, &requeued.value),
        (&dead.topic, &dead.event, &dead.value)
    );
    assert_eq!(requeued.extra, dead.extra);
    // It is claimable like any pushed message.
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
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
async fn requeue_later_moves_a_dead_letter_due_after_its_delay() {
    let Some(t) = TestRedis::start(
        SUITE,
        "requeue_later_moves_a_dead_letter_due_after_its_delay",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let store = DeadLetters::new(t.redis.clone());
    let dlq = format!("{}:dlq", t.prefix);
    let now = t.redis_time_ms().await;
    let id = msg_id();
    let dead = entry("orders", r#"{"n":8}"#, 4, now - 5_000);
    let record = serde_json::to_string(&DeadLetter::of(&id, &dead, now - 4_000, &t.prefix))
        .expect("a dead letter serializes");
    store
        .write(&dlq, &id, &record, now - 4_000, None)
        .await
        .unwrap();
    let mut wake = t.subscribe(&keys.wake).await;

    const DELAY: u64 = 600_000;
    let before = t.redis_time_ms().await;
    assert!(
        requeue_later(&store, &dlq, &id, DELAY, |_| schedule.clone())
            .await
            .unwrap()
    );
    let after = t.redis_time_ms().await;
    // Out of the dead letters and onto the schedule in the same step, due DELAY after now by
    // Redis's clock (entry and score agree), announced with that time.
    assert_eq!(store.get(&dlq, &id).await.unwrap(), None);
    assert_eq!(t.zscore(&index_key(&dlq), &id).await, None);
    let due = t.zmembers(&keys.due).await;
    assert_eq!(due.len(), 1, "{due:?}");
    let due_at = t.zscore(&keys.due, &due[0]).await.unwrap();
    assert!(
        (before + DELAY..=after + DELAY).contains(&due_at),
        "due at {due_at}, requeued between {before} and {after} with a delay of {DELAY}"
    );
    let stored = t.hget(&keys.entries, &due[0]).await.expect("an entry");
    assert_eq!(Entry::decode(&stored).unwrap().due_at, due_at);
    assert_eq!(
        announcement(&mut wake, Duration::from_secs(1)).await,
        Some(due_at)
    );
    // Not claimable before then.
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(claim.items.is_empty(), "{:?}", claim.items);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_are_exclusive_under_concurrency() {
    let Some(t) = TestRedis::start(SUITE, "claims_are_exclusive_under_concurrency").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let ids: Vec<String> = (0..200).map(|_| msg_id()).collect();
    let text = tail("{}");
    let pushes = ids.iter().map(|id| schedule.push(message(id, 0, &text)));
    for stored in futures::future::join_all(pushes).await {
        assert!(stored.unwrap().is_some());
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
                    let claim = schedule.claim(16, LEASE, POLL).await.unwrap();
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn due_times_come_from_redis_not_the_pushing_host() {
    let Some(t) = TestRedis::start(SUITE, "due_times_come_from_redis_not_the_pushing_host").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    // The push sends only a delay; the due time is Redis's clock at the push plus that delay.
    for delay in [0, 5_000, LATER] {
        let id = msg_id();
        let text = tail(r#"{"n":1}"#);
        let before = t.redis_time_ms().await;
        let due = push_new(&schedule, &id, delay, &text).await;
        let after = t.redis_time_ms().await;
        assert!(
            (before + delay..=after + delay).contains(&due),
            "delay {delay}: due at {due}, pushed between {before} and {after}"
        );
        assert_eq!(t.zscore(&keys.due, &id).await, Some(due), "delay {delay}");
        let entry = t.hget(&keys.entries, &id).await.expect("an entry");
        assert_eq!(entry, stored(due, &text), "delay {delay}");
        let decoded = Entry::decode(&entry).unwrap();
        assert_eq!(decoded.due_at, due, "delay {delay}");
        assert_eq!(decoded.value, r#"{"n":1}"#);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renew_extends_only_our_lease() {
    let Some(t) = TestRedis::start(SUITE, "renew_extends_only_our_lease").await else {
        return;
    };
    let a = t.schedule(WINDOW);
    let b = Schedule::new(t.other_connection("b"), &t.prefix, 0, WINDOW);
    let keys = a.keys().clone();
    let ids = vec![msg_id(), msg_id()];
    for id in &ids {
        push_new(&a, id, 0, &tail("{}")).await;
    }
    let claim = a
        .claim(10, Duration::from_millis(1_000), POLL)
        .await
        .unwrap();
    assert_eq!(claim.items.len(), 2);
    let old = claim.deadline;

    // Renewed with our token: every id we hold gets the new deadline; an id we never claimed
    // is not counted.
    let lease = Duration::from_millis(4_000);
    let mut asked = ids.clone();
    asked.push(msg_id());
    let before = t.redis_time_ms().await;
    let (renewed_to, renewed) = a.renew(old, lease, &asked).await.unwrap();
    let after = t.redis_time_ms().await;
    assert_eq!(renewed, 2);
    assert!(renewed_to > old, "renewed to {renewed_to}, was {old}");
    assert!(
        (before + ms(lease)..=after + ms(lease)).contains(&renewed_to),
        "renewed to {renewed_to}, between {before} and {after}"
    );
    for id in &ids {
        assert_eq!(t.zscore(&keys.lease, id).await, Some(renewed_to), "{id}");
    }
    assert_eq!(t.zscore(&keys.lease, &asked[2]).await, None);

    // The old token is stale now: it extends nothing and changes no score.
    let (_, stale) = a.renew(old, LEASE, &ids).await.unwrap();
    assert_eq!(stale, 0, "a stale lease token must not renew");
    for id in &ids {
        assert_eq!(t.zscore(&keys.lease, id).await, Some(renewed_to), "{id}");
    }

    // Past the old deadline the messages are still ours.
    t.sleep_until(old + 1).await;
    let claim = b.claim(10, LEASE, POLL).await.unwrap();
    assert!(
        claim.now < renewed_to,
        "too slow: the renewed lease ran out too"
    );
    assert!(claim.now > old);
    assert!(claim.items.is_empty(), "{:?}", claim.items);

    // Once the renewed lease ran out another listener takes them over, and our token, though
    // the latest we got, extends nothing.
    t.sleep_until(renewed_to + 1).await;
    let taken = b.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(taken.items.len(), 2, "{:?}", taken.items);
    let (_, late) = a.renew(renewed_to, LEASE, &ids).await.unwrap();
    assert_eq!(late, 0, "a lease taken over must not renew");
    for id in &ids {
        assert_eq!(
            t.zscore(&keys.lease, id).await,
            Some(taken.deadline),
            "{id}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_due_before_the_listeners_next_look_is_announced() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_push_due_before_the_listeners_next_look_is_announced",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let mut wake = t.subscribe(&keys.wake).await;

    // A listener claims (nothing) and plans to look again in a minute.
    let poll = Duration::from_secs(60);
    let claim = schedule.claim(10, LEASE, poll).await.unwrap();
    assert!(claim.items.is_empty());
    assert_eq!(claim.next_wake, None);
    let planned = claim.now + ms(poll);
    assert_eq!(t.get(&keys.wake).await, Some(planned.to_string()));
    let ttl = t.pttl(&keys.wake).await;
    assert!(
        (ms(poll) as i64 - 5_000..=ms(poll) as i64 + 1_000).contains(&ttl),
        "the wake key lives {ttl} ms"
    );

    // Due now, before that look: announced with its due time.
    let due = push_new(&schedule, &msg_id(), 0, &tail("{}")).await;
    assert_eq!(
        announcement(&mut wake, Duration::from_secs(1)).await,
        Some(due)
    );

    // Due after that look: the listener finds it then; nothing is announced.
    let late = push_new(&schedule, &msg_id(), 120_000, &tail("{}")).await;
    assert!(late > planned);
    assert_eq!(
        announcement(&mut wake, Duration::from_millis(300)).await,
        None
    );

    // With no listener planning to look (no wake key), every push is announced.
    t.del(&keys.wake).await;
    let due = push_new(&schedule, &msg_id(), 120_000, &tail("{}")).await;
    assert_eq!(
        announcement(&mut wake, Duration::from_secs(1)).await,
        Some(due)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn count_uses_redis_time() {
    let Some(t) = TestRedis::start(SUITE, "count_uses_redis_time").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    assert_eq!(schedule.counts().await.unwrap(), Counts::default());
    // One claimed, one due, one far in the future and one due soon.
    push_new(&schedule, &msg_id(), 0, &tail("{}")).await;
    assert_eq!(
        schedule.claim(10, LEASE, POLL).await.unwrap().items.len(),
        1
    );
    push_new(&schedule, &msg_id(), 0, &tail("{}")).await;
    push_new(&schedule, &msg_id(), LATER, &tail("{}")).await;
    let soon = push_new(&schedule, &msg_id(), 2_000, &tail("{}")).await;

    let counts = schedule.counts().await.unwrap();
    let counted_by = t.redis_time_ms().await;
    assert!(counted_by < soon, "too slow: the soon message fell due");
    assert_eq!(
        counts,
        Counts {
            scheduled: 3,
            due: 1,
            inflight: 1,
            late_ms: counts.late_ms,
        }
    );

    // Once Redis's clock passes its due time, the soon message counts as due.
    t.sleep_until(soon).await;
    let counts = schedule.counts().await.unwrap();
    assert_eq!(
        counts,
        Counts {
            scheduled: 3,
            due: 2,
            inflight: 1,
            late_ms: counts.late_ms,
        }
    );
    // The oldest due message (pushed due at once, before `soon`) has waited at least that long.
    assert!(counts.late_ms >= 2_000, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn release_counts_refusals_and_keeps_the_one_at_the_limit_leased_until_acked() {
    let Some(t) = TestRedis::start(
        SUITE,
        "release_counts_refusals_and_keeps_the_one_at_the_limit_leased_until_acked",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let id = msg_id();
    push_new(&schedule, &id, 0, &tail("{}")).await;
    let max = 3;
    for refusal in 1..max {
        let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
        assert_eq!(claim.items.len(), 1, "refusal {refusal}");
        // A transient failure is not counted.
        let moved = schedule
            .release(claim.deadline, Duration::ZERO, true, &published(&[&id]))
            .await
            .unwrap();
        assert_eq!(moved, 1);
        let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
        let (moved, reached) = schedule
            .release_counting(
                claim.deadline,
                Duration::ZERO,
                max,
                true,
                &published(&[&id]),
            )
            .await
            .unwrap();
        assert_eq!((moved, reached), (1, vec![]), "refusal {refusal}");
        assert_eq!(
            t.hget(&keys.failures, &id).await.as_deref(),
            Some(refusal.to_string().as_str())
        );
    }
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    let (moved, reached) = schedule
        .release_counting(
            claim.deadline,
            Duration::ZERO,
            max,
            true,
            &published(&[&id]),
        )
        .await
        .unwrap();
    assert_eq!((moved, reached), (0, vec![id.clone()]));
    // At the limit it stays leased under our claim (the caller dead-letters it), not due.
    assert_eq!(t.zscore(&keys.lease, &id).await, Some(claim.deadline));
    assert_eq!(t.zscore(&keys.due, &id).await, None);
    schedule.ack(&acked(&[&id])).await.unwrap();
    assert_eq!(t.hget(&keys.failures, &id).await, None);
    assert_eq!(t.hget(&keys.entries, &id).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shard_count_is_recorded_once_and_read_once_per_process() {
    use kafka_redis_retry_engine::store::keys::shards_key;
    use kafka_redis_retry_engine::store::schedule::shard_record::record;
    use redis::AsyncCommands;
    let Some(mut t) = TestRedis::start(SUITE, "shard_count").await else {
        return;
    };
    let key = shards_key(&t.prefix);
    // The first instance records its count; a differently configured one reads it back.
    assert_eq!(record(&t.redis, &t.prefix, 4).await.unwrap(), 4);
    let stored: String = t.conn.get(&key).await.unwrap();
    assert_eq!(stored, "4");
    assert_eq!(record(&t.redis, &t.prefix, 1).await.unwrap(), 4);
    // Later instances of this process do not ask Redis again (one round trip per push saved for
    // services that make an instance per failed message): with the record gone, they still get
    // the count read before, and nothing is written.
    let _: () = t.conn.del(&key).await.unwrap();
    assert_eq!(record(&t.redis, &t.prefix, 2).await.unwrap(), 4);
    let exists: bool = t.conn.exists(&key).await.unwrap();
    assert!(!exists, "the record was written again: Redis was asked");
}

/// What a push of a message for `topic` sends.
fn tail_for(topic: &str, value: &str) -> String {
    entry(topic, value, 1, 1_700_000_000_000).encode_after_due(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_topic_is_parked_not_leased_and_a_resume_puts_it_back_announced() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_paused_topic_is_parked_not_leased_and_a_resume_puts_it_back_announced",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let gate_keys = schedule.gate_keys().clone();
    let shards = [schedule.clone()];
    push_new(&schedule, "a1", 0, &tail_for("a", "{}")).await;
    push_new(&schedule, "a2", 0, &tail_for("a", "{}")).await;
    push_new(&schedule, "b1", 0, &tail_for("b", "{}")).await;
    assert!(gate::pause(&shards, Some("a"), None).await.unwrap());
    assert_eq!(
        gate::paused(&schedule).await.unwrap(),
        vec![gate::Pause {
            topic: Some("a".into()),
            until_ms: None
        }]
    );

    // Only b is claimed; a's messages leave the due set for the parked set, unleased.
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    let ids: Vec<&str> = claim.items.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, vec!["b1"]);
    assert_eq!(t.zmembers(&keys.lease).await, vec!["b1".to_string()]);
    assert!(t.zmembers(&keys.due).await.is_empty());
    assert_eq!(
        t.zmembers(&gate_keys.parked).await,
        vec!["a\na1".to_string(), "a\na2".to_string()]
    );
    assert!(t.hget(&keys.entries, "a1").await.is_some());
    // A message of a paused topic that falls due later is parked too, and claims stay empty.
    push_new(&schedule, "a3", 0, &tail_for("a", "{}")).await;
    assert!(schedule
        .claim(10, LEASE, POLL)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(t.zmembers(&gate_keys.parked).await.len(), 3);

    // Resume: announced on the wake channel; the next claim puts them back and takes them.
    let mut wake = t.subscribe(&keys.wake).await;
    assert!(gate::resume(&shards, Some("a"), false).await.unwrap());
    assert!(announcement(&mut wake, Duration::from_secs(1))
        .await
        .is_some());
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    let mut ids: Vec<String> = claim.items.into_iter().map(|(id, _)| id).collect();
    ids.sort();
    assert_eq!(ids, vec!["a1", "a2", "a3"]);
    assert!(t.zmembers(&gate_keys.parked).await.is_empty());
    assert!(gate::paused(&schedule).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_schedule_pause_holds_every_claim_until_its_end_by_redis_time() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_whole_schedule_pause_holds_every_claim_until_its_end_by_redis_time",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let shards = [schedule.clone()];
    push_new(&schedule, "x1", 0, &tail_for("x", "{}")).await;
    let until = t.redis_time_ms().await + 400;
    assert!(gate::pause(&shards, None, Some(until)).await.unwrap());
    // A time already past pauses nothing.
    let past = t.redis_time_ms().await - 1;
    assert!(!gate::pause(&shards, Some("y"), Some(past)).await.unwrap());
    let held = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(held.items.is_empty());
    // The listener is told to look again when the pause ends.
    assert_eq!(held.next_wake, Some(until));
    assert_eq!(
        t.zmembers(&schedule.keys().due).await,
        vec!["x1".to_string()]
    );
    t.sleep_until(until).await;
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    assert!(gate::paused(&schedule).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_cap_limits_what_claims_take_across_claimers() {
    let Some(t) = TestRedis::start(
        SUITE,
        "the_rate_cap_limits_what_claims_take_across_claimers",
    )
    .await
    else {
        return;
    };
    // 50/s: a bucket of 5 tokens, one every 20 ms.
    let schedule = t.schedule(WINDOW).with_max_rate(50.0);
    let other = t.schedule(WINDOW).with_max_rate(50.0);
    for n in 0..30 {
        push_new(&schedule, &format!("r{n}"), 0, &tail_for("r", "{}")).await;
    }
    let first = schedule.claim(100, LEASE, POLL).await.unwrap();
    assert_eq!(first.items.len(), 5);
    // The bucket is in Redis: another claimer (another process) finds it empty, and is told when
    // the next token comes instead of "now".
    let second = other.claim(100, LEASE, POLL).await.unwrap();
    assert!(second.items.len() <= 1, "{}", second.items.len());
    let wake = second.next_wake.expect("a next look");
    assert!(wake > second.now, "{wake} <= {}", second.now);
    assert!(wake <= second.now + 20, "{wake} > {} + 20", second.now);
    // After 200 ms the bucket holds 5 again (it never holds more).
    t.sleep_until(second.now + 200).await;
    assert_eq!(other.claim(100, LEASE, POLL).await.unwrap().items.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_later_makes_the_dead_letter_due_after_its_delay() {
    let Some(t) = TestRedis::start(
        SUITE,
        "requeue_later_makes_the_dead_letter_due_after_its_delay",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let store = DeadLetters::new(t.redis.clone());
    let dlq = format!("{}:dlq", t.prefix);
    let now = t.redis_time_ms().await;
    let dead = entry("orders", r#"{"n":1}"#, 4, now);
    let record = serde_json::to_string(&DeadLetter::of("d1", &dead, now, &t.prefix)).unwrap();
    store.write(&dlq, "d1", &record, now, None).await.unwrap();
    let before = t.redis_time_ms().await;
    assert!(
        requeue_later(&store, &dlq, "d1", 60_000, |_| schedule.clone())
            .await
            .unwrap()
    );
    let after = t.redis_time_ms().await;
    let due = t.zmembers(&schedule.keys().due).await;
    let at = t.zscore(&schedule.keys().due, &due[0]).await.unwrap();
    assert!((before + 60_000..=after + 60_000).contains(&at), "{at}");
    assert_eq!(store.get(&dlq, "d1").await.unwrap(), None);
    assert!(schedule
        .claim(10, LEASE, POLL)
        .await
        .unwrap()
        .items
        .is_empty());
}

/// Ordered retries (`store::ordered`, `turn.lua`, `park.lua`, `done.lua`).
mod ordered {
    use super::*;
    use kafka_redis_retry_engine::store::ordered::{
        ChainKeys, Ordered, OrderedMessage, Placed, Turn,
    };

    const TOPIC: &str = "orders";
    const KEY: &str = "account-7";

    /// A message of the chain: a first sight (`token` empty) or one carrying its token.
    fn ordered(token: &str, id: &str, delay_ms: u64) -> OrderedMessage {
        OrderedMessage {
            token: token.to_string(),
            id: id.to_string(),
            delay_ms,
            entry: tail(&format!(r#"{{"id":"{id}"}}"#)),
            dedupe: true,
        }
    }

    /// A schedule id as a msgId gives one (`m:` and 22 characters).
    fn id(n: u64) -> String {
        message_id(TOPIC, Some(&format!("msg-{n}")), 1)
    }

    impl TestRedis {
        async fn chain(&self, keys: &ChainKeys) -> Vec<String> {
            redis::cmd("LRANGE")
                .arg(&keys.chain)
                .arg(0)
                .arg(-1)
                .query_async(&mut self.conn.clone())
                .await
                .expect("LRANGE")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_park_with_nothing_ahead_is_scheduled_at_once() {
        let Some(t) =
            TestRedis::start(SUITE, "a_park_with_nothing_ahead_is_scheduled_at_once").await
        else {
            return;
        };
        let schedule = t.schedule(WINDOW);
        let store = Ordered::new(&schedule, WINDOW);
        let keys = ChainKeys::new(&schedule, TOPIC, KEY);
        assert!(!store.is_blocked(TOPIC, KEY).await.unwrap());

        let before = t.redis_time_ms().await;
        let placed = store
            .place(TOPIC, KEY, &ordered("", &id(1), 0))
            .await
            .unwrap();
        let after = t.redis_time_ms().await;
        let Placed::Scheduled(due) = placed else {
            panic!("nothing ahead: scheduled, got {placed:?}")
        };
        assert!((before..=after).contains(&due), "due now: {due}");
        assert_eq!(t.zscore(&schedule.keys().due, &id(1)).await, Some(due));
        assert_eq!(t.chain(&keys).await, vec![id(1)]);
        assert!(store.is_blocked(TOPIC, KEY).await.unwrap());

        // Something ahead: held, not on the schedule.
        let placed = store
            .place(TOPIC, KEY, &ordered("", &id(2), 0))
            .await
            .unwrap();
        assert_eq!(placed, Placed::Parked);
        assert_eq!(t.zscore(&schedule.keys().due, &id(2)).await, None);
        assert!(t.hget(&keys.held, &id(2)).await.is_some());
        assert_eq!(t.chain(&keys).await, vec![id(1), id(2)]);
        assert_eq!(store.count().await.unwrap(), (1, 1));

        // The same msgId parked again (a redelivery) is stored once.
        let again = store
            .place(TOPIC, KEY, &ordered("", &id(2), 0))
            .await
            .unwrap();
        assert_eq!(again, Placed::Duplicate);
        assert_eq!(t.chain(&keys).await, vec![id(1), id(2)]);

        // The race with the head's handling, closed in the script: once the head is handled and
        // nothing follows, a park finds nothing ahead and is scheduled at once.
        store.done(TOPIC, KEY, &id(1)).await.unwrap();
        store.done(TOPIC, KEY, &id(2)).await.unwrap();
        assert!(!store.is_blocked(TOPIC, KEY).await.unwrap());
        let placed = store
            .place(TOPIC, KEY, &ordered("", &id(3), 0))
            .await
            .unwrap();
        assert!(matches!(placed, Placed::Scheduled(_)), "{placed:?}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn handling_the_head_releases_exactly_the_next() {
        let Some(t) = TestRedis::start(SUITE, "handling_the_head_releases_exactly_the_next").await
        else {
            return;
        };
        let schedule = t.schedule(WINDOW);
        let store = Ordered::new(&schedule, WINDOW);
        let keys = ChainKeys::new(&schedule, TOPIC, KEY);
        let due_key = &schedule.keys().due;
        store
            .place(TOPIC, KEY, &ordered("", &id(1), LATER))
            .await
            .unwrap();
        for n in 2..=4 {
            let placed = store
                .place(TOPIC, KEY, &ordered("", &id(n), 0))
                .await
                .unwrap();
            assert_eq!(placed, Placed::Parked);
        }
        assert_eq!(t.zmembers(due_key).await, vec![id(1)]);
        // Only the head is on the schedule, so only it counts as scheduled (tally.lua).
        assert_eq!(topic_counts(&t, &schedule).await[TOPIC], (1, 0, 0));

        // Not the head (a copy of a held message, or the wrong token): nothing moves.
        assert_eq!(store.done(TOPIC, KEY, &id(3)).await.unwrap(), None);
        assert_eq!(t.chain(&keys).await, vec![id(1), id(2), id(3), id(4)]);

        let before = t.redis_time_ms().await;
        let released = store.done(TOPIC, KEY, &id(1)).await.unwrap();
        let after = t.redis_time_ms().await;
        let due = released.expect("the next one released");
        assert!((before..=after).contains(&due), "due now: {due}");
        // Exactly the next: id 2 on the schedule under its token, 3 and 4 still held.
        assert_eq!(t.zscore(due_key, &id(2)).await, Some(due));
        assert_eq!(t.zscore(due_key, &id(3)).await, None);
        assert!(t.hget(&keys.held, &id(2)).await.is_none());
        assert!(t.hget(&keys.held, &id(3)).await.is_some());
        assert_eq!(t.chain(&keys).await, vec![id(2), id(3), id(4)]);
        // The released one counts as scheduled and due, and as pushed in the history.
        assert_eq!(topic_counts(&t, &schedule).await[TOPIC], (2, 1, 0));
        assert_eq!(history_totals(&t, &schedule, TOPIC).await.0, 2);
        // Handled twice (a second publish of the same message): nothing more moves.
        assert_eq!(store.done(TOPIC, KEY, &id(1)).await.unwrap(), None);
        assert_eq!(t.zscore(due_key, &id(3)).await, None);

        assert!(store.done(TOPIC, KEY, &id(2)).await.unwrap().is_some());
        assert!(store.done(TOPIC, KEY, &id(3)).await.unwrap().is_some());
        assert_eq!(store.count().await.unwrap(), (1, 0));
        assert_eq!(store.done(TOPIC, KEY, &id(4)).await.unwrap(), None);
        assert!(!store.is_blocked(TOPIC, KEY).await.unwrap());
        assert_eq!(store.count().await.unwrap(), (0, 0));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_head_failing_again_is_rescheduled_and_its_followers_stay_held() {
        let Some(t) = TestRedis::start(
            SUITE,
            "a_head_failing_again_is_rescheduled_and_its_followers_stay_held",
        )
        .await
        else {
            return;
        };
        let schedule = t.schedule(WINDOW);
        let store = Ordered::new(&schedule, WINDOW);
        let keys = ChainKeys::new(&schedule, TOPIC, KEY);
        let due_key = &schedule.keys().due;
        store
            .place(TOPIC, KEY, &ordered("", &id(1), 0))
            .await
            .unwrap();
        store
            .place(TOPIC, KEY, &ordered("", &id(2), 0))
            .await
            .unwrap();
        // The head came back: its turn.
        let turn = store
            .turn(TOPIC, KEY, &ordered(&id(1), "unused", 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Mine);
        // ... and failed again: its retry (a new id, the same token) is scheduled after its
        // backoff; the follower stays held.
        let retry = message_id(TOPIC, Some("msg-1-again"), 2);
        let placed = store
            .place(TOPIC, KEY, &ordered(&id(1), &retry, LATER))
            .await
            .unwrap();
        assert!(matches!(placed, Placed::Scheduled(_)), "{placed:?}");
        assert!(t.zscore(due_key, &retry).await.is_some());
        assert_eq!(t.zscore(due_key, &id(2)).await, None);
        assert_eq!(t.chain(&keys).await, vec![id(1), id(2)]);
        // A copy of the follower carrying its token is not its turn.
        let turn = store
            .turn(TOPIC, KEY, &ordered(&id(2), "unused", 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Duplicate);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_parks_in_the_same_script_and_drops_copies() {
        let Some(t) =
            TestRedis::start(SUITE, "a_turn_parks_in_the_same_script_and_drops_copies").await
        else {
            return;
        };
        let schedule = t.schedule(WINDOW);
        let store = Ordered::new(&schedule, WINDOW);
        let keys = ChainKeys::new(&schedule, TOPIC, KEY);
        // Nothing waits: free, and nothing is stored.
        let turn = store
            .turn(TOPIC, KEY, &ordered("", &id(1), 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Free);
        assert!(t.chain(&keys).await.is_empty());
        assert!(t.zmembers(&schedule.keys().due).await.is_empty());

        store
            .place(TOPIC, KEY, &ordered("", &id(1), LATER))
            .await
            .unwrap();
        let turn = store
            .turn(TOPIC, KEY, &ordered("", &id(2), 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Parked);
        assert_eq!(t.chain(&keys).await, vec![id(1), id(2)]);
        let turn = store
            .turn(TOPIC, KEY, &ordered("", &id(2), 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Duplicate, "a redelivery is parked once");
        // A token the chain no longer holds: a second publish of a message already handled.
        let turn = store
            .turn(TOPIC, KEY, &ordered("m:gone", "unused", 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Duplicate);

        // Released, published and acked: a redelivery of it within the window is still a copy.
        store.done(TOPIC, KEY, &id(1)).await.unwrap();
        let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
        assert_eq!(claim.items.len(), 1);
        assert_eq!(claim.items[0].0, id(2));
        schedule
            .ack(&[Acked {
                id: id(2),
                topic: TOPIC.into(),
                dead_lettered: false,
            }])
            .await
            .unwrap();
        store
            .place(TOPIC, KEY, &ordered("", &id(5), LATER))
            .await
            .unwrap();
        let turn = store
            .turn(TOPIC, KEY, &ordered("", &id(2), 0))
            .await
            .unwrap();
        assert_eq!(turn, Turn::Duplicate, "acked within the window");
        assert_eq!(t.chain(&keys).await, vec![id(2), id(5)]);
    }

    #[test]
    fn a_chain_lives_in_its_schedule_shards_hash_tag() {
        let redis = kafka_redis_retry_engine::store::connection::Redis::new(
            kafka_redis_retry_engine::store::connection::SharedRedis::for_url(
                "redis://127.0.0.1:1",
                false,
                Duration::from_secs(1),
            ),
            Duration::from_secs(1),
        );
        let schedule = Schedule::new(redis, "svc", 3, WINDOW);
        let keys = ChainKeys::new(&schedule, "t{x}", "k");
        for key in [&keys.chain, &keys.chains, &keys.held] {
            assert!(key.starts_with("{svc#3}:"), "{key}");
        }
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_topic_counters_follow_every_script_and_count_a_message_once() {
    let Some(t) = TestRedis::start(
        SUITE,
        "per_topic_counters_follow_every_script_and_count_a_message_once",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let shards = [schedule.clone()];
    let a1 = message_id("a", Some("a1"), 1);
    let a2 = message_id("a", Some("a2"), 1);
    let b1 = message_id("b", Some("b1"), 1);
    push_new(&schedule, &a1, 0, &tail_for("a", "{}")).await;
    // A redelivered push (same msgId) stores nothing and counts nothing.
    assert_eq!(
        schedule
            .push(message(&a1, 0, &tail_for("a", "{}")))
            .await
            .unwrap(),
        None
    );
    push_new(&schedule, &a2, LATER, &tail_for("a", "{}")).await;
    push_new(&schedule, &b1, 0, &tail_for("b", "{}")).await;
    let counts = topic_counts(&t, &schedule).await;
    assert_eq!(counts["a"], (2, 1, 0), "{counts:?}");
    assert_eq!(counts["b"], (1, 1, 0), "{counts:?}");
    assert_eq!(history_totals(&t, &schedule, "a").await, (2, 0, 0, 0));

    // A claim moves them from scheduled (and due) to leased.
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 2);
    let counts = topic_counts(&t, &schedule).await;
    assert_eq!(counts["a"], (1, 0, 1), "{counts:?}");
    assert_eq!(counts["b"], (0, 0, 1), "{counts:?}");

    // A failed publish goes back (due now): leased -> scheduled, and one failure.
    let pair = vec![(b1.clone(), "b".to_string())];
    assert_eq!(
        schedule
            .release(claim.deadline, Duration::ZERO, true, &pair)
            .await
            .unwrap(),
        1
    );
    assert_eq!(topic_counts(&t, &schedule).await["b"], (1, 1, 0));
    assert_eq!(history_totals(&t, &schedule, "b").await, (1, 0, 1, 0));

    // An ack counts once, however often it is repeated; the last leased of a topic leaves no field.
    let ack = [Acked {
        id: a1.clone(),
        topic: "a".into(),
        dead_lettered: false,
    }];
    schedule.ack(&ack).await.unwrap();
    schedule.ack(&ack).await.unwrap();
    assert_eq!(topic_counts(&t, &schedule).await["a"], (1, 0, 0));
    assert_eq!(history_totals(&t, &schedule, "a").await, (2, 1, 0, 0));
    let fields: HashMap<String, i64> =
        redis::AsyncCommands::hgetall(&mut t.conn.clone(), &schedule.keys().topics)
            .await
            .unwrap();
    assert!(!fields.contains_key("la"), "{fields:?}");

    // A paused topic's due message is parked: still scheduled and due, not leased; resumed, it is
    // claimed like any other, and dead-lettering it counts so.
    assert!(gate::pause(&shards, Some("b"), None).await.unwrap());
    assert!(schedule
        .claim(10, LEASE, POLL)
        .await
        .unwrap()
        .items
        .is_empty());
    assert_eq!(topic_counts(&t, &schedule).await["b"], (1, 1, 0));
    assert!(gate::resume(&shards, Some("b"), false).await.unwrap());
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    assert_eq!(topic_counts(&t, &schedule).await["b"], (0, 0, 1));
    schedule
        .ack(&[Acked {
            id: b1.clone(),
            topic: "b".into(),
            dead_lettered: true,
        }])
        .await
        .unwrap();
    let counts = topic_counts(&t, &schedule).await;
    assert!(!counts.contains_key("b"), "{counts:?}");
    assert_eq!(history_totals(&t, &schedule, "b").await, (1, 0, 1, 1));
    // The history's hour expires by itself, 48 hours after its last minute at most.
    let hour = t.redis_time_ms().await / 3_600_000;
    let ttl = t.pttl(&format!("{}:{hour}", schedule.keys().history)).await;
    assert!(ttl > 48 * 3_600_000 && ttl <= 49 * 3_600_000, "{ttl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_counts_the_message_scheduled_and_one_dead_letter_fewer() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_requeue_counts_the_message_scheduled_and_one_dead_letter_fewer",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let store = DeadLetters::new(t.redis.clone());
    let dlq = format!("{}:dlq", t.prefix);
    let now = t.redis_time_ms().await;
    let record = |id: &str| {
        serde_json::to_string(&DeadLetter::of(
            id,
            &entry("c", "{}", 4, now),
            now,
            &t.prefix,
        ))
        .unwrap()
    };
    for id in ["d1", "d2"] {
        store
            .write(&dlq, id, &record(id), now, Some("c"))
            .await
            .unwrap();
    }
    // Written again (a retried write): still two.
    store
        .write(&dlq, "d1", &record("d1"), now, Some("c"))
        .await
        .unwrap();
    assert_eq!(
        store.topic_counts(&dlq).await.unwrap(),
        vec![("c".to_string(), 2)]
    );
    assert!(requeue(&store, &dlq, "d1", |_| schedule.clone())
        .await
        .unwrap());
    assert_eq!(
        store.topic_counts(&dlq).await.unwrap(),
        vec![("c".to_string(), 1)]
    );
    assert_eq!(topic_counts(&t, &schedule).await["c"], (1, 1, 0));
    assert_eq!(history_totals(&t, &schedule, "c").await, (1, 0, 0, 0));
    assert!(store.remove(&dlq, "d2").await.unwrap());
    assert!(!store.remove(&dlq, "d2").await.unwrap());
    assert!(store.topic_counts(&dlq).await.unwrap().is_empty());
    t.del(&kafka_redis_retry_engine::store::keys::dead_letter_topics_key(&dlq))
        .await;
    t.del(&dlq).await;
    t.del(&index_key(&dlq)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_the_entry_escapes_is_counted_under_its_own_name_by_the_claim() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_topic_the_entry_escapes_is_counted_under_its_own_name_by_the_claim",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    // The entry stores `\` as `\\`; the push names the topic as given, the claim reads it back.
    let topic = "we\\ird";
    let id = message_id(topic, Some("x"), 1);
    push_new(&schedule, &id, 0, &tail_for(topic, "{}")).await;
    assert_eq!(topic_counts(&t, &schedule).await[topic], (1, 1, 0));
    assert_eq!(
        schedule.claim(10, LEASE, POLL).await.unwrap().items.len(),
        1
    );
    let counts = topic_counts(&t, &schedule).await;
    assert_eq!(counts.len(), 1, "{counts:?}");
    assert_eq!(counts[topic], (0, 0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removal_of_an_unchanged_dead_letter_leaves_a_newer_record_under_its_field() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_removal_of_an_unchanged_dead_letter_leaves_a_newer_record_under_its_field",
    )
    .await
    else {
        return;
    };
    let store = DeadLetters::new(t.redis.clone());
    let dlq = format!("{}:dlq", t.prefix);
    let now = t.redis_time_ms().await;
    let record = |died_at: u64| {
        serde_json::to_string(&DeadLetter::of(
            "d1",
            &entry("c", "{}", 4, now),
            died_at,
            &t.prefix,
        ))
        .unwrap()
    };
    let (first, newer) = (record(now - 2_000), record(now));
    store
        .write(&dlq, "d1", &first, now - 2_000, Some("c"))
        .await
        .unwrap();
    // Written again under the same field (the message died again): the first record is gone.
    store
        .write(&dlq, "d1", &newer, now, Some("c"))
        .await
        .unwrap();
    assert!(!store.remove_unchanged(&dlq, "d1", &first).await.unwrap());
    assert_eq!(
        store.get(&dlq, "d1").await.unwrap().as_deref(),
        Some(newer.as_str())
    );
    assert_eq!(t.zscore(&index_key(&dlq), "d1").await, Some(now));
    assert_eq!(
        store.topic_counts(&dlq).await.unwrap(),
        vec![("c".to_string(), 1)]
    );
    assert!(store.remove_unchanged(&dlq, "d1", &newer).await.unwrap());
    assert_eq!(store.get(&dlq, "d1").await.unwrap(), None);
    assert_eq!(t.zscore(&index_key(&dlq), "d1").await, None);
    assert!(store.topic_counts(&dlq).await.unwrap().is_empty());
    assert!(!store.remove_unchanged(&dlq, "d1", &newer).await.unwrap());
    t.del(&kafka_redis_retry_engine::store::keys::dead_letter_topics_key(&dlq))
        .await;
}

/// Operator jobs (`job_*.lua`): a runner's reports keep its job running; a stop asked elsewhere
/// reaches it at its next report; a job whose lease ran out (by Redis's clock) reads as
/// interrupted and is continued under the next run, after which the old run's reports are
/// refused; a done job is not continued.
#[tokio::test]
async fn a_job_is_owned_by_its_run_and_interrupted_when_its_lease_runs_out() {
    use kafka_redis_retry_engine::store::jobs::{self, Finish, JobKeys, Reported};
    let Some(t) = TestRedis::start(
        SUITE,
        "a_job_is_owned_by_its_run_and_interrupted_when_its_lease_runs_out",
    )
    .await
    else {
        return;
    };
    let keys = JobKeys::new(&t.prefix);
    let redis = &t.redis;
    let lease = ms(SHORT_LEASE);
    let spec = r#"{"kind":"requeue","filter":{"since":1765000000123},"ratePerSec":100}"#;
    let id = jobs::start(redis, &keys, spec, ms(LEASE)).await.unwrap();
    let job = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((job.state.as_str(), job.run, job.done), ("running", 1, 0));
    assert_eq!(job.spec["filter"]["since"], 1765000000123u64);

    // Reports renew and count; a stop asked elsewhere is read by the next one.
    let report = |run, done, finish| jobs::report(redis, &keys, id, run, done, lease, finish);
    assert_eq!(report(1, 10, None).await.unwrap(), Reported::Running);
    assert_eq!(jobs::stop(redis, &keys, id).await.unwrap(), Some(true));
    assert_eq!(
        jobs::read(redis, &keys, None).await.unwrap()[0].state,
        "stopping"
    );
    assert_eq!(report(1, 12, None).await.unwrap(), Reported::StopAsked);
    // The runner's last report: accepted (its answer still says a stop was asked).
    assert_eq!(
        report(1, 12, Some((Finish::Stopped, None))).await.unwrap(),
        Reported::StopAsked
    );
    let stopped = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((stopped.state.as_str(), stopped.done), ("stopped", 12));
    assert!(stopped.finished_at.is_some());
    // Finished: its run reports no more.
    assert_eq!(report(1, 13, None).await.unwrap(), Reported::Lost);

    // Continued (run 2), then its runner goes silent: interrupted once the lease is out.
    assert_eq!(
        jobs::resume(redis, &keys, id, lease).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        jobs::resume(redis, &keys, id, lease).await.unwrap(),
        Some(0)
    );
    assert_eq!(report(2, 20, None).await.unwrap(), Reported::Running);
    tokio::time::sleep(SHORT_LEASE * 2).await;
    let silent = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((silent.state.as_str(), silent.done), ("interrupted", 20));
    // Another process takes it over; the silent run, back, learns it lost the job.
    assert_eq!(
        jobs::resume(redis, &keys, id, ms(LEASE)).await.unwrap(),
        Some(3)
    );
    assert_eq!(report(2, 25, None).await.unwrap(), Reported::Lost);
    assert_eq!(
        report(3, 30, Some((Finish::Done, None))).await.unwrap(),
        Reported::Running
    );
    let done = jobs::read(redis, &keys, Some(id))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((done.state.as_str(), done.run, done.done), ("done", 3, 30));
    assert_eq!(done.interruptions, 1);
    assert_eq!(
        jobs::resume(redis, &keys, id, lease).await.unwrap(),
        Some(0)
    );
    assert_eq!(jobs::stop(redis, &keys, id).await.unwrap(), Some(false));
    assert_eq!(jobs::resume(redis, &keys, 999, lease).await.unwrap(), None);
    assert!(jobs::read(redis, &keys, Some(999))
        .await
        .unwrap()
        .is_empty());
}

/// Job records are bounded: beyond the newest `KEPT`, the oldest finished go first, never one
/// running under a live lease.
#[tokio::test]
async fn job_records_keep_the_newest_and_every_running_one() {
    use kafka_redis_retry_engine::store::jobs::{self, Finish, JobKeys, KEPT};
    let Some(t) =
        TestRedis::start(SUITE, "job_records_keep_the_newest_and_every_running_one").await
    else {
        return;
    };
    let keys = JobKeys::new(&t.prefix);
    let redis = &t.redis;
    let running = jobs::start(redis, &keys, "{}", ms(LEASE)).await.unwrap();
    for _ in 0..KEPT + 5 {
        let id = jobs::start(redis, &keys, "{}", ms(LEASE)).await.unwrap();
        jobs::report(
            redis,
            &keys,
            id,
            1,
            1,
            ms(LEASE),
            Some((Finish::Done, None)),
        )
        .await
        .unwrap();
    }
    let kept = jobs::read(redis, &keys, None).await.unwrap();
    assert_eq!(kept.len() as u64, KEPT);
    assert!(kept.iter().any(|job| job.id == running));
    assert_eq!(kept[0].id, running + KEPT + 5);
}
