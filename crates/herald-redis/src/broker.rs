//! [`RedisBroker`]: the hub's [`Broker`] on a Redis Stream.
//!
//! * `publish` appends the whole batch in one call of the append script ([`crate::append`]),
//!   shared with the publishes that arrive meanwhile ([`crate::publish_queue`]), so a batch is
//!   all-or-nothing and its events are contiguous in the stream. Redis assigns the
//!   ids; the answer to the publisher is those ids. Delivery, to this node too, is the
//!   [`reader`](crate::reader)'s job: every node's hub sees every event through the same path,
//!   in the same order.
//! * `history` serves resume points older than the node's in-memory window, a page at a time,
//!   checked against trimming and the history bounds ([`crate::history`]).
//! * `find_wire_id` finds the event a Mercure id names, newest first, scanning at most
//!   `--history` entries (500 per round trip); resumes are rate-limited (`--resume-rate`).
//! * with `--redis-min-replicas N`, `publish` answers only after `WAIT` confirms N replicas
//!   hold the batch, so a failover to a replica loses no acknowledged event.
//! * `catch_up_to` lets a client resume here with an id it just got from another node.
//!
//! Every command is bounded by the configured timeout: while Redis is unreachable, publishers
//! get a prompt 503 instead of hanging.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::announce::PresenceBook;
use herald_core::broker::{Broker, BrokerError, HubEvent};
use herald_core::idempotency::{IdempotencyKey, Published};
use herald_core::presence::{PresenceAnswer, PresenceQuery};
use herald_core::{unix_us, Batch, EventId};
use redis::streams::StreamRangeReply;
use redis::Value;
use tokio::task::AbortHandle;

use crate::append::{Appended, Group};
use crate::entry;
use crate::history::HistoryReader;
use crate::keys::Keys;
use crate::online::RedisBook;
use crate::presence::Presence;
use crate::publish_queue::PublishQueue;
use crate::reader::ReaderStatus;
use crate::shared_connection::{Request, SharedConnection, Unreachable};
use crate::stream_info::{is_no_such_key, xinfo, StreamInfo};

/// Entries read per round trip when looking for a wire id (`find_wire_id`).
const WIRE_ID_PAGE: u64 = 500;

/// How far back resume may reach: the history bounds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Horizon {
    pub events: u64,
    pub bytes: u64,
    pub ttl: Option<Duration>,
}

pub struct RedisBroker {
    pub(crate) conn: Arc<SharedConnection>,
    pub(crate) keys: Keys,
    /// Where publishes go: concurrent ones share calls of the append script.
    pub(crate) publishing: PublishQueue,
    pub(crate) horizon: Horizon,
    pub(crate) history: HistoryReader,
    pub(crate) command_timeout: Duration,
    pub(crate) status: Arc<ReaderStatus>,
    pub(crate) presence: Arc<Presence>,
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

pub(crate) fn unavailable(error: impl std::fmt::Display) -> BrokerError {
    BrokerError(format!("Redis: {error}"))
}

impl From<Unreachable> for BrokerError {
    fn from(error: Unreachable) -> Self {
        BrokerError(error.to_string())
    }
}

impl RedisBroker {
    async fn stream_info(&self) -> Result<StreamInfo, BrokerError> {
        let reply: redis::RedisResult<Value> = self
            .conn
            .call(Request::Cmd(&xinfo(&self.keys.stream)), Duration::ZERO)
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
    async fn publish(
        &self,
        batch: &Batch,
        once: Option<&IdempotencyKey>,
    ) -> Result<Published, BrokerError> {
        if !self.status.is_connected() {
            // Consistent with /readyz: refuse rather than accept what may not be delivered soon.
            return Err(unavailable(
                "this node is not connected to the event stream",
            ));
        }
        let once = once.map(|key| (self.keys.once(&key.hex()), key.window.as_millis() as u64));
        let group = Group::new(batch, unix_us(), once);
        match self.publishing.append(group).await? {
            Appended::New(ids) => Ok(Published {
                ids,
                repeated: false,
            }),
            Appended::Repeated(ids) => Ok(Published {
                ids,
                repeated: true,
            }),
            Appended::Duplicate => Err(BrokerError("unexpected dedup answer".into())),
        }
    }

    async fn history(
        &self,
        after: EventId,
        upto: EventId,
        limit: usize,
    ) -> Result<Option<Vec<Arc<HubEvent>>>, BrokerError> {
        self.history.page(&self.conn, after, upto, limit).await
    }

    async fn presence(
        &self,
        query: &PresenceQuery,
        local: PresenceAnswer,
    ) -> Result<PresenceAnswer, BrokerError> {
        Ok(self.presence.ask(query, local).await?)
    }

    fn presence_book(&self, offline_delay: Duration) -> Option<Arc<dyn PresenceBook>> {
        Some(Arc::new(RedisBook::new(
            self.conn.clone(),
            self.keys.clone(),
            self.presence.node.clone(),
            offline_delay,
        )))
    }

    fn is_ready(&self) -> bool {
        self.status.is_connected()
    }

    async fn find_wire_id(&self, wire_id: &str) -> Result<Option<EventId>, BrokerError> {
        // Newest first, a page at a time, no further back than resume may reach.
        let mut before = "+".to_owned();
        let mut left = self.horizon.events;
        while left > 0 {
            let count = WIRE_ID_PAGE.min(left);
            let mut cmd = redis::cmd("XREVRANGE");
            cmd.arg(&self.keys.stream)
                .arg(&before)
                .arg("-")
                .arg("COUNT")
                .arg(count);
            let reply: redis::RedisResult<StreamRangeReply> =
                self.conn.call(Request::Cmd(&cmd), Duration::ZERO).await?;
            let page = match reply {
                Ok(page) => page,
                Err(error) if is_no_such_key(&error) => return Ok(None),
                Err(error) => return Err(unavailable(error)),
            };
            if let Some(found) = page
                .ids
                .iter()
                .find_map(|raw| entry::find_wire_id(&raw.id, &raw.map, wire_id))
            {
                return Ok(Some(found));
            }
            match page.ids.last() {
                Some(last) if page.ids.len() as u64 == count => {
                    before = format!("({}", last.id);
                    left -= count;
                }
                _ => return Ok(None),
            }
        }
        Ok(None)
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
