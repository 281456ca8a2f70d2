//! Accepting connections, bounding what each may cost, and shutting down gracefully.
//!
//! Every accepted connection first passes the per-IP limits (`--max-connect-rate-per-ip`,
//! `--max-connections-per-ip`; refused ones get 429), then must send a complete request head
//! within `--header-timeout` ([`head`]). Then:
//!
//! * a cleartext HTTP/1.1 `GET /events` that opens a stream is written by
//!   `herald_core::serve_socket` ([`crate::plain_sse`]: no per-connection HTTP buffers, direct
//!   writes from publishers);
//! * everything else, and every TLS connection (after its handshake, speaking whatever ALPN
//!   chose), is served by hyper ([`hyper_conn`]: HTTP/1.1 or HTTP/2, with an idle timeout and
//!   per-IP limits on HTTP/2 streams).
//!
//! Shutdown, in order: stop accepting; tell the hub to end every stream (each gets a jittered
//! `retry:` hint, so clients don't stampede the remaining nodes); tell every hyper connection to
//! finish gracefully; wait for the streams and connections that had a request, for at most
//! [`SHUTDOWN_GRACE`]. Connections that never sent a request hold nothing up.

mod head;
mod hyper_conn;
mod woken_only;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use herald_core::{Herald, SocketSettings, SocketWriter, StreamSocket};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use crate::app::App;
use crate::limits::{IpSlot, Limits, Refused};
use crate::metrics::{ACCEPT_ERRORS, CONNECTIONS_RATE_LIMITED};
use crate::plain_sse;
use crate::tls::TlsConfig;
use crate::tls_conn::TlsConn;
use crate::tls_socket::TlsSocket;
use head::{read_head, Head, Prefixed, MAX_HEAD_BYTES};
use hyper_conn::HyperShared;

/// How long in-flight connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// How the server treats connections.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// A connection must send a complete request head within this.
    pub header_timeout: Duration,
    /// A hyper connection with no request in flight for this long is closed.
    pub idle_timeout: Duration,
    /// A stream whose client takes no bytes for this long is closed.
    pub write_timeout: Duration,
    /// Concurrent streams one HTTP/2 connection may open.
    pub http2_max_streams: u32,
}

/// What every connection task needs.
struct Shared {
    hyper: HyperShared,
    tls: Option<TlsConfig>,
    settings: ServerSettings,
    /// Held (upgraded) by every connection that is serving requests; shutdown waits for them.
    alive: mpsc::WeakSender<()>,
}

/// Connections the kernel keeps waiting for `accept` (the listen backlog). The usual 128 is
/// overrun when thousands of clients reconnect at once (a node restarting), and the kernel then
/// drops their connection attempts, which clients retry only after one second, then three.
pub const LISTEN_BACKLOG: u32 = 4096;

/// Bytes an HTTP/2 stream's frames may wait in the h2 send buffer for the client's flow-control
/// window and the socket (hyper's default is 400 KiB). Beyond it the stream's body is not polled,
/// so events wait in the stream's own queue, whose byte bound decides when a slow consumer is cut
/// off, as over HTTP/1.1.
pub const HTTP2_SEND_BUFFER: usize = 64 * 1024;

/// Binds the listening socket (address reuse on, as servers need to restart at once).
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

pub async fn serve(
    listener: TcpListener,
    router: App,
    herald: Herald,
    tls: Option<TlsConfig>,
    limits: Arc<Limits>,
    settings: ServerSettings,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_HEAD_BYTES);
    builder
        .http2()
        .max_concurrent_streams(settings.http2_max_streams)
        .max_send_buf_size(HTTP2_SEND_BUFFER)
        .max_header_list_size(MAX_HEAD_BYTES as u32);
    let (closing, closing_seen) = watch::channel(false);
    let (alive, mut all_done) = mpsc::channel::<()>(1);
    let shared = Arc::new(Shared {
        hyper: HyperShared {
            router,
            builder,
            limits: limits.clone(),
            idle_timeout: settings.idle_timeout,
            shutdown: closing_seen,
        },
        tls,
        settings,
        alive: alive.downgrade(),
    });
    tokio::pin!(shutdown);
    let forget = tokio::spawn(forget_idle_clients(limits.clone()));
    let mut accept_errors = AcceptErrors::default();

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    accept_errors.record(&error);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        match limits.connection(peer.ip()) {
            Ok(slot) => {
                tokio::spawn(connection(stream, peer, slot, shared.clone()));
            }
            Err(refused) => {
                metrics::counter!(CONNECTIONS_RATE_LIMITED).increment(1);
                if shared.tls.is_none() {
                    tokio::spawn(refuse(stream, refused));
                }
            }
        }
    }

    drop(listener);
    forget.abort();
    tracing::info!("shutting down: ending streams");
    herald.shutdown();
    let _ = closing.send(true);
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}");
    }
}

