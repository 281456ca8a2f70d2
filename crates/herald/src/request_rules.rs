//! Rules every request meets, whatever its route: one service around the whole router
//! ([`crate::app::App`]).
//!
//! * **One `Host`.** An HTTP/1.1 request without a `Host` header, or with two, is refused with
//!   400 (RFC 9112 §3.2): what such a request means differs between proxies and servers, which
//!   is how request smuggling starts. (HTTP/2 carries the authority in a pseudo-header.)
//! * **Refusals reach the client.** A request refused before its body was read (413, 401, 429,
//!   ...) would otherwise be answered and closed with the body still arriving, and the kernel
//!   resets a socket closed with unread data: most clients then report a broken pipe instead of
//!   the answer. So the rest of a refused request's body is read and discarded first, up to
//!   [`DRAIN_BYTES`] and [`DRAIN_TIME`]; beyond either the connection is closed anyway.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{header, Version};
use http_body_util::BodyExt;
use parking_lot::Mutex;
use tower::Service;

use crate::error::ApiError;

/// Most bytes of a refused request's body read and discarded.
pub const DRAIN_BYTES: u64 = 16 << 20;
/// Longest time spent reading a refused request's body.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The rules around a service (the router). They wrap the router once, not each route:
/// `Router::layer` wraps every route in two more futures and a box, and two
/// `axum::middleware::from_fn` layers cloned the rest of the stack per request (7 % of a small
/// publish's cost, `herald bench --scenario publish`).
#[derive(Debug, Clone)]
pub struct RequestRules<S> {
    inner: S,
}

impl<S> RequestRules<S> {
    pub fn new(inner: S) -> Self {
        Self { inner }
    }
}

impl<S> Service<Request> for RequestRules<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.version() == Version::HTTP_11
            && request.headers().get_all(header::HOST).iter().count() != 1
        {
            let refusal = ApiError::bad_request(
                "an HTTP/1.1 request needs exactly one Host header (RFC 9112 section 3.2)",
            )
            .into_response();
            return Box::pin(std::future::ready(Ok(refusal)));
        }
        if !has_body(&request) {
            return Box::pin(self.inner.call(request));
        }
        // The handler reads the body through a shared handle, so that what it leaves of a
        // refused request can still be read and discarded here. The inner service is called
        // now, so only its future moves into the box (no clone of the service per request).
        let shared = SharedBody(Arc::new(Mutex::new(None)));
        let request = request.map(|body| {
            *shared.0.lock() = Some(body);
            Body::new(shared.clone())
        });
        let answer = self.inner.call(request);
        Box::pin(async move {
            let Ok(response) = answer.await;
            if response.status().is_client_error() || response.status().is_server_error() {
                let rest = shared.0.lock().take();
                if let Some(rest) = rest.filter(|b| !http_body::Body::is_end_stream(b)) {
                    let _ = tokio::time::timeout(DRAIN_TIME, discard(rest)).await;
                }
            }
            Ok(response)
        })
    }
}

/// Does the request come with a body worth draining if it is refused? hyper's body knows
/// from the head: empty (no body, `Content-Length: 0`, an HTTP/2 request that ended with its
/// headers), an exact length (`Content-Length`), or unknown (chunked, or HTTP/2 data frames).
/// A body known to be longer than [`DRAIN_BYTES`] is not drained: the connection closes.
fn has_body(request: &Request) -> bool {
    let body = request.body();
    !http_body::Body::is_end_stream(body)
        && http_body::Body::size_hint(body)
            .upper()
            .is_none_or(|len| len <= DRAIN_BYTES)
}

async fn discard(mut body: Body) {
    let mut read = 0u64;
    while let Some(Ok(frame)) = body.frame().await {
        read += frame.data_ref().map_or(0, |d| d.len() as u64);
        if read > DRAIN_BYTES {
            return;
        }
    }
}

/// The request body, shared between the handler and [`drain_refused`], which reads what the
/// handler left.
#[derive(Clone)]
struct SharedBody(Arc<Mutex<Option<Body>>>);

impl http_body::Body for SharedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        match self.0.lock().as_mut() {
            Some(body) => Pin::new(body).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.0
            .lock()
            .as_ref()
            .is_none_or(http_body::Body::is_end_stream)
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.0
            .lock()
            .as_ref()
            .map_or_else(http_body::SizeHint::default, http_body::Body::size_hint)
    }
}
