//! Accepting connections and shutting down gracefully.
//!
//! Each TCP connection gets a task. A cleartext HTTP/1.1 `GET /events` that opens a stream is
//! served by [`crate::plain_sse`] (no per-connection HTTP buffers); everything else by hyper
//! (HTTP/1.1, or HTTP/2 with prior knowledge). With TLS, every connection goes to hyper after
//! the handshake, speaking whatever ALPN chose (`h2` or `http/1.1`). Shutdown, in order: stop accepting; tell the hub
//! to end every stream (each gets a jittered `retry:` hint, so clients don't stampede the
//! remaining nodes); wait for the streams and hyper's in-flight responses; give up after a
//! deadline.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use herald_core::Herald;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;

use crate::limits::{Limits, RetryAfter};
use crate::plain_sse;

/// How long in-flight connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A client that has not finished the TLS handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line + headers) accepted; larger gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

pub async fn serve(
    listener: TcpListener,
    router: Router,
    herald: Herald,
    tls: Option<TlsAcceptor>,
    limits: Arc<Limits>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().max_buf_size(MAX_HEAD_BYTES);
    let graceful = GracefulShutdown::new();
    // Every plain stream task holds a clone; `recv` returns `None` once all have ended.
    let (streams_alive, mut streams_done) = mpsc::channel::<()>(1);
    tokio::pin!(shutdown);
    let forget = tokio::spawn(forget_idle_clients(limits.clone()));

    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(error) => {
                    // Out of file descriptors and similar: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        if let Err(retry) = limits.connection(peer.ip()) {
            metrics::counter!(CONNECTIONS_RATE_LIMITED).increment(1);
            if tls.is_none() {
                tokio::spawn(refuse_too_fast(stream, retry));
            }
            continue;
        }
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let streams_alive = streams_alive.clone();
        let tls = tls.clone();
        let write_timeout = limits.write_timeout;
        tokio::spawn(async move {
            if let Some(tls) = tls {
                drop(streams_alive);
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => serve_hyper(stream, router, &builder, watcher).await,
                    Ok(Err(error)) => tracing::debug!(%error, "TLS handshake failed"),
                    Err(_) => tracing::debug!("TLS handshake timed out"),
                }
                return;
            }
            let stream =
                match plain_sse::try_stream(stream, &router, &streams_alive, write_timeout).await {
                    plain_sse::Outcome::Streaming => return,
                    plain_sse::Outcome::Hyper(stream) => stream,
                };
            drop(streams_alive);
            serve_hyper(stream, router, &builder, watcher).await;
        });
    }

    drop(listener);
    forget.abort();
    tracing::info!("shutting down: ending streams");
    herald.shutdown();
    drop(streams_alive);
    let everything_ended = async {
        graceful.shutdown().await;
        streams_done.recv().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, everything_ended)
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within {SHUTDOWN_GRACE:?}");
    }
}

/// Connections refused by `--max-connect-rate-per-ip`.
pub const CONNECTIONS_RATE_LIMITED: &str = "herald_connections_rate_limited_total";

/// Answers a connection over its IP's rate without reading it: 429 and `Retry-After`.
async fn refuse_too_fast(mut stream: TcpStream, retry: RetryAfter) {
    let body = r#"{"error":"too_many_requests","message":"too many new connections from this address (--max-connect-rate-per-ip)"}"#;
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nretry-after: {}\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        retry.seconds(),
        body.len()
    );
    let write = async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    };
    let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
}

async fn forget_idle_clients(limits: Arc<Limits>) {
    let mut interval = tokio::time::interval(Duration::from_secs(60));
    loop {
        interval.tick().await;
        limits.forget_idle();
    }
}

/// Serves one connection with hyper (HTTP/1.1 or HTTP/2, detected from the first bytes).
async fn serve_hyper<I>(
    io: I,
    router: Router,
    builder: &auto::Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(router);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    if let Err(error) = watcher.watch(connection).await {
        tracing::debug!(%error, "connection ended with an error");
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
