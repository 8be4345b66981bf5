//! The schedule's scripts (`lua/schedule/`): push, claim, ack, release, renew, count, and the
//! recorded shard count.

use super::*;

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
    assert_eq!(t.lease_of(&keys, &due_id).await, Some(claim.deadline));
    assert_eq!(t.zscore(&keys.due, &due_id).await, None);
    assert_eq!(t.zscore(&keys.due, &later_id).await, Some(later_at));
    assert_eq!(t.lease_of(&keys, &later_id).await, None);
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
        assert_eq!(t.lease_of(&keys, &id).await, Some(first.deadline));
        before += 1;
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert!(
        before >= 2,
        "too slow: only {before} claims within the lease"
    );

    assert_eq!(third.items, vec![(id.clone(), text)]);
    assert_eq!(third.deadline, third.now + ms(lease));
    assert_eq!(t.lease_of(&keys, &id).await, Some(third.deadline));
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
            &claim_a.batch,
            Duration::from_secs(5),
            true,
            &published(&[&id]),
        )
        .await
        .unwrap();
    assert_eq!(moved, 0, "a stale lease token must not release");
    assert_eq!(t.lease_of(&keys, &id).await, Some(claim_b.deadline));
    assert_eq!(t.zscore(&keys.due, &id).await, None);

    let delay = 7_000;
    let before = t.redis_time_ms().await;
    let moved = b
        .release(
            &claim_b.batch,
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
    assert_eq!(t.lease_of(&keys, &id).await, None);
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
    assert_eq!(t.lease_of(&keys, &id).await, None);
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
            &claim.batch,
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
    assert_eq!(t.lease_of(&keys, &id).await, None);
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
    assert_eq!(t.lease_of(&keys, &orphan).await, None);
    assert_eq!(t.zscore(&keys.due, &orphan).await, None);
    assert_eq!(t.leased(&keys).await, vec![id.clone()]);
    // And it does not come back when the lease runs out (while the claimed message does).
    t.sleep_until(claim.deadline + 1).await;
    let later = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert!(later.now > claim.deadline);
    assert!(later.items.iter().all(|(i, _)| *i != orphan));
    assert_eq!(later.items.len(), 1, "{:?}", later.items);
    assert_eq!(later.items[0].0, id);
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

    // Renewed by our batch's name: every id it holds gets the new deadline, in one record.
    let lease = Duration::from_millis(4_000);
    let before = t.redis_time_ms().await;
    let (renewed_to, renewed) = a.renew(&claim.batch, lease).await.unwrap();
    let after = t.redis_time_ms().await;
    assert!(renewed);
    assert!(renewed_to > old, "renewed to {renewed_to}, was {old}");
    assert!(
        (before + ms(lease)..=after + ms(lease)).contains(&renewed_to),
        "renewed to {renewed_to}, between {before} and {after}"
    );
    for id in &ids {
        assert_eq!(t.lease_of(&keys, id).await, Some(renewed_to), "{id}");
    }
    assert_eq!(t.zmembers(&keys.lease).await, vec![claim.batch.clone()]);

    // A name that is not a batch of ours extends nothing.
    let (_, stale) = a.renew("b:1:nothing", LEASE).await.unwrap();
    assert!(!stale, "a batch not in the lease set must not renew");

    // Past the old deadline the messages are still ours.
    t.sleep_until(old + 1).await;
    let taken = b.claim(10, LEASE, POLL).await.unwrap();
    assert!(
        taken.now < renewed_to,
        "too slow: the renewed lease ran out too"
    );
    assert!(taken.now > old);
    assert!(taken.items.is_empty(), "{:?}", taken.items);

    // Once the renewed lease ran out another listener takes them over, and our batch extends
    // nothing: its name left the lease set.
    t.sleep_until(renewed_to + 1).await;
    let taken = b.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(taken.items.len(), 2, "{:?}", taken.items);
    let (_, late) = a.renew(&claim.batch, LEASE).await.unwrap();
    assert!(!late, "a lease taken over must not renew");
    for id in &ids {
        assert_eq!(t.lease_of(&keys, id).await, Some(taken.deadline), "{id}");
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
            .release(&claim.batch, Duration::ZERO, true, &published(&[&id]))
            .await
            .unwrap();
        assert_eq!(moved, 1);
        let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
        let (moved, reached) = schedule
            .release_counting(&claim.batch, Duration::ZERO, max, true, &published(&[&id]))
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
        .release_counting(&claim.batch, Duration::ZERO, max, true, &published(&[&id]))
        .await
        .unwrap();
    assert_eq!((moved, reached), (0, vec![id.clone()]));
    // At the limit it stays leased under our claim (the caller dead-letters it), not due.
    assert_eq!(t.lease_of(&keys, &id).await, Some(claim.deadline));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_one_lease_record_forgotten_with_its_last_settle() {
    let Some(t) = TestRedis::start(SUITE, "a_batch_is_one_lease_record").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let ids = [msg_id(), msg_id(), msg_id()];
    for id in &ids {
        push_new(&schedule, id, 0, &tail("{}")).await;
    }
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 3);
    // One member in the lease set, one record: its claim time and its ids.
    assert_eq!(t.zmembers(&keys.lease).await, vec![claim.batch.clone()]);
    let record = t.hget(&keys.batches, &claim.batch).await.expect("a record");
    let mut lines = record.split('\n');
    assert_eq!(lines.next(), Some(claim.now.to_string().as_str()));
    let mut held: Vec<&str> = lines.collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    held.sort();
    want.sort();
    assert_eq!(held, want);
    assert_eq!(
        topic_counts(&t, &schedule).await,
        [("orders".to_string(), (0, 0, 3))].into_iter().collect()
    );

    // A group acked mid-batch leaves the record; the last one forgets it.
    schedule
        .ack_batch(&claim.batch, &acked(&[&ids[0]]), false)
        .await
        .unwrap();
    assert_eq!(t.zmembers(&keys.lease).await, vec![claim.batch.clone()]);
    assert_eq!(t.leased(&keys).await.len(), 2);
    assert_eq!(schedule.counts().await.unwrap().inflight, 2);
    schedule
        .release(
            &claim.batch,
            Duration::from_secs(60),
            true,
            &published(&[&ids[1]]),
        )
        .await
        .unwrap();
    schedule
        .ack_batch(&claim.batch, &acked(&[&ids[2]]), true)
        .await
        .unwrap();
    assert!(t.zmembers(&keys.lease).await.is_empty());
    assert_eq!(t.hget(&keys.batches, &claim.batch).await, None);
    assert_eq!(schedule.counts().await.unwrap().inflight, 0);
    assert!(t.zscore(&keys.due, &ids[1]).await.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_batch_gives_back_only_what_is_still_its_own() {
    let Some(t) = TestRedis::start(SUITE, "a_lapsed_batch_gives_back").await else {
        return;
    };
    // No seen window: an acked id can be pushed again at once.
    let schedule = t.schedule(Duration::ZERO);
    let keys = schedule.keys().clone();
    let [done, again, released, pending] = [msg_id(), msg_id(), msg_id(), msg_id()];
    for id in [&done, &again, &released, &pending] {
        push_new(&schedule, id, 0, &tail("{}")).await;
    }
    let claim = schedule.claim(10, SHORT_LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 4);
    // The listener acks two, releases one, then dies; one of the acked is pushed again.
    schedule
        .ack_batch(&claim.batch, &acked(&[&done, &again]), false)
        .await
        .unwrap();
    schedule
        .release(&claim.batch, Duration::ZERO, true, &published(&[&released]))
        .await
        .unwrap();
    push_new(&schedule, &again, 0, &tail("{}")).await;

    t.sleep_until(claim.deadline + 1).await;
    let later = schedule.claim(10, LEASE, POLL).await.unwrap();
    let mut got: Vec<&str> = later.items.iter().map(|(id, _)| id.as_str()).collect();
    got.sort();
    let mut want = vec![pending.as_str(), again.as_str(), released.as_str()];
    want.sort();
    // Each once: the pushed-again and the released from the due set, the unsettled one from the
    // lapsed batch, the acked one not at all.
    assert_eq!(got, want);
    assert_eq!(t.zmembers(&keys.lease).await, vec![later.batch.clone()]);
    assert_eq!(t.hget(&keys.batches, &claim.batch).await, None);
    // The dead listener's late ack of its batch counts nothing twice and forgets nothing new.
    schedule
        .ack_batch(&claim.batch, &acked(&[&pending]), true)
        .await
        .unwrap();
    assert_eq!(t.zmembers(&keys.lease).await, vec![later.batch.clone()]);
    assert_eq!(schedule.counts().await.unwrap().inflight, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lapsed_batch_larger_than_the_claim_is_taken_in_parts() {
    let Some(t) = TestRedis::start(SUITE, "a_lapsed_batch_in_parts").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    for _ in 0..5 {
        push_new(&schedule, &msg_id(), 0, &tail("{}")).await;
    }
    let claim = schedule.claim(10, SHORT_LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 5);
    t.sleep_until(claim.deadline + 1).await;
    let first = schedule.claim(2, LEASE, POLL).await.unwrap();
    assert_eq!(first.items.len(), 2);
    // The rest stays claimable at once, under a new name: the dead owner's renewal finds nothing.
    let (_, kept) = schedule.renew(&claim.batch, LEASE).await.unwrap();
    assert!(!kept);
    let second = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(second.items.len(), 3);
    let mut all: Vec<String> = first
        .items
        .iter()
        .chain(&second.items)
        .map(|(id, _)| id.clone())
        .collect();
    all.sort();
    let mut want: Vec<String> = claim.items.iter().map(|(id, _)| id.clone()).collect();
    want.sort();
    assert_eq!(all, want);
    assert_eq!(t.leased(&keys).await.len(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_written_by_the_previous_release_is_claimed_once_it_runs_out() {
    let Some(t) = TestRedis::start(SUITE, "a_lease_of_the_previous_release").await else {
        return;
    };
    let schedule = t.schedule(WINDOW);
    let keys = schedule.keys().clone();
    let (lapsed, live) = (msg_id(), msg_id());
    for id in [&lapsed, &live] {
        push_new(&schedule, id, 0, &tail("{}")).await;
    }
    // As 0.3 leased them: each id in the lease set, scored by its deadline, out of the due set.
    let now = t.redis_time_ms().await;
    for id in [&lapsed, &live] {
        redis::cmd("ZREM")
            .arg(&keys.due)
            .arg(id)
            .query_async::<i64>(&mut t.conn.clone())
            .await
            .unwrap();
    }
    t.zadd(&keys.lease, now - 1, &lapsed).await;
    t.zadd(&keys.lease, now + 3_600_000, &live).await;
    let claim = schedule.claim(10, LEASE, POLL).await.unwrap();
    assert_eq!(claim.items.len(), 1);
    assert_eq!(claim.items[0].0, lapsed);
    // Now in a batch; the live one keeps its lease, and an ack of it (its 0.3 owner's is the
    // same call without a batch) forgets it.
    assert_eq!(t.lease_of(&keys, &lapsed).await, Some(claim.deadline));
    assert_eq!(t.lease_of(&keys, &live).await, Some(now + 3_600_000));
    schedule.ack(&acked(&[&live])).await.unwrap();
    assert_eq!(t.zscore(&keys.lease, &live).await, None);
    assert_eq!(t.hget(&keys.entries, &live).await, None);
}
