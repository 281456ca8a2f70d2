//! The stream reader: one task per node that follows the Redis Stream and feeds the hub.
//!
//! It reads with `XREAD BLOCK` from the id of the last event it dispatched, on a connection of
//! its own (a blocking read would stall anything sharing it), and hands events to
//! [`Hub::dispatch`] one at a time in stream order, which is the only order the hub needs.
//!
//! Every failure is handled the same way: drop the connection, wait (backoff), connect again,
//! and read on from the same id. Whatever was added meanwhile is simply the next batch, so a
//! node that lost Redis for a while delivers exactly what it missed, in order, once.
//!
//! Nothing is ever skipped silently. Each entry carries its sequence number ([`crate::append`]):
//! if the next one read is not the one after the last dispatched, entries were trimmed before
//! this node read them (it fell further behind than the stream keeps), and the hub gets a gap
//! ([`Hub::dispatch_gap`]) so its streams receive the reserved `herald.missed` event. When the
//! reader (re)connects it also reads the stream's ends in the same transaction as its first
//! batch: if Redis lost the stream (a restart without persistence), that is a gap too.

use std::sync::{Arc, Weak};
use std::time::Duration;

use herald_core::{EventId, Hub};
use redis::streams::StreamReadReply;
use redis::Value;
use tokio::sync::watch;

use crate::config::RedisConfig;
use crate::connection::Connection;
use crate::endpoint::Endpoint;
use crate::entry;
use crate::keys::Keys;
use crate::metrics as m;
use crate::shared_connection::SharedConnection;
use crate::stream_info::{is_no_such_key, just_before, xinfo, StreamInfo};

/// Entries read per round.
const BATCH: usize = 512;
/// How long one `XREAD` blocks waiting for new entries before it asks again.
const BLOCK: Duration = Duration::from_secs(5);

/// What the reader tells the rest of the node.
pub struct ReaderStatus {
    /// The reader's connection works and it has checked its position: `/readyz`.
    connected: watch::Sender<bool>,
    /// The id of the last event handed to the hub.
    dispatched: watch::Sender<EventId>,
}

impl ReaderStatus {
    pub(crate) fn new(position: EventId) -> Arc<Self> {
        Arc::new(Self {
            connected: watch::Sender::new(false),
            dispatched: watch::Sender::new(position),
        })
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow()
    }

    /// Waits until the reader is connected, at most `timeout`.
    pub(crate) async fn connected_within(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|connected| *connected))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Has the reader dispatched `id` (or later)?
    pub(crate) fn has_dispatched(&self, id: EventId) -> bool {
        *self.dispatched.borrow() >= id
    }

    /// Waits until the reader has dispatched `id` (or later), at most `timeout`.
    pub(crate) async fn dispatched_up_to(&self, id: EventId, timeout: Duration) -> bool {
        let mut rx = self.dispatched.subscribe();
        tokio::time::timeout(timeout, rx.wait_for(|last| *last >= id))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

/// Why reading stopped; the reader reconnects after any of these.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    #[error("{0}")]
    Protocol(String),
}

pub(crate) struct Reader {
    pub(crate) client: Endpoint,
    pub keys: Keys,
    pub config: RedisConfig,
    pub hub: Weak<Hub>,
    pub status: Arc<ReaderStatus>,
    /// Reset when the reader's connection breaks (see [`SharedConnection`]).
    pub shared: Arc<SharedConnection>,
    /// The id of the last event dispatched; reading continues after it.
    pub position: EventId,
    /// The sequence number of that event, when known.
    pub seq: Option<u64>,
}

