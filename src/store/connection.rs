//! One Redis connection per Redis URL per process, shared by every `KafkaRetry` instance.
//! The original class opened a new connection per instance (per failed message) and never closed
//! it; here instances with the same URL share one multiplexed connection, which also lets
//! concurrent commands share round trips (they are pipelined on the one socket).

use crate::error::{ErrorCode, Result, RetryError};
use crate::registry::{get_or_make, registry, Registry};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// A connection to a single Redis server or to a Redis Cluster. Both multiplex concurrent
/// commands on their sockets and reconnect by themselves; clones share the sockets.
#[derive(Clone)]
pub enum RedisConnection {
    /// One server.
    Single(ConnectionManager),
    /// A cluster: every command is routed to the master of its keys' slot.
    Cluster(ClusterConnection),
}

impl ConnectionLike for RedisConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_command(cmd),
            RedisConnection::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            RedisConnection::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            RedisConnection::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            RedisConnection::Single(conn) => conn.get_db(),
            RedisConnection::Cluster(conn) => conn.get_db(),
        }
    }
}

/// A lazily opened, shared connection to one Redis server or cluster.
pub struct SharedRedis {
    url: String,
    cluster: bool,
    connect_timeout: Duration,
    /// The open connection, if any. Read on every operation, written on connect and release.
    current: RwLock<Option<RedisConnection>>,
    /// One connect at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Instances that have not been closed; the last `release` closes the connection.
    users: AtomicUsize,
    /// A warning about the server's settings, found on connect, reported once.
    warning: OnceLock<String>,
    warned: AtomicBool,
}

static POOL: Registry<String, SharedRedis> = registry();

impl SharedRedis {
    /// The process-wide connection for `url`; created (not yet connected) when none is alive.
    /// The pool holds it weakly, so the connection closes when the last instance using it is
    /// closed or garbage-collected.
    /// With `cluster`, `url` is a comma-separated list of seed nodes of a Redis Cluster.
    pub fn for_url(url: &str, cluster: bool, connect_timeout: Duration) -> Arc<SharedRedis> {
        let key = format!("{}{url}", if cluster { "cluster:" } else { "" });
        get_or_make(&POOL, key, || SharedRedis {
            url: url.to_string(),
            cluster,
            connect_timeout,
            current: RwLock::new(None),
            connecting: tokio::sync::Mutex::new(()),
            users: AtomicUsize::new(0),
            warning: OnceLock::new(),
            warned: AtomicBool::new(false),
        })
    }

    /// The Redis URL this connection talks to.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Counts an instance using this connection (see [`SharedRedis::release`]).
    pub fn acquire(&self) {
        self.users.fetch_add(1, Ordering::AcqRel);
    }

    /// An instance stopped using this connection (`close()`): the last one closes it, so a
    /// service that closes its instances leaves no socket open. A later user connects again.
    pub fn release(&self) {
        let last = self
            .users
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
            == Ok(1);
        if last {
            self.current
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .take();
        }
    }

    fn open(&self) -> Option<RedisConnection> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A handle to the connection, connecting first if needed. A failed connect is not
    /// remembered: the next call tries again.
    pub async fn connection(&self) -> Result<RedisConnection> {
        if let Some(connection) = self.open() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.open() {
            return Ok(connection);
        }
        let connection = async {
            let unavailable = |err: redis::RedisError| {
                RetryError::new(
                    ErrorCode::RedisUnavailable,
                    format!("cannot connect to Redis at {}", redacted(&self.url)),
                )
                .caused_by(err)
            };
            let limit = self.connect_timeout * 2;
            let connect = async {
                if self.cluster {
                    let seeds: Vec<&str> = self.url.split(',').map(str::trim).collect();
                    let client = redis::cluster::ClusterClient::builder(seeds)
                        .connection_timeout(self.connect_timeout)
                        .response_timeout(self.connect_timeout)
                        .retries(1)
                        .build()?;
                    client
                        .get_async_connection()
                        .await
                        .map(RedisConnection::Cluster)
                } else {
                    let client = redis::Client::open(self.url.as_str())?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(self.connect_timeout)
                        .set_response_timeout(self.connect_timeout)
                        // Reconnects are retried by our callers (the listener loop, the
                        // user's push); a short retry budget keeps every call bounded in time.
                        .set_number_of_retries(1)
                        .set_max_delay(200);
                    ConnectionManager::new_with_config(client, config)
                        .await
                        .map(RedisConnection::Single)
                }
            };
            match tokio::time::timeout(limit, connect).await {
                Ok(Ok(mut connection)) => {
                    if let Some(warning) = check_settings(&mut connection).await {
                        let _ = self.warning.set(warning);
                    }
                    Ok(connection)
                }
                Ok(Err(err)) => Err(unavailable(err)),
                Err(_) => Err(RetryError::new(
                    ErrorCode::RedisUnavailable,
                    format!(
                        "cannot connect to Redis at {}: no answer within {} ms",
                        redacted(&self.url),
                        limit.as_millis()
                    ),
                )),
            }
        }
        .await?;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(connection.clone());
        Ok(connection)
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        self.cluster
    }

