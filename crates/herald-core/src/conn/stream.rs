//! [`EventStream`]: a subscriber's stream of SSE bytes, as an HTTP body.
//!
//! It implements both [`futures_util::Stream`] and [`http_body::Body`], so an axum handler can
//! return it as `axum::body::Body::new(stream)` and hyper writes it (HTTP/1.1 or HTTP/2, plain
//! or TLS). Plain HTTP/1.1 sockets can instead be handed to [`super::serve_socket`]. Either way
//! each poll first finishes the [opening](super::opening), then drains the queue; dropping the
//! stream takes it out of the hub and reports its end to the hub's [`StreamEndHook`].

use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;

use super::direct::DirectWrite;
use super::queue::Next;
use super::{CloseReason, Conn, Opening};
use crate::hub::Hub;
use crate::metrics as m;

/// How a stream ended, for the hub's [`StreamEndHook`].
#[derive(Debug, Clone, Copy)]
pub struct StreamEnd<'a> {
    /// The hub-assigned stream id.
    pub id: u64,
    pub user: Option<&'a str>,
    pub reason: CloseReason,
    /// How long it was open.
    pub duration: Duration,
}

/// Called once for every stream when it ends (the binary logs it).
#[derive(Clone)]
pub struct StreamEndHook(pub Arc<dyn Fn(&StreamEnd<'_>) + Send + Sync>);

impl fmt::Debug for StreamEndHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StreamEndHook")
    }
}

/// A subscriber's stream of SSE bytes. Dropping it removes the stream from the hub.
pub struct EventStream {
    conn: Arc<Conn>,
    hub: Arc<Hub>,
    /// Until the opening is written; then `None` (an idle stream carries nothing more).
    opening: Option<Box<Opening>>,
}

impl EventStream {
    pub(crate) fn new(conn: Arc<Conn>, hub: Arc<Hub>, opening: Opening) -> Self {
        Self {
            conn,
            hub,
            opening: Some(Box::new(opening)),
        }
    }

    /// The hub-assigned stream id (unique within this process).
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// Why the stream ended, or `None` while it is open (or if the client went away).
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.conn.queue.close_reason()
    }

    /// Ends the stream from the connection's side, recording why.
    pub fn close(&self, reason: CloseReason) {
        self.conn.close(reason);
    }

    /// Ends the stream because its client took no bytes for the write timeout; counted with slow
    /// consumers (unless the hub had ended it already, which counted it then).
    pub fn close_write_timeout(&self) {
        if self.conn.close(CloseReason::WriteTimeout) {
            metrics::counter!(m::SLOW_CONSUMER_DISCONNECTS).increment(1);
        }
    }

    /// Ready once the hub has cut the stream off as a slow consumer (its queue is dropped, so a
    /// writer stuck on a full socket can stop); until then `cx` is woken on any change.
    pub fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.conn.queue.poll_cut_off(cx)
    }

    /// Lets the hub write events for this stream's user straight to `socket` while nothing is
    /// queued ([`DirectWrite`]). Whoever polls the stream must then write each chunk it yields
    /// completely before polling again: being polled is how the stream learns the socket is
    /// free. The hub lets go of the socket when the stream ends or is dropped.
    pub fn attach_direct(&self, socket: Arc<dyn DirectWrite>) {
        self.conn.queue.attach(socket);
    }

    /// The next thing to write: a piece of the opening, the rest of a direct write, or queued
    /// frames. `Ready(None)` when the stream has ended. `join_raw`: see [`super::Queue::poll_next`].
    pub(crate) fn poll_next_write(
        &mut self,
        cx: &mut Context<'_>,
        join_raw: bool,
    ) -> Poll<Option<Next>> {
        if let Some(opening) = &mut self.opening {
            match self.conn.queue.watch_close(cx) {
                // Cut off, or ended for good: the rest of the opening is moot.
                Some(CloseReason::SlowConsumer | CloseReason::ClientGone) => {
                    self.opening = None;
                }
                // Ending gracefully (shutdown, token expiry...): the queue has the goodbye.
                Some(_) => {
                    self.opening = None;
                    self.conn.queue.opened();
                }
                None => match opening.poll_piece(&self.hub, &self.conn, cx) {
                    Poll::Ready(Some(Ok(piece))) => return Poll::Ready(Some(Next::Body(piece))),
                    Poll::Ready(Some(Err(reason))) => {
                        self.opening = None;
                        self.conn.close(reason);
                        self.conn.queue.opened();
                    }
                    Poll::Ready(None) => {
                        self.opening = None;
                        self.conn.queue.opened();
                    }
                    Poll::Pending => return Poll::Pending,
                },
            }
        }
        self.conn.queue.poll_next(cx, join_raw)
    }

    /// The next chunk for a writer without framing of its own (hyper, tests).
    fn poll_chunk(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.poll_next_write(cx, true).map(|next| {
            next.map(|next| match next {
                Next::Body(bytes) | Next::Raw(bytes) => bytes,
            })
        })
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.conn.queue.detach();
        self.conn.close(CloseReason::ClientGone);
        self.hub.unregister(&self.conn);
    }
}

impl futures_util::Stream for EventStream {
    type Item = Bytes;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        self.get_mut().poll_chunk(cx)
    }
}

impl http_body::Body for EventStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.get_mut()
            .poll_chunk(cx)
            .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes))))
    }
}
