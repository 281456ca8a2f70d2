//! Reading a connection's first request head before anything else looks at it.
//!
//! Every connection must send a complete request head within `--header-timeout` of being
//! accepted, or it is answered `408` (if it sent anything) and closed: a client that trickles a
//! byte a second, or sends nothing at all, holds a file descriptor for a bounded time only,
//! however many of them there are. Reading the head here (rather than letting hyper read it)
//! also gives the plain-stream path ([`crate::plain_sse`]) the bytes it parses; hyper gets them
//! back through [`Prefixed`], as if it had read them itself.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// Largest request head (request line + headers) read here; larger gets 431 from hyper.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// What the first read found.
pub enum Head {
    /// The bytes read: a complete head (and possibly the start of a body), or
    /// [`MAX_HEAD_BYTES`] without its end (hyper answers that with 431).
    Read(BytesMut),
    /// The client closed, or the socket failed, before a head arrived.
    Gone,
    /// The head did not arrive in time; the client was told (408) if it had sent anything.
    TimedOut,
}

/// Reads until the end of the first request head, at most [`MAX_HEAD_BYTES`], within `timeout`.
pub async fn read_head<I: AsyncRead + AsyncWrite + Unpin>(io: &mut I, timeout: Duration) -> Head {
    let mut buf = BytesMut::with_capacity(2048);
    let read = async {
        // Where the search for the blank line goes on (each byte is looked at about once).
        let mut scanned = 0;
        loop {
            if head_complete(&buf[scanned..]) || buf.len() >= MAX_HEAD_BYTES {
                return true;
            }
            scanned = buf.len().saturating_sub(3);
            if buf.capacity() == buf.len() {
                buf.reserve((buf.len()).min(MAX_HEAD_BYTES - buf.len()).max(2048));
            }
            match io.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(_) => {}
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(true) => Head::Read(buf),
        Ok(false) => Head::Gone,
        Err(_) => {
            if !buf.is_empty() {
                let _ = tokio::time::timeout(Duration::from_secs(1), refuse_slow_head(io)).await;
            }
            Head::TimedOut
        }
    }
}

/// Has the buffer a whole head? (The HTTP/2 preface ends with a blank line too.)
fn head_complete(buf: &[u8]) -> bool {
    buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n")
}

async fn refuse_slow_head<I: AsyncWrite + Unpin>(io: &mut I) {
    let body = r#"{"error":"request_timeout","message":"the request head did not arrive within the header timeout (--header-timeout)"}"#;
    let answer = format!(
        "HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = io.write_all(answer.as_bytes()).await;
    let _ = io.shutdown().await;
}

/// An I/O object whose first reads return bytes already read from it.
pub struct Prefixed<I> {
    prefix: BytesMut,
    io: I,
}

impl<I> Prefixed<I> {
    pub fn new(prefix: BytesMut, io: I) -> Self {
        Self { prefix, io }
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Prefixed<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(out.remaining());
            out.put_slice(&self.prefix[..n]);
            self.prefix.advance(n);
            if self.prefix.is_empty() {
                // Give the memory back: the connection may live long.
                self.prefix = BytesMut::new();
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.io).poll_read(cx, out)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Prefixed<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads_end_at_the_first_blank_line() {
        assert!(head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(head_complete(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
        assert!(!head_complete(b"GET / HTTP/1.1\r\nHost: x\r\n"));
    }
}
