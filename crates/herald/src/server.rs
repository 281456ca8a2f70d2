//! Accepting connections and shutting down gracefully.
//!
//! Connections are served by a few serving threads ([`start`]), each with a single-threaded
//! runtime, all accepting from the same socket. Each TCP connection gets a task on the thread
//! that accepted it. A cleartext HTTP/1.1 `GET /events` that opens a stream is served by
//! [`crate::plain_sse`] (no per-connection HTTP buffers); everything else by hyper (HTTP/1.1, or
//! HTTP/2 with prior knowledge). With TLS, every connection goes to hyper after the handshake,
//! speaking whatever ALPN chose (`h2` or `http/1.1`). Shutdown ([`Serving::run_until`]), in
//! order: stop accepting; tell the hub to end every stream (each gets a jittered `retry:` hint,
//! so clients don't stampede the remaining nodes); wait for the streams and hyper's in-flight
//! responses; give up after a deadline.

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
use tokio::sync::{mpsc, oneshot, watch};
use tokio_rustls::TlsAcceptor;

use crate::limits::{Limits, RetryAfter};
use crate::plain_sse;

/// How long in-flight connections get to finish after shutdown starts.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A client that has not finished the TLS handshake by then is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line + headers) accepted; larger gets 431.
const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The serving threads, started and accepting.
pub struct Serving {
    threads: Vec<oneshot::Receiver<()>>,
    stop: watch::Sender<bool>,
    forget: tokio::task::JoinHandle<()>,
}

/// Starts `workers` serving threads on `listener` and returns once each is accepting.
///
/// Each serving thread runs its own single-threaded runtime and accepts from the same listening
/// socket, so a connection and everything it does (its requests, its stream's writes) stay on the
/// thread that accepted it: no task ever migrates between cores, and no core wakes another to
/// share its work. The calling runtime keeps the rest (signals, the hub's maintenance, the broker).
pub async fn start(
    listener: TcpListener,
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Arc<Limits>,
    workers: usize,
) -> Result<Serving, String> {
    let cannot_share = |e: std::io::Error| format!("cannot share the listening socket: {e}");
    let listener = listener.into_std().map_err(cannot_share)?;
    let (stop, stopped) = watch::channel(false);
    let mut threads = Vec::with_capacity(workers);
    for n in 0..workers.max(1) {
        let listener = listener.try_clone().map_err(cannot_share)?;
        let thread = ServingThread {
            router: router.clone(),
            tls: tls.clone(),
            limits: limits.clone(),
            stop: stopped.clone(),
        };
        let (accepting, ready) = oneshot::channel::<()>();
        let (done, finished) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(format!("herald-serve-{n}"))
            .spawn(move || {
                match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(runtime) => runtime.block_on(thread.run(listener, accepting)),
                    Err(error) => tracing::error!(%error, "cannot start a serving thread"),
                }
                drop(done);
            })
            .map_err(|e| format!("cannot start a serving thread: {e}"))?;
        ready
            .await
            .map_err(|_| "a serving thread failed to start (see the log)".to_owned())?;
        threads.push(finished);
    }
    let forget = tokio::spawn(forget_idle_clients(limits));
    Ok(Serving {
        threads,
        stop,
        forget,
    })
}

impl Serving {
    /// Serves until `shutdown` resolves, then shuts down gracefully: stop accepting everywhere;
    /// end every stream (each gets a jittered `retry:` hint, so clients don't stampede the
    /// remaining nodes); wait for the streams and in-flight responses, up to [`SHUTDOWN_GRACE`].
    pub async fn run_until(self, shutdown: impl Future<Output = ()>, herald: &Herald) {
        shutdown.await;
        self.forget.abort();
        tracing::info!("shutting down: ending streams");
        let _ = self.stop.send(true);
        herald.shutdown();
        for finished in self.threads {
            let _ = finished.await;
        }
    }
}

/// What each serving thread needs.
struct ServingThread {
    router: Router,
    tls: Option<TlsAcceptor>,
    limits: Arc<Limits>,
    stop: watch::Receiver<bool>,
}

impl ServingThread {
    /// Accepts and serves connections until told to stop, then waits (up to [`SHUTDOWN_GRACE`])
    /// for this thread's streams and in-flight responses. `accepting` is dropped (unsent) if the
    /// listening socket cannot be used here.
    async fn run(mut self, listener: std::net::TcpListener, accepting: oneshot::Sender<()>) {
        let listener = match TcpListener::from_std(listener) {
            Ok(listener) => listener,
            Err(error) => {
                tracing::error!(%error, "cannot use the listening socket");
                return;
            }
        };
        let _ = accepting.send(());
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder.http1().max_buf_size(MAX_HEAD_BYTES);
        let graceful = GracefulShutdown::new();
        // Every plain stream task holds a clone; `recv` returns `None` once all have ended.
        let (streams_alive, mut streams_done) = mpsc::channel::<()>(1);

        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(conn) => conn,
                    // Another serving thread took it first (they share the socket).
                    Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(error) => {
                        // Out of file descriptors and similar: back off briefly, don't spin.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = self.stop.wait_for(|stop| *stop) => break,
            };
            if let Err(retry) = self.limits.connection(peer.ip()) {
                metrics::counter!(CONNECTIONS_RATE_LIMITED).increment(1);
                if self.tls.is_none() {
                    tokio::spawn(refuse_too_fast(stream, retry));
                }
                continue;
            }
            let _ = stream.set_nodelay(true);
            let router = self.router.clone();
            let builder = builder.clone();
            let watcher = graceful.watcher();
            let streams_alive = streams_alive.clone();
            let tls = self.tls.clone();
            let write_timeout = self.limits.write_timeout;
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
                    match plain_sse::try_stream(stream, &router, &streams_alive, write_timeout)
                        .await
                    {
                        plain_sse::Outcome::Streaming => return,
                        plain_sse::Outcome::Hyper(stream) => stream,
                    };
                drop(streams_alive);
                serve_hyper(stream, router, &builder, watcher).await;
            });
        }

        drop(listener);
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

/// Resolves on SIGINT (Ctrl-C) or SIGTERM. The handlers are installed by this call, before the
/// future is first polled, so a signal that arrives early is not missed.
pub fn signal() -> impl Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt()).ok();
        let terminate = signal(SignalKind::terminate()).ok();
        async move {
            let wait = |signal: Option<tokio::signal::unix::Signal>| async move {
                match signal {
                    Some(mut signal) => {
                        signal.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(interrupt) => {},
                () = wait(terminate) => {},
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
