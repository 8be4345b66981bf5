//! Paging the dead letter queue against a real Redis: fields written without an index entry are
//! listed (once), index entries whose field is gone are dropped (and never listed), `requeue_all`
//! empties hash and index, and the first page and each step of `requeue_all` do bounded work
//! (counted by the server: `INFO commandstats` before and after).
//!
//! The Redis of each test: `tests/common`. The test that counts commands runs alone in this
//! binary (the others hold `GATE` for reading); it counts server-wide, so other clients of the
//! same server could add calls.

mod common;

use common::{PrivateServer, TestRedis};
use kafka_redis_retry_engine::clock::now_ms;
use kafka_redis_retry_engine::store::dead_letters::requeue::requeue_all;
use kafka_redis_retry_engine::store::dead_letters::{
    DeadLetters, Page, INDEX_STEP_FIELDS, STALE_PER_PAGE,
};
use kafka_redis_retry_engine::store::entry::{DeadLetter, Entry};
use kafka_redis_retry_engine::store::keys::{index_key, index_scan_key};
use kafka_redis_retry_engine::store::schedule::Schedule;
use std::collections::{HashMap, HashSet};
use std::time::Duration;
use tokio::sync::RwLock;

/// Names this binary's keys and messages.
const SUITE: &str = "dead_letter_paging";
const WINDOW: Duration = Duration::from_secs(600);

/// Held for reading by every test, for writing by the one that counts commands.
static GATE: RwLock<()> = RwLock::const_new(());

impl TestRedis {
    /// This test's dead letter hash.
    fn dlq(&self) -> String {
        format!("{}:dlq", self.prefix)
    }

    fn store(&self) -> DeadLetters {
        DeadLetters::new(self.redis.clone())
    }

    /// The schedule requeued dead letters go to.
    fn schedule(&self) -> Schedule {
        Schedule::new(
            self.redis.clone(),
            &format!("{}-work", self.prefix),
            0,
            WINDOW,
        )
    }

    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> T {
        cmd.query_async(&mut self.conn.clone())
            .await
            .unwrap_or_else(|err| panic!("a Redis command failed: {err}"))
    }

    async fn pipe(&self, pipe: &redis::Pipeline) {
        pipe.query_async::<()>(&mut self.conn.clone())
            .await
            .expect("pipeline");
    }

    async fn hlen(&self, key: &str) -> u64 {
        self.query(redis::cmd("HLEN").arg(key)).await
    }

    async fn zcard(&self, key: &str) -> u64 {
        self.query(redis::cmd("ZCARD").arg(key)).await
    }

    async fn exists(&self, key: &str) -> bool {
        self.query::<i64>(redis::cmd("EXISTS").arg(key)).await == 1
    }

    async fn zscore(&self, key: &str, member: &str) -> Option<f64> {
        self.query(redis::cmd("ZSCORE").arg(key).arg(member)).await
    }

    /// Writes dead letters as the listener does (`HSET`, then `ZADD`), pipelined.
    async fn write_indexed(&self, letters: &[(String, u64)]) {
        let (dlq, index) = (self.dlq(), index_key(&self.dlq()));
        for chunk in letters.chunks(2_000) {
            let mut pipe = redis::pipe();
            for (id, died_at) in chunk {
                pipe.hset(&dlq, id, record(id, *died_at)).ignore();
                pipe.zadd(&index, id, *died_at).ignore();
            }
            self.pipe(&pipe).await;
        }
    }

    /// Writes fields with plain `HSET`, no index entry, as the original class or another tool.
    async fn write_plain(&self, fields: &[(String, String)]) {
        let dlq = self.dlq();
        for chunk in fields.chunks(2_000) {
            let mut pipe = redis::pipe();
            for (field, text) in chunk {
                pipe.hset(&dlq, field, text).ignore();
            }
            self.pipe(&pipe).await;
        }
    }

    /// Every page of the dead letter queue, from the first.
    async fn pages(&self, store: &DeadLetters, limit: usize) -> Vec<Page> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list(&self.dlq(), limit, cursor.as_deref())
                .await
                .expect("list");
            assert!(page.items.len() <= limit, "a page of {}", page.items.len());
            cursor = page.cursor.clone();
            pages.push(page);
            if cursor.is_none() {
                return pages;
            }
            assert!(pages.len() < 100_000, "the listing does not end");
        }
    }

    /// Server-wide calls per command (`INFO commandstats`).
    async fn command_calls(&self) -> HashMap<String, u64> {
        let info: String = self.query(redis::cmd("INFO").arg("commandstats")).await;
        info.lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                let calls = rest
                    .strip_prefix("calls=")?
                    .split(',')
                    .next()?
                    .parse()
                    .ok()?;
                Some((name.to_string(), calls))
            })
            .collect()
    }
}

