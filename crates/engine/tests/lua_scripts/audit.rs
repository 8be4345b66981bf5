//! The audit log (`lua/audit/`).

use super::*;

/// The audit log (`lua/audit/`): an entry per record with Redis's time, read back newest first
/// in pages by cursor and since; a write trims the stream to the newest `MAX_ENTRIES` and drops
/// what is older than `MAX_AGE_MS` (by Redis's clock), and the key expires that long after its
/// last write; entries past the age are not read even before a write trims them.
#[tokio::test]
async fn the_audit_log_is_read_newest_first_and_held_to_its_bounds() {
    use kafka_redis_retry_engine::store::audit::{self, Record, MAX_AGE_MS, MAX_ENTRIES};
    use kafka_redis_retry_engine::store::keys::audit_key;
    let Some(t) = TestRedis::start(
        SUITE,
        "the_audit_log_is_read_newest_first_and_held_to_its_bounds",
    )
    .await
    else {
        return;
    };
    let key = audit_key(&t.prefix);
    let mut conn = t.conn.clone();
    let record = |actor: &str| Record {
        actor: actor.to_string(),
        action: "pause",
        target: serde_json::json!({ "topic": "orders" }),
        count: 1,
        outcome: "ok".to_string(),
        error: None,
    };
    let before = t.redis.time_ms().await.unwrap();
    for i in 0..5 {
        audit::record(&t.redis, &key, &record(&format!("op{i}")))
            .await
            .unwrap();
    }
    let after = t.redis.time_ms().await.unwrap();
    let (page, cursor) = audit::read(&t.redis, &key, 3, None, None).await.unwrap();
    let actors: Vec<_> = page.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!(actors, ["op4", "op3", "op2"]);
    assert!(page.iter().all(|e| (before..=after).contains(&e.at)));
    let (rest, end) = audit::read(&t.redis, &key, 3, None, cursor.as_deref())
        .await
        .unwrap();
    let actors: Vec<_> = rest.iter().map(|e| e.actor.as_str()).collect();
    assert_eq!((actors, end), (vec!["op1", "op0"], None));
    let (none, _) = audit::read(&t.redis, &key, 3, Some(after + 60_000), None)
        .await
        .unwrap();
    assert!(none.is_empty());
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > (MAX_AGE_MS - 60_000) as i64, "{ttl}");

    // Past the bounds: entries older than the age, and more than MAX_ENTRIES in all.
    let _: () = redis::cmd("DEL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let old = before - MAX_AGE_MS - 1_000;
    let mut pipe = redis::pipe();
    for i in 0..10 {
        pipe.cmd("XADD")
            .arg(&key)
            .arg(format!("{}-0", old + i))
            .arg("actor")
            .arg("ancient");
    }
    for i in 0..MAX_ENTRIES {
        pipe.cmd("XADD")
            .arg(&key)
            .arg(format!("{}-0", before - 100_000 + i))
            .arg("actor")
            .arg("bulk");
    }
    let _: () = pipe.query_async(&mut conn).await.unwrap();
    let (read, _) = audit::read(&t.redis, &key, 1000, Some(0), None)
        .await
        .unwrap();
    assert!(read.iter().all(|e| e.actor == "bulk"));
    audit::record(&t.redis, &key, &record("newest"))
        .await
        .unwrap();
    let len: u64 = redis::cmd("XLEN")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, MAX_ENTRIES);
    let oldest: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(oldest[0].1, vec![("actor".to_string(), "bulk".to_string())]);
}
