//! A stream's bounded queue of shared frames, and the state the direct-write protocol needs.
//!
//! The hub pushes frames (references to bytes encoded once per event) and the stream's writer
//! takes everything queued as one chunk, so a burst becomes one socket write. The queue is
//! bounded in frames and bytes; a stream that falls behind past either bound is cut off as a
//! slow consumer: its queue is dropped at once, bounding memory whatever the client does, and it
//! can reconnect with `Last-Event-ID` to resume from history.
//!
//! Three flags keep direct writes ([`super::direct`]) from ever overtaking queued bytes; each is
//! set and cleared under the queue's lock, which is what makes the protocol race-free:
//!
//! * [`Writer::Busy`]: the writer holds a chunk it has not finished writing. It stays busy until
//!   it polls again, because polling is how it says the chunk is on the socket.
//! * `claimed`: a publisher holds a [`super::direct::Claim`] and will write one frame shortly;
//!   later frames queue behind it and the writer waits for it.
//! * `opening`: the stream's opening (preamble, replay) is not all written yet; until then
//!   everything queues.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;

use super::direct::DirectWrite;
use super::CloseReason;
use crate::event::Frame;
use crate::id::unix_us;
use crate::metrics as m;

/// Bounds of a stream's queue.
#[derive(Debug, Clone, Copy)]
pub struct QueueLimits {
    pub max_frames: usize,
    pub max_bytes: usize,
}

/// What the stream's writer is doing, as far as direct writes are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Writer {
    /// Waiting for work: the socket is free.
    Idle,
    /// Writing a chunk it took from the queue: nothing may be written before it finishes.
    Busy,
}

/// Result of offering a frame to a stream.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Push {
    Queued,
    /// The socket is claimed for this frame: the caller now holds a claim and must write it.
    Claimed,
    /// The stream is closed already; the frame was dropped.
    Closed,
    /// The queue was full: the stream is now closed as a slow consumer.
    Overflow,
}

/// What the writer should write next.
pub(crate) enum Next {
    /// The unwritten rest of a direct write, already in the socket's framing: write as is.
    Raw(Bytes),
    /// Queued frames, joined: one chunk of the stream's body.
    Body(Bytes),
}

struct State {
    frames: VecDeque<Arc<Frame>>,
    bytes: usize,
    /// The rest of a direct write the socket did not take (see [`Next::Raw`]). Boxed: it is
    /// rare, and inline it would put every stream's `Conn` in a larger allocation class.
    leftover: Option<Box<Bytes>>,
    waker: Option<Waker>,
    /// Set once; the stream ends after draining (graceful reasons) or at once (slow consumer).
    closed: Option<CloseReason>,
    /// The socket, while direct writes are allowed.
    socket: Option<Arc<dyn DirectWrite>>,
    writer: Writer,
    claimed: bool,
    opening: bool,
}

impl State {
    /// Keeps `cx`'s waker for the next push or close (the task polling the stream waits).
    fn wake_later(&mut self, cx: &Context<'_>) {
        match &self.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => self.waker = Some(cx.waker().clone()),
        }
    }

    fn may_claim(&self) -> bool {
        self.socket.is_some()
            && self.frames.is_empty()
            && self.leftover.is_none()
            && self.writer == Writer::Idle
            && !self.claimed
            && !self.opening
    }
}

/// The queue of one stream.
pub(crate) struct Queue {
    limits: QueueLimits,
    /// Hub clock (seconds) of the last frame queued or written; drives heartbeats.
    pub last_activity: AtomicU64,
    state: Mutex<State>,
}

impl Queue {
    pub fn new(limits: QueueLimits, now: u64) -> Self {
        Self {
            limits,
            last_activity: AtomicU64::new(now),
            state: Mutex::new(State {
                frames: VecDeque::new(),
                bytes: 0,
                leftover: None,
                waker: None,
                closed: None,
                socket: None,
                writer: Writer::Idle,
                claimed: false,
                opening: true,
            }),
        }
    }

    /// Queues a frame, enforcing the bounds.
    pub fn push(&self, frame: &Arc<Frame>, now: u64) -> Push {
        self.offer(frame, now, false)
    }

    /// Claims the socket for a direct write if the stream has one and nothing is queued or being
    /// written; otherwise queues the frame like [`Queue::push`].
    pub fn claim_or_push(&self, frame: &Arc<Frame>, now: u64) -> Push {
        self.offer(frame, now, true)
    }

