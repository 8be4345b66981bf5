//! The per topic counts and the history (`lua/lib/tally.lua`, kept by push, claim, ack, release,
//! requeue and the ordered scripts), read back as `stats().topics` and `history()` read them.

use super::*;

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
            .release(&claim.batch, Duration::ZERO, true, &pair)
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
