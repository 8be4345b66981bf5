//! One Redis connection per Redis URL per process, shared by every `KafkaRetry` instance.
//! The original class opened a new connection per instance (per failed message) and never closed
//! it; here instances with the same URL share one multiplexed connection, which also lets
//! concurrent commands share round trips (they are pipelined on the one socket).

pub mod target;

use self::target::RedisTarget;
use crate::error::{ErrorCode, Result, RetryError};
use crate::registry::{get_or_make, registry, Registry};
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// How long the PING that checks a connection after a timeout may take before the connection
/// counts as dead and is replaced (see [`SharedRedis::suspect`]): its own deadline, so a silently
/// dead socket is replaced within `redisTimeoutMs` plus this, whatever `redisTimeoutMs` is.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// TCP settings of every connection to a data node. Keepalive probes an idle connection (one
/// a NAT or firewall forgot answers none of them); `TCP_USER_TIMEOUT` makes the kernel give up
/// on a connection whose data goes unacknowledged for that long, instead of retransmitting for
/// the 15 to 30 minutes of Linux's default `tcp_retries2`. Both are a backstop behind the PING
/// check, which replaces a dead connection sooner; neither fires while the peer's kernel still
/// acknowledges, however busy the server is.
fn tcp_settings() -> redis::io::tcp::TcpSettings {
    use redis::io::tcp::{socket2::TcpKeepalive, TcpSettings};
    let keepalive = TcpKeepalive::new()
        .with_time(Duration::from_secs(10))
        .with_interval(Duration::from_secs(5))
        .with_retries(3);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(any(target_os = "android", target_os = "fuchsia", target_os = "linux"))]
    let settings = settings.set_user_timeout(Duration::from_secs(30));
    settings
}

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

impl RedisConnection {
    /// `WAIT replicas timeout_ms` on the connection that carried the last write to `key`: the
    /// server's, or on a cluster the connection to the master of `key`'s slot (routed by slot,
    /// since `WAIT` has no key). Returns how many replicas confirmed.
    pub async fn wait_replicas(
        &mut self,
        key: &str,
        replicas: u32,
        timeout_ms: u64,
    ) -> redis::RedisResult<i64> {
        let mut wait = redis::cmd("WAIT");
        wait.arg(replicas).arg(timeout_ms);
        match self {
            RedisConnection::Single(conn) => wait.query_async(conn).await,
            RedisConnection::Cluster(conn) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::new(key_slot(key.as_bytes()), SlotAddr::Master);
                let reply = conn
                    .route_command(
                        &wait,
                        RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                    )
                    .await?;
                redis::from_redis_value(&reply)
            }
        }
    }
}

impl RedisConnection {
    /// `CLIENT ID` of the connection `wait_replicas` would use for `key`, to tell whether it was
    /// re-established meanwhile; `None` for a user whose ACL denies it (then nothing is told).
    pub async fn client_id(&mut self, key: &str) -> redis::RedisResult<Option<i64>> {
        let mut id = redis::cmd("CLIENT");
        id.arg("ID");
        let reply = match self {
            RedisConnection::Single(conn) => id.query_async::<i64>(conn).await,
            RedisConnection::Cluster(conn) => {
                use redis::cluster_routing::{Route, RoutingInfo, SingleNodeRoutingInfo, SlotAddr};
                let route = Route::new(key_slot(key.as_bytes()), SlotAddr::Master);
                conn.route_command(
                    &id,
                    RoutingInfo::SingleNode(SingleNodeRoutingInfo::SpecificNode(route)),
                )
                .await
                .and_then(|reply| redis::from_redis_value(&reply))
            }
        };
        match reply {
            Ok(id) => Ok(Some(id)),
            Err(err) if err.code() == Some("NOPERM") => Ok(None),
            Err(err) => Err(err),
        }
    }
}

