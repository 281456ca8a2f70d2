//! The node's one multiplexed connection for short commands (publish, history, ingress).
//!
//! Commands are pipelined over a single connection, reconnected lazily: after a command fails
//! because the connection broke (or a bound ran out), the connection is dropped and the next
//! command opens a fresh one within the connect timeout. While Redis is down every command thus
//! fails fast, which is what lets `POST /publish` answer 503 at once. Nothing is ever retried
//! behind the caller's back: an `XADD` whose answer was lost may or may not have happened, and
//! only the publisher can decide to send it again.
//!
//! The stream reader calls [`SharedConnection::reset`] when its own connection breaks: both
//! go to the same server, so the shared one is most likely dead too, and dropping it then means
//! the first publish after Redis comes back does not fail on a stale socket.

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, RedisError};
use tokio::sync::Mutex;

use crate::config::RedisConfig;

pub(crate) struct SharedConnection {
    client: Client,
    config: AsyncConnectionConfig,
    current: Mutex<Option<MultiplexedConnection>>,
}

impl SharedConnection {
    pub fn new(client: Client, config: &RedisConfig) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(config.connect_timeout)
                .set_response_timeout(config.command_timeout),
            current: Mutex::new(None),
        }
    }

    /// The current connection, or a new one if there is none.
    pub async fn get(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection if `error` says it is broken (not for errors Redis answered).
    pub async fn failed(&self, error: &RedisError) {
        if error.is_io_error()
            || error.is_connection_dropped()
            || error.is_connection_refusal()
            || error.is_timeout()
        {
            self.reset().await;
        }
    }

    /// Forgets the connection; the next command connects again.
    pub async fn reset(&self) {
        self.current.lock().await.take();
    }
}
