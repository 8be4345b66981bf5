//! Where the schedule's Redis is and how to reach it: one server by URL, the seed nodes of a
//! Redis Cluster, or a master found through Redis Sentinel; with the user name, password and TLS
//! settings of the config applied to every connection (rustls, so no system OpenSSL is needed).

use crate::config::{Config, Secret, SentinelConfig, TlsConfig};
use redis::{
    Client, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, RedisConnectionInfo, RedisError,
    RedisResult,
};
use std::sync::Once;
use std::time::Duration;

/// How to reach the schedule's Redis.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RedisTarget {
    /// One server's URL, or a cluster's seed URLs comma separated; unused with Sentinel.
    pub url: String,
    /// Whether `url` lists the seed nodes of a Redis Cluster.
    pub cluster: bool,
    /// ACL user name (over the URL's).
    pub username: Option<String>,
    /// Password (over the URL's).
    pub password: Option<Secret>,
    /// TLS towards the data nodes.
    pub tls: Option<TlsConfig>,
    /// The master is found through these sentinels.
    pub sentinel: Option<SentinelConfig>,
}

impl RedisTarget {
    /// The target `config` describes.
    pub fn from_config(config: &Config) -> Self {
        RedisTarget {
            url: config.redis_url.clone(),
            cluster: config.cluster,
            username: config.username.clone(),
            password: config.password.clone(),
            tls: config.tls.clone(),
            sentinel: config.sentinel.clone(),
        }
    }

    /// A server (or cluster) given by URL alone; TLS only for a `rediss://` URL.
    pub fn plain(url: &str, cluster: bool) -> Self {
        let tls = url
            .split(',')
            .any(|u| u.trim().starts_with("rediss://"))
            .then(TlsConfig::default);
        RedisTarget {
            url: url.to_string(),
            cluster,
            username: None,
            password: None,
            tls,
            sentinel: None,
        }
    }

    /// What identifies the connection in this process (instances with the same key share it):
    /// the place, and a hash of the credentials and TLS settings (so the password is not in it).
    pub fn key(&self) -> String {
        let settings = format!(
            "{}|{:?}|{:?}|{:?}|{}",
            self.url,
            self.username,
            self.tls,
            self.sentinel,
            self.password.as_ref().map_or("", |p| p.0.as_str())
        );
        let sentinel_secret = self
            .sentinel
            .as_ref()
            .and_then(|s| s.password.as_ref())
            .map_or("", |p| p.0.as_str());
        let hash = xxhash_rust::xxh3::xxh3_64(format!("{settings}|{sentinel_secret}").as_bytes());
        format!(
            "{}{}#{hash:x}",
            if self.cluster { "cluster:" } else { "" },
            self.describe()
        )
    }

