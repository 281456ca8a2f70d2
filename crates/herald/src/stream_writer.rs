//! The task that writes one SSE stream to its plain socket, written as a small hand-made future.
//!
//! Tens of thousands of these sit idle at once, so their size is most of what an idle stream
//! costs. As an `async fn` with a `select!` and a `timeout` around each write, the task was about
//! 600 bytes: the compiler keeps room for every await point's state, including a timer entry
//! that only a blocked write needs. Here the state is the socket, the stream, the chunk being
//! written and, only while a write is blocked, a boxed timer: about 140 bytes.
//!
//! The socket is shared with the hub, which writes events for the stream's user directly while
//! nothing is queued (`herald_core::DirectWrite`); the stream tells the hub when this task is
//! busy, so the two never interleave.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::{Buf, Bytes};
use futures_util::Stream;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Sleep;

use crate::routes::events::LoggedStream;

/// The stream's socket, shared by its writer task and the hub's direct writes.
pub struct Socket(pub TcpStream);

impl herald_core::DirectWrite for Socket {
    fn try_write(&self, bytes: &[u8]) -> io::Result<usize> {
        self.0.try_write(bytes)
    }
}

/// Writes the stream to the socket until the hub ends it or the client goes away.
pub struct StreamWriter {
    socket: Arc<Socket>,
    stream: LoggedStream,
    /// A write that makes no progress for this long ends the stream.
    write_timeout: Duration,
    /// What is left of the chunk being written.
    unsent: Option<Bytes>,
    /// Runs while a write is blocked on a full socket.
    deadline: Option<Pin<Box<Sleep>>>,
    /// Held until the stream ends, so shutdown can wait for every stream.
    _alive: mpsc::Sender<()>,
}

impl StreamWriter {
    /// Takes over a socket whose response head is written, and attaches it to the hub.
    pub fn new(
        socket: TcpStream,
        stream: LoggedStream,
        write_timeout: Duration,
        alive: mpsc::Sender<()>,
    ) -> Self {
        let socket = Arc::new(Socket(socket));
        stream.attach_direct(socket.clone());
        Self {
            socket,
            stream,
            write_timeout,
            unsent: None,
            deadline: None,
            _alive: alive,
        }
    }

    /// Writes what is left of the current chunk; `Ready(Err)` ends the stream.
    fn poll_unsent(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(unsent) = &mut self.unsent else {
            return Poll::Ready(Ok(()));
        };
        let socket = &self.socket.0;
        while unsent.has_remaining() {
            if socket.poll_write_ready(cx)?.is_pending() {
                // A client that stops reading blocks the write once the socket buffers are full.
                // Its queue in the hub is bounded: past it, the hub cuts the stream off (and
                // wakes this task), and there is no point finishing the write.
                if self.stream.poll_cut_off(cx).is_ready() {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                // A slow trickle of events might never fill the queue, so a write that makes no
                // progress for the timeout also ends the stream.
                let timeout = self.write_timeout;
                let deadline = self
                    .deadline
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if deadline.as_mut().poll(cx).is_ready() {
                    self.stream.close_write_timeout();
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                return Poll::Pending;
            }
            match socket.try_write(unsent.chunk()) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(written) => {
                    unsent.advance(written);
                    self.deadline = None;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        self.unsent = None;
        Poll::Ready(Ok(()))
    }

    /// A stream's client sends nothing after its request, so a readable socket means it closed
    /// (or sent something this ignores: pipelined requests on a stream are never served).
    fn poll_client_closed(&self, cx: &mut Context<'_>) -> bool {
        let socket = &self.socket.0;
        let mut scratch = [0u8; 64];
        loop {
            match socket.poll_read_ready(cx) {
                Poll::Pending => return false,
                Poll::Ready(Err(_)) => return true,
                Poll::Ready(Ok(())) => match socket.try_read(&mut scratch) {
                    Ok(0) => return true,
                    Ok(_) => continue,
                    Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                    Err(_) => return true,
                },
            }
        }
    }

    /// Closes the socket after the last byte, now that the hub has let go of it.
    fn finish(&mut self, cx: &mut Context<'_>) {
        if let Some(socket) = Arc::get_mut(&mut self.socket) {
            // Shutting down a TCP socket's write side never waits.
            let _ = Pin::new(&mut socket.0).poll_shutdown(cx);
        }
    }
}

impl Future for StreamWriter {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if ready!(this.poll_unsent(cx)).is_err() || this.poll_client_closed(cx) {
                return Poll::Ready(());
            }
            // Polling the stream tells the hub the previous chunk is written (see `attach_direct`).
            match Pin::new(&mut this.stream).poll_next(cx) {
                Poll::Ready(Some(chunk)) => this.unsent = Some(chunk),
                Poll::Ready(None) => {
                    this.finish(cx);
                    return Poll::Ready(());
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
