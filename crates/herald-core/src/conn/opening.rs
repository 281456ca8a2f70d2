//! What a stream sends before its live events: the opening, the replay, the position.
//!
//! A stream starts with the opening comment and `retry:` hint; a resuming stream then gets every
//! retained event it would have received after its `Last-Event-ID` (or `herald.missed` when that
//! point is too old or unknown); every stream then learns its position (an id-only block), so a
//! reconnect resumes from there even if no event reaches it first.
//!
//! The replay is not built when the stream registers. Registering only fixes its range, `(after,
//! upto]` where `upto` is the newest event dispatched at that moment (events after it reach the
//! stream's queue live), which is cheap under the registry's lock whatever the range. The bytes
//! are read from history when the writer asks for them, one piece of at most [`PIECE_BYTES`]
//! (or one event, if larger) at a time, so replaying 50 MiB takes no more memory than replaying
//! 50 KiB, nothing is ever one frame larger than a queue's bound, and a client that resumes and
//! disconnects in a loop costs a bounded amount per resume. Events older than the hub's window
//! come from the broker's shared history in pages of [`PAGE_EVENTS`].
//!
//! While the opening is being written, live events wait in the queue (and no direct write may
//! jump ahead of it); the writer turns to the queue once the opening is on the socket.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;

use super::{coalesce, CloseReason, Conn};
use crate::broker::{Broker, BrokerError};
use crate::event::{Frame, HubEvent};
use crate::hub::{Hub, Piece};
use crate::id::EventId;

/// Largest piece of replay written at once (one event larger than this is a piece of its own).
pub(crate) const PIECE_BYTES: usize = 64 << 10;
/// Most history entries looked at per piece, so a stream whose events are sparse in a long
/// history yields between pieces instead of scanning it all in one go.
pub(crate) const PIECE_SCAN: usize = 4096;
/// Events asked of the broker at a time, for history older than the hub's window.
pub(crate) const PAGE_EVENTS: usize = 512;

type Page = Pin<Box<dyn Future<Output = Result<Option<Vec<Arc<HubEvent>>>, BrokerError>> + Send>>;

/// The opening of one stream, consumed by its writer.
pub(crate) struct Opening {
    /// Bytes that go first: the opening comment, and `herald.missed` if the resume point is
    /// unknown.
    first: Option<Arc<Frame>>,
    /// A fresh stream's retained values, in id order.
    retained: VecDeque<Arc<Frame>>,
    replay: Option<Replay>,
    /// The id-only block that ends the opening; taken when written.
    position: Option<Arc<Frame>>,
}

/// The part of history a resuming stream must receive.
pub(crate) struct Replay {
    /// Events after this one are still to be sent.
    after: EventId,
    /// The last event to send (the newest dispatched when the stream registered).
    upto: EventId,
    /// What the client sent, echoed in `herald.missed`.
    resume_from: Box<str>,
    /// Where history older than the hub's window is kept, if anywhere.
    broker: Option<Arc<dyn Broker>>,
    page: Option<Page>,
    fetched: VecDeque<Arc<HubEvent>>,
}

impl Replay {
    pub fn new(
        after: EventId,
        upto: EventId,
        resume_from: &str,
        broker: Option<Arc<dyn Broker>>,
    ) -> Self {
        Self {
            after,
            upto,
            resume_from: resume_from.into(),
            broker,
            page: None,
            fetched: VecDeque::new(),
        }
    }
}

/// A piece being assembled.
#[derive(Default)]
struct PieceOut {
    frames: Vec<Arc<Frame>>,
    bytes: usize,
}

impl PieceOut {
    fn push(&mut self, frame: &Arc<Frame>) {
        self.bytes += frame.bytes.len();
        self.frames.push(frame.clone());
    }