/// The Redis Cluster slot of `key`: CRC16 (XMODEM) of its hash tag (the text inside the first
/// `{...}`, when not empty) or of the whole key, modulo 16384.
pub fn key_slot(key: &[u8]) -> u16 {
    let tagged = key
        .iter()
        .position(|&b| b == b'{')
        .and_then(|open| {
            let rest = &key[open + 1..];
            rest.iter()
                .position(|&b| b == b'}')
                .filter(|&close| close > 0)
                .map(|close| &rest[..close])
        })
        .unwrap_or(key);
    let mut crc: u16 = 0;
    for &byte in tagged {
        crc ^= (byte as u16) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc % 16384
}

/// A lazily opened, shared connection to one Redis server, cluster or Sentinel-managed master.
pub struct SharedRedis {
    target: RedisTarget,
    /// What identifies the connection in this process (see [`RedisTarget::key`]).
    key: String,
    connect_timeout: Duration,
    /// The open connection, if any, with its generation (see [`SharedRedis::invalidate`]).
    /// Read on every operation, written on connect and release.
    current: RwLock<Option<(u64, RedisConnection)>>,
    generation: AtomicU64,
    /// One connect at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Whether a PING is checking the open connection after a timeout (one at a time).
    probing: AtomicBool,
    /// The latest generation found dead: operations still waiting on it give up at once
    /// instead of each waiting out its own timeout.
    dead: tokio::sync::watch::Sender<u64>,
    /// When a reply last arrived on any connection of this target, in ms since `born`: a
    /// connection that still delivers replies is slow, not dead.
    last_reply: AtomicU64,
    born: Instant,
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
        Self::for_target(RedisTarget::plain(url, cluster), connect_timeout)
    }

    /// The process-wide connection to `target` (see [`SharedRedis::for_url`]).
    pub fn for_target(target: RedisTarget, connect_timeout: Duration) -> Arc<SharedRedis> {
        let key = target.key();
        get_or_make(&POOL, key.clone(), || SharedRedis {
            target,
            key,
            connect_timeout,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            probing: AtomicBool::new(false),
            dead: tokio::sync::watch::Sender::new(0),
            last_reply: AtomicU64::new(0),
            born: Instant::now(),
            users: AtomicUsize::new(0),
            warning: OnceLock::new(),
            warned: AtomicBool::new(false),
        })
    }

    /// A connection to the same server as `self` that no other instance shares: `WAIT` blocks
    /// the connection it is sent on (every command behind it waits up to `waitTimeoutMs`), so the
    /// writes that must reach replicas and their `WAIT`s go on a socket of their own instead of
    /// the shared one that carries the claims and lease renewals.
    pub fn dedicated(&self) -> Arc<SharedRedis> {
        let shared = Arc::new(SharedRedis {
            target: self.target.clone(),
            key: self.key.clone(),
            connect_timeout: self.connect_timeout,
            current: RwLock::new(None),
            generation: AtomicU64::new(0),
            connecting: tokio::sync::Mutex::new(()),
            probing: AtomicBool::new(false),
            dead: tokio::sync::watch::Sender::new(0),
            last_reply: AtomicU64::new(0),
            born: Instant::now(),
            users: AtomicUsize::new(0),
            warning: OnceLock::new(),
            warned: AtomicBool::new(true),
        });
        shared.acquire();
        shared
    }

    /// What identifies this connection in the process (the place and a hash of its settings).
    pub fn url(&self) -> &str {
        &self.key
    }

    /// Where it connects to, for messages (no password).
    pub fn describe(&self) -> String {
        self.target.describe()
    }

    /// How to reach the server.
    pub fn target(&self) -> &RedisTarget {
        &self.target
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

    fn open(&self) -> Option<(u64, RedisConnection)> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drops connection `generation` if it is still the current one, so the next operation
    /// connects afresh. Used with Sentinel (after a failover the old master is gone or a replica,
    /// and only the sentinels know the new one) and for a connection found dead by
    /// [`SharedRedis::suspect`].
    pub fn invalidate(&self, generation: u64) {
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            current.take();
        }
    }

    /// A handle to the connection, connecting first if needed. A failed connect is not
    /// remembered: the next call tries again.
    pub async fn connection(&self) -> Result<RedisConnection> {
        self.connection_generation().await.map(|(_, c)| c)
    }

    /// [`SharedRedis::connection`] with the connection's generation.
    pub async fn connection_generation(&self) -> Result<(u64, RedisConnection)> {
        if let Some(connection) = self.open() {
            return Ok(connection);
        }
        let _connecting = self.connecting.lock().await;
        if let Some(connection) = self.open() {
            return Ok(connection);
        }
        let connection = async {
            let unavailable = |err: redis::RedisError| {
                let why =
                    target::connect_failure(&err).map_or(String::new(), |why| format!(": {why}"));
                RetryError::new(
                    ErrorCode::RedisUnavailable,
                    format!("cannot connect to Redis at {}{why}", self.describe()),
                )
                .caused_by(err)
            };
            let limit = self.connect_timeout * 2;
            let connect = async {
                if self.target.cluster {
                    let client = self
                        .target
                        .cluster_client(self.connect_timeout, tcp_settings())?;
                    client
                        .get_async_connection()
                        .await
                        .map(RedisConnection::Cluster)
                } else {
                    let client = self.target.single_client(self.connect_timeout).await?;
                    let config = ConnectionManagerConfig::new()
                        .set_connection_timeout(self.connect_timeout)
                        .set_response_timeout(self.connect_timeout)
                        // Reconnects are retried by our callers (the listener loop, the
                        // user's push); a short retry budget keeps every call bounded in time.
                        .set_number_of_retries(1)
                        .set_max_delay(200)
                        .set_tcp_settings(tcp_settings());
                    let mut manager = ConnectionManager::new_with_config(client, config).await?;
                    if self.target.is_sentinel() {
                        check_master(&mut manager).await?;
                    }
                    Ok(RedisConnection::Single(manager))
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
                        self.describe(),
                        limit.as_millis()
                    ),
                )),
            }
        }
        .await?;
        let generation = self.generation.fetch_add(1, Ordering::AcqRel) + 1;
        *self.current.write().unwrap_or_else(|p| p.into_inner()) =
            Some((generation, connection.clone()));
        Ok((generation, connection))
    }

    /// Whether this is a Redis Cluster connection.
    pub fn is_cluster(&self) -> bool {
        self.target.cluster
    }

    fn millis_since_born(&self) -> u64 {
        self.born.elapsed().as_millis() as u64
    }

    /// A reply (a value or the server's error) arrived: the socket it came on is alive.
    fn replied(&self) {
        self.last_reply
            .fetch_max(self.millis_since_born(), Ordering::Relaxed);
    }

    /// An operation on connection `generation` got no answer in time. redis-rs replaces a
    /// connection only when its socket reports an error, and a socket whose peer vanished
    /// without a FIN or RST (an expired NAT or conntrack entry, a failed-over firewall, a cut
    /// network) reports none until the kernel gives up, 15 to 30 minutes later: every operation
    /// would time out until then. So the connection is checked with a PING of its own short
    /// deadline (in the background: the caller already has its timeout error), and dropped, for
    /// the next operation to connect afresh, when neither the PING nor any other reply arrived
    /// meanwhile; the operations still waiting on it fail then (see `Redis::run_on`), so a call
    /// that follows does not wait a whole timeout on it too. A server that is only slow (a long
    /// script, a backlog) still answers, so a healthy connection is kept.
    pub fn suspect(self: &Arc<Self>, generation: u64) {
        let Some((current, connection)) = self.open() else {
            return;
        };
        if current != generation || self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::downgrade(self);
        tokio::spawn(async move {
            let started = this.upgrade().map(|s| s.millis_since_born());
            let dead = !answers(connection).await;
            let Some(this) = this.upgrade() else { return };
            let replied_since =
                started.is_some_and(|started| this.last_reply.load(Ordering::Relaxed) >= started);
            if dead && !replied_since {
                this.invalidate(generation);
                this.dead.send_if_modified(|dead| {
                    let newer = *dead < generation;
                    if newer {
                        *dead = generation;
                    }
                    newer
                });
            }
            this.probing.store(false, Ordering::Release);
        });
    }

    /// A warning about the server's settings (e.g. an eviction policy that can drop scheduled
    /// messages), returned once per connection so it is logged once, not per call.
    pub fn take_warning(&self) -> Option<String> {
        let warning = self.warning.get()?;
        (!self.warned.swap(true, Ordering::AcqRel)).then(|| warning.clone())
    }
}

