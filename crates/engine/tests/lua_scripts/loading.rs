//! Every script as the loader resolves it (`store::scripts`) loads into a real Redis: the
//! resolved text compiles, whichever store module would run it first.

use super::*;
use kafka_redis_retry_engine::store::scripts::{resolve, SCRIPTS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_resolved_script_loads_into_redis() {
    let Some(t) = TestRedis::start(SUITE, "every_resolved_script_loads_into_redis").await else {
        return;
    };
    for (name, _) in SCRIPTS {
        let (text, _) = resolve(name).unwrap();
        let sha: String = redis::cmd("SCRIPT")
            .arg("LOAD")
            .arg(&text)
            .query_async(&mut t.conn.clone())
            .await
            .unwrap_or_else(|err| panic!("{name} does not load: {err}"));
        assert_eq!(sha, redis::Script::new(&text).get_hash(), "{name}");
    }
}
