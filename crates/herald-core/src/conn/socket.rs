//! Writing a stream to a plain HTTP/1.1 socket, without hyper: [`serve_socket`].
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer per connection for as long as it
//! lives. An SSE stream needs neither: after its request the client sends nothing, and every
//! write is bytes the hub has already encoded. With tens of thousands of idle streams those
//! buffers would be most of the server's memory, so the server hands a plain socket whose
//! request opened a stream to [`serve_socket`], which writes the response head and then each
//! chunk the stream yields with one vectored `write`, and attaches the socket to the hub for
//! direct writes.
//!
//! The body uses chunked transfer coding (RFC 9112 §7.1), written by hand: each write is the
//! chunk-size line, the stream's bytes and CRLF. Delimiting the body by closing the connection
//! would be simpler, but clients that read such a body "until close" (Python's `requests` and
//! `urllib3`, so `sseclient-py`) buffer it and deliver events late and in bunches. The framing
//! costs one small stack buffer per write; the frame bytes are still shared, never copied.
//!
//! Only what an idle stream needs is kept inline (the socket, the stream, the timeout); the
//! chunk being written and its write-timeout timer are boxed only while a write is blocked on a
//! full socket, because tens of thousands of these futures sit idle at once.

use std::future::Future;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::AsyncWrite;
use tokio::time::Sleep;

use super::direct::DirectWrite;
use super::queue::Next;
use super::{CloseReason, EventStream};

/// A socket a stream can be written to directly: tokio's TCP and Unix streams, and any wrapper
/// with the same non-blocking calls (the binary's TLS socket).
pub trait StreamSocket: AsyncWrite + Unpin + Send + Sync + 'static {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize>;
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>>;
    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize>;

    /// Bytes the socket accepted but has not handed to the kernel yet (a TLS socket keeps the
    /// records it could not send). A write is complete only once they are gone.
    fn pending_output(&self) -> usize {
        0
    }

    fn has_pending_output(&self) -> bool {
        self.pending_output() > 0
    }

    /// Sends the pending output; `Ready(Ok)` once there is none.
    fn poll_drain(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

macro_rules! stream_socket {
    ($socket:ty) => {
        impl StreamSocket for $socket {
            fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$socket>::poll_write_ready(self, cx)
            }
            fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                write_gathered(
                    bufs,
                    |buf| <$socket>::try_write(self, buf),
                    |bufs| <$socket>::try_write_vectored(self, bufs),
                )
            }
            fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
                <$socket>::poll_read_ready(self, cx)
            }
            fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
                <$socket>::try_read(self, buf)
            }
        }
    };
}
stream_socket!(tokio::net::TcpStream);
stream_socket!(tokio::net::UnixStream);

/// Writes up to this size are gathered into one buffer (see [`write_gathered`]).
const GATHER_BYTES: usize = 512;

