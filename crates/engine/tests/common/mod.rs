//! What the Rust integration tests share: a real Redis per test, under its own key prefix.
//!
//! Redis: `REDIS_URL` (default `redis://127.0.0.1:6379`). Without one the tests are skipped (said
//! once on stderr), unless `KAFKA_RETRY_REQUIRE_SERVICES=1` (set by `scripts/test.sh`), when they
//! fail. Every test deletes its keys when it ends, even on a failure, so tests run in parallel
//! and against a shared server.

// Each test binary uses a part of this module.
#![allow(dead_code)]

use kafka_redis_retry_engine::store::connection::target::redacted;
use kafka_redis_retry_engine::store::connection::{Redis, SharedRedis};
use redis::aio::MultiplexedConnection;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

const DEFAULT_URL: &str = "redis://127.0.0.1:6379";
/// The longest one operation of the code under test may take.
const OP_TIMEOUT: Duration = Duration::from_secs(30);

/// The Redis of one test: its own key prefix, a plain connection for setting up and reading
/// state, and the crate's connection the code under test runs on. Deletes every key under its
/// prefix when dropped.
pub struct TestRedis {
    pub url: String,
    pub suite: String,
    pub test: String,
    pub prefix: String,
    pub conn: MultiplexedConnection,
    pub redis: Redis,
}

static SKIP_SAID: AtomicBool = AtomicBool::new(false);

impl TestRedis {
    /// The Redis for test `test` of `suite`, or `None` (after saying so once) when none answers
    /// and none is required. Panics when `KAFKA_RETRY_REQUIRE_SERVICES=1` and none answers.
    pub async fn start(suite: &str, test: &str) -> Option<TestRedis> {
        let url = std::env::var("REDIS_URL").unwrap_or_else(|_| DEFAULT_URL.to_string());
        Self::start_at(&url, suite, test).await
    }

    /// [`TestRedis::start`] on the server at `url`.
    pub async fn start_at(url: &str, suite: &str, test: &str) -> Option<TestRedis> {
        let url = url.to_string();
        let conn = match probe(&url).await {
            Ok(conn) => conn,
            Err(err) => {
                let url = redacted(&url);
                if std::env::var("KAFKA_RETRY_REQUIRE_SERVICES").as_deref() == Ok("1") {
                    panic!(
                        "{suite}: no Redis answers at {url} ({err}), and \
                         KAFKA_RETRY_REQUIRE_SERVICES=1 requires one; start one with \
                         `bash scripts/services.sh start` (or point REDIS_URL at one)"
                    );
                }
                if !SKIP_SAID.swap(true, Ordering::SeqCst) {
                    // Written to stderr directly, not with eprintln!, which the test harness
                    // captures and shows only for failing tests.
                    let _ = writeln!(
                        std::io::stderr().lock(),
                        "{suite}: skipped, no Redis answers at {url}; start one with bash scripts/services.sh start"
                    );
                }
                return None;
            }
        };
        let prefix = format!("{suite}-{test}-{:016x}", fastrand::u64(..));
        let redis = own_connection(&url, suite, test, "main");
        Some(TestRedis {
            url,
            suite: suite.to_string(),
            test: test.to_string(),
            prefix,
            conn,
            redis,
        })
    }

    /// Another connection of the crate's kind, for a second listener or process.
    pub fn other_connection(&self, tag: &str) -> Redis {
        own_connection(&self.url, &self.suite, &self.test, tag)
    }
}

impl Drop for TestRedis {
    /// Deletes every key under this test's prefix, also when the test failed.
    fn drop(&mut self) {
        let Ok(client) = redis::Client::open(self.url.as_str()) else {
            return;
        };
        let Ok(mut conn) = client.get_connection_with_timeout(Duration::from_secs(2)) else {
            return;
        };
        let pattern = format!("*{}*", self.prefix);
        let keys: Vec<String> = match redis::Commands::scan_match(&mut conn, &pattern) {
            Ok(iter) => iter.collect(),
            Err(_) => return,
        };
        if !keys.is_empty() {
            let _ = redis::cmd("DEL").arg(&keys).exec(&mut conn);
        }
    }
}

/// A Redis server of one test's own, on a free loopback port, stopped when dropped: for a test
/// that reads server-wide figures (`INFO commandstats`), which other clients of a shared server
/// would disturb.
pub struct PrivateServer {
    child: std::process::Child,
    /// Its URL.
    pub url: String,
}

impl PrivateServer {
    /// Starts `redis-server` (which `scripts/services.sh` installs); fails the test if it cannot.
    pub async fn start() -> PrivateServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server could not start a private server: install redis-server (bash scripts/services.sh start does)");
        // Owned at once, so a failure below still stops it (Drop).
        let server = PrivateServer {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        };
        for _ in 0..100 {
            if probe(&server.url).await.is_ok() {
                return server;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the private redis-server on port {port} did not answer within 5 s");
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain connection to `url` that answered PING.
async fn probe(url: &str) -> Result<MultiplexedConnection, String> {
    let client = redis::Client::open(url).map_err(|err| err.to_string())?;
    let connect = client.get_multiplexed_async_connection();
    let mut conn = tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| "no answer within 2 s".to_string())?
        .map_err(|err| err.to_string())?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|err| err.to_string())?;
    if pong != "PONG" {
        return Err(format!("PING answered {pong:?}"));
    }
    Ok(conn)
}

/// A connection of the crate's own kind that no other test shares. The crate shares one
/// connection per URL per process, and a connection lives on the runtime that opened it, which
/// ends with its test; so each test (and tag) gets a distinct URL: the same server with a query
/// parameter that the Redis client ignores.
fn own_connection(url: &str, suite: &str, test: &str, tag: &str) -> Redis {
    let (base, fragment) = match url.split_once('#') {
        Some((base, fragment)) => (base, format!("#{fragment}")),
        None => (url, String::new()),
    };
    let separator = if base.contains('?') { '&' } else { '?' };
    let tagged = format!("{base}{separator}{suite}={test}-{tag}{fragment}");
    Redis::new(
        SharedRedis::for_url(&tagged, false, Duration::from_secs(2)),
        OP_TIMEOUT,
    )
}
