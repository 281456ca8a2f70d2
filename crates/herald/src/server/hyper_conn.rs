//! Serving one connection with hyper (HTTP/1.1, or HTTP/2 by prior knowledge or ALPN), with
//! what hyper does not do by itself:
//!
//! * **Idle timeout.** A connection with no request in flight for `--idle-timeout` is closed
//!   gracefully (HTTP/2 with GOAWAY), so keep-alive connections nobody uses, and HTTP/2
//!   connections whose client only trickles headers, do not hold file descriptors forever. A
//!   request is in flight from the moment hyper hands it over until its response body is done,
//!   so an open event stream keeps its connection busy.
//! * **Per-IP limits for HTTP/2 streams.** One HTTP/2 connection can carry many event streams;
//!   each one counts against `--max-connect-rate-per-ip` and `--max-connections-per-ip` like a
//!   connection of its own (refused with 429), on top of `--http2-max-streams` per connection.
//! * **Shutdown.** When the server shuts down, every connection is told to finish gracefully.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use http::{Method, Request, Response, Version};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tower::Service;

use super::woken_only::WokenOnly;
use crate::app::App;
use crate::limits::{IpSlot, Limits};

/// What every hyper connection of a server shares.
#[derive(Clone)]
pub struct HyperShared {
    pub router: App,
    pub builder: auto::Builder<TokioExecutor>,
    pub limits: Arc<Limits>,
    pub idle_timeout: Duration,
    /// Becomes `true` when the server shuts down.
    pub shutdown: watch::Receiver<bool>,
}

/// Serves `io` from `peer` until the connection ends. `_slot` is the connection's place in the
/// per-IP count, held as long as it is open. `first`, when given, is the answer to the
/// connection's first request, decided already (a refused subscribe, [`crate::plain_sse`]).
pub async fn serve<I>(
    io: I,
    peer: IpAddr,
    shared: &HyperShared,
    _slot: IpSlot,
    first: Option<Response<Body>>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::default());
    let service = ConnService {
        router: shared.router.clone(),
        limits: shared.limits.clone(),
        activity: activity.clone(),
        peer,
        first: Arc::new(parking_lot::Mutex::new(first)),
    };
    let connection = shared
        .builder
        .serve_connection(TokioIo::new(io), TowerToHyperService::new(service));
    tokio::pin!(connection);
    let mut shutdown = shared.shutdown.clone();
    if !*shutdown.borrow() {
        // Resolves when the server shuts down or the connection has been idle too long.
        let closing = async {
            tokio::select! {
                _ = shutdown.changed() => {}
                () = activity.idle_for(shared.idle_timeout) => {}
            }
        };
        let closing = pin!(closing);
        let closing = WokenOnly::new(closing);
        tokio::select! {
            biased;
            ended = connection.as_mut() => {
                log_end(ended);
                return;
            }
            () = closing => {}
        }
    }
    connection.as_mut().graceful_shutdown();
    log_end(connection.await);
}

fn log_end(ended: Result<(), Box<dyn std::error::Error + Send + Sync>>) {
    if let Err(error) = ended {
        tracing::debug!(%error, "connection ended with an error");
    }
}

/// Requests in flight on one connection, and when the last one ended.
#[derive(Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// Milliseconds since the Unix epoch.
    changed_ms: AtomicU64,
}

impl Activity {
    /// No clock read here: while a request is in flight the connection is not idle anyway,
    /// and its end (`InFlight`'s drop) restarts the idle clock.
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    fn touch(&self) {
        self.changed_ms
            .store(herald_core::unix_ms(), Ordering::Relaxed);
    }

    /// Completes once the connection has had nothing in flight for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        self.touch();
        loop {
            let since = self.changed_ms.load(Ordering::Relaxed);
            let idle_ms = herald_core::unix_ms().saturating_sub(since);
            let left = timeout.saturating_sub(Duration::from_millis(idle_ms));
            if left.is_zero() && self.in_flight.load(Ordering::Relaxed) == 0 {
                return;
            }
            tokio::time::sleep(left.max(Duration::from_millis(50)).min(timeout)).await;
            if self.in_flight.load(Ordering::Relaxed) > 0 {
                // Busy (a stream, a slow upload): look again a timeout from now.
                self.touch();
            }
        }
    }
}

/// One request in flight, until its response body is dropped.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

/// The router, with the connection's bookkeeping around each request.
#[derive(Clone)]
struct ConnService {
    router: App,
    limits: Arc<Limits>,
    activity: Arc<Activity>,
    peer: IpAddr,
    /// The answer to the first request, when it is known before hyper reads it.
    first: Arc<parking_lot::Mutex<Option<Response<Body>>>>,
}

/// Responses go to hyper as `Tracked` bodies directly: wrapping them in another `Body` would
/// box each one a second time.
impl Service<Request<Incoming>> for ConnService {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = Answer;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut request: Request<Incoming>) -> Answer {
        let in_flight = self.activity.begin();
        if let Some(answer) = self.first.lock().take() {
            return Answer::ready(answer, in_flight);
        }
        // Only stream handlers read the address (per-IP stream limits), and inserting the
        // first extension allocates the request's extension map.
        if request.method() == Method::GET {
            request
                .extensions_mut()
                .insert(crate::app::ClientIp(self.peer));
        }
        let stream_slot =
            if request.version() == Version::HTTP_2 && request.uri().path() == "/events" {
                match self.limits.connection(self.peer) {
                    Ok(slot) => Some(slot),
                    Err(refused) => {
                        metrics::counter!(crate::metrics::CONNECTIONS_RATE_LIMITED).increment(1);
                        let (message, retry) = refused.answer();
                        let response = crate::error::ApiError::too_many(message)
                            .retry_after(retry)
                            .into_response();
                        return Answer::ready(response, in_flight);
                    }
                }
            } else {
                None
            };
        // The app is always ready (axum's router has no back-pressure), so it is called
        // directly: no clone of it, and no `Oneshot` future holding the request.
        Answer::Routed {
            routed: self.router.call(request.map(Body::new)),
            held: Some((in_flight, stream_slot)),
        }
    }
}

/// What the connection holds for a request until its response body is done.
type Held = (InFlight, Option<IpSlot>);

/// The answer to one request: known at once, or the app's future. A type rather than a boxed
/// `async` block, so a request costs one allocation fewer.
enum Answer {
    Ready(std::future::Ready<Response<Tracked>>),
    Routed {
        routed: <App as Service<Request<Body>>>::Future,
        held: Option<Held>,
    },
}

impl Answer {
    fn ready(response: Response<Body>, in_flight: InFlight) -> Self {
        Self::Ready(std::future::ready(Tracked::around(
            response,
            Some((in_flight, None)),
        )))
    }
}

impl Future for Answer {
    type Output = Result<Response<Tracked>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.get_mut() {
            Answer::Ready(ready) => Pin::new(ready).poll(cx).map(Ok),
            Answer::Routed { routed, held } => {
                let Ok(response) = std::task::ready!(routed.as_mut().poll(cx));
                Poll::Ready(Ok(Tracked::around(response, held.take())))
            }
        }
    }
}

use axum::response::IntoResponse;

/// A response body that holds the request's bookkeeping until it is dropped.
pub(crate) struct Tracked {
    body: Body,
    _held: Option<Held>,
}

impl Tracked {
    fn around(response: Response<Body>, held: Option<Held>) -> Response<Tracked> {
        response.map(|body| Tracked { body, _held: held })
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