/// A dead letter as the listener stores it.
fn record(id: &str, died_at: u64) -> String {
    let entry = Entry {
        topic: "orders".to_string(),
        event: format!("E-{id}"),
        value: format!(r#"{{"id":{id:?}}}"#),
        delay: "0.5".to_string(),
        max_retry: 3,
        retry_count: 4,
        due_at: died_at,
        first_failed_at: Some(died_at.saturating_sub(30_000)),
        last_error: None,
        waited_ms: Some(30_000),
        extra: Vec::new(),
    };
    serde_json::to_string(&DeadLetter::of(id, &entry, died_at, "svc")).unwrap()
}

/// A dead letter as the original class stored it: keyed by event name, no time of death.
fn legacy_record(event: &str) -> String {
    serde_json::json!({
        "topic": "orders",
        "event": event,
        "value": { "event": event },
        "options": { "delay": "2", "maxRetry": "3", "retryCount": "4" },
    })
    .to_string()
}

/// `n` dead letter ids with times of death one ms apart, oldest first, ending before `newest`.
fn letters(tag: &str, n: usize, newest: u64) -> Vec<(String, u64)> {
    (0..n)
        .map(|i| (format!("m:{tag}:{i:06}"), newest - (n - i) as u64))
        .collect()
}

fn ids(pages: &[Page]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|page| page.items.iter().map(|item| item.id.clone()))
        .collect()
}

fn assert_once(listed: &[String]) {
    let mut seen = HashSet::new();
    for id in listed {
        assert!(seen.insert(id), "{id} listed twice");
    }
}

/// The calls of `command` between two `command_calls` readings.
fn delta(before: &HashMap<String, u64>, after: &HashMap<String, u64>, command: &str) -> u64 {
    after.get(command).copied().unwrap_or(0) - before.get(command).copied().unwrap_or(0)
}

