//! Rules every request meets, whatever its route (one layer around the router's routes,
//! [`crate::app`]).
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
use tower::{Layer, Service};

use crate::error::ApiError;

/// Most bytes of a refused request's body read and discarded.
pub const DRAIN_BYTES: u64 = 16 << 20;
/// Longest time spent reading a refused request's body.
pub const DRAIN_TIME: Duration = Duration::from_secs(5);

/// The rules as one tower layer around every route. Two `axum::middleware::from_fn` layers did
/// the same, but each boxes and clones the rest of the stack per request: 7 % of a small
/// publish's cost (`herald bench --scenario publish`).
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestRulesLayer;

impl<S> Layer<S> for RequestRulesLayer {
    type Service = RequestRules<S>;

    fn layer(&self, inner: S) -> RequestRules<S> {
        RequestRules { inner }
    }
}

/// [`RequestRulesLayer`]'s service.
#[derive(Debug, Clone)]
pub struct RequestRules<S> {
    inner: S,
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
        let (parts, body) = request.into_parts();
        let shared = SharedBody(Arc::new(Mutex::new(Some(body))));
        let answer = self
            .inner
            .call(Request::from_parts(parts, Body::new(shared.clone())));
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

fn has_body(request: &Request) -> bool {
    let headers = request.headers();
    headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|len| len > 0 && len <= DRAIN_BYTES)
        || request.version() == Version::HTTP_2 && !http_body::Body::is_end_stream(request.body())
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