/// Writes `bufs` with one `write` of a stack copy when they are small and in several pieces (a
/// typical event: its chunk-size line, a frame of a hundred bytes, CRLF), else with `writev`.
/// For a few hundred bytes the copy is cheaper than `writev`'s trip through the VFS layer
/// (importing the iovec, looking up the file): under a broadcast to 10,000 streams that trip
/// was 4 % of the server's time, and plain `send` is what the stream wrote before chunked framing.
/// Returns what the socket took of the concatenation, as `writev` does.
fn write_gathered(
    bufs: &[IoSlice<'_>],
    write: impl FnOnce(&[u8]) -> io::Result<usize>,
    write_vectored: impl FnOnce(&[IoSlice<'_>]) -> io::Result<usize>,
) -> io::Result<usize> {
    let total: usize = bufs.iter().map(|buf| buf.len()).sum();
    let mut pieces = bufs.iter().filter(|buf| !buf.is_empty());
    match (pieces.next(), pieces.next()) {
        (Some(only), None) => write(only),
        (Some(_), Some(_)) if total <= GATHER_BYTES => {
            let mut gathered = [0u8; GATHER_BYTES];
            let mut at = 0;
            for buf in bufs {
                gathered[at..at + buf.len()].copy_from_slice(buf);
                at += buf.len();
            }
            write(&gathered[..at])
        }
        // Nothing to write, or too much to copy.
        _ => write_vectored(bufs),
    }
}

/// How the socket writer behaves.
#[derive(Debug, Clone, Copy)]
pub struct SocketSettings {
    /// A write that makes no progress for this long ends the stream (its client stopped
    /// reading, and too few events arrive to overflow its queue).
    pub write_timeout: Duration,
}

/// Writes `head` (the response head, from the status line to the blank line, announcing
/// `transfer-encoding: chunked`) and then the stream, until the stream ends or the client goes
/// away. The socket is attached to the hub for direct writes.
pub fn serve_socket<S: StreamSocket>(
    stream: EventStream,
    socket: S,
    head: Bytes,
    settings: SocketSettings,
) -> SocketWriter<S> {
    let socket = Arc::new(Shared(socket));
    stream.attach_direct(socket.clone());
    SocketWriter {
        socket,
        stream,
        write_timeout: settings.write_timeout,
        blocked: Some(Box::new(Blocked::new(Chunk::raw(head)))),
        finishing: false,
    }
}

/// The last chunk of a chunked body.
const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// One write: a chunk of the body with its framing, or bytes that go out as they are.
struct Chunk {
    /// The chunk-size line (`<hex>\r\n`); empty for raw bytes.
    size_line: [u8; 18],
    size_len: u8,
    bytes: Bytes,
    /// `\r\n` after a chunk's data; empty for raw bytes.
    end: &'static [u8],
}

impl Chunk {
    fn body(bytes: Bytes) -> Self {
        if bytes.is_empty() {
            // A chunk of size 0 would end the body: write nothing instead.
            return Self::raw(bytes);
        }
        let mut size_line = [0u8; 18];
        let mut at = 0;
        let digits = bytes.len().checked_ilog2().map_or(0, |bits| bits / 4) + 1;
        for shift in (0..digits).rev() {
            size_line[at] = b"0123456789abcdef"[(bytes.len() >> (shift * 4)) & 0xf];
            at += 1;
        }
        size_line[at..at + 2].copy_from_slice(b"\r\n");
        Self {
            size_line,
            size_len: (at + 2) as u8,
            bytes,
            end: b"\r\n",
        }
    }

    fn raw(bytes: Bytes) -> Self {
        Self {
            size_line: [0; 18],
            size_len: 0,
            bytes,
            end: b"",
        }
    }

    fn len(&self) -> usize {
        usize::from(self.size_len) + self.bytes.len() + self.end.len()
    }

    /// The parts not yet written, `written` bytes in.
    fn slices(&self, written: usize) -> [IoSlice<'_>; 3] {
        let parts: [&[u8]; 3] = [
            &self.size_line[..usize::from(self.size_len)],
            &self.bytes,
            self.end,
        ];
        let mut skip = written;
        parts.map(|part| {
            let from = skip.min(part.len());
            skip -= from;
            IoSlice::new(&part[from..])
        })
    }

    /// The unwritten rest, as bytes that go out as they are.
    fn rest(&self, written: usize) -> Bytes {
        let mut rest = Vec::with_capacity(self.len().saturating_sub(written));
        for part in self.slices(written) {
            rest.extend_from_slice(&part);
        }
        rest.into()
    }
}

/// The socket, shared by the writer and the hub's direct writes.
struct Shared<S>(S);

impl<S: StreamSocket> DirectWrite for Shared<S> {
    fn try_write(&self, frame: &Bytes) -> io::Result<Option<Bytes>> {
        let chunk = Chunk::body(frame.clone());
        match self.0.try_write_vectored(&chunk.slices(0))? {
            0 => Err(io::ErrorKind::WriteZero.into()),
            // Taken, but not all sent: an empty rest still makes the writer finish the write
            // (and keeps further direct writes back until it has).
            n if n == chunk.len() && self.0.has_pending_output() => Ok(Some(Bytes::new())),
            n if n == chunk.len() => Ok(None),
            n => Ok(Some(chunk.rest(n))),
        }
    }
}

/// A write the socket has not taken all of yet.
struct Blocked {
    chunk: Chunk,
    written: usize,
    /// Started when the socket stops taking bytes; reset by progress.
    deadline: Option<Pin<Box<Sleep>>>,
    /// The socket's pending output when the deadline started: draining it is progress too.
    pending_at_deadline: usize,
}

impl Blocked {
    fn new(chunk: Chunk) -> Self {
        Self {
            chunk,
            written: 0,
            deadline: None,
            pending_at_deadline: 0,
        }
    }
}

/// The future [`serve_socket`] returns; it completes when the stream is over.
pub struct SocketWriter<S> {
    socket: Arc<Shared<S>>,
    stream: EventStream,
    write_timeout: Duration,
    blocked: Option<Box<Blocked>>,
    /// The last chunk is being written; then the socket is shut down.
    finishing: bool,
}

impl<S: StreamSocket> SocketWriter<S> {
    /// Writes `chunk` now if the socket takes it; keeps what it does not.
    fn write(&mut self, chunk: Chunk) -> io::Result<()> {
        let written = match self.socket.0.try_write_vectored(&chunk.slices(0)) {
            Ok(n) => n,
            Err(error) if error.kind() == io::ErrorKind::WouldBlock => 0,
            Err(error) => return Err(error),
        };
        if written < chunk.len() || self.socket.0.has_pending_output() {
            let mut blocked = Box::new(Blocked::new(chunk));
            blocked.written = written;
            self.blocked = Some(blocked);
        }
        Ok(())
    }

    /// Finishes the blocked write; `Ready(Err)` ends the stream.
    fn poll_blocked(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let Some(blocked) = &mut self.blocked else {
            return Poll::Ready(Ok(()));
        };
        let socket = &self.socket.0;
        loop {
            let ready = if blocked.written < blocked.chunk.len() {
                socket.poll_write_ready(cx)?
            } else {
                socket.poll_drain(cx)?
            };
            if ready.is_pending() {
                // A client that stops reading blocks the write once the socket buffers are full.
                // Its queue in the hub is bounded: past it, the hub cuts the stream off (and
                // wakes this task), and there is no point finishing the write.
                if self.stream.poll_cut_off(cx).is_ready() {
                    return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
                }
                let pending = socket.pending_output();
                if pending < blocked.pending_at_deadline {
                    blocked.deadline = None;
                }
                let timeout = self.write_timeout;
                let deadline = blocked.deadline.get_or_insert_with(|| {
                    blocked.pending_at_deadline = pending;
                    Box::pin(tokio::time::sleep(timeout))
                });
                if deadline.as_mut().poll(cx).is_ready() {
                    self.stream.close_write_timeout();
                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                }
                return Poll::Pending;
            }
            if blocked.written == blocked.chunk.len() {
                break;
            }
            match socket.try_write_vectored(&blocked.chunk.slices(blocked.written)) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    blocked.written += n;
                    blocked.deadline = None;
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        self.blocked = None;
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

    /// Closes the socket's write side after the last byte, now that the hub has let go of it.
    fn shut_down(&mut self, cx: &mut Context<'_>) {
        if let Some(socket) = Arc::get_mut(&mut self.socket) {
            // Shutting down a TCP socket's write side never waits.
            let _ = Pin::new(&mut socket.0).poll_shutdown(cx);
        }
    }
}

impl<S: StreamSocket> Future for SocketWriter<S> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        loop {
            if ready!(this.poll_blocked(cx)).is_err() {
                return Poll::Ready(());
            }
            if this.finishing {
                this.shut_down(cx);
                return Poll::Ready(());
            }
            if this.poll_client_closed(cx) {
                return Poll::Ready(());
            }
            // Polling the stream tells the hub the previous chunk is written.
            let chunk = match this.stream.poll_next_write(cx, false) {
                Poll::Ready(Some(Next::Body(bytes))) => Chunk::body(bytes),
                Poll::Ready(Some(Next::Raw(bytes))) => Chunk::raw(bytes),
                Poll::Ready(None)
                    if this.stream.close_reason() == Some(CloseReason::SlowConsumer) =>
                {
                    // Cut off: its queue was dropped, so the body is incomplete; just close.
                    return Poll::Ready(());
                }
                Poll::Ready(None) => {
                    this.finishing = true;
                    Chunk::raw(Bytes::from_static(LAST_CHUNK))
                }
                Poll::Pending => return Poll::Pending,
            };
            if this.write(chunk).is_err() {
                return Poll::Ready(());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(chunk: &Chunk, from: usize) -> Vec<u8> {
        chunk.slices(from).iter().flat_map(|s| s.to_vec()).collect()
    }

    #[test]
    fn chunks_are_framed_with_their_size_in_hex() {
        for (len, line) in [(1, "1"), (15, "f"), (16, "10"), (255, "ff"), (4096, "1000")] {
            let chunk = Chunk::body(Bytes::from(vec![b'x'; len]));
            let text = written(&chunk, 0);
            assert_eq!(&text[..line.len() + 2], format!("{line}\r\n").as_bytes());
            assert!(text.ends_with(b"x\r\n"));
            assert_eq!(text.len(), chunk.len());
        }
    }

    #[test]
    fn small_writes_in_pieces_are_gathered_into_one_write_and_large_ones_are_not() {
        let chunk = Chunk::body(Bytes::from_static(b"data: hi\n\n"));
        let mut sent = Vec::new();
        let taken = write_gathered(
            &chunk.slices(0),
            |buf| {
                sent = buf.to_vec();
                Ok(buf.len())
            },
            |_| panic!("a small chunk goes out with one write"),
        )
        .unwrap();
        assert_eq!((taken, sent), (chunk.len(), written(&chunk, 0)));

        let large = Chunk::body(Bytes::from(vec![b'x'; GATHER_BYTES]));
        let taken = write_gathered(
            &large.slices(0),
            |_| panic!("a large chunk is not copied"),
            |bufs| Ok(bufs.iter().map(|buf| buf.len()).sum()),
        )
        .unwrap();
        assert_eq!(taken, large.len());

        // What remains of a partial write is one piece: written as it is.
        let rest = written(&chunk, 3);
        let taken = write_gathered(
            &[IoSlice::new(&[]), IoSlice::new(&rest), IoSlice::new(&[])],
            |buf| Ok(buf.len()),
            |_| panic!("one piece needs no writev"),
        )
        .unwrap();
        assert_eq!(taken, rest.len());
    }

    #[test]
    fn the_rest_of_a_partial_write_continues_exactly_where_it_stopped() {
        let chunk = Chunk::body(Bytes::from_static(b"data: hi\n\n"));
        let whole = written(&chunk, 0);
        for at in 0..=whole.len() {
            let mut joined = whole[..at].to_vec();
            joined.extend_from_slice(&chunk.rest(at));
            assert_eq!(joined, whole, "split at {at}");
        }
        assert_eq!(written(&Chunk::raw(Bytes::from_static(b"abc")), 1), b"bc");
    }
}
