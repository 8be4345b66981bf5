//! The dead letter scripts (`lua/dead_letters/`): requeue onto the schedule (now or later) and
//! the removal of an unchanged record.

use super::*;

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
    // The caller's headers, and `replays` (1: requeued once), which its next dead letter reads.
    let (replays, kept): (Vec<_>, Vec<_>) = requeued
        .extra
        .iter()
        .cloned()
        .partition(|h| h.name == "replays");
    assert_eq!(kept, dead.extra);
    assert_eq!(replays.len(), 1, "{:?}", requeued.extra);
    assert_eq!(replays[0].value, HeaderValue::Text("1".into()));
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
    assert_eq!(t.leased(&keys).await, vec![new_id.clone()]);
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