    fn offer(&self, frame: &Arc<Frame>, now: u64, may_claim: bool) -> Push {
        let (result, waker) = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return Push::Closed;
            }
            if may_claim && state.may_claim() {
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
                state.leftover = None;
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

    /// Writes the frame the socket was claimed for and releases the claim. What the socket does
    /// not take is left for the writer, before anything queued.
    pub fn write_claimed(&self, frame: &Arc<Frame>) {
        let waker = {
            let mut state = self.state.lock();
            state.claimed = false;
            match &state.socket {
                // The stream is gone, or its queue was dropped: so is this frame.
                None => {}
                Some(_) if state.closed == Some(CloseReason::SlowConsumer) => {}
                Some(socket) => match socket.try_write(&frame.bytes) {
                    Ok(rest) => {
                        record_deliveries(std::iter::once(&**frame));
                        state.leftover = rest.map(Box::new);
                    }
                    // A full socket buffer, or a broken socket the writer will find out about.
                    Err(_) => {
                        state.bytes += frame.bytes.len();
                        state.frames.push_front(frame.clone());
                    }
                },
            }
            // The writer waited while the claim was open; it has work now, or an end to see.
            if state.frames.is_empty() && state.leftover.is_none() && state.closed.is_none() {
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
    /// Returns false if it had ended already (for another reason).
    pub fn close(&self, reason: CloseReason) -> bool {
        let waker = {
            let mut state = self.state.lock();
            if state.closed.is_some() {
                return false;
            }
            state.closed = Some(reason);
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// The opening is written: from now on the queue feeds the writer and direct writes may
    /// start. Called by the writer when it polls after the opening's last piece, so that piece
    /// is on the socket already.
    pub fn opened(&self) {
        self.state.lock().opening = false;
    }

    /// Takes what the writer should write next, or registers the waker. Being polled means the
    /// previous chunk has been written. `Ready(None)`: the stream has ended.
    ///
    /// A writer with framing of its own (chunked HTTP/1.1) gets the rest of a direct write as
    /// [`Next::Raw`], by itself; with `join_raw` (a writer that adds no framing) it comes joined
    /// with whatever is queued after it, as one [`Next::Body`].
    pub fn poll_next(&self, cx: &mut Context<'_>, join_raw: bool) -> Poll<Option<Next>> {
        let mut state = self.state.lock();
        state.writer = Writer::Idle;
        if state.claimed {
            // An open claim goes first; its writer wakes us when it is done.
            state.wake_later(cx);
            return Poll::Pending;
        }
        let raw = state.leftover.take().map(|raw| *raw);
        if let Some(raw) = &raw {
            if !join_raw || state.frames.is_empty() {
                state.writer = Writer::Busy;
                return Poll::Ready(Some(Next::Raw(raw.clone())));
            }
        }
        if state.frames.is_empty() {
            if state.closed.is_some() {
                state.socket = None;
                return Poll::Ready(None);
            }
            state.wake_later(cx);
            return Poll::Pending;
        }
        let frames = std::mem::take(&mut state.frames);
        let total = std::mem::replace(&mut state.bytes, 0);
        state.writer = Writer::Busy;
        drop(state);
        record_deliveries(frames.iter().map(|f| &**f));
        let body = match raw {
            None => coalesce(frames.iter(), total),
            Some(raw) => {
                let mut joined = BytesMut::with_capacity(raw.len() + total);
                joined.extend_from_slice(&raw);
                frames
                    .iter()
                    .for_each(|f| joined.extend_from_slice(&f.bytes));
                joined.freeze()
            }
        };
        Poll::Ready(Some(Next::Body(body)))
    }

    /// Ready if the stream was cut off as a slow consumer; otherwise wakes `cx` when anything
    /// happens to the stream (a frame queued, or the cut).
    pub fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut state = self.state.lock();
        if state.closed == Some(CloseReason::SlowConsumer) {
            return Poll::Ready(());
        }
        state.wake_later(cx);
        Poll::Pending
    }

    /// Wakes the writer when the stream is cut off or closed (used while the opening is being
    /// written, which does not poll the queue).
    pub fn watch_close(&self, cx: &mut Context<'_>) -> Option<CloseReason> {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.wake_later(cx);
        }
        state.closed
    }

    pub fn attach(&self, socket: Arc<dyn DirectWrite>) {
        let mut state = self.state.lock();
        if state.closed.is_none() {
            state.socket = Some(socket);
        }
    }

    pub fn detach(&self) {
        self.state.lock().socket = None;
    }
}

/// Joins frames into one buffer (one write); a single frame is shared, not copied.
pub(crate) fn coalesce<'a>(
    frames: impl ExactSizeIterator<Item = &'a Arc<Frame>>,
    total: usize,
) -> Bytes {
    let mut frames = frames.peekable();
    if frames.len() == 1 {
        if let Some(only) = frames.next() {
            return only.bytes.clone();
        }
    }
    let mut buf = BytesMut::with_capacity(total);
    for frame in frames {
        buf.extend_from_slice(&frame.bytes);
    }
    buf.freeze()
}

/// Counts the events among `frames` as delivered and records their latency.
pub(crate) fn record_deliveries<'a>(frames: impl Iterator<Item = &'a Frame>) {
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