    /// Where it is, for messages: the URL without its password, or the Sentinel master's name
    /// and the sentinels.
    pub fn describe(&self) -> String {
        match &self.sentinel {
            Some(sentinel) => format!(
                "Sentinel master {:?} (sentinels {})",
                sentinel.name,
                sentinel
                    .sentinels
                    .iter()
                    .map(|(host, port)| format!("{host}:{port}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
            None => redacted(&self.url),
        }
    }

    /// Whether the master is found through Sentinel (and must be asked again after a failover).
    pub fn is_sentinel(&self) -> bool {
        self.sentinel.is_some()
    }

    /// A client for one server given by URL, with the config's credentials and TLS.
    fn client_for_url(&self, url: &str) -> RedisResult<Client> {
        let info = url.trim().into_connection_info()?;
        with_settings(
            info,
            self.username.as_deref(),
            self.password.as_ref(),
            self.tls.as_ref(),
        )
    }

    /// A client for the server to send commands to: the URL's, or the master the sentinels name
    /// now. Not for a cluster.
    pub async fn single_client(&self, timeout: Duration) -> RedisResult<Client> {
        match &self.sentinel {
            None => self.client_for_url(&self.url),
            Some(sentinel) => {
                let (host, port) = master_address(sentinel, timeout).await?;
                let info = ConnectionInfo {
                    addr: ConnectionAddr::Tcp(host, port),
                    redis: RedisConnectionInfo::default(),
                };
                with_settings(
                    info,
                    self.username.as_deref(),
                    self.password.as_ref(),
                    self.tls.as_ref(),
                )
            }
        }
    }

    /// A client to subscribe with: the server, or on a cluster seed node `attempt` (modulo
    /// their number: each attempt after a failure tries the next one; a message published on
    /// one node of a cluster reaches subscribers on every node).
    pub async fn pubsub_client(&self, timeout: Duration, attempt: usize) -> RedisResult<Client> {
        if self.cluster {
            let seeds: Vec<&str> = self.url.split(',').collect();
            self.client_for_url(seeds[attempt % seeds.len()])
        } else {
            self.single_client(timeout).await
        }
    }

    /// A cluster client over the seed nodes, with the config's credentials and TLS, and `tcp`
    /// applied to every node's socket.
    pub fn cluster_client(
        &self,
        timeout: Duration,
        tcp: redis::io::tcp::TcpSettings,
    ) -> RedisResult<redis::cluster::ClusterClient> {
        install_crypto();
        let mut seeds = Vec::new();
        for url in self.url.split(',') {
            let mut info = url.trim().into_connection_info()?;
            if let Some(tls) = &self.tls {
                info.addr = tls_addr(info.addr, tls);
            }
            seeds.push(info);
        }
        let mut builder = redis::cluster::ClusterClient::builder(seeds)
            .connection_timeout(timeout)
            .response_timeout(timeout)
            .tcp_settings(tcp)
            .retries(1);
        if let Some(username) = &self.username {
            builder = builder.username(username.clone());
        }
        if let Some(password) = &self.password {
            builder = builder.password(password.0.clone());
        }
        if let Some(tls) = &self.tls {
            builder = builder.tls(if tls.reject_unauthorized {
                redis::TlsMode::Secure
            } else {
                redis::TlsMode::Insecure
            });
            if let Some(certificates) = tls.certificates() {
                builder = builder.certs(certificates);
            }
        }
        builder.build()
    }
}

/// rustls needs a process-wide crypto provider; ring is the one compiled in.
fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The address with TLS on (`rejectUnauthorized: false`: the certificate is not checked).
fn tls_addr(addr: ConnectionAddr, tls: &TlsConfig) -> ConnectionAddr {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => {
            ConnectionAddr::TcpTls {
                host,
                port,
                insecure: !tls.reject_unauthorized,
                tls_params: None,
            }
        }
        unix => unix,
    }
}

/// A client for `info` with the credentials (over the URL's) and TLS applied.
fn with_settings(
    mut info: ConnectionInfo,
    username: Option<&str>,
    password: Option<&Secret>,
    tls: Option<&TlsConfig>,
) -> RedisResult<Client> {
    install_crypto();
    if let Some(username) = username {
        info.redis.username = Some(username.to_string());
    }
    if let Some(password) = password {
        info.redis.password = Some(password.0.clone());
    }
    match tls {
        None => Client::open(info),
        Some(tls) => {
            info.addr = tls_addr(info.addr, tls);
            match tls.certificates() {
                Some(certificates) => Client::build_with_tls(info, certificates),
                None => Client::open(info),
            }
        }
    }
}

/// The master's address as the first sentinel that answers knows it.
async fn master_address(
    sentinel: &SentinelConfig,
    timeout: Duration,
) -> RedisResult<(String, u16)> {
    let mut last: Option<RedisError> = None;
    for (host, port) in &sentinel.sentinels {
        let info = ConnectionInfo {
            addr: ConnectionAddr::Tcp(host.clone(), *port),
            redis: RedisConnectionInfo::default(),
        };
        let asked = async {
            let client = with_settings(
                info,
                sentinel.username.as_deref(),
                sentinel.password.as_ref(),
                sentinel.tls.as_ref(),
            )?;
            let mut conn = client.get_multiplexed_async_connection().await?;
            redis::cmd("SENTINEL")
                .arg("get-master-addr-by-name")
                .arg(&sentinel.name)
                .query_async::<Option<(String, u16)>>(&mut conn)
                .await
        };
        match tokio::time::timeout(timeout, asked).await {
            Ok(Ok(Some(address))) => return Ok(address),
            Ok(Ok(None)) => {
                last = Some(RedisError::from((
                    redis::ErrorKind::ResponseError,
                    "the sentinel knows no master of this name",
                    format!("{:?} asked at {host}:{port}", sentinel.name),
                )))
            }
            Ok(Err(err)) => last = Some(err),
            Err(_) => {
                last = Some(RedisError::from((
                    redis::ErrorKind::IoError,
                    "no answer from the sentinel",
                    format!("{host}:{port} within {} ms", timeout.as_millis()),
                )))
            }
        }
    }
    Err(last.unwrap_or_else(|| {
        RedisError::from((redis::ErrorKind::InvalidClientConfig, "no sentinels given"))
    }))
}

/// What a failed connect means, in words, when it is one of the causes a user must fix:
/// credentials or TLS. `None` for anything else (unreachable, timeouts).
pub fn connect_failure(err: &RedisError) -> Option<&'static str> {
    let text = format!("{err:?} {err}");
    if err.kind() == redis::ErrorKind::AuthenticationFailed
        || text.contains("WRONGPASS")
        || text.contains("NOAUTH")
        || text.contains("invalid username-password")
        || text.contains("invalid password")
    {
        Some("authentication failed: wrong user name or password (config.username / config.password or the URL's)")
    } else if text.contains("UnknownIssuer") || text.contains("BadSignature") {
        Some("the server's TLS certificate is not trusted: it is not signed by a CA in config.tls.ca (without config.tls.ca, by a public CA)")
    } else if text.contains("NotValidForName") {
        Some("the server's TLS certificate does not carry the host name connected to")
    } else if text.contains("Expired") && text.contains("certificate") {
        Some("the server's TLS certificate has expired")
    } else if text.contains("CorruptMessage")
        || text.contains("InvalidContentType")
        || text.contains("InvalidMessage")
    {
        Some("the TLS handshake failed: the server does not speak TLS on this port")
    } else if text.contains("CertificateRequired") || text.contains("certificate required") {
        Some("the server requires a client certificate (config.tls.cert and config.tls.key)")
    } else {
        None
    }
}

/// The URL (or comma-separated cluster seeds) without passwords, for messages and logs.
pub fn redacted(url: &str) -> String {
    url.split(',')
        .map(|one| crate::config::redacted_url(one.trim()))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_tells_settings_apart_without_holding_a_password() {
        let a = RedisTarget::plain("rediss://:first-secret@cache:6380", false);
        let b = RedisTarget::plain("rediss://:second-secret@cache:6380", false);
        assert_ne!(a.key(), b.key());
        assert!(!a.key().contains("first-secret"), "{}", a.key());
        let mut c = RedisTarget::plain("redis://cache:6379", false);
        let plain = c.key();
        c.password = Some(Secret("config-secret".into()));
        assert_ne!(c.key(), plain);
        assert!(!c.key().contains("config-secret"));
        assert!(!format!("{c:?}").contains("config-secret"));
        assert_eq!(a.tls, Some(TlsConfig::default()));
    }

    #[test]
    fn connect_failures_are_put_in_words() {
        let auth = RedisError::from((
            redis::ErrorKind::AuthenticationFailed,
            "Password authentication failed",
        ));
        assert!(connect_failure(&auth)
            .unwrap()
            .starts_with("authentication failed"));
        let untrusted = RedisError::from(std::io::Error::other(
            "invalid peer certificate: UnknownIssuer",
        ));
        assert!(connect_failure(&untrusted)
            .unwrap()
            .contains("certificate is not trusted"));
        let refused = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert_eq!(connect_failure(&refused), None);
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
