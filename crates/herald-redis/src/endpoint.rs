//! Where Redis is: one URL (`--redis`), a primary asked of Sentinel (`--redis-sentinel` +
//! `--redis-master`) every time a connection is made, or a Redis Cluster found from seed nodes
//! (`--redis-cluster`).
//!
//! Every connection the broker opens (the shared command connection, the stream reader, the
//! ingress and presence subscriptions) comes from [`Endpoint::connect`] or
//! [`Endpoint::pubsub`]. A failover breaks those
//! connections; each one reconnects through here, so after Sentinel promotes a replica the node
//! finds it without a restart, and its streams stay open meanwhile (the reader resumes from its
//! position). redis-rs's Sentinel client asks the sentinels in turn and checks that the server
//! it names answers `ROLE` as a master, so a stale answer is not followed.
//!
//! On a cluster, commands go through redis-rs's cluster client, which learns the slot map from
//! the seeds and follows it as it changes ([`crate::connection`]). Subscriptions need no
//! routing: a cluster delivers every `PUBLISH` to subscribers on every node, so a subscription
//! is a plain connection to the first seed that answers, and after a failure, to the next.

use std::sync::Arc;
use std::time::Duration;

use redis::aio::PubSub;
use redis::cluster::ClusterClientBuilder;
use redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use redis::{AsyncConnectionConfig, Client, IntoConnectionInfo, RedisResult, TlsMode};

use crate::config::RedisConfig;
use crate::connection::Connection;

#[derive(Clone)]
pub(crate) enum Endpoint {
    Fixed(Client),
    /// The client is asked under a lock: it keeps which sentinel answered last.
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
    /// Seed nodes of a cluster, each already checked to be a valid URL.
    Cluster(Arc<[Client]>),
}

impl Endpoint {
    /// With sentinels, the master's password, user, database and TLS are those of the first
    /// sentinel URL (the usual deployment: one password for the whole set).
    pub fn new(config: &RedisConfig) -> RedisResult<Self> {
        if !config.cluster.is_empty() {
            let seeds = config
                .cluster
                .iter()
                .map(|url| Client::open(url.as_str()))
                .collect::<RedisResult<Vec<_>>>()?;
            return Ok(Self::Cluster(seeds.into()));
        }
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

    /// A connection for commands, bounded by `connect` to connect and by `response` per answer.
    pub async fn connect(&self, connect: Duration, response: Duration) -> RedisResult<Connection> {
        if let Self::Cluster(seeds) = self {
            let seeds = seeds.iter().map(|seed| seed.get_connection_info().clone());
            // redis-rs retries a command that met a moving slot (`TRYAGAIN`, `MOVED` during a
            // failover) itself; the caller's command timeout bounds the whole of it.
            let cluster = ClusterClientBuilder::new(seeds)
                .connection_timeout(connect)
                .response_timeout(response)
                .build()?;
            return cluster
                .get_async_connection()
                .await
                .map(Connection::Cluster);
        }
        let single = AsyncConnectionConfig::new()
            .set_connection_timeout(connect)
            .set_response_timeout(response);
        self.client()
            .await?
            .get_multiplexed_async_connection_with_config(&single)
            .await
            .map(Connection::Single)
    }

    /// A connection for `SUBSCRIBE`: to the primary, or to any node of a cluster (each seed
    /// tried in turn, each given `connect`).
    pub async fn pubsub(&self, connect: Duration) -> RedisResult<PubSub> {
        let seeds = match self {
            Self::Cluster(seeds) => seeds,
            _ => {
                let attempt = async { self.client().await?.get_async_pubsub().await };
                return within(connect, attempt).await;
            }
        };
        let mut last_error = None;
        for seed in seeds.iter() {
            match within(connect, seed.get_async_pubsub()).await {
                Ok(pubsub) => return Ok(pubsub),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(no_seed))
    }

    /// A client for the primary as of now (for a cluster, which has many: the first seed).
    async fn client(&self) -> RedisResult<Client> {
        match self {
            Self::Fixed(client) => Ok(client.clone()),
            Self::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
            Self::Cluster(seeds) => seeds.first().cloned().ok_or_else(no_seed),
        }
    }
}

async fn within<T>(
    bound: Duration,
    attempt: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    tokio::time::timeout(bound, attempt)
        .await
        .unwrap_or_else(|_| Err((redis::ErrorKind::IoError, "connect timed out").into()))
}

fn no_seed() -> redis::RedisError {
    (redis::ErrorKind::ClientError, "no --redis-cluster seed").into()
}