    /// A warning about the server's settings (e.g. an eviction policy that can drop scheduled
    /// messages), returned once per connection so it is logged once, not per call.
    pub fn take_warning(&self) -> Option<String> {
        let warning = self.warning.get()?;
        (!self.warned.swap(true, Ordering::AcqRel)).then(|| warning.clone())
    }
}

/// The shared connection as the stores use it: every operation bounded by one timeout and its
/// failure mapped to `ERR_REDIS_UNAVAILABLE`. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    shared: Arc<SharedRedis>,
    timeout: Duration,
}

impl Redis {
    /// Operations on `shared`, each failing after `timeout`.
    pub fn new(shared: Arc<SharedRedis>, timeout: Duration) -> Self {
        Redis { shared, timeout }
    }

    /// The connection underneath.
    pub fn shared(&self) -> &SharedRedis {
        &self.shared
    }

    /// The longest one operation may take.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs one Redis operation within the timeout, mapping failures to `ERR_REDIS_UNAVAILABLE`;
    /// `what` names the operation in the error.
    pub async fn run<T, F, Fut>(&self, what: &str, op: F) -> Result<T>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let work = async {
            let conn = self.shared.connection().await?;
            op(conn).await.map_err(|err| RetryError::redis(what, err))
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => Err(self.timed_out(what)),
        }
    }

    /// The error of an operation that got no answer within the timeout.
    pub fn timed_out(&self, what: &str) -> RetryError {
        RetryError::new(
            ErrorCode::RedisUnavailable,
            format!(
                "Redis {what} got no answer within {} ms from {}",
                self.timeout.as_millis(),
                redacted(&self.shared.url)
            ),
        )
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        self.shared.is_cluster()
    }

    /// Redis's clock (`TIME`), in ms since the epoch.
    pub async fn time_ms(&self) -> Result<u64> {
        let (seconds, micros): (u64, u64) = self
            .run("TIME", |mut conn| async move {
                redis::cmd("TIME").query_async(&mut conn).await
            })
            .await?;
        Ok(seconds * 1_000 + micros / 1_000)
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        self.run("PING", |mut conn| async move {
            redis::cmd("PING")
                .query_async::<String>(&mut conn)
                .await
                .map(drop)
        })
        .await
    }
}

/// Checks the settings that decide whether Redis may drop data: with an eviction policy other
/// than `noeviction`, Redis deletes keys under memory pressure, and an evicted entry is a lost
/// message. Servers that forbid `CONFIG` (managed Redis) are not warned about.
async fn check_settings(conn: &mut RedisConnection) -> Option<String> {
    let reply: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxmemory-policy")
        .query_async(conn)
        .await
        .ok()?;
    let policy = reply.get(1)?;
    (policy != "noeviction").then(|| {
        format!(
            "Redis maxmemory-policy is {policy:?}: under memory pressure Redis may evict scheduled messages; set it to \"noeviction\""
        )
    })
}

/// The URL (or comma-separated cluster seeds) without passwords, for messages and logs.
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| {
            let one = one.trim();
            match one.split_once("://") {
                Some((scheme, rest)) => match rest.rsplit_once('@') {
                    Some((_, host)) => format!("{scheme}://***@{host}"),
                    None => one.to_string(),
                },
                None => one.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_url_shares_one_connection() {
        let a = SharedRedis::for_url("redis://127.0.0.1:1/", false, Duration::from_millis(10));
        let b = SharedRedis::for_url("redis://127.0.0.1:1/", false, Duration::from_millis(10));
        assert!(Arc::ptr_eq(&a, &b));
        let c = SharedRedis::for_url("redis://127.0.0.1:2/", false, Duration::from_millis(10));
        assert!(!Arc::ptr_eq(&a, &c));
        let d = SharedRedis::for_url("redis://127.0.0.1:1/", true, Duration::from_millis(10));
        assert!(!Arc::ptr_eq(&a, &d));
    }

    #[test]
    fn passwords_are_not_shown() {
        assert_eq!(
            redacted("redis://user:secret@host:6379"),
            "redis://***@host:6379"
        );
        assert_eq!(redacted("redis://host:6379"), "redis://host:6379");
        assert_eq!(
            redacted("redis://:pw@a:1,redis://b:2"),
            "redis://***@a:1,redis://b:2"
        );
    }
}
