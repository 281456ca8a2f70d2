//! One subscriber stream: a bounded queue of shared frames between the hub and the socket.
//!
//! The hub pushes frames (never copying event bytes) and the HTTP layer polls [`EventStream`],
//! which drains everything queued into one chunk so a burst becomes one socket write. There is
//! no task per stream: the socket writer (hyper) polls the stream, and a push wakes it.
//!
//! A writer that owns a plain socket can also [attach](EventStream::attach_direct) it. Then an
//! event for a user whose stream has nothing queued and no write in flight is written by the
//! publishing thread itself, with one non-blocking `write`, as a hand-rolled server would: no
//! wake-up, no task hop. Dispatch only *claims* the socket (under the broker's and registry's
//! locks, so claims follow id order); the write happens after those locks are released
//! ([`DirectWrites`]), so publishers on other threads never wait behind a syscall. While a claim
//! is open, later frames queue behind it and the writer waits; whatever the socket does not take
//! goes to the front of the queue for the writer. Fan-out events (topics, broadcast) always go
//! through the queue, where bursts coalesce into one write per stream.
//!
//! The queue is bounded in frames and in bytes. A stream that falls behind past either bound is
//! closed as a slow consumer: its queue is dropped at once (bounding memory whatever the client
//! does) and it can reconnect with `Last-Event-ID` to resume from history.

use std::collections::VecDeque;
use std::io;
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

/// A socket the hub may write to from the publishing thread (see the module docs).
pub trait DirectWrite: Send + Sync {
    /// Writes what the socket takes now without blocking: the number of bytes written, or
    /// `ErrorKind::WouldBlock` if it takes nothing.
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize>;
}

struct QueueState {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    waker: Option<Waker>,
    /// Set once; the stream ends after draining (graceful reasons) or at once (slow consumer).
    closed: Option<CloseReason>,
    /// The socket, while direct writes are allowed.
    direct: Option<Arc<dyn DirectWrite>>,
    /// The writer holds a chunk it has not finished writing: a direct write now would overtake it.
    writer_busy: bool,
    /// A publisher has claimed the socket for one frame and will write it shortly.
    claimed: bool,
}

impl QueueState {
    /// Keeps `cx`'s waker for the next push or close (the task polling the stream waits).
    fn wake_later(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }
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
    /// The socket is claimed for this frame: write it with [`Conn::write_claimed`].
    Claimed,
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
                direct: None,
                writer_busy: false,
                claimed: false,
            }),
        }
    }

    /// Queues a frame, enforcing the bounds.
    pub fn push(&self, frame: &Arc<Frame>, now: u64) -> Push {
        self.offer(frame, now, false)
    }

    /// Claims the socket for a direct write if the stream has one and is idle (nothing queued,
    /// nothing being written); otherwise queues the frame like [`Conn::push`].
    pub fn claim_or_push(&self, frame: &Arc<Frame>, now: u64) -> Push {
        self.offer(frame, now, true)
    }

    fn offer(&self, frame: &Arc<Frame>, now: u64, may_claim: bool) -> Push {
        let (result, waker) = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return Push::Closed;
            }
            if may_claim
                && state.direct.is_some()
                && state.frames.is_empty()
                && !state.writer_busy
                && !state.claimed
            {
                state.claimed = true;
                drop(state);
                self.last_activity.store(now, Ordering::Relaxed);
                return Push::Claimed;
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

    /// Writes the frame this stream's socket was claimed for ([`Push::Claimed`]) and releases
    /// the claim. What the socket does not take goes to the front of the queue, for the writer.
    pub fn write_claimed(&self, frame: &Arc<Frame>) {
        let waker = {
            let mut state = self.state.lock();
            state.claimed = false;
            let dropped = state.closed == Some(CloseReason::SlowConsumer);
            let unsent = match &state.direct {
                // The stream is gone, or its queue was dropped: so is this frame.
                None => None,
                Some(_) if dropped => None,
                Some(direct) => match direct.try_write(&frame.bytes) {
                    Ok(written) if written > 0 => {
                        record_deliveries(std::iter::once(&**frame));
                        (written < frame.bytes.len())
                            .then(|| Frame::control(frame.bytes.slice(written..)))
                    }
                    // A full socket buffer, or a broken socket the writer will find out about.
                    _ => Some(frame.clone()),
                },
            };
            if let Some(unsent) = unsent {
                state.bytes += unsent.bytes.len();
                state.frames.push_front(unsent);
            }
            // The writer waited while the claim was open; it has work now, or an end to see.
            if state.frames.is_empty() && state.closed.is_none() {
                None
            } else {
                state.waker.take()
            }
        };
        if let Some(waker) = waker {
            waker.wake();
        }
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

    /// Takes everything queued as one chunk, or registers the waker. Being polled means the
    /// previous chunk has been written.
    fn poll_chunk(&self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        let mut state = self.state.lock();
        state.writer_busy = false;
        if state.frames.is_empty() || state.claimed {
            // An open claim goes first; its writer wakes us when it is done.
            if state.closed.is_some() && !state.claimed {
                state.direct = None;
                return Poll::Ready(None);
            }
            state.wake_later(cx);
            return Poll::Pending;
        }
        let frames = std::mem::take(&mut state.frames);
        let total = std::mem::replace(&mut state.bytes, 0);
        state.writer_busy = true;
        drop(state);
        record_deliveries(frames.iter().map(|f| &**f));
        Poll::Ready(Some(coalesce(frames, total)))
    }

    /// Ready if the stream was cut off as a slow consumer; otherwise wakes `cx` when anything
    /// happens to the stream (a frame queued, or the cut).
    fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock();
        if state.closed == Some(CloseReason::SlowConsumer) {
            return Poll::Ready(());
        }
        state.wake_later(cx);
        Poll::Pending
    }

    fn attach_direct(&self, socket: Arc<dyn DirectWrite>) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.direct = Some(socket);
        }
    }

    fn detach_direct(&self) {
        self.state.lock().direct = None;
    }
}

