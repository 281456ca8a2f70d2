//! An SSE stream over TLS without hyper: [`TlsSocket`], a TLS connection `herald_core`'s socket
//! writer can write to, directly from publishers too, as it does to a plain socket.
//!
//! Served by hyper, an idle HTTP/1.1 stream over TLS cost about 43 KiB: hyper's read buffer (8
//! then 16 KiB) and write buffer, its connection future (4.6 KiB) and the connection task, on
//! top of rustls's own state. The stream needs none of hyper's part: after its request the
//! client sends nothing, and every write is bytes the hub has already framed. So once the
//! request head is read, a cleartext-style stream takes the rustls connection out of
//! tokio-rustls and keeps only it and the TCP socket (`herald bench --scenario idle --tls`).
//!
//! Writes encrypt into rustls's outgoing buffer and send what the socket takes at once; what it
//! does not take stays there as pending output (at most rustls's buffer limit, 64 KiB, per
//! stream), and the writer drains it before its next write (`StreamSocket::poll_drain`), so the
//! hub never overtakes bytes already on their way. Reads only look for the client's goodbye:
//! a `close_notify` alert, end of file, or an error ends the stream; anything else the client
//! sends after its request is read and dropped.

use std::io::{self, IoSlice, Read, Write};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use herald_core::StreamSocket;
use parking_lot::Mutex;
use rustls::ServerConnection;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;

/// A TLS connection after its handshake and request, as a socket for `herald_core`.
pub struct TlsSocket {
    tcp: TcpStream,
    /// Locked by the writer and by a publisher writing directly, never across a wait.
    tls: Mutex<ServerConnection>,
    /// `close_notify` has been queued (shutting down may take more than one poll).
    said_goodbye: bool,
}

impl TlsSocket {
    pub fn new(stream: tokio_rustls::server::TlsStream<TcpStream>) -> Self {
        let (tcp, tls) = stream.into_inner();
        Self {
            tcp,
            tls: Mutex::new(tls),
            said_goodbye: false,
        }
    }

    /// Sends pending records until none are left (`true`) or the socket is full (`false`).
    fn flush(&self, tls: &mut ServerConnection) -> io::Result<bool> {
        while tls.wants_write() {
            match tls.write_tls(&mut Kernel(&self.tcp)) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        Ok(true)
    }
}

/// The TCP socket as blocking-style `Read`/`Write` for rustls, without blocking: a full or
/// empty socket is `WouldBlock`.
struct Kernel<'a>(&'a TcpStream);

impl Write for Kernel<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }
    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for Kernel<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.try_read(buf)
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
        if !self.flush(&mut tls)? {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        let taken = tls.writer().write_vectored(bufs)?;
        self.flush(&mut tls)?;
        Ok(taken)
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp.poll_read_ready(cx)
    }

    /// `Ok(0)` once the client has closed; otherwise what it sent is dropped (`Ok(n)` with the
    /// bytes read from the socket) or there was nothing (`WouldBlock`).
    fn try_read(&self, _buf: &mut [u8]) -> io::Result<usize> {
        let mut tls = self.tls.lock();
        let read = tls.read_tls(&mut Kernel(&self.tcp))?;
        if read == 0 {
            return Ok(0);
        }
        let state = tls
            .process_new_packets()
            .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
        if state.peer_has_closed() {
            return Ok(0);
        }
        let mut sink = [0u8; 256];
        loop {
            match tls.reader().read(&mut sink) {
                Ok(0) => return Ok(0),
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(read),
                Err(error) => return Err(error),
            }
        }
    }

    fn has_pending_output(&self) -> bool {
        self.tls.lock().wants_write()
    }

    fn poll_drain(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.flush(&mut self.tls.lock())? {
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
        if !self.said_goodbye {
            self.said_goodbye = true;
            self.tls.get_mut().send_close_notify();
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