/// Checks that the server the sentinels named is a master: right after a failover a sentinel
/// may still name the old one, which is now a replica (writes to it would fail with READONLY).
async fn check_master(conn: &mut ConnectionManager) -> redis::RedisResult<()> {
    let role: Vec<redis::Value> = match redis::cmd("ROLE").query_async(conn).await {
        // An ACL user without ROLE (an @admin command): writes to a replica still fail with
        // READONLY, which makes the next operation ask the sentinels again.
        Err(err) if err.code() == Some("NOPERM") => return Ok(()),
        other => other?,
    };
    match role.first() {
        Some(redis::Value::BulkString(role)) if role.as_slice() == b"master" => Ok(()),
        _ => Err(redis::RedisError::from((
            redis::ErrorKind::ReadOnly,
            "the server the sentinels named is not a master (yet): a failover is under way",
        ))),
    }
}

/// Whether `connection` answers a PING within [`PROBE_TIMEOUT`] (on a cluster, every node must):
/// any reply, an error reply too (`BUSY`, `LOADING`, `NOAUTH`), shows the socket is alive. A
/// PING that redis-rs gave up on sooner (its response timeout is `redisTimeoutMs`, which may be
/// shorter) is sent again until the deadline.
async fn answers(mut connection: RedisConnection) -> bool {
    let deadline = tokio::time::Instant::now() + PROBE_TIMEOUT;
    let ping = redis::cmd("PING");
    loop {
        match tokio::time::timeout_at(deadline, ping.query_async::<redis::Value>(&mut connection))
            .await
        {
            Ok(Ok(_)) => return true,
            Ok(Err(err)) if err.is_timeout() => {}
            Ok(Err(err)) => return !is_no_answer(&err),
            Err(_) => return false,
        }
        // Never a busy loop, whatever redis-rs's timeout is.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether `err` means no reply came (the socket failed or the wait ran out), as opposed to a
/// reply that was an error.
pub fn is_no_answer(err: &redis::RedisError) -> bool {
    err.is_timeout()
        || err.is_io_error()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
}

/// Whether a failed command means the Sentinel-managed connection must be dropped and the
/// master looked up again: the server is gone, unreachable, or now a replica.
fn needs_new_master(err: &redis::RedisError) -> bool {
    err.is_io_error()
        || err.is_connection_refusal()
        || err.is_connection_dropped()
        || err.is_timeout()
        || err.kind() == redis::ErrorKind::ReadOnly
        || err.code() == Some("READONLY")
        || err.code() == Some("MASTERDOWN")
        || err.code() == Some("LOADING")
}

/// The shared connection as the stores use it: every operation bounded by one timeout and its
/// failure mapped to `ERR_REDIS_UNAVAILABLE`. Cheap to clone.
#[derive(Clone)]
pub struct Redis {
    shared: Arc<SharedRedis>,
    timeout: Duration,
    /// `waitReplicas` and `waitTimeoutMs`: writes that must reach replicas (see `run_replicated`).
    wait: Option<(u32, Duration)>,
    /// The connections those writes and their `WAIT` go on (see [`WaitConnections`]).
    waits: Option<Arc<WaitConnections>>,
}

/// Most replicated writes (each with its `WAIT`) in flight at once per instance.
const WAIT_CONNECTIONS: usize = 16;

/// Connections of their own for the writes that must reach replicas (`waitReplicas`), one per
/// write in flight: a `WAIT` blocks the connection it is sent on for up to `waitTimeoutMs`, so
/// on the shared connection it held the claims and lease renewals, and on a single connection of
/// its own it held the other replicated writes (an ack queued behind a dead letter's `WAIT`
/// could miss its lease, and the message be published again). Opened as needed, up to
/// [`WAIT_CONNECTIONS`]; a connection whose operation failed is dropped, not reused.
pub struct WaitConnections {
    origin: Arc<SharedRedis>,
    idle: std::sync::Mutex<Vec<Arc<SharedRedis>>>,
    slots: tokio::sync::Semaphore,
}

impl WaitConnections {
    fn take(&self) -> Arc<SharedRedis> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        idle.unwrap_or_else(|| self.origin.dedicated())
    }

    fn put_back(&self, connection: Arc<SharedRedis>) {
        self.idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection);
    }

    /// Closes the idle connections (`close()`); one in use closes when its write is done.
    fn close(&self) {
        for connection in self
            .idle
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            connection.release();
        }
    }
}

