//! The node's one multiplexed connection for short commands (publish, history, ingress), and the
//! one way every command is sent on it ([`SharedConnection::call`]).
//!
//! Commands are pipelined over a single connection, reconnected lazily: after a command fails
//! because the connection broke (or a bound ran out), the connection is dropped and the next
//! command opens a fresh one within the connect timeout. While Redis is down every command thus
//! fails fast, which is what lets `POST /publish` answer 503 at once. Nothing is ever retried
//! behind the caller's back: an append whose answer was lost may or may not have happened, and
//! only the publisher can decide to send it again.
//!
//! The stream reader calls [`SharedConnection::reset`] when its own connection breaks: both
//! go to the same server, so the shared one is most likely dead too, and dropping it then means
//! the first publish after Redis comes back does not fail on a stale socket.

use std::time::Duration;

use redis::{FromRedisValue, RedisError, RedisResult};
use tokio::sync::Mutex;

use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::endpoint::Endpoint;

pub(crate) struct SharedConnection {
    client: Endpoint,
    connect_timeout: Duration,
    command_timeout: Duration,
    current: Mutex<Option<Connection>>,
}

/// What [`SharedConnection::call`] sends.
pub(crate) enum Request<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
    Script(&'a redis::ScriptInvocation<'a>),
}

/// Redis could not be reached, or did not answer within the command timeout. The connection
/// has been dropped; the next call connects again.
#[derive(Debug, Clone, thiserror::Error)]
#[error("Redis: {0}")]
pub(crate) struct Unreachable(pub String);

impl SharedConnection {
    pub(crate) fn new(client: Endpoint, config: &RedisConfig) -> Self {
        Self {
            client,
            connect_timeout: config.connect_timeout,
            command_timeout: config.command_timeout,
            current: Mutex::new(None),
        }
    }

    /// Sends `request`, bounded by the command timeout (`extra` on top, for a first call that
    /// may also have to connect). The outer error means Redis could not be reached or did not
    /// answer in time; the inner one is an error Redis answered (a bad command, a script error).
    pub async fn call<T: FromRedisValue>(
        &self,
        request: Request<'_>,
        extra: Duration,
    ) -> Result<RedisResult<T>, Unreachable> {
        let attempt = async {
            let mut conn = self.get().await?;
            match request {
                Request::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Request::Pipe(pipe) => pipe.query_async(&mut conn).await,
                Request::Script(script) => script.invoke_async(&mut conn).await,
            }
        };
        match tokio::time::timeout(self.command_timeout + extra, attempt).await {
            Ok(Ok(value)) => Ok(Ok(value)),
            Ok(Err(error)) if error.kind() == redis::ErrorKind::ResponseError => Ok(Err(error)),
            Ok(Err(error)) => {
                if is_broken(&error) {
                    self.reset().await;
                }
                Err(Unreachable(error.to_string()))
            }
            Err(_) => {
                self.reset().await;
                Err(Unreachable("no answer within the command timeout".into()))
            }
        }
    }

    /// The current connection, or a new one if there is none.
    async fn get(&self) -> Result<Connection, RedisError> {
        let mut current = self.current.lock().await;
        if let Some(conn) = current.as_ref() {
            return Ok(conn.clone());
        }
        let conn = self
            .client
            .connect(self.connect_timeout, self.command_timeout)
            .await?;
        *current = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets the connection; the next command connects again.
    pub async fn reset(&self) {
        self.current.lock().await.take();
    }
}

/// Does `error` say the connection is broken (rather than Redis answering, or an answer that
/// could not be read)?
fn is_broken(error: &RedisError) -> bool {
    error.is_io_error()
        || error.is_connection_dropped()
        || error.is_connection_refusal()
        || error.is_timeout()
}
