//! The operator gates (`lua/gates/`, and `lua/lib/gate.lua` inside every claim): pauses of a topic
//! or the whole schedule, and the publish rate cap.

use super::*;

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
    assert_eq!(t.leased(&keys).await, vec!["b1".to_string()]);
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
