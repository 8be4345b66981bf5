//! The seen window (`lua/lib/seen.lua`, written by `ack.lua`, read by `push.lua`): a redelivery
//! after the ack is dropped, and what a remembered id costs.

use super::*;

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
async fn without_a_window_an_ack_remembers_nothing_and_a_redelivery_is_stored_again() {
    let Some(t) = TestRedis::start(SUITE, "without_a_window").await else {
        return;
    };
    let schedule = t.schedule(Duration::ZERO);
    let keys = schedule.keys().clone();
    let ids = [msg_id(), msg_id()];
    push_claim_ack_all(&schedule, &ids).await;
    // Remembered for 0 ms was still remembered within the ack's millisecond: a push at once
    // was dropped now and then.
    assert!(t.seen_buckets(&keys).await.is_empty());
    assert_eq!(t.zmembers(&keys.seen).await, Vec::<String>::new());
    for id in &ids {
        push_new(&schedule, id, 0, &tail("{}")).await;
    }
}
