//! An SSE stream over TLS without hyper: [`TlsSocket`], a TLS connection `herald_core`'s socket
//! writer can write to, directly from publishers too, as it does to a plain socket.
//!
//! Served by hyper, an idle HTTP/1.1 stream over TLS cost about 43 KiB: hyper's read buffer (8
//! then 16 KiB) and write buffer, its connection future (4.6 KiB) and the connection task, on
//! top of rustls's own state. The stream needs none of hyper's part: after its request the
//! client sends nothing, and every write is bytes the hub has already framed. So once the
//! request head is read, a cleartext-style stream keeps only the rustls connection
//! ([`TlsCore`], on rustls's unbuffered API, which holds no buffer while idle) and the TCP
//! socket (`herald bench --scenario idle --tls-ca`).
//!
//! Writes gather their slices, encrypt them as full records and send what the socket takes at
//! once (`TlsCore::write_vectored_to`); what it does not take stays as pending output (at most
//! [`MAX_PENDING_OUTPUT`](crate::tls_conn::MAX_PENDING_OUTPUT), 64 KiB, per stream), and the
//! writer drains it before its next write (`StreamSocket::poll_drain`), so the hub never
//! overtakes bytes already on their way. Reads only look for the client's goodbye: a
//! `close_notify` alert, end of file, or an error ends the stream; anything else the client
//! sends after its request is read and dropped.

use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use herald_core::StreamSocket;
use parking_lot::Mutex;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

use crate::tls_conn::{TlsConn, TlsCore};

/// A TLS connection after its handshake and request, as a socket for `herald_core`.
pub struct TlsSocket {
    tcp: TcpStream,
    /// Locked by the writer and by a publisher writing directly, never across a wait.
    tls: Mutex<TlsCore>,
}

impl TlsSocket {
    pub fn new(conn: TlsConn) -> Self {
        let TlsConn { tcp, mut core } = conn;
        // The request is read; whatever else the client sent before it is not wanted.
        core.drop_plain();
        Self {
            tcp,
            tls: Mutex::new(core),
        }
    }
}

impl StreamSocket for TlsSocket {
    fn poll_write_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    /// Encrypts what it takes of `bufs` (nothing while older records are still pending) and
    /// sends what the socket takes.
    fn try_write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut tls = self.tls.lock();
        if !tls.flush_to(&self.tcp)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        tls.write_vectored_to(&self.tcp, bufs)
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_read_ready(cx)
    }

    /// `Ok(0)` once the client has closed; otherwise what it sent is dropped (`Ok(n)` with the
    /// bytes read from the socket) or there was nothing (`WouldBlock`).
    fn try_read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls.lock();
        let read = tls.read_from(&self.tcp)?;
        if read == 0 {
            return Ok(0);
        }
        tls.process()?;
        tls.drop_plain();
        // Answers to what came in (a key update) leave with the next write, or now.
        tls.flush_to(&self.tcp)?;
        if tls.peer_closed() {
            return Ok(0);
        }
        Ok(read)
    }

    fn pending_output(&self) -> usize {
        self.tls.lock().pending_output()
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.tls.lock().flush_to(&self.tcp)? {
                return Poll::Ready(Ok(()));
            }
            // Full: wait until the socket takes bytes again (`try_write` cleared its readiness).
            ready!(self.tcp.poll_write_ready(cx))?;
        }
    }
}

impl AsyncWrite for TlsSocket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_drain(cx))?;
            match self.try_write_vectored(&[IoSlice::new(buf)]) {
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => continue,
                written => return Poll::Ready(written),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_drain(cx)
    }

    /// Says goodbye (`close_notify`), sends what is pending, then closes the write side.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tls.get_mut().queue_goodbye()?;
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