impl Reader {
    /// Runs until the hub is dropped.
    pub async fn run(mut self) {
        let mut backoff = self.config.retries();
        let mut first = true;
        loop {
            let error = match self.connect().await {
                Ok(mut conn) => {
                    if !first {
                        metrics::counter!(m::RECONNECTS).increment(1);
                    }
                    first = false;
                    match self.follow(&mut conn, &mut backoff).await {
                        Ok(()) => return,
                        Err(error) => error,
                    }
                }
                Err(error) => ReadError::Redis(error),
            };
            self.shared.reset().await;
            if self.status.connected.send_replace(false) {
                tracing::warn!(%error, position = %self.position, "lost the Redis stream; reconnecting");
            } else {
                tracing::debug!(%error, "cannot reach Redis yet");
            }
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// The reader's own connection: a blocked `XREAD` would hold up commands pipelined
    /// behind it on the shared one.
    async fn connect(&self) -> Result<Connection, redis::RedisError> {
        self.client
            .connect(
                self.config.connect_timeout,
                BLOCK + self.config.command_timeout,
            )
            .await
    }

    /// Reads and dispatches until the connection fails (`Err`) or the hub is gone (`Ok`).
    async fn follow(
        &mut self,
        conn: &mut Connection,
        backoff: &mut herald_core::backoff::Retries,
    ) -> Result<(), ReadError> {
        let mut entries = self.checked_read(conn).await?;
        self.status.connected.send_replace(true);
        backoff.reset();
        loop {
            if let Some(reply) = entries {
                let Some(hub) = self.hub.upgrade() else {
                    return Ok(());
                };
                self.dispatch(&hub, reply);
            } else if self.hub.strong_count() == 0 {
                return Ok(());
            }
            entries = self.blocking_read(conn).await?;
        }
    }

    /// Reads the next batch and, in the same transaction, the stream's ends, to tell whether
    /// anything after our position was trimmed or lost.
    async fn checked_read(
        &mut self,
        conn: &mut Connection,
    ) -> Result<Option<StreamReadReply>, ReadError> {
        let position = self.position.to_string();
        let result: Result<(Value, Option<StreamReadReply>), _> = redis::pipe()
            .atomic()
            .add_command(xinfo(&self.keys.stream))
            .cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(&position)
            .query_async(conn)
            .await;
        let (info, entries) = match result {
            Ok((info, entries)) => (
                StreamInfo::from_reply(&info).map_err(ReadError::Protocol)?,
                entries,
            ),
            // No stream at all: new, or Redis restarted without persistence.
            Err(error) if is_no_such_key(&error) => (StreamInfo::default(), None),
            Err(error) => return Err(error.into()),
        };
        if !info.retains_everything_after(self.position) {
            if let Some(read) = self.failed_over_behind(&info) {
                // A failover to a replica that had not received the last entries this node
                // read: its stream is a prefix of what was dispatched here (with
                // --redis-min-replicas, every acknowledged event is in it). Nothing this node's
                // streams lack was lost, so no gap: read on from the new primary's end.
                tracing::warn!(
                    position = %self.position,
                    resume_at = %info.last_generated,
                    unreplicated = read - info.newest_seq,
                    "the new Redis primary lacks the newest entries this node read (not replicated before a failover); reading on from its end"
                );
                self.position = info.last_generated;
                self.seq = Some(info.newest_seq);
                self.status.dispatched.send_replace(self.position);
                return Ok(None);
            }
            let resume = info.resume_point();
            tracing::warn!(
                position = %self.position,
                resume_at = %resume,
                "events this node had not delivered are no longer in Redis (trimmed, or Redis lost its data); streams get herald.missed"
            );
            metrics::counter!(m::GAPS).increment(1);
            if let Some(hub) = self.hub.upgrade() {
                hub.dispatch_gap(resume);
            }
            self.position = resume;
            self.seq = None;
            self.status.dispatched.send_replace(resume);
            // What we read was read from the old position; read again from the new one.
            return Ok(None);
        }
        Ok(entries)
    }

    /// After a failover: the number of the last entry this node read, when the new primary's
    /// stream ends before `position` with an entry this node has read (its numbering goes no
    /// further than ours); `None` if the stream is something else (lost, replaced).
    fn failed_over_behind(&self, info: &StreamInfo) -> Option<u64> {
        let read = self.seq?;
        (self.position > info.last_generated && info.newest_seq > 0 && info.newest_seq <= read)
            .then_some(read)
    }

    async fn blocking_read(
        &mut self,
        conn: &mut Connection,
    ) -> Result<Option<StreamReadReply>, ReadError> {
        let reply: Option<StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(BATCH)
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS")
            .arg(&self.keys.stream)
            .arg(self.position.to_string())
            .query_async(conn)
            .await?;
        Ok(reply)
    }

    fn dispatch(&mut self, hub: &Hub, reply: StreamReadReply) {
        for key in reply.keys {
            for raw in key.ids {
                match entry::decode(&raw.id, &raw.map) {
                    Ok(events) => {
                        for entry in events {
                            // A position inside an entry (a resume point, a failover) has the
                            // events up to it dispatched already.
                            if entry.event.id <= self.position {
                                continue;
                            }
                            if let (Some(last), Some(seq)) = (self.seq, entry.seq) {
                                if seq > last + 1 {
                                    self.gap(hub, entry.event.id, seq - last - 1);
                                }
                            }
                            self.seq = entry.seq;
                            self.position = entry.event.id;
                            hub.dispatch(Arc::new(entry.event));
                        }
                    }
                    Err(error) => {
                        metrics::counter!(m::MALFORMED_ENTRIES).increment(1);
                        tracing::warn!(%error, id = %raw.id, "skipping a stream entry that is not a Herald event");
                        if let Ok(id) = raw.id.parse() {
                            self.position = id;
                        }
                    }
                }
            }
        }
        self.status.dispatched.send_replace(self.position);
    }

    /// `missing` events before `next` were trimmed before this node read them.
    fn gap(&mut self, hub: &Hub, next: EventId, missing: u64) {
        tracing::warn!(
            position = %self.position,
            next = %next,
            missing,
            "events this node had not delivered were trimmed from Redis first (it fell behind further than the history bounds reach); streams get herald.missed"
        );
        metrics::counter!(m::GAPS).increment(1);
        hub.dispatch_gap(just_before(next));
    }
}
