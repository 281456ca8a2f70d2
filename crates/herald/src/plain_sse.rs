//! SSE streams on HTTP/1.1 sockets, cleartext or TLS, written by `herald_core::serve_socket`
//! rather than hyper (which would keep 16 KiB of buffers per connection for as long as it
//! lives).
//!
//! 1. parse the request head (read by [`crate::server`] already) with `httparse`
//!    ([`stream_request`]: only an HTTP/1.1 `GET /events` without a body qualifies);
//! 2. run it through the same axum router as every other request (Host check, auth, CORS,
//!    subscribe);
//! 3. if the answer is an open stream, hand the socket, the stream and the response head to
//!    `serve_socket`, which writes the chunked body and lets the hub write events for the
//!    stream's user directly.
//!
//! Everything else — other routes, HTTP/1.0, HTTP/2 — goes to hyper with the bytes read so far
//! put back in front of the socket, so hyper answers it exactly as if it had read it itself. A
//! refused subscribe is not run through the router again (deciding it may have cost a call to
//! the session hook or a JWKS fetch, which must not happen twice): on a cleartext socket its
//! answer goes to hyper with the bytes, as the answer to that first request; on TLS, whose
//! connection has left tokio-rustls by then, [`answer_and_close`] sends it.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use herald_core::{SocketSettings, StreamSocket};
use http::{header, HeaderName, HeaderValue, Request, Response};
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tower::ServiceExt;

use crate::app::{App, ClientIp};
use crate::routes::events::StreamHandoff;

/// Most headers this path parses; more go to hyper.
const MAX_HEADERS: usize = 64;

/// What became of a stream request.
pub enum Outcome<S> {
    /// An SSE stream: write it with this future (it completes when the stream ends).
    Streaming(herald_core::SocketWriter<S>),
    /// No stream (a refused subscribe): the answer to send on the socket.
    Answer(S, Response<Body>),
}

/// The request, if `head` (a complete request head read from a connection) is one this path
/// serves: an HTTP/1.1 `GET /events` (or Mercure's subscribe, `GET /.well-known/mercure?…`)
/// without a body. Anything else is hyper's, which reads or discards a body as the refusal
/// rules say (`crate::request_rules`).
pub fn stream_request(head: &[u8]) -> Option<Request<Body>> {
    if !head.starts_with(b"GET /events") && !head.starts_with(b"GET /.well-known/mercure?") {
        return None;
    }
    let request = parse_head(head)?;
    let bodyless = !request.headers().contains_key(header::CONTENT_LENGTH)
        && !request.headers().contains_key(header::TRANSFER_ENCODING);
    bodyless.then_some(request)
}

/// Runs `request` through the router and, if it opens a stream, hands `socket` to
/// `herald_core::serve_socket` to write it.
pub async fn try_stream<S: StreamSocket>(
    socket: S,
    mut request: Request<Body>,
    client: ClientIp,
    router: &App,
    settings: SocketSettings,
) -> Outcome<S> {
    request.extensions_mut().insert(client);
    let Ok(mut response) = router.clone().oneshot(request).await;
    let handoff = response.extensions_mut().remove::<StreamHandoff>();
    let stream = match handoff.and_then(|h| h.take()) {
        Some(stream) if response.status().is_success() => stream,
        _ => return Outcome::Answer(socket, response),
    };
    let response_head = response_head(&response);
    Outcome::Streaming(herald_core::serve_socket(
        stream,
        socket,
        response_head,
        settings,
    ))
}

/// Sends `response` as the connection's only answer, then closes it (the TLS path, which has
/// no hyper connection to hand a refused subscribe to). Router answers are small; one larger
/// than `MAX_ANSWER_BYTES` is replaced by a 500.
pub async fn answer_and_close<S: AsyncWrite + Unpin>(mut socket: S, response: Response<Body>) {
    let (parts, body) = response.into_parts();
    let (status, headers, body) = match axum::body::to_bytes(body, MAX_ANSWER_BYTES).await {
        Ok(body) => (parts.status, parts.headers, body),
        Err(_) => (
            http::StatusCode::INTERNAL_SERVER_ERROR,
            http::HeaderMap::new(),
            Bytes::new(),
        ),
    };
    let mut out = BytesMut::with_capacity(256 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.extend_from_slice(b" ");
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    write_headers(&mut out, &headers);
    out.extend_from_slice(format!("content-length: {}\r\n", body.len()).as_bytes());
    out.extend_from_slice(b"connection: close\r\n\r\n");
    out.extend_from_slice(&body);
    let _ = socket.write_all(&out).await;
    let _ = socket.shutdown().await;
}

/// The largest router answer [`answer_and_close`] sends.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

/// The request, if `bytes` start with a complete, well-formed HTTP/1.1 `GET` head.
fn parse_head(bytes: &[u8]) -> Option<Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(_) = parsed.parse(bytes).ok()? else {
        return None;
    };
    if parsed.version != Some(1) || parsed.method != Some("GET") {
        return None;
    }
    let mut request = Request::get(parsed.path?).version(http::Version::HTTP_11);
    for h in parsed.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes()).ok()?;
        request = request.header(name, HeaderValue::from_bytes(h.value).ok()?);
    }
    request.body(Body::empty()).ok()
}

/// `HTTP/1.1 200 OK`, the router's headers and a `Date`, the body in chunked coding.
fn response_head(response: &Response<Body>) -> Bytes {
    let mut head = BytesMut::with_capacity(320);
    head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    write_headers(&mut head, response.headers());
    // The stream is the connection's last response: the socket closes when it ends.
    head.extend_from_slice(b"transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
    head.freeze()
}

/// The router's headers, except the framing ones this path writes itself, and a `Date`.
fn write_headers(out: &mut BytesMut, headers: &http::HeaderMap) {
    for (name, value) in headers {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
            || name == header::DATE
        {
            continue;
        }
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"date: ");
    out.extend_from_slice(httpdate::fmt_http_date(std::time::SystemTime::now()).as_bytes());
    out.extend_from_slice(b"\r\n");
}
