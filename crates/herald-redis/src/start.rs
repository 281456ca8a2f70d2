//! Starting a node on Redis: connect, learn where the stream is, start the reader and ingress.

use std::sync::Arc;

use herald_core::broker::HubEvent;
use herald_core::{Herald, Hub, HubConfig};
use redis::{Client, Value};

use crate::endpoint::Endpoint;

use crate::append::Appender;
use crate::broker::{Horizon, RedisBroker};
use crate::config::RedisConfig;
use crate::entry;
use crate::history::HistoryReader;
use crate::ingress::Ingress;
use crate::keys::Keys;
use crate::presence::Presence;
use crate::publish_queue::{self, PublishQueue};
use crate::reader::{Reader, ReaderStatus};
use crate::shared_connection::{Request, SharedConnection};
use crate::stream_info::{is_no_such_key, xinfo, StreamInfo};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--redis: {0}")]
    Url(redis::RedisError),
    #[error("--redis-prefix {0:?}: use 1 to 64 characters without braces or whitespace")]
    Prefix(String),
}

/// Where Redis is, for logs: host and port, never the credentials.
pub fn describe_url(config: &RedisConfig) -> String {
    let addresses = |urls: &[String]| {
        let addresses: Vec<String> = urls.iter().map(|url| address(url)).collect();
        addresses.join(", ")
    };
    if !config.cluster.is_empty() {
        return format!("Redis Cluster via {}", addresses(&config.cluster));
    }
    if let Some(master) = &config.sentinel_master {
        return format!(
            "primary {master:?} via Sentinel {}",
            addresses(&config.sentinels)
        );
    }
    address(&config.url)
}

fn address(url: &str) -> String {
    match Client::open(url) {
        Ok(client) => client.get_connection_info().addr.to_string(),
        Err(_) => "<invalid URL>".into(),
    }
}

/// A hub on the Redis broker.
///
/// Waits (with backoff, logging each failure) until Redis answers: a node cannot know where the
/// shared sequence stands before it has asked, and a process that keeps retrying is what an
/// orchestrator starting Redis and Herald side by side needs. Must run inside a Tokio runtime.
pub async fn start(config: RedisConfig, hub_config: HubConfig) -> Result<Herald, StartError> {
    let urls = std::iter::once(&config.url)
        .chain(&config.sentinels)
        .chain(&config.cluster);
    if urls.into_iter().any(|url| url.starts_with("rediss://")) {
        // rustls needs one process-wide crypto provider; the redis crate does not pick one.
        // An error only means an embedder already installed one, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = Endpoint::new(&config).map_err(StartError::Url)?;
    let prefix = &config.key_prefix;
    // The prefix becomes a hash tag `{prefix}`: braces would change which part Redis hashes.
    if prefix.is_empty()
        || prefix.len() > 64
        || prefix
            .chars()
            .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(StartError::Prefix(prefix.clone()));
    }
    let keys = Keys::new(&config.key_prefix);
    let where_ = describe_url(&config);
    let mut backoff = config.retries();
    let conn = Arc::new(SharedConnection::new(client.clone(), &config));
    let (info, retained) = loop {
        match snapshot(&conn, &config, &keys).await {
            Ok(snapshot) => break snapshot,
            Err(error) => {
                let delay = backoff.next_delay();
                tracing::warn!(redis = %where_, %error, ?delay, "waiting for Redis");
                tokio::time::sleep(delay).await;
            }
        }
    };
    let position = info.last_generated;
    tracing::info!(redis = %where_, stream = %keys.stream, %position, "connected to Redis");

    let hub = Hub::starting_at(hub_config, position);
    hub.restore_retained(retained);
    let status = ReaderStatus::new(position);
    let reader = Reader {
        client: client.clone(),
        keys: keys.clone(),
        config: config.clone(),
        hub: Arc::downgrade(&hub),
        status: status.clone(),
        shared: conn.clone(),
        position,
        seq: None,
    };
    let mut tasks = vec![tokio::spawn(reader.run()).abort_handle()];
    let presence = Presence::new(conn.clone(), keys.clone());
    tasks.push(
        tokio::spawn(
            presence
                .clone()
                .run(client.clone(), Arc::downgrade(&hub), config.clone()),
        )
        .abort_handle(),
    );
    if let Some(channel) = config.ingress_channel.clone() {
        let ingress = Ingress {
            client,
            conn: conn.clone(),
            keys: keys.clone(),
            appender: Appender::new(&keys, &config),
            channel,
            config: config.clone(),
        };
        tasks.push(tokio::spawn(ingress.run()).abort_handle());
    }
    // Report ready from the start when Redis is fine: the reader's first check is a round trip.
    if !status
        .connected_within(config.connect_timeout + config.command_timeout)
        .await
    {
        tracing::warn!(redis = %where_, "the stream reader is not connected yet; not ready");
    }
    let publishing = PublishQueue::new(publish_queue::Sender {
        conn: conn.clone(),
        appender: Appender::new(&keys, &config),
        command_timeout: config.command_timeout,
        min_replicas: config.min_replicas,
    });
    let horizon = Horizon {
        events: config.history as u64,
        bytes: config.history_bytes,
        ttl: config.history_ttl,
    };
    let broker = RedisBroker {
        conn,
        history: HistoryReader::new(&keys, horizon),
        keys,
        publishing,
        horizon,
        command_timeout: config.command_timeout,
        status,
        presence,
        tasks,
    };
    Ok(Herald::with_broker(hub, Arc::new(broker)))
}

/// Where the stream stands now (an empty stream if it does not exist yet), and the retained
/// values at that point, read together so the reader goes on from exactly there.
async fn snapshot(
    conn: &SharedConnection,
    config: &RedisConfig,
    keys: &Keys,
) -> Result<(StreamInfo, Vec<(String, Arc<HubEvent>)>), String> {
    let mut pipe = redis::pipe();
    pipe.atomic()
        .add_command(xinfo(&keys.stream))
        .cmd("HGETALL")
        .arg(&keys.retained);
    /// `XINFO STREAM`'s reply and the retained hash's fields and values.
    type Reply = (Value, Vec<(String, Vec<u8>)>);
    let reply: redis::RedisResult<Reply> = conn
        .call(Request::Pipe(&pipe), config.connect_timeout)
        .await
        .map_err(|e| e.to_string())?;
    let (info, retained) = match reply {
        Ok((info, retained)) => (StreamInfo::from_reply(&info)?, retained),
        // No stream yet: nothing was ever published, so nothing is retained either.
        Err(error) if is_no_such_key(&error) => (StreamInfo::default(), Vec::new()),
        Err(error) => return Err(error.to_string()),
    };
    let retained = retained
        .into_iter()
        .filter_map(|(field, value)| match entry::decode_retained(&value) {
            Ok(event) => Some((field, Arc::new(event))),
            Err(error) => {
                tracing::warn!(%error, "skipping a retained value that is not a Herald event");
                None
            }
        })
        .collect();
    Ok((info, retained))
}
