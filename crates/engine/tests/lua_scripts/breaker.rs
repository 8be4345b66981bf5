//! The breaker per topic (`lua/lib/breaker.lua`: counted by push and ack, decided and enforced
//! inside every claim, closed by hand by `breaker/reset.lua`).

use super::*;
use kafka_redis_retry_engine::config::BreakerConfig;
use kafka_redis_retry_engine::store::breaker::{self, BreakerState};

fn options() -> BreakerConfig {
    BreakerConfig {
        failure_ratio: 0.5,
        min_failures: 3,
        window: Duration::from_secs(10),
        probe_interval: Duration::from_millis(300),
        probe_count: 1,
        ramp: Duration::from_millis(400),
    }
}

/// What a push of a message for `topic` sends, stored with `retry_count` (the incoming one + 1).
fn tail_with(topic: &str, retry_count: u64) -> String {
    entry(topic, "{}", retry_count, 1_700_000_000_000).encode_after_due(false)
}

fn acked_as(topic: &str, ids: &[String]) -> Vec<Acked> {
    ids.iter()
        .map(|id| Acked {
            id: id.clone(),
            topic: topic.into(),
            dead_lettered: false,
        })
        .collect()
}

fn ids_of(claim: &kafka_redis_retry_engine::store::schedule::Claim) -> Vec<String> {
    let mut ids: Vec<String> = claim.items.iter().map(|(id, _)| id.clone()).collect();
    ids.sort();
    ids
}

async fn state_of(schedule: &Schedule, topic: &str) -> Option<BreakerState> {
    breaker::states(std::slice::from_ref(schedule))
        .await
        .unwrap()
        .get(topic)
        .copied()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_retries_open_the_breaker_which_holds_probes_and_releases_over_the_ramp() {
    let Some(t) = TestRedis::start(
        SUITE,
        "failing_retries_open_the_breaker_which_holds_probes_and_releases_over_the_ramp",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW).with_breaker(Some(&options()));
    let gate_keys = schedule.gate_keys().clone();
    let keys = schedule.keys().clone();
    // First failures (retryCount 1 stored) are not breaker failures; their publish is an attempt.
    for i in 0..4 {
        push_new(&schedule, &format!("a{i}"), 0, &tail_with("a", 1)).await;
    }
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 4);
    assert!(claim.breaker.is_empty());
    schedule.ack(&acked_as("a", &ids_of(&claim))).await.unwrap();
    assert_eq!(state_of(&schedule, "a").await, Some(BreakerState::Closed));

    // Four retries come back failed (4 failures per 4 attempts): the next claim opens the breaker
    // and parks them; topic b goes on.
    for i in 0..4 {
        push_new(&schedule, &format!("f{i}"), 0, &tail_with("a", 2)).await;
    }
    push_new(&schedule, "b1", 0, &tail_with("b", 1)).await;
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(ids_of(&claim), vec!["b1"]);
    assert_eq!(claim.breaker.len(), 1);
    assert!(claim.breaker[0].opened);
    assert_eq!(claim.breaker[0].topic, "a");
    assert_eq!(claim.breaker[0].detail["failures"], 4);
    assert_eq!(t.zmembers(&gate_keys.parked).await.len(), 4);
    for i in 0..4 {
        assert!(t.hget(&keys.entries, &format!("f{i}")).await.is_some());
    }
    assert_eq!(state_of(&schedule, "a").await, Some(BreakerState::Open));
    // While open, nothing of a goes out, and the claim wakes the listener for the probes.
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(claim.items.is_empty());
    assert!(claim.next_wake.is_some_and(|w| w <= claim.now + 300));

    // After probeIntervalMs: one probe (probeCount 1), half-open.
    tokio::time::sleep(Duration::from_millis(350)).await;
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    assert_eq!(state_of(&schedule, "a").await, Some(BreakerState::HalfOpen));
    assert!(schedule
        .claim(10, LEASE, POLL)
        .await
        .unwrap()
        .items
        .is_empty());
    // The probe is published and comes back failed: the next round, still held.
    schedule.ack(&acked_as("a", &ids_of(&claim))).await.unwrap();
    push_new(&schedule, "f4", 0, &tail_with("a", 3)).await;
    tokio::time::sleep(Duration::from_millis(350)).await;
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    assert!(claim.breaker.is_empty());
    assert_eq!(state_of(&schedule, "a").await, Some(BreakerState::HalfOpen));

    // This probe is published and nothing comes back failed: closed after the interval, the
    // held messages go out over the ramp, not at once.
    schedule.ack(&acked_as("a", &ids_of(&claim))).await.unwrap();
    tokio::time::sleep(Duration::from_millis(350)).await;
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.breaker.len(), 1);
    assert!(!claim.breaker[0].opened);
    assert_eq!(claim.breaker[0].detail["held"], 3);
    assert!(claim.items.len() < 3);
    assert_eq!(state_of(&schedule, "a").await, Some(BreakerState::Closed));
    let mut released = claim.items.len();
    tokio::time::sleep(Duration::from_millis(450)).await;
    released += schedule.claim(10, LEASE, POLL).await.unwrap().items.len();
    assert_eq!(released, 3, "every held message goes out by the ramp's end");
    assert!(t.zmembers(&gate_keys.parked).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_closes_an_open_breaker_and_its_held_messages_go_out() {
    let Some(t) = TestRedis::start(
        SUITE,
        "a_reset_closes_an_open_breaker_and_its_held_messages_go_out",
    )
    .await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW).with_breaker(Some(&options()));
    for i in 0..3 {
        push_new(&schedule, &format!("f{i}"), 0, &tail_with("a", 2)).await;
    }
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(claim.items.is_empty());
    assert_eq!(state_of(&schedule, "a").await, Some(BreakerState::Open));
    let shards = [schedule.clone()];
    assert_eq!(
        breaker::reset(&shards, Some("a")).await.unwrap(),
        vec!["a".to_string()]
    );
    assert_eq!(state_of(&schedule, "a").await, None);
    assert_eq!(
        schedule.claim(10, LEASE, POLL).await.unwrap().items.len(),
        3
    );
    // A second reset finds nothing open.
    assert!(breaker::reset(&shards, None).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_breaker_off_no_script_touches_its_hash() {
    let Some(t) = TestRedis::start(SUITE, "with_the_breaker_off_no_script_touches_its_hash").await
    else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    for i in 0..5 {
        push_new(&schedule, &format!("f{i}"), 0, &tail_with("a", 2)).await;
    }
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 5);
    schedule.ack(&acked_as("a", &ids_of(&claim))).await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&schedule.gate_keys().breaker)
        .query_async(&mut t.conn.clone())
        .await
        .unwrap();
    assert!(!exists);
}
