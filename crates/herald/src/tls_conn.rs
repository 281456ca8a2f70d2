//! A TLS connection on rustls's unbuffered API, whose buffers are Herald's: [`TlsConn`] for the
//! handshake, the request head and hyper, and [`TlsCore`], the state it shares with a stream's
//! [`TlsSocket`](crate::tls_socket::TlsSocket).
//!
//! Why not tokio-rustls: rustls's buffered connection keeps a 4 KiB buffer for incoming records
//! for as long as the connection lives, even when nothing is in it; on an idle SSE stream that
//! was almost half of what the stream cost (`herald bench --scenario idle --tls-ca`). Here the
//! incoming and outgoing records live in plain `Vec`s that are freed whenever they are empty, so
//! an idle stream holds only rustls's connection state.
//!
//! Bounds: incoming records are read 4 KiB at a time into a buffer of at most 80 KiB (a
//! handshake message, which rustls caps at 64 KiB, or a partial record and one read); decrypted
//! bytes wait until read, at most one read's worth; encrypted output waits until the socket
//! takes it, at most [`MAX_PENDING_OUTPUT`] plus one 16 KiB record (writers wait for it to
//! drain before they encrypt more).

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{
    AppDataRecord, ConnectionState, EncodeError, EncryptError, InsufficientSizeError,
};
use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

/// Encrypted bytes a connection holds for the socket before writers must wait (as rustls's
/// buffered connection's default limit).
pub const MAX_PENDING_OUTPUT: usize = 64 * 1024;
/// Bytes read from the socket at a time.
const READ_SIZE: usize = 4096;
/// Incoming bytes held at most: a handshake message rustls accepts (64 KiB) with the headers
/// of the records it spans, or a partial record (at most 18 KiB) and one read after it.
const MAX_INCOMING: usize = 80 * 1024;
/// Plaintext encrypted per call, so one write cannot push the output far past its bound.
const MAX_ENCRYPT: usize = 16 * 1024;

thread_local! {
    /// This thread's buffers for [`TlsCore::write_vectored_to`]: a write's plaintext, and the
    /// records encrypted from it.
    static SCRATCH: RefCell<(Vec<u8>, Vec<u8>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// What [`TlsCore::process`] got to.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More records from the peer are needed (the handshake, or a partial record).
    NeedsInput,
    /// The handshake is done and every record in hand is processed.
    Ready,
    /// The peer said goodbye (`close_notify`), or the connection is closed.
    Closed,
}

/// The rustls connection with its records: the part a stream keeps.
pub struct TlsCore {
    conn: UnbufferedServerConnection,
    /// Records from the peer; `incoming[..used]` is filled.
    incoming: Vec<u8>,
    used: usize,
    /// Encrypted records for the peer; `outgoing[sent..]` is not on the socket yet.
    outgoing: Vec<u8>,
    sent: usize,
    /// Decrypted bytes not read yet; `plain[taken..]` is left.
    plain: Vec<u8>,
    taken: usize,
    peer_closed: bool,
    said_goodbye: bool,
}

fn invalid(error: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error.to_string())
}

/// How a rustls call that writes records into a slice failed.
enum Unwritten {
    /// The slice was too small: this many bytes are needed.
    Room(usize),
    Failed(io::Error),
}

impl From<EncodeError> for Unwritten {
    fn from(error: EncodeError) -> Self {
        match error {
            EncodeError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Unwritten::Room(required_size)
            }
            other => Unwritten::Failed(invalid(other)),
        }
    }
}

impl From<EncryptError> for Unwritten {
    fn from(error: EncryptError) -> Self {
        match error {
            EncryptError::InsufficientSize(InsufficientSizeError { required_size }) => {
                Unwritten::Room(required_size)
            }
            other => Unwritten::Failed(invalid(other)),
        }
    }
}

/// Appends to `out` the records `write` puts into the room it is given (first `room` bytes,
/// then as much as rustls asks for).
fn append(
    out: &mut Vec<u8>,
    room: usize,
    mut write: impl FnMut(&mut [u8]) -> Result<usize, Unwritten>,
) -> io::Result<()> {
    let len = out.len();
    out.resize(len + room, 0);
    loop {
        match write(&mut out[len..]) {
            Ok(written) => {
                out.truncate(len + written);
                return Ok(());
            }
            Err(Unwritten::Room(required)) => out.resize(len + required, 0),
            Err(Unwritten::Failed(error)) => {
                out.truncate(len);
                return Err(error);
            }
        }
    }
}