/// Socket writes claimed during dispatch, done once the dispatcher has released its locks.
#[derive(Default)]
pub(crate) struct DirectWrites(Vec<(Arc<Conn>, Arc<Frame>)>);

impl DirectWrites {
    pub fn claimed(&mut self, conn: &Arc<Conn>, frame: &Arc<Frame>) {
        self.0.push((conn.clone(), frame.clone()));
    }

    /// Writes every claimed frame, in the order claimed.
    pub fn write(&mut self) {
        for (conn, frame) in self.0.drain(..) {
            conn.write_claimed(&frame);
        }
    }
}

impl Drop for DirectWrites {
    /// A claim must never stay open (its stream would wait forever), whatever path drops this.
    fn drop(&mut self) {
        self.write();
    }
}

/// Joins queued frames into one buffer (one write).
fn coalesce(frames: VecDeque<Arc<Frame>>, total: usize) -> Bytes {
    if frames.len() == 1 {
        return frames[0].bytes.clone();
    }
    let mut buf = BytesMut::with_capacity(total);
    for frame in &frames {
        buf.extend_from_slice(&frame.bytes);
    }
    buf.freeze()
}

/// Counts the events among `frames` as delivered and records their latency.
fn record_deliveries<'a>(frames: impl Iterator<Item = &'a Frame>) {
    let mut delivered = 0u64;
    let mut now = None;
    let series = m::per_event();
    for published in frames.filter_map(|frame| frame.published_us) {
        delivered += 1;
        let now = *now.get_or_insert_with(unix_us);
        let seconds = now.saturating_sub(published) as f64 / 1e6;
        series.latency.record(seconds);
    }
    if delivered > 0 {
        series.delivered.increment(delivered);
    }
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

    /// Ready once the hub has cut the stream off as a slow consumer (its queue is dropped, so a
    /// writer stuck on a full socket can stop); until then `cx` is woken on any change.
    pub fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.poll_cut_off(cx)
    }

    /// Lets the hub write events for this stream's user straight to `socket` while nothing is
    /// queued (see the module docs). The caller must then write each chunk this stream yields
    /// completely before polling it again: being polled is how the stream learns the socket is
    /// free. The hub lets go of the socket when the stream ends or is dropped.
    pub fn attach_direct(&self, socket: Arc<dyn DirectWrite>) {
        self.conn.attach_direct(socket);
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.conn.detach_direct();
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
