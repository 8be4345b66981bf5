//! `waitReplicas` against a real master and replica of this binary's own (issue 18 item 2): a
//! connection re-established between a write and its `WAIT` must not confirm the write.
//!
//! `WAIT` answers for the writes of the connection it is sent on. A connection that wrote nothing
//! is "confirmed" at once by every connected replica, even one that acknowledges nothing (here: a
//! replica stopped with SIGSTOP, still connected as far as the master knows). So a reconnect
//! between the write and its `WAIT` would turn an unreplicated write into a confirmed one; the
//! crate compares the connection's `CLIENT ID` before the write and after the `WAIT`.

mod common;

use common::TestRedis;
use kafka_redis_retry_engine::error::ErrorCode;
use kafka_redis_retry_engine::store::connection::{Redis, SharedRedis};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const SUITE: &str = "wait_replicas";

/// A redis-server on a free port, killed (and continued first, if stopped) when dropped.
struct Server {
    child: Child,
    port: u16,
    /// Its working directory (a replica writes the synced data set there), removed when dropped.
    dir: std::path::PathBuf,
}

impl Server {
    fn start(extra: &[&str]) -> Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = std::env::temp_dir().join(format!("kafka-redis-retry-{SUITE}-{port}"));
        std::fs::create_dir_all(&dir).expect("a directory for redis-server");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .args(extra)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server could not start: install redis-server (bash scripts/services.sh start does)");
        Server { child, port, dir }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    async fn plain(&self) -> redis::aio::MultiplexedConnection {
        let client = redis::Client::open(self.url()).unwrap();
        for _ in 0..100 {
            if let Ok(conn) = client.get_multiplexed_async_connection().await {
                return conn;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "redis-server on port {} did not answer within 5 s",
            self.port
        );
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn info_field(conn: &mut redis::aio::MultiplexedConnection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("replication")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find_map(|line| line.strip_prefix(&format!("{field}:")))
        .unwrap_or("")
        .trim()
        .to_string()
}

/// A master and a replica in sync, then the replica stopped (SIGSTOP): still connected for the
/// master, acknowledging nothing.
async fn master_and_stopped_replica() -> (Server, Server) {
    // Full sync at once instead of after the diskless sync's default 5 s delay.
    let master = Server::start(&["--repl-diskless-sync-delay", "0"]);
    let mut to_master = master.plain().await;
    let replica_of = format!("127.0.0.1 {}", master.port);
    let replica = Server::start(&["--replicaof", &replica_of]);
    let mut to_replica = replica.plain().await;
    for _ in 0..200 {
        // "online" on the master: the replica has acknowledged the sync (only then does `WAIT`
        // count it).
        if info_field(&mut to_replica, "master_link_status").await == "up"
            && info_field(&mut to_master, "slave0")
                .await
                .contains("state=online")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        info_field(&mut to_master, "slave0")
            .await
            .contains("state=online"),
        "the replica did not come online within 10 s"
    );
    replica.signal("-STOP");
    (master, replica)
}

fn replicated(url: &str) -> Redis {
    Redis::new(
        SharedRedis::for_url(url, false, Duration::from_secs(2)),
        Duration::from_secs(5),
    )
    .with_wait(1, Duration::from_millis(500))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_the_stopped_replica_did_not_acknowledge_is_not_confirmed() {
    // The control for the test below: the same setup without a reconnect rejects the write.
    if TestRedis::start(SUITE, "control").await.is_none() {
        return;
    }
    let (master, _replica) = master_and_stopped_replica().await;
    let redis = replicated(&master.url());
    let outcome = redis
        .run_replicated("test write", "{wait}:key", |mut conn| async move {
            redis::cmd("SET")
                .arg("{wait}:key")
                .arg("v")
                .query_async::<()>(&mut conn)
                .await
        })
        .await;
    let err = outcome.expect_err("a write no replica acknowledged was confirmed");
    assert_eq!(err.code, ErrorCode::RedisUnavailable);
    assert!(
        err.message.contains("0 of the 1 replicas"),
        "unexpected error: {}",
        err.message
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnect_between_the_write_and_its_wait_does_not_confirm() {
    if TestRedis::start(SUITE, "reconnect").await.is_none() {
        return;
    }
    let (master, _replica) = master_and_stopped_replica().await;
    let mut killer = master.plain().await;
    let redis = replicated(&master.url());
    let outcome = redis
        .run_replicated("test write", "{wait}:key", |mut conn| async move {
            redis::cmd("SET")
                .arg("{wait}:key")
                .arg("v")
                .query_async::<()>(&mut conn)
                .await?;
            // The write's connection is closed by the server (as a network fault or a
            // `CLIENT KILL` by an operator would) and re-established before the `WAIT` goes out.
            let id: i64 = redis::cmd("CLIENT")
                .arg("ID")
                .query_async(&mut conn)
                .await?;
            let killed: i64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("ID")
                .arg(id)
                .query_async(&mut killer)
                .await?;
            assert_eq!(killed, 1);
            // The next command finds the socket closed and makes the connection manager connect
            // again. Until the `WAIT`, the new connection gets only commands the server rejects
            // without running them (as a client library's `CLIENT SETINFO` handshake on a server
            // that does not know it): any command the server runs sets the connection's write
            // offset to the server's, and its `WAIT` would then wait for the write after all.
            let mut reconnected = false;
            for _ in 0..100 {
                match redis::cmd("KAFKA-RETRY-NO-SUCH-COMMAND")
                    .query_async::<()>(&mut conn)
                    .await
                {
                    Err(err) if err.kind() == redis::ErrorKind::ResponseError => {
                        reconnected = true;
                        break;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
            assert!(
                reconnected,
                "the connection was not re-established within 5 s"
            );
            Ok(())
        })
        .await;
    let err = outcome.expect_err("a write confirmed by a WAIT on another connection");
    assert_eq!(err.code, ErrorCode::RedisUnavailable);
    assert!(
        err.message.contains("re-established before its WAIT"),
        "unexpected error: {}",
        err.message
    );
}