/// Keeps a decrypted record rustls handed out in `plain`; `false` when there was none left.
fn keep(
    plain: &mut Vec<u8>,
    record: Option<Result<AppDataRecord<'_>, rustls::Error>>,
) -> io::Result<bool> {
    match record {
        Some(record) => {
            plain.extend_from_slice(record.map_err(invalid)?.payload);
            Ok(true)
        }
        None => Ok(false),
    }
}

impl TlsCore {
    fn new(config: Arc<ServerConfig>) -> io::Result<Self> {
        Ok(Self {
            conn: UnbufferedServerConnection::new(config).map_err(invalid)?,
            incoming: Vec::new(),
            used: 0,
            outgoing: Vec::new(),
            sent: 0,
            plain: Vec::new(),
            taken: 0,
            peer_closed: false,
            said_goodbye: false,
        })
    }

    /// The protocol ALPN chose (`h2`, `http/1.1`), once the handshake is done.
    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.conn.alpn_protocol()
    }

    /// Runs rustls over the records in hand: handshake messages answered into the output,
    /// application data decrypted into the plaintext, until it needs more input or is ready.
    pub fn process(&mut self) -> io::Result<Progress> {
        loop {
            let status = self
                .conn
                .process_tls_records(&mut self.incoming[..self.used]);
            let discard = status.discard;
            let state = status.state.map_err(invalid)?;
            let mut progress = None;
            match state {
                ConnectionState::ReadTraffic(mut traffic) => {
                    while keep(&mut self.plain, traffic.next_record())? {}
                }
                // Not offered (no `max_early_data_size`), so never expected; taken as data.
                ConnectionState::ReadEarlyData(mut early) => {
                    while keep(&mut self.plain, early.next_record())? {}
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    append(&mut self.outgoing, READ_SIZE, |out| Ok(encode.encode(out)?))?
                }
                // The output is sent in order by whoever flushes next; rustls needs only to
                // know it is taken care of.
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::BlockedHandshake => progress = Some(Progress::NeedsInput),
                ConnectionState::WriteTraffic(_) => {
                    progress = Some(if self.peer_closed {
                        Progress::Closed
                    } else {
                        Progress::Ready
                    })
                }
                ConnectionState::PeerClosed | ConnectionState::Closed => {
                    self.peer_closed = true;
                    progress = Some(Progress::Closed);
                }
                _ => return Err(invalid("unexpected TLS connection state")),
            }
            self.discard(discard);
            if let Some(progress) = progress {
                // A partial record waits for the rest of it.
                if progress == Progress::Ready && self.used > 0 {
                    return Ok(Progress::NeedsInput);
                }
                return Ok(progress);
            }
        }
    }

    fn discard(&mut self, discard: usize) {
        if discard == 0 {
            return;
        }
        self.incoming.copy_within(discard..self.used, 0);
        self.used -= discard;
        if self.used == 0 {
            // The idle state: nothing buffered.
            self.incoming = Vec::new();
        }
    }

    /// Reads what the socket has into the incoming records: `Ok(0)` at end of file.
    pub fn read_from(&mut self, tcp: &TcpStream) -> io::Result<usize> {
        if self.used >= MAX_INCOMING {
            return Err(invalid("TLS record too large"));
        }
        let want = (self.used + READ_SIZE).min(MAX_INCOMING);
        if self.incoming.len() < want {
            self.incoming.resize(want, 0);
        }
        let read = tcp.try_read(&mut self.incoming[self.used..]);
        if let Ok(n) = read {
            self.used += n;
        }
        if self.used == 0 {
            self.incoming = Vec::new();
        }
        read
    }

    /// Sends pending output until none is left (`true`) or the socket is full (`false`).
    pub fn flush_to(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        let all_sent = self.send_pending(tcp)?;
        if all_sent {
            self.outgoing = Vec::new();
        }
        Ok(all_sent)
    }

    /// [`flush_to`](Self::flush_to), keeping the (empty) buffer.
    fn send_pending(&mut self, tcp: &TcpStream) -> io::Result<bool> {
        while self.sent < self.outgoing.len() {
            match tcp.try_write(&self.outgoing[self.sent..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(error) => return Err(error),
            }
        }
        self.outgoing.clear();
        self.sent = 0;
        Ok(true)
    }

    /// A stream's write, with nothing pending: `bufs` (at most [`MAX_PENDING_OUTPUT`] bytes of
    /// them) gathered and encrypted as full records, in this thread's scratch buffers, and sent
    /// as far as the socket takes them; the rest stays pending. How many bytes it took.
    ///
    /// Gathered, because a chunked SSE write is three slices (size, frame, CRLF) and a record
    /// per slice would triple the records and their AEAD work; in scratch buffers, so a write
    /// the socket takes whole allocates nothing and leaves the connection holding no buffer.
    pub fn write_vectored_to(
        &mut self,
        tcp: &TcpStream,
        bufs: &[IoSlice<'_>],
    ) -> io::Result<usize> {
        SCRATCH.with(|scratch| {
            let mut scratch = scratch.borrow_mut();
            let (plain, records) = &mut *scratch;
            plain.clear();
            for buf in bufs {
                let room = MAX_PENDING_OUTPUT - plain.len();
                plain.extend_from_slice(&buf[..buf.len().min(room)]);
            }
            // The records go into the thread's buffer (the caller flushed: nothing is pending).
            debug_assert_eq!(self.pending_output(), 0);
            self.outgoing = std::mem::take(records);
            self.outgoing.clear();
            self.sent = 0;
            let mut taken = 0;
            while taken < plain.len() {
                taken += self.encrypt(&plain[taken..])?;
            }
            if self.send_pending(tcp)? {
                // All sent: the buffer goes back to the thread for the next write. Otherwise
                // the rest stays with this connection until it drains.
                *records = std::mem::take(&mut self.outgoing);
            }
            Ok(taken)
        })
    }

    /// Encrypted bytes not on the socket yet.
    pub fn pending_output(&self) -> usize {
        self.outgoing.len() - self.sent
    }

    /// Encrypts up to [`MAX_ENCRYPT`] bytes of `data` into the output; how many it took.
    pub fn encrypt(&mut self, data: &[u8]) -> io::Result<usize> {
        let data = &data[..data.len().min(MAX_ENCRYPT)];
        loop {
            let status = self.conn.process_tls_records(&mut []);
            let state = status.state.map_err(invalid)?;
            match state {
                ConnectionState::WriteTraffic(mut traffic) => {
                    append(&mut self.outgoing, data.len() + 64, |out| {
                        Ok(traffic.encrypt(data, out)?)
                    })?;
                    return Ok(data.len());
                }
                // A post-handshake message (a session ticket, a key update) goes first.
                ConnectionState::EncodeTlsData(mut encode) => {
                    append(&mut self.outgoing, READ_SIZE, |out| Ok(encode.encode(out)?))?
                }
                ConnectionState::TransmitTlsData(transmit) => transmit.done(),
                ConnectionState::ReadTraffic(mut traffic) => {
                    while keep(&mut self.plain, traffic.next_record())? {}
                }
                ConnectionState::Closed => return Err(io::ErrorKind::BrokenPipe.into()),
                ConnectionState::PeerClosed => self.peer_closed = true,
                _ => return Err(io::ErrorKind::NotConnected.into()),
            }
        }
    }

    /// Queues `close_notify` (once).
    pub fn queue_goodbye(&mut self) -> io::Result<()> {
        if std::mem::replace(&mut self.said_goodbye, true) {
            return Ok(());
        }
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = status.state {
            append(&mut self.outgoing, 64, |out| {
                Ok(traffic.queue_close_notify(out)?)
            })?;
        }
        Ok(())
    }

    /// Takes decrypted bytes into `buf`; how many.
    fn take_plain(&mut self, buf: &mut [u8]) -> usize {
        let left = &self.plain[self.taken..];
        let n = left.len().min(buf.len());
        buf[..n].copy_from_slice(&left[..n]);
        self.taken += n;
        if self.taken == self.plain.len() {
            self.plain = Vec::new();
            self.taken = 0;
        }
        n
    }

    pub fn has_plain(&self) -> bool {
        self.taken < self.plain.len()
    }

    /// Drops decrypted bytes (a stream's client has nothing more to say that matters).
    pub fn drop_plain(&mut self) {
        self.plain = Vec::new();
        self.taken = 0;
    }

    pub fn peer_closed(&self) -> bool {
        self.peer_closed
    }
}

/// A server-side TLS connection over a TCP socket.
pub struct TlsConn {
    pub(crate) tcp: TcpStream,
    pub(crate) core: TlsCore,
}

impl TlsConn {
    /// Runs the handshake on `tcp` (the caller bounds it in time).
    pub async fn accept(config: Arc<ServerConfig>, tcp: TcpStream) -> io::Result<Self> {
        let mut this = Self {
            tcp,
            core: TlsCore::new(config)?,
        };
        std::future::poll_fn(|cx| this.poll_handshake(cx)).await?;
        Ok(this)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            let progress = self.core.process()?;
            ready!(self.poll_flush_output(cx))?;
            match progress {
                Progress::Ready => return Poll::Ready(Ok(())),
                Progress::Closed => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Progress::NeedsInput if self.core.conn.is_handshaking() || self.core.used > 0 => {
                    ready!(self.poll_read_records(cx))?;
                }
                Progress::NeedsInput => return Poll::Ready(Ok(())),
            }
        }
    }

    /// Reads more records: `Err(UnexpectedEof)` if the peer closed first.
    fn poll_read_records(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match self.core.read_from(&self.tcp) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::UnexpectedEof.into())),
                Ok(_) => return Poll::Ready(Ok(())),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.tcp.poll_read_ready(cx))?;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
    }

    fn poll_flush_output(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            if self.core.flush_to(&self.tcp)? {
                return Poll::Ready(Ok(()));
            }
            ready!(self.tcp.poll_write_ready(cx))?;
        }
    }

    pub fn alpn_protocol(&self) -> Option<&[u8]> {
        self.core.alpn_protocol()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            if this.core.has_plain() {
                let n = this.core.take_plain(buf.initialize_unfilled());
                buf.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.core.peer_closed() {
                return Poll::Ready(Ok(()));
            }
            match this.poll_read_records(cx) {
                Poll::Ready(Err(error)) if error.kind() == io::ErrorKind::UnexpectedEof => {
                    // End of file without `close_notify`: the end, as far as HTTP cares.
                    return Poll::Ready(Ok(()));
                }
                Poll::Ready(result) => result?,
                Poll::Pending => return Poll::Pending,
            }
            this.core.process()?;
            // Answers to what came in (a key update) go out with the next write or flush;
            // send them now if the socket takes them.
            let _ = this.core.flush_to(&this.tcp)?;
        }
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.core.pending_output() >= MAX_PENDING_OUTPUT {
            ready!(this.poll_flush_output(cx))?;
        }
        let taken = this.core.encrypt(buf)?;
        let _ = this.core.flush_to(&this.tcp)?;
        Poll::Ready(Ok(taken))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().poll_flush_output(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.core.queue_goodbye()?;
        ready!(this.poll_flush_output(cx))?;
        Pin::new(&mut this.tcp).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::TlsConn;

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = CertificateDer::from(certified.cert.der().to_vec());
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            certified.signing_key.serialize_der(),
        ));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// What an idle stream costs depends on this: once everything in hand is read and sent,
    /// the connection holds no record or plaintext buffer.
    #[tokio::test]
    async fn an_idle_connection_holds_no_buffer_and_echoes_in_order() {
        let (server_config, client_config) = configs();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await.unwrap();
            let mut tls = tokio_rustls::TlsConnector::from(client_config)
                .connect(ServerName::try_from("localhost").unwrap(), tcp)
                .await
                .unwrap();
            let big = vec![7u8; 100 * 1024];
            tls.write_all(b"hello").await.unwrap();
            tls.write_all(&big).await.unwrap();
            let mut back = vec![0u8; big.len()];
            tls.read_exact(&mut back).await.unwrap();
            assert_eq!(back, big);
            tls
        });
        let (tcp, _) = listener.accept().await.unwrap();
        let mut conn = TlsConn::accept(server_config, tcp).await.unwrap();
        let mut hello = [0u8; 5];
        conn.read_exact(&mut hello).await.unwrap();
        assert_eq!(&hello, b"hello");
        let mut big = vec![0u8; 100 * 1024];
        conn.read_exact(&mut big).await.unwrap();
        assert!(big.iter().all(|&b| b == 7));
        conn.write_all(&big).await.unwrap();
        conn.flush().await.unwrap();
        let _client = client.await.unwrap();
        assert!(!conn.core.has_plain());
        assert_eq!(conn.core.incoming.capacity(), 0, "incoming records");
        assert_eq!(conn.core.outgoing.capacity(), 0, "outgoing records");
        assert_eq!(conn.core.plain.capacity(), 0, "plaintext");
    }
}
