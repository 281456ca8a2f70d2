//! Where the primary is: one URL (`--redis`), or asked of Sentinel (`--redis-sentinel` +
//! `--redis-master`) every time a connection is made.
//!
//! Every connection the broker opens (the shared command connection, the stream reader, the
//! ingress and presence subscriptions) comes from [`Endpoint::client`]. A failover breaks those
//! connections; each one reconnects through here, so after Sentinel promotes a replica the node
//! finds it without a restart, and its streams stay open meanwhile (the reader resumes from its
//! position). redis-rs's Sentinel client asks the sentinels in turn and checks that the server
//! it names answers `ROLE` as a master, so a stale answer is not followed.

use std::sync::Arc;

use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{Client, IntoConnectionInfo, RedisResult, TlsMode};

use crate::config::RedisConfig;

#[derive(Clone)]
pub(crate) enum Endpoint {
    Fixed(Client),
    /// The client is asked under a lock: it keeps which sentinel answered last.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

impl Endpoint {
    /// With sentinels, the master's password, user, database and TLS are those of the first
    /// sentinel URL (the usual deployment: one password for the whole set).
    pub fn new(config: &RedisConfig) -> RedisResult<Self> {
        let Some(master) = &config.sentinel_master else {
            return Client::open(config.url.as_str()).map(Self::Fixed);
        };
        let first = config
            .sentinels
            .first()
            .map(|url| url.as_str().into_connection_info())
            .transpose()?;
        let node = SentinelNodeConnectionInfo {
            tls_mode: config
                .sentinels
                .first()
                .filter(|url| url.starts_with("rediss://"))
                .map(|_| TlsMode::Secure),
            redis_connection_info: first.map(|info| info.redis),
        };
        let sentinels: Vec<&str> = config.sentinels.iter().map(String::as_str).collect();
        SentinelClient::build(
            sentinels,
            master.clone(),
            Some(node),
            SentinelServerType::Master,
        )
        .map(|client| Self::Sentinel(Arc::new(tokio::sync::Mutex::new(client))))
    }

    /// A client for the primary as of now.
    pub async fn client(&self) -> RedisResult<Client> {
        match self {
            Self::Fixed(client) => Ok(client.clone()),
            Self::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
        }
    }
}
