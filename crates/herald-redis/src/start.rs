//! Starting a node on Redis: connect, learn where the stream is, start the reader and ingress.

use std::sync::Arc;

use herald_core::{Herald, Hub, HubConfig};
use redis::{Client, Value};

use crate::backoff::Backoff;
use crate::broker::RedisBroker;
use crate::config::RedisConfig;
use crate::ingress::Ingress;
use crate::keys::Keys;
use crate::reader::{Reader, ReaderStatus};
use crate::shared_connection::SharedConnection;
use crate::stream_info::{is_no_such_key, StreamInfo};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("--redis: {0}")]
    Url(redis::RedisError),
    #[error("--redis-prefix {0:?}: use 1 to 64 characters without braces or whitespace")]
    Prefix(String),
}

/// Where Redis is, for logs: host and port, never the credentials.
pub fn describe_url(config: &RedisConfig) -> String {
    match Client::open(config.url.as_str()) {
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
    if config.url.starts_with("rediss://") {
        // rustls needs one process-wide crypto provider; the redis crate does not pick one.
        // An error only means an embedder already installed one, which is as good.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let client = Client::open(config.url.as_str()).map_err(StartError::Url)?;
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
    let mut backoff = Backoff::new(config.backoff_min, config.backoff_max);
    let conn = Arc::new(SharedConnection::new(client.clone(), &config));
    let info = loop {
        match stream_info(&conn, &config, &keys).await {
            Ok(connected) => break connected,
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
    let status = ReaderStatus::new(position);
    let reader = Reader {
        client: client.clone(),
        keys: keys.clone(),
        config: config.clone(),
        hub: Arc::downgrade(&hub),
        status: status.clone(),
        shared: conn.clone(),
        position,
    };
    let mut tasks = vec![tokio::spawn(reader.run()).abort_handle()];
    if let Some(channel) = config.ingress_channel.clone() {
        let ingress = Ingress {
            client,
            conn: conn.clone(),
            keys: keys.clone(),
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
    let broker = RedisBroker {
        conn,
        keys,
        stream_len: config.stream_len(),
        history: config.history,
        command_timeout: config.command_timeout,
        status,
        tasks,
    };
    Ok(Herald::with_broker(hub, Arc::new(broker)))
}

/// Where the stream stands now (an empty stream if it does not exist yet).
async fn stream_info(
    conn: &SharedConnection,
    config: &RedisConfig,
    keys: &Keys,
) -> Result<StreamInfo, String> {
    let attempt = async {
        let mut conn = conn.get().await?;
        redis::cmd("XINFO")
            .arg("STREAM")
            .arg(&keys.stream)
            .query_async::<Value>(&mut conn)
            .await
    };
    let reply = tokio::time::timeout(config.connect_timeout + config.command_timeout, attempt)
        .await
        .map_err(|_| "no answer in time".to_owned())?;
    match reply {
        Ok(value) => StreamInfo::from_reply(&value),
        Err(error) if is_no_such_key(&error) => Ok(StreamInfo::default()),
        Err(error) => {
            conn.failed(&error).await;
            Err(error.to_string())
        }
    }
}
