//! One subscriber stream: a bounded queue of shared frames between the hub and the socket.
//!
//! The hub pushes frames (never copying event bytes) and the HTTP layer polls [`EventStream`],
//! which drains everything queued into one chunk so a burst becomes one socket write. There is
//! no task per stream: the socket writer (hyper) polls the stream, and a push wakes it.
//!
//! The queue is bounded in frames and in bytes. A stream that falls behind past either bound is
//! closed as a slow consumer: its queue is dropped at once (bounding memory whatever the client
//! does) and it can reconnect with `Last-Event-ID` to resume from history.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use crate::event::Frame;
use crate::id::unix_us;
use crate::metrics as m;
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
        }
    }
}

/// Bounds of a stream's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_frames: usize,
    pub max_bytes: usize,
}

struct QueueState {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    waker: Option<Waker>,
    /// Set once; the stream ends after draining (graceful reasons) or at once (slow consumer).
    closed: Option<CloseReason>,
}

/// The hub's side of a stream.
pub(crate) struct Conn {
    pub id: u64,
    pub user: Option<Arc<str>>,
    pub patterns: Box<[Pattern]>,
    /// Unix seconds at which the stream must end (token expiry).
    pub expires_at: Option<u64>,
    /// Hub clock (seconds) of the last frame queued; drives heartbeats on idle streams.
    pub last_activity: AtomicU64,
    /// Unix seconds at which the hub recycles the stream (0 = never): `max_stream_lifetime`.
    pub recycle_at: AtomicU64,
    limits: QueueLimits,
    state: Mutex<QueueState>,
}

/// Result of offering a frame to a stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    Queued,
    /// The stream is closed already; the frame was dropped.
    Closed,
    /// The queue was full: the stream is now closed as a slow consumer.
    Overflow,
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
            last_activity: AtomicU64::new(now),
            recycle_at: AtomicU64::new(0),
            limits,
            state: Mutex::new(QueueState {
                frames: VecDeque::new(),
                bytes: 0,
                waker: None,
                closed: None,
            }),
        }
    }

    /// Queues a frame, enforcing the bounds.
    pub fn push(&self, frame: &Arc<Frame>, now: u64) -> Push {
        let (result, waker) = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return Push::Closed;
            }
            let len = frame.bytes.len();
            if state.frames.len() >= self.limits.max_frames
                || state.bytes + len > self.limits.max_bytes
            {
                let dropped = state.frames.len() as u64 + 1;
                state.frames = VecDeque::new();
                state.bytes = 0;
                state.closed = Some(CloseReason::SlowConsumer);
                metrics::counter!(m::SLOW_CONSUMER_DISCONNECTS).increment(1);
                metrics::counter!(m::EVENTS_DROPPED).increment(dropped);
                (Push::Overflow, state.waker.take())
            } else {
                state.frames.push_back(frame.clone());
                state.bytes += len;
                (Push::Queued, state.waker.take())
            }
        };
        self.last_activity.store(now, Ordering::Relaxed);
        if let Some(waker) = waker {
            waker.wake();
        }
        result
    }

    /// Ends the stream. Queued frames are still written unless the reason is a slow consumer.
    pub fn close(&self, reason: CloseReason) {
        let waker = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return;
            }
            state.closed = Some(reason);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// Takes everything queued as one chunk, or registers the waker.
    fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.state.lock();
        if state.frames.is_empty() {
            if state.closed.is_some() {
                return Poll::Ready(None);
            }
            match &state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => state.waker = Some(cx.waker().clone()),
            }
            return Poll::Pending;
        }
        let frames = std::mem::take(&mut state.frames);
        let total = std::mem::replace(&mut state.bytes, 0);
        drop(state);
        Poll::Ready(Some(coalesce(frames, total)))
    }
}

/// Joins queued frames into one buffer (one write), and records delivery metrics for events.
fn coalesce(frames: VecDeque<Arc<Frame>>, total: usize) -> Bytes {
    let mut delivered = 0u64;
    let mut now = None;
    let mut observe = |frame: &Frame| {
        if let Some(published) = frame.published_us {
            delivered += 1;
            let now = *now.get_or_insert_with(unix_us);
            let seconds = now.saturating_sub(published) as f64 / 1e6;
            metrics::histogram!(m::DELIVERY_LATENCY).record(seconds);
        }
    };
    let chunk = if frames.len() == 1 {
        observe(&frames[0]);
        frames[0].bytes.clone()
    } else {
        let mut buf = BytesMut::with_capacity(total);
        for frame in &frames {
            observe(frame);
            buf.extend_from_slice(&frame.bytes);
        }
        buf.freeze()
    };
    if delivered > 0 {
        metrics::counter!(m::EVENTS_DELIVERED).increment(delivered);
    }
    chunk
}

/// Something that can take a stream out of the hub when it ends.
pub(crate) trait Unregister: Send + Sync {
    fn unregister(&self, conn: &Arc<Conn>);
}

/// A subscriber's stream of SSE bytes.
///
/// Implements both [`futures_util::Stream`] and [`http_body::Body`], so it can be returned from an
/// axum handler as `axum::body::Body::new(stream)`. Dropping it removes the stream from the hub.
pub struct EventStream {
    conn: Arc<Conn>,
    hub: Arc<dyn Unregister>,
}

impl EventStream {
    pub(crate) fn new(conn: Arc<Conn>, hub: Arc<dyn Unregister>) -> Self {
        Self { conn, hub }
    }

    /// The hub-assigned stream id (unique within this process).
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// Why the stream ended, or `None` while it is open (or if the client went away).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.conn.close_reason()
    }

    /// Ends the stream from the connection's side (e.g. a write timed out), recording why.
    pub fn close(&self, reason: CloseReason) {
        self.conn.close(reason);
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.conn.close(CloseReason::ClientGone);
        self.hub.unregister(&self.conn);
    }
}

impl futures_util::Stream for EventStream {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.conn.poll_chunk(cx)
    }
}

impl http_body::Body for EventStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.conn
            .poll_chunk(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}
