//! Ordered retries (`store::ordered`, `turn.lua`, `park.lua`, `done.lua`).

use super::*;
use kafka_redis_retry_engine::store::ordered::{ChainKeys, Ordered, OrderedMessage, Placed, Turn};

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
    let Some(t) = TestRedis::start(SUITE, "a_park_with_nothing_ahead_is_scheduled_at_once").await
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
    let Some(t) = TestRedis::start(SUITE, "a_turn_parks_in_the_same_script_and_drops_copies").await
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