/// Every call between two readings, but the `INFO` that read them.
fn total(before: &HashMap<String, u64>, after: &HashMap<String, u64>) -> u64 {
    after
        .keys()
        .filter(|name| *name != "info")
        .map(|name| delta(before, after, name))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fields_written_without_an_index_are_listed_in_order_and_once() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "unindexed_in_order").await else {
        return;
    };
    let store = t.store();
    let now = now_ms();
    let indexed = letters("idx", 10, now - 10_000);
    for (id, died_at) in &indexed {
        store
            .write(&t.dlq(), id, &record(id, *died_at), *died_at, None)
            .await
            .unwrap();
    }
    // Another tool's record with a time of death newer than all (listed first), the original
    // class's records (no time of death: listed last) and text in no known format (listed raw).
    t.write_plain(&[
        ("tool:1".to_string(), record("tool:1", now)),
        ("LegacyA".to_string(), legacy_record("LegacyA")),
        ("LegacyB".to_string(), legacy_record("LegacyB")),
        ("LegacyC".to_string(), legacy_record("LegacyC")),
        ("raw:1".to_string(), "not json".to_string()),
    ])
    .await;

    let pages = t.pages(&store, 4).await;
    let listed = ids(&pages);
    assert_once(&listed);
    assert_eq!(listed.len(), 15, "{listed:?}");
    let mut newest_first = vec!["tool:1".to_string()];
    newest_first.extend(indexed.iter().rev().map(|(id, _)| id.clone()));
    assert_eq!(listed[..11], newest_first[..]);
    let tail: HashSet<&str> = listed[11..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        HashSet::from(["LegacyA", "LegacyB", "LegacyC", "raw:1"])
    );
    let items: Vec<_> = pages.iter().flat_map(|page| &page.items).collect();
    let raw = items.iter().find(|item| item.id == "raw:1").unwrap();
    assert_eq!(
        (raw.value.as_str(), raw.topic.as_str()),
        (Some("not json"), "")
    );
    let legacy = items.iter().find(|item| item.id == "LegacyB").unwrap();
    assert_eq!(
        (legacy.topic.as_str(), legacy.event.as_str(), legacy.died_at),
        ("orders", "LegacyB", 0)
    );
    assert_eq!(items[0].died_at, now);
    // The fields are indexed now (by their diedAt, else 0), and the scan is over.
    assert_eq!(t.zcard(&index_key(&t.dlq())).await, 15);
    assert_eq!(
        t.zscore(&index_key(&t.dlq()), "tool:1").await,
        Some(now as f64)
    );
    assert_eq!(t.zscore(&index_key(&t.dlq()), "LegacyC").await, Some(0.0));
    assert!(!t.exists(&index_scan_key(&t.dlq())).await);
    // A listing again gives the same.
    assert_eq!(ids(&t.pages(&store, 4).await), listed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hash_of_many_steps_of_unindexed_fields_is_listed_fully_and_once() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "unindexed_many_steps").await else {
        return;
    };
    let store = t.store();
    let indexed = letters("idx", 50, now_ms());
    t.write_indexed(&indexed).await;
    let plain: Vec<(String, String)> = (0..3 * INDEX_STEP_FIELDS + 123)
        .map(|i| {
            let event = format!("Legacy{i:05}");
            let text = legacy_record(&event);
            (event, text)
        })
        .collect();
    t.write_plain(&plain).await;
    let fields = 50 + plain.len();

    let pages = t.pages(&store, 500).await;
    let listed = ids(&pages);
    assert_once(&listed);
    assert_eq!(listed.len(), fields);
    // Past the end of the index, the pages of what the first page's step did not index.
    assert!(pages
        .iter()
        .any(|page| page.cursor.as_deref() == Some("unindexed")));
    let newest_first: Vec<String> = indexed.iter().rev().map(|(id, _)| id.clone()).collect();
    assert_eq!(listed[..50], newest_first[..]);
    let all: HashSet<&String> = indexed
        .iter()
        .map(|(id, _)| id)
        .chain(plain.iter().map(|(field, _)| field))
        .collect();
    assert_eq!(listed.iter().collect::<HashSet<_>>(), all);
    assert_eq!(t.zcard(&index_key(&t.dlq())).await, fields as u64);
    assert!(!t.exists(&index_scan_key(&t.dlq())).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_index_entries_are_dropped_and_never_listed() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "stale_dropped").await else {
        return;
    };
    let store = t.store();
    let (dlq, index) = (t.dlq(), index_key(&t.dlq()));
    let now = now_ms();
    let all = letters("idx", 30, now);
    t.write_indexed(&all).await;
    // Fields deleted behind the index's back: the newest 8 (a run longer than a page) and every
    // third of the rest; and index entries that never had a field, among the others.
    let mut gone: Vec<String> = all[22..].iter().map(|(id, _)| id.clone()).collect();
    gone.extend(all[..22].iter().step_by(3).map(|(id, _)| id.clone()));
    t.query::<i64>(redis::cmd("HDEL").arg(&dlq).arg(&gone))
        .await;
    let mut ghosts = redis::pipe();
    for i in 0..5 {
        let ghost = format!("ghost:{i}");
        ghosts.zadd(&index, &ghost, now - 10 - 5 * i).ignore();
        gone.push(ghost);
    }
    t.pipe(&ghosts).await;

    let live: Vec<String> = all
        .iter()
        .rev()
        .map(|(id, _)| id.clone())
        .filter(|id| !gone.contains(id))
        .collect();
    let pages = t.pages(&store, 5).await;
    assert_eq!(ids(&pages), live);
    for id in &gone {
        assert_eq!(t.zscore(&index, id).await, None, "{id} is still indexed");
    }
    assert_eq!(t.zcard(&index).await, live.len() as u64);
    assert_eq!(t.hlen(&dlq).await, live.len() as u64);

    // A hash deleted as a whole: nothing listed, and the index goes too.
    t.query::<i64>(redis::cmd("DEL").arg(&dlq)).await;
    let page = store.list(&dlq, 5, None).await.unwrap();
    assert_eq!((page.items.len(), page.cursor), (0, None));
    assert!(!t.exists(&index).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_of_stale_entries_is_dropped_a_bounded_number_per_page() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "stale_long_run").await else {
        return;
    };
    let store = t.store();
    let index = index_key(&t.dlq());
    let now = now_ms();
    let live = letters("idx", 10, now - 100_000);
    t.write_indexed(&live).await;
    // Newer than every dead letter: 2.5 pages' budget of entries whose field is gone.
    let ghosts = STALE_PER_PAGE * 5 / 2;
    for chunk in (0..ghosts).collect::<Vec<_>>().chunks(1_000) {
        let mut pipe = redis::pipe();
        for i in chunk {
            pipe.zadd(&index, format!("ghost:{i}"), now - *i as u64)
                .ignore();
        }
        t.pipe(&pipe).await;
    }

    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    let mut calls = 0;
    loop {
        let before = t.zcard(&index).await;
        let page = store.list(&t.dlq(), 4, cursor.as_deref()).await.unwrap();
        let dropped = before - t.zcard(&index).await;
        assert!(
            dropped <= (STALE_PER_PAGE + 5) as u64,
            "one page dropped {dropped}"
        );
        listed.extend(page.items.into_iter().map(|item| item.id));
        calls += 1;
        cursor = page.cursor;
        if cursor.is_none() {
            break;
        }
        assert!(calls < 50);
    }
    let expected: Vec<String> = live.iter().rev().map(|(id, _)| id.clone()).collect();
    assert_eq!(listed, expected);
    assert!(calls >= 3, "{calls} pages");
    assert_eq!(t.zcard(&index).await, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_all_requeues_every_letter_and_empties_hash_and_index() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "requeue_all_empties").await else {
        return;
    };
    let store = t.store();
    let schedule = t.schedule();
    let (dlq, index) = (t.dlq(), index_key(&t.dlq()));
    t.write_indexed(&letters("idx", 700, now_ms())).await;
    // More unindexed fields than one step indexes, and index entries without a field.
    let plain: Vec<(String, String)> = (0..INDEX_STEP_FIELDS + 500)
        .map(|i| {
            let event = format!("Legacy{i:05}");
            let text = legacy_record(&event);
            (event, text)
        })
        .collect();
    t.write_plain(&plain).await;
    let mut ghosts = redis::pipe();
    for i in 0..20 {
        ghosts.zadd(&index, format!("ghost:{i}"), i).ignore();
    }
    t.pipe(&ghosts).await;
    let n = 700 + plain.len() as u64;

    let requeued = requeue_all(&store, &dlq, |_| schedule.clone())
        .await
        .unwrap();
    assert_eq!(requeued, n);
    assert_eq!(t.hlen(&dlq).await, 0);
    assert!(!t.exists(&index).await);
    assert!(!t.exists(&index_scan_key(&dlq)).await);
    let keys = schedule.keys();
    assert_eq!(t.hlen(&keys.entries).await, n);
    assert_eq!(t.zcard(&keys.due).await, n);
    assert_eq!(
        requeue_all(&store, &dlq, |_| schedule.clone())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_all_leaves_the_letters_it_cannot_requeue() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "requeue_all_leaves").await else {
        return;
    };
    let store = t.store();
    let schedule = t.schedule();
    let (dlq, index) = (t.dlq(), index_key(&t.dlq()));
    let now = now_ms();
    let all = letters("idx", 450, now);
    t.write_indexed(&all).await;
    // Every 50th has no topic to go back to (an unreadable entry, dead-lettered raw).
    let mut stuck = Vec::new();
    for (id, died_at) in all.iter().step_by(50) {
        let text = serde_json::json!({ "id": id, "raw": "garbage", "diedAt": died_at });
        store
            .write(&dlq, id, &text.to_string(), *died_at, None)
            .await
            .unwrap();
        stuck.push(id.clone());
    }
    t.write_plain(&[("Legacy".to_string(), legacy_record("Legacy"))])
        .await;

    let requeued = requeue_all(&store, &dlq, |_| schedule.clone())
        .await
        .unwrap();
    assert_eq!(requeued, 450 - stuck.len() as u64 + 1);
    assert_eq!(t.hlen(&dlq).await, stuck.len() as u64);
    assert_eq!(t.zcard(&index).await, stuck.len() as u64);
    let left = ids(&t.pages(&store, 100).await);
    let expected: Vec<String> = stuck.iter().rev().cloned().collect();
    assert_eq!(left, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_all_while_a_listener_writes_loses_nothing() {
    let _gate = GATE.read().await;
    let Some(t) = TestRedis::start(SUITE, "requeue_all_concurrent").await else {
        return;
    };
    let store = t.store();
    let schedule = t.schedule();
    let (dlq, index) = (t.dlq(), index_key(&t.dlq()));
    t.write_indexed(&letters("old", 1_000, now_ms())).await;
    let writer = {
        let store = DeadLetters::new(t.other_connection("writer"));
        let dlq = dlq.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                let id = format!("m:new:{i:04}");
                let died_at = now_ms();
                store
                    .write(&dlq, &id, &record(&id, died_at), died_at, None)
                    .await
                    .unwrap();
            }
        })
    };
    let requeued = requeue_all(&store, &dlq, |_| schedule.clone())
        .await
        .unwrap();
    writer.await.unwrap();

    let left = t.hlen(&dlq).await;
    assert!(requeued >= 1_000, "{requeued}");
    assert_eq!(requeued + left, 1_300);
    assert_eq!(t.hlen(&schedule.keys().entries).await, requeued);
    // What is left is listed, once, and indexed.
    let listed = ids(&t.pages(&store, 64).await);
    assert_once(&listed);
    assert_eq!(listed.len() as u64, left);
    assert_eq!(t.zcard(&index).await, left);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_page_and_requeue_all_of_20000_do_not_read_the_whole_hash() {
    // The counts are server-wide: on a server of its own (and alone in this binary), so no other
    // client's commands are counted.
    let _gate = GATE.write().await;
    if TestRedis::start(SUITE, "bounded_work_probe")
        .await
        .is_none()
    {
        return;
    }
    let server = PrivateServer::start().await;
    let Some(t) = TestRedis::start_at(&server.url, SUITE, "bounded_work").await else {
        return;
    };
    let store = t.store();
    let schedule = t.schedule();
    let (dlq, index) = (t.dlq(), index_key(&t.dlq()));
    let n = 20_000;
    t.write_indexed(&letters("idx", n, now_ms())).await;
    let whole = [
        "hkeys", "hvals", "hgetall", "zrange", "hscan", "zscore", "sort",
    ];

    // Hash and index agree: the first page is an O(1) check, a ZREVRANGE and an HMGET.
    t.redis.ping().await.unwrap(); // connected before counting
    let before = t.command_calls().await;
    let page = store.list(&dlq, 100, None).await.unwrap();
    let after = t.command_calls().await;
    assert_eq!(page.items.len(), 100);
    assert_eq!(page.cursor.as_deref(), Some("100"));
    for command in whole {
        assert_eq!(delta(&before, &after, command), 0, "{command}");
    }
    assert_eq!(delta(&before, &after, "zrevrange"), 1);
    assert_eq!(delta(&before, &after, "hmget"), 1);
    assert_eq!(delta(&before, &after, "hlen"), 1);
    assert_eq!(delta(&before, &after, "zcard"), 1);
    assert_eq!(total(&before, &after), 4);

    // One field without an index entry: each first page takes one bounded step of the scan
    // (at most one step's fields looked up), none reads the whole hash, and within one scan of
    // the hash the field is indexed.
    t.write_plain(&[("Legacy".to_string(), legacy_record("Legacy"))])
        .await;
    let mut firsts = 0;
    while t.zscore(&index, "Legacy").await.is_none() {
        firsts += 1;
        assert!(firsts <= n / INDEX_STEP_FIELDS + 2, "not found in a scan");
        let before = t.command_calls().await;
        store.list(&dlq, 100, None).await.unwrap();
        let after = t.command_calls().await;
        let looked_up = delta(&before, &after, "zscore");
        assert!(looked_up > 0);
        assert!(looked_up <= INDEX_STEP_FIELDS as u64 + 500, "{looked_up}");
        for command in ["hkeys", "hvals", "hgetall", "zrange"] {
            assert_eq!(delta(&before, &after, command), 0, "{command}");
        }
    }
    assert_eq!(t.zcard(&index).await, t.hlen(&dlq).await);

    // requeue_all: per page an O(1) check, a ZREVRANGE, an HMGET, and per letter an HGET and
    // the requeue script; no whole read.
    let before = t.command_calls().await;
    let requeued = requeue_all(&store, &dlq, |_| schedule.clone())
        .await
        .unwrap();
    let after = t.command_calls().await;
    assert_eq!(requeued, n as u64 + 1);
    for command in whole {
        assert_eq!(delta(&before, &after, command), 0, "{command}");
    }
    let pages = (n as u64 + 1).div_ceil(200);
    assert!(delta(&before, &after, "zrevrange") <= pages + 2);
    assert!(delta(&before, &after, "hmget") <= pages + 2);
    // One read of the letter, one in the script (commands in scripts count too).
    assert_eq!(delta(&before, &after, "hget"), 2 * (n as u64 + 1));
    // One script call per letter; on this fresh server the first one is refused (NOSCRIPT) and
    // sent again after the script is loaded.
    let evalsha = delta(&before, &after, "evalsha");
    assert!(
        (n as u64 + 1..=n as u64 + 2).contains(&evalsha),
        "evalsha {evalsha}"
    );
    assert_eq!(t.hlen(&dlq).await, 0);
    assert!(!t.exists(&index).await);
}