impl Redis {
    /// Operations on `shared`, each failing after `timeout`.
    pub fn new(shared: Arc<SharedRedis>, timeout: Duration) -> Self {
        Redis {
            shared,
            timeout,
            wait: None,
            waits: None,
        }
    }

    /// The same, with writes made through [`Redis::run_replicated`] done only once `replicas`
    /// replicas hold them (`WAIT`, at most `wait_timeout`); 0 replicas: no waiting.
    pub fn with_wait(mut self, replicas: u32, wait_timeout: Duration) -> Self {
        self.wait = (replicas > 0).then_some((replicas, wait_timeout));
        self.waits = self.wait.map(|_| {
            Arc::new(WaitConnections {
                origin: self.shared.clone(),
                idle: std::sync::Mutex::new(Vec::new()),
                slots: tokio::sync::Semaphore::new(WAIT_CONNECTIONS),
            })
        });
        self
    }

    /// Closes the connection of the replicated writes, if any (`close()`).
    pub fn release_waits(&self) {
        if let Some(waits) = &self.waits {
            waits.close();
        }
    }

    /// `waitReplicas` and `waitTimeoutMs`, when set.
    pub fn wait(&self) -> Option<(u32, Duration)> {
        self.wait
    }

    /// [`Redis::run`] for a write that must survive a failover when `waitReplicas` is set: `op`,
    /// then `WAIT`, both on the connection of replicated writes (not the shared one, which
    /// `WAIT` would block; on a cluster, the connection to the master of `key`'s slot), and an
    /// `ERR_REDIS_UNAVAILABLE` error when fewer replicas than asked confirmed it in time. The
    /// write itself is done on the master then; retrying it must be harmless.
    ///
    /// `WAIT` answers for the writes of the connection it is sent on: had the connection been
    /// re-established between the write and its `WAIT`, a `WAIT` on the new one, which wrote
    /// nothing, would confirm at once. So the connection's `CLIENT ID` is read before the write
    /// and after the `WAIT`, and a change means not confirmed.
    pub async fn run_replicated<T, F, Fut>(&self, what: &str, key: &str, op: F) -> Result<T>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let (Some((replicas, wait_timeout)), Some(waits)) = (self.wait, &self.waits) else {
            return self.run(what, op).await;
        };
        let _slot = waits.slots.acquire().await.ok();
        let connection = waits.take();
        let outcome = self
            .run_on(&connection, what, |conn| async move {
                let mut same = conn.clone();
                let before = same.client_id(key).await?;
                let value = op(conn).await?;
                let confirmed = same
                    .wait_replicas(key, replicas, wait_timeout.as_millis() as u64)
                    .await?;
                let after = same.client_id(key).await?;
                Ok((value, confirmed, before == after))
            })
            .await;
        match &outcome {
            Ok(_) => waits.put_back(connection),
            Err(_) => connection.release(),
        }
        let (value, confirmed, same_connection) = outcome?;
        if !same_connection {
            return Err(RetryError::new(
                ErrorCode::RedisUnavailable,
                format!(
                    "Redis {what} was sent, but the connection was re-established before its WAIT (waitReplicas), which cannot confirm it then; a failover now could undo it"
                ),
            ));
        }
        if confirmed < replicas as i64 {
            return Err(RetryError::new(
                ErrorCode::RedisUnavailable,
                format!(
                    "Redis {what} was done on the master, but {confirmed} of the {replicas} replicas asked for (waitReplicas) confirmed it within {} ms (waitTimeoutMs); a failover now could undo it",
                    wait_timeout.as_millis()
                ),
            ));
        }
        Ok(value)
    }

    /// The connection underneath.
    pub fn shared(&self) -> &Arc<SharedRedis> {
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
        self.run_on(&self.shared, what, op).await
    }

    /// [`Redis::run`] on connection `shared` (the shared one, or the replicated writes' one).
    /// An operation that got no answer in time has its connection checked, and replaced when
    /// dead (see [`SharedRedis::suspect`]; the operations still waiting on a connection found
    /// dead fail at once); with Sentinel it is replaced at once, since the master may have moved.
    async fn run_on<T, F, Fut>(&self, shared: &Arc<SharedRedis>, what: &str, op: F) -> Result<T>
    where
        F: FnOnce(RedisConnection) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let generation = AtomicU64::new(0);
        let work = async {
            let (g, conn) = shared.connection_generation().await?;
            generation.store(g, Ordering::Relaxed);
            let mut dead = shared.dead.subscribe();
            let outcome = tokio::select! {
                outcome = op(conn) => outcome,
                _ = dead.wait_for(|dead| *dead >= g) => {
                    return Err(RetryError::new(
                        ErrorCode::RedisUnavailable,
                        format!(
                            "Redis {what} got no answer from {}: the connection stopped answering (no reply to a PING either) and is replaced",
                            shared.describe()
                        ),
                    ));
                }
            };
            match &outcome {
                Err(err) if is_no_answer(err) => {
                    if err.is_timeout() {
                        shared.suspect(g);
                    }
                }
                _ => shared.replied(),
            }
            outcome.map_err(|err| {
                if shared.target.is_sentinel() && needs_new_master(&err) {
                    shared.invalidate(g);
                }
                match target::connect_failure(&err) {
                    Some(why) => RetryError::new(
                        ErrorCode::RedisUnavailable,
                        format!("Redis {what} failed: {why}"),
                    )
                    .caused_by(err),
                    None => RetryError::redis(what, err),
                }
            })
        };
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => result,
            Err(_) => {
                let g = generation.load(Ordering::Relaxed);
                if g > 0 {
                    if shared.target.is_sentinel() {
                        // A master that stopped answering (a partition) is looked up again.
                        shared.invalidate(g);
                    } else {
                        shared.suspect(g);
                    }
                }
                Err(self.timed_out(what))
            }
        }
    }

    /// The error of an operation that got no answer within the timeout.
    pub fn timed_out(&self, what: &str) -> RetryError {
        RetryError::new(
            ErrorCode::RedisUnavailable,
            format!(
                "Redis {what} got no answer within {} ms from {}",
                self.timeout.as_millis(),
                self.shared.describe()
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
    fn slots_follow_redis_cluster() {
        // Values from Redis's CLUSTER KEYSLOT.
        assert_eq!(key_slot(b"foo"), 12182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(key_slot(b"{kafka-retry}:due"), key_slot(b"kafka-retry"));
        // An empty tag does not count: the whole key is hashed.
        assert_ne!(key_slot(b"a{}b"), key_slot(b""));
        assert_eq!(key_slot(b"123456789"), 0x31C3);
    }
}
