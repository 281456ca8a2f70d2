//! One subscriber stream, from the hub to the socket.
//!
//! There is no task per stream inside the hub: the hub pushes shared frames into the stream's
//! bounded [`queue`], and whatever writes the stream polls it. The parts, in the order bytes
//! travel:
//!
//! * [`queue`]: the bounded queue between dispatch and the writer, with the flags that keep
//!   direct writes in order;
//! * [`direct`]: claims, by which a publisher writes an event for an idle user's stream to its
//!   socket itself;
//! * [`opening`]: what a stream sends before live events: the opening comment, the replay of
//!   what a resuming client missed (in bounded pieces, read from history as the client takes
//!   them), and its position;
//! * [`stream`]: [`EventStream`], the stream as an HTTP body (hyper writes it: HTTP/2, TLS, any
//!   embedder);
//! * [`socket`]: the writer for plain HTTP/1.1 sockets, which also takes direct writes.

mod direct;
mod opening;
mod queue;
mod socket;
mod stream;

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

pub use direct::DirectWrite;
pub(crate) use direct::DirectWrites;
pub(crate) use opening::{Opening, Replay, PIECE_BYTES, PIECE_SCAN};
pub use queue::QueueLimits;
pub(crate) use queue::{coalesce, Push, Queue};
pub use socket::{serve_socket, SocketSettings, SocketWriter, StreamSocket};
pub use stream::{EventStream, StreamEnd, StreamEndHook};

use crate::topic::Pattern;

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// The client went away (the stream was dropped while open).
    ClientGone,
    /// The stream fell behind its queue bound.
    SlowConsumer,
    /// The stream's token expired.
    TokenExpired,
    /// The hub is shutting down.
    Shutdown,
    /// The stream reached the hub's maximum stream lifetime (the client reconnects and resumes).
    Lifetime,
    /// A write to the client made no progress for the server's write timeout.
    WriteTimeout,
    /// History the stream had to replay could not be read (the broker is unreachable); the
    /// client reconnects and resumes.
    HistoryUnavailable,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientGone => "client_gone",
            Self::SlowConsumer => "slow_consumer",
            Self::TokenExpired => "token_expired",
            Self::Shutdown => "shutdown",
            Self::Lifetime => "lifetime",
            Self::WriteTimeout => "write_timeout",
            Self::HistoryUnavailable => "history_unavailable",
        }
    }
}

/// The hub's side of a stream: who it is for, and its queue.
pub(crate) struct Conn {
    pub id: u64,
    pub user: Option<Arc<str>>,
    pub patterns: Box<[Pattern]>,
    /// Unix seconds at which the stream must end (token expiry).
    pub expires_at: Option<u64>,
    /// Unix seconds at which the hub recycles the stream (0 = never): `max_stream_lifetime`.
    pub recycle_at: AtomicU64,
    /// Unix milliseconds when the stream opened (for the end-of-stream hook).
    pub opened_ms: u64,
    pub queue: Queue,
    /// A filtered stream ([`crate::labels`]) receives labelled events its filter accepts, and
    /// nothing else. Boxed to a thin pointer: 8 bytes on every stream, not 16.
    #[allow(clippy::redundant_allocation)]
    pub filter: Option<Box<Arc<dyn crate::labels::StreamFilter>>>,
}

impl Conn {
    pub fn new(
        id: u64,
        user: Option<Arc<str>>,
        patterns: Box<[Pattern]>,
        expires_at: Option<u64>,
        limits: QueueLimits,
        now: u64,
    ) -> Self {
        Self {
            id,
            user,
            patterns: crate::topic::without_redundant(patterns.into_vec()).into(),
            expires_at,
            recycle_at: AtomicU64::new(0),
            opened_ms: crate::id::unix_ms(),
            queue: Queue::new(limits, now),
            filter: None,
        }
    }

    /// Makes this a filtered stream.
    pub fn with_filter(mut self, filter: Option<Arc<dyn crate::labels::StreamFilter>>) -> Self {
        self.filter = filter.map(Box::new);
        self
    }

    /// Queues a frame, enforcing the bounds.
    pub fn push(&self, frame: &Arc<crate::event::Frame>, now: u64) -> Push {
        self.queue.push(frame, now)
    }

    pub fn close(&self, reason: CloseReason) -> bool {
        self.queue.close(reason)
    }

    /// Does this event reach this stream?
    pub fn is_reached_by(&self, event: &crate::event::HubEvent) -> bool {
        if !event.is_delivered() {
            return false;
        }
        match (&event.labels, &self.filter) {
            (None, None) => event.targets.reaches(self.user.as_deref(), &self.patterns),
            (Some(labels), Some(filter)) => filter.accepts(labels),
            _ => false,
        }
    }
}