/// One connection, from its first byte to its end.
async fn connection(stream: TcpStream, peer: SocketAddr, slot: IpSlot, shared: Arc<Shared>) {
    let _ = stream.set_nodelay(true);
    let deadline = Instant::now() + shared.settings.header_timeout;
    let settings = SocketSettings {
        write_timeout: shared.settings.write_timeout,
    };
    let client = crate::app::ClientIp(peer.ip());
    if let Some(tls) = &shared.tls {
        let handshake = tokio::time::timeout_at(
            deadline.into(),
            Box::pin(TlsConn::accept(tls.clone(), stream)),
        )
        .await;
        let mut stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return tracing::debug!(%error, "TLS handshake failed"),
            Err(_) => return tracing::debug!("TLS handshake timed out"),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        let Head::Read(head) = read_head(&mut stream, left).await else {
            return;
        };
        let Some(alive) = shared.alive.upgrade() else {
            return;
        };
        // HTTP/2 multiplexes streams and requests on the connection: hyper's.
        let http2 = stream.alpn_protocol() == Some(b"h2");
        let Some(request) = plain_sse::stream_request(&head).filter(|_| !http2) else {
            let io = Prefixed::new(head, stream);
            return Box::pin(hyper_conn::serve(io, peer.ip(), &shared.hyper, slot, None)).await;
        };
        let socket = TlsSocket::new(stream);
        let router = &shared.hyper.router;
        match Box::pin(plain_sse::try_stream(
            socket, request, client, router, settings,
        ))
        .await
        {
            plain_sse::Outcome::Streaming(writer) => spawn_stream(writer, slot, alive),
            plain_sse::Outcome::Answer(socket, answer) => {
                let send = plain_sse::answer_and_close(socket, answer);
                let _ = tokio::time::timeout(settings.write_timeout, Box::pin(send)).await;
            }
        }
        return;
    }
    let mut stream = stream;
    let Head::Read(head) = read_head(&mut stream, shared.settings.header_timeout).await else {
        return;
    };
    let Some(alive) = shared.alive.upgrade() else {
        return;
    };
    let Some(request) = plain_sse::stream_request(&head) else {
        let _alive = alive;
        let io = Prefixed::new(head, stream);
        return Box::pin(hyper_conn::serve(io, peer.ip(), &shared.hyper, slot, None)).await;
    };
    // A future is as large as its largest state: the router's, TLS's and hyper's futures are
    // boxed so that no connection task carries them inline (`herald bench --scenario idle`:
    // 8.9 KiB per idle stream when this task, with them inline, lived as long as the stream).
    let router = &shared.hyper.router;
    match Box::pin(plain_sse::try_stream(
        stream, request, client, router, settings,
    ))
    .await
    {
        plain_sse::Outcome::Streaming(writer) => spawn_stream(writer, slot, alive),
        // A refused subscribe: hyper sends the answer, and serves the connection on.
        plain_sse::Outcome::Answer(stream, answer) => {
            let _alive = alive;
            let io = Prefixed::new(head, stream);
            Box::pin(hyper_conn::serve(
                io,
                peer.ip(),
                &shared.hyper,
                slot,
                Some(answer),
            ))
            .await
        }
    }
}

/// The stream gets a task of its own, holding only what it needs (its writer, its IP's slot,
/// the shutdown guard), and the connection's task ends.
fn spawn_stream<S: StreamSocket>(writer: SocketWriter<S>, slot: IpSlot, alive: mpsc::Sender<()>) {
    tokio::spawn(StreamTask {
        writer,
        _slot: slot,
        _alive: alive,
    });
}

/// A stream's task: its writer, and what the stream holds until it ends. A struct rather than
/// an `async` block, which would keep its captures twice (as captures and as the locals they
/// move into): at 10k idle streams, every byte here is 10 kB.
struct StreamTask<S> {
    writer: SocketWriter<S>,
    _slot: IpSlot,
    _alive: mpsc::Sender<()>,
}

impl<S: StreamSocket> Future for StreamTask<S> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.writer).poll(cx)
    }
}

/// Answers a connection over its IP's limits: 429 with `Retry-After`, once its request head is
/// in (a client that gets an answer before it has sent its request may not read it), then reads
/// (and drops) what the client sends for a moment before closing, so it sees the answer rather
/// than a reset.
async fn refuse(mut stream: TcpStream, refused: Refused) {
    let _ = read_head(&mut stream, LINGER_TIME).await;
    let (message, retry) = refused.answer();
    let body = format!(r#"{{"error":"too_many_requests","message":"{message}"}}"#);
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: {retry}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let linger = async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        let mut scratch = [0u8; 4096];
        let mut drained = 0usize;
        while drained < LINGER_BYTES {
            match stream.read(&mut scratch).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER_TIME, linger).await;
}

/// How much a refused connection may send while the hub lingers before closing it.
const LINGER_BYTES: usize = 1 << 20;
const LINGER_TIME: Duration = Duration::from_secs(2);

/// `accept` errors, logged at most once a second (with how many were not) so that running out
/// of file descriptors does not also flood the log.
#[derive(Default)]
struct AcceptErrors {
    last_logged: Option<Instant>,
    unlogged: u64,
}

impl AcceptErrors {
    fn record(&mut self, error: &std::io::Error) {
        metrics::counter!(ACCEPT_ERRORS).increment(1);
        let now = Instant::now();
        if self
            .last_logged
            .is_some_and(|at| now.duration_since(at) < Duration::from_secs(1))
        {
            self.unlogged += 1;
            return;
        }
        tracing::warn!(%error, also_since_last_warning = self.unlogged, "accept failed");
        self.last_logged = Some(now);
        self.unlogged = 0;
    }
}

async fn forget_idle_clients(limits: Arc<Limits>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        interval.tick().await;
        limits.forget_idle();
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