    fn push_missed(&mut self, reason: &str, resume_from: &str) {
        crate::metrics::replay_missed();
        let mut bytes = Vec::with_capacity(96);
        herald_proto::write_missed(&mut bytes, reason, Some(resume_from));
        self.push(&Frame::control(bytes));
    }

    fn full(&self) -> bool {
        self.bytes >= PIECE_BYTES
    }
}

impl Opening {
    /// `first` goes out first, then the retained values, then the replay (if any), then an
    /// id-only block at `position`.
    pub fn new(
        first: Vec<u8>,
        retained: Vec<Arc<Frame>>,
        replay: Option<Replay>,
        position: EventId,
    ) -> Self {
        let mut id_only = Vec::with_capacity(32);
        // An id Herald assigned is always a valid SSE id.
        let _ = herald_proto::write_id_only(&mut id_only, &position.text());
        Self {
            first: Some(Frame::control(first)),
            retained: retained.into(),
            replay,
            position: Some(Frame::control(id_only)),
        }
    }

    /// The next piece to write; `Ready(None)` once everything is written (the writer polls again
    /// after the last piece, which is how the queue learns that piece is on the socket);
    /// `Err`: the stream must end for this reason.
    pub fn poll_piece(
        &mut self,
        hub: &Hub,
        conn: &Conn,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, CloseReason>>> {
        let mut out = PieceOut::default();
        if let Some(first) = self.first.take() {
            out.push(&first);
        }
        loop {
            if out.full() {
                break;
            }
            if let Some(value) = self.retained.pop_front() {
                out.push(&value);
                continue;
            }
            let Some(replay) = &mut self.replay else {
                if let Some(position) = self.position.take() {
                    out.push(&position);
                }
                break;
            };
            if replay.after >= replay.upto {
                self.replay = None;
                continue;
            }
            // Events fetched from the broker come before anything the hub's window holds.
            if let Some(event) = replay.fetched.pop_front() {
                if event.id > replay.after && event.id <= replay.upto {
                    if conn.is_reached_by(&event) {
                        out.push(&event.frame);
                    }
                    replay.after = event.id;
                }
                continue;
            }
            match hub.replay_piece(
                replay.after,
                replay.upto,
                conn,
                &mut out.frames,
                &mut out.bytes,
            ) {
                Piece::Advanced { to, scan_limited } => {
                    replay.after = to;
                    if scan_limited {
                        if out.frames.is_empty() {
                            // Let other tasks run before looking at the next stretch.
                            cx.waker().wake_by_ref();
                            return Poll::Pending;
                        }
                        break;
                    }
                }
                Piece::Older { floor } => {
                    let Some(broker) = replay.broker.clone() else {
                        out.push_missed("history_expired", &replay.resume_from);
                        self.replay = None;
                        continue;
                    };
                    let (after, upto) = (replay.after, replay.upto.min(floor));
                    let page = replay.page.get_or_insert_with(|| {
                        Box::pin(async move { broker.history(after, upto, PAGE_EVENTS).await })
                    });
                    let fetched = match page.as_mut().poll(cx) {
                        Poll::Pending if out.frames.is_empty() => return Poll::Pending,
                        Poll::Pending => break,
                        Poll::Ready(fetched) => fetched,
                    };
                    replay.page = None;
                    match fetched {
                        Ok(Some(events)) if events.is_empty() => replay.after = upto,
                        Ok(Some(events)) => replay.fetched = events.into(),
                        Ok(None) => {
                            out.push_missed("history_expired", &replay.resume_from);
                            self.replay = None;
                        }
                        Err(error) => {
                            tracing::warn!(%error, stream = conn.id, "cannot read history to replay; ending the stream so its client resumes later");
                            return Poll::Ready(Some(Err(CloseReason::HistoryUnavailable)));
                        }
                    }
                }
            }
        }
        if out.frames.is_empty() {
            return Poll::Ready(None);
        }
        let total = out.bytes;
        Poll::Ready(Some(Ok(coalesce(out.frames.iter(), total))))
    }
}
