//! [`RedisBroker`]: the hub's [`Broker`] on a Redis Stream.
//!
//! * `publish` appends the whole batch with `XADD ... MAXLEN ~ N` inside one `MULTI`/`EXEC`, so
//!   a batch is all-or-nothing and its events are contiguous in the stream. Redis assigns the
//!   ids; the answer to the publisher is those ids. Delivery, to this node too, is the
//!   [`reader`](crate::reader)'s job: every node's hub sees every event through the same path,
//!   in the same order.
//! * `history` serves resume points older than the node's in-memory window with `XRANGE`,
//!   checked in the same transaction against the stream's first entry so a trimmed range is
//!   reported (the client gets `herald.missed`) instead of replayed with a hole. Resume reaches
//!   back exactly `--history` events, as on the embedded broker, even though the stream keeps at
//!   least [`MIN_STREAM_LEN`](crate::config::MIN_STREAM_LEN) as a buffer for lagging nodes.
//! * `catch_up_to` lets a client resume here with an id it just got from another node.
//!
//! Every command is bounded by the configured timeout: while Redis is unreachable, publishers
//! get a prompt 503 instead of hanging.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::{unix_us, Broker, BrokerError, EventId, HubEvent, Publication};
use redis::streams::StreamRangeReply;
use redis::{FromRedisValue, Value};
use tokio::task::AbortHandle;

use crate::entry;
use crate::keys::Keys;
use crate::metrics as m;
use crate::reader::ReaderStatus;
use crate::shared_connection::SharedConnection;
use crate::stream_info::{is_no_such_key, StreamInfo};

pub struct RedisBroker {
    pub(crate) conn: Arc<SharedConnection>,
    pub(crate) keys: Keys,
    pub(crate) stream_len: usize,
    /// Resume reaches back this many events (`--history`), like the embedded broker.
    pub(crate) history: usize,
    pub(crate) command_timeout: Duration,
    pub(crate) status: Arc<ReaderStatus>,
    /// The reader and ingress tasks; they end with the broker.
    pub(crate) tasks: Vec<AbortHandle>,
}

impl Drop for RedisBroker {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// What [`RedisBroker::query`] sends.
enum Query<'a> {
    Cmd(&'a redis::Cmd),
    Pipe(&'a redis::Pipeline),
}

fn unavailable(error: impl std::fmt::Display) -> BrokerError {
    BrokerError(format!("Redis: {error}"))
}

impl RedisBroker {
    /// Runs a command or pipeline on the shared connection, bounded by the command timeout.
    /// The outer error means Redis could not be reached or did not answer in time; the inner
    /// one is what Redis answered.
    async fn query<T: FromRedisValue>(
        &self,
        query: Query<'_>,
    ) -> Result<redis::RedisResult<T>, BrokerError> {
        let attempt = async {
            let mut conn = self.conn.get().await?;
            match query {
                Query::Cmd(cmd) => cmd.query_async(&mut conn).await,
                Query::Pipe(pipe) => pipe.query_async(&mut conn).await,
            }
        };
        match tokio::time::timeout(self.command_timeout, attempt).await {
            Ok(Ok(value)) => Ok(Ok(value)),
            Ok(Err(error)) if error.kind() == redis::ErrorKind::ResponseError => Ok(Err(error)),
            Ok(Err(error)) => {
                self.conn.failed(&error).await;
                Err(unavailable(error))
            }
            Err(_) => {
                self.conn.reset().await;
                Err(unavailable("no answer within the command timeout"))
            }
        }
    }

    async fn stream_info(&self) -> Result<StreamInfo, BrokerError> {
        let reply: redis::RedisResult<Value> = self
            .query(Query::Cmd(
                redis::cmd("XINFO").arg("STREAM").arg(&self.keys.stream),
            ))
            .await?;
        match reply {
            Ok(value) => StreamInfo::from_reply(&value).map_err(BrokerError),
            Err(error) if is_no_such_key(&error) => Ok(StreamInfo::default()),
            Err(error) => Err(unavailable(error)),
        }
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn publish(&self, batch: &[Publication]) -> Result<Vec<EventId>, BrokerError> {
        if !self.status.is_connected() {
            // Consistent with /readyz: refuse rather than accept what may not be delivered soon.
            return Err(unavailable(
                "this node is not connected to the event stream",
            ));
        }
        let accepted_us = unix_us();
        let mut pipe = redis::pipe();
        pipe.atomic();
        for publication in batch {
            pipe.cmd("XADD")
                .arg(&self.keys.stream)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.stream_len)
                .arg("*")
                .arg(entry::FIELD)
                .arg(entry::encode(publication, accepted_us));
        }
        let ids: Vec<String> = self.query(Query::Pipe(&pipe)).await?.map_err(unavailable)?;
        ids.iter()
            .map(|id| {
                id.parse::<EventId>()
                    .map_err(|_| BrokerError(format!("Redis returned a bad stream id {id:?}")))
            })
            .collect()
    }

    async fn history(
        &self,
        after: EventId,
        upto: EventId,
    ) -> Result<Option<Vec<Arc<HubEvent>>>, BrokerError> {
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("XINFO")
            .arg("STREAM")
            .arg(&self.keys.stream)
            .cmd("XRANGE")
            .arg(&self.keys.stream)
            .arg(format!("({after}"))
            .arg("+")
            .arg("COUNT")
            .arg(self.history + 1);
        let result: redis::RedisResult<(Value, StreamRangeReply)> =
            self.query(Query::Pipe(&pipe)).await?;
        let (info, range) = match result {
            Ok(reply) => reply,
            Err(error) if is_no_such_key(&error) => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let info = StreamInfo::from_reply(&info).map_err(BrokerError)?;
        if !info.retains_everything_after(after) || range.ids.len() > self.history {
            // Trimmed away, or more than --history events ago.
            return Ok(None);
        }
        let mut events = Vec::with_capacity(range.ids.len());
        for entry in range.ids {
            if entry.id.parse::<EventId>().is_ok_and(|id| id > upto) {
                break;
            }
            match entry::decode(&entry.id, &entry.map) {
                Ok(event) => events.push(Arc::new(event)),
                Err(error) => {
                    metrics::counter!(m::MALFORMED_ENTRIES).increment(1);
                    tracing::warn!(%error, id = %entry.id, "skipping a stream entry that is not a Herald event");
                }
            }
        }
        Ok(Some(events))
    }

    fn is_ready(&self) -> bool {
        self.status.is_connected()
    }

    async fn catch_up_to(&self, id: EventId) -> Result<(), BrokerError> {
        if self.status.has_dispatched(id) {
            return Ok(());
        }
        if id > self.stream_info().await?.last_generated {
            // Never assigned: the hub will answer `unknown_id`.
            return Ok(());
        }
        if self.status.dispatched_up_to(id, self.command_timeout).await {
            Ok(())
        } else {
            Err(BrokerError(
                "this node is still catching up with the event stream; retry".into(),
            ))
        }
    }
}
