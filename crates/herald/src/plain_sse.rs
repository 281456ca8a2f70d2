//! SSE streams on cleartext HTTP/1.1 sockets, without hyper's per-connection buffers.
//!
//! hyper keeps an 8 KiB read buffer and an 8 KiB write buffer for each connection for as long as
//! it lives. An SSE stream needs neither: after its request the client sends nothing, and every
//! write is a chunk the hub has already encoded. With tens of thousands of idle streams those
//! buffers were most of the server's memory, so `GET /events` on cleartext HTTP/1.1 takes this
//! path:
//!
//! 1. peek (not read) the request head and parse it with `httparse`;
//! 2. run it through the same axum router as every other request (auth, CORS, subscribe);
//! 3. if the answer is an open stream, consume the head, write the response head, and hand the
//!    socket to a small task ([`StreamWriter`]) that writes each queued chunk with one `write`
//!    call. The body ends when the connection closes (`Connection: close`, no chunked framing:
//!    RFC 9112 §6.3). The socket is also attached to the hub, which writes an event for the
//!    stream's user itself when nothing is queued: one `write` from the publishing thread, no
//!    wake-up of the task.
//!
//! Everything else — other routes, refused subscribes, heads split over several packets,
//! HTTP/1.0 — goes to hyper with the socket untouched, so hyper answers it exactly as before.
//! Refusals have no side effects, so running the router twice for them is harmless.

use std::time::Duration;

use axum::body::Body;
use axum::Router;
use bytes::BytesMut;
use http::{header, HeaderName, HeaderValue, Request, Response};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tower::ServiceExt;

use crate::routes::events::StreamSlot;
use crate::stream_writer::StreamWriter;

/// Longest request head this path looks at; longer heads go to hyper.
const PEEK_BYTES: usize = 8 * 1024;
/// Most headers this path parses; more go to hyper.
const MAX_HEADERS: usize = 64;
/// How long to wait for a new connection's first bytes before leaving it to hyper.
const FIRST_BYTES_WAIT: Duration = Duration::from_secs(10);

/// What became of a connection.
pub enum Outcome {
    /// It is an SSE stream now, served by its own task.
    Streaming,
    /// Not for this path: serve it with hyper. Nothing has been read from it.
    Hyper(TcpStream),
}

/// Serves `socket` as an SSE stream if it is a successful `GET /events`. `alive` is held by the
/// stream's task until it ends, so shutdown can wait for every stream.
pub async fn try_stream(
    mut socket: TcpStream,
    router: &Router,
    alive: &mpsc::Sender<()>,
    write_timeout: Duration,
) -> Outcome {
    let mut peeked = vec![0u8; PEEK_BYTES];
    let len = match tokio::time::timeout(FIRST_BYTES_WAIT, socket.peek(&mut peeked)).await {
        Ok(Ok(len)) => len,
        _ => return Outcome::Hyper(socket),
    };
    peeked.truncate(len);
    if !peeked.starts_with(b"GET /events") {
        return Outcome::Hyper(socket);
    }
    let Some((request, head_len)) = parse_head(&peeked) else {
        return Outcome::Hyper(socket);
    };
    drop(peeked);

    let Ok(mut response) = router.clone().oneshot(request).await;
    let slot = response.extensions_mut().remove::<StreamSlot>();
    let Some(stream) = slot
        .filter(|_| response.status().is_success())
        .and_then(|s| s.take())
    else {
        return Outcome::Hyper(socket);
    };
    let head = response_head(&response);
    drop(response);
    // The request head was only peeked at; consume it (it is in the socket buffer already) and
    // answer. If the client is gone by now, dropping the stream takes it out of the hub.
    let mut consumed = vec![0u8; head_len];
    if socket.read_exact(&mut consumed).await.is_ok() && socket.write_all(&head).await.is_ok() {
        tokio::spawn(StreamWriter::new(
            socket,
            stream,
            write_timeout,
            alive.clone(),
        ));
    }
    Outcome::Streaming
}

/// The request, if `bytes` hold a complete, well-formed HTTP/1.1 head, and the head's length.
fn parse_head(bytes: &[u8]) -> Option<(Request<Body>, usize)> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(len) = parsed.parse(bytes).ok()? else {
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
    Some((request.body(Body::empty()).ok()?, len))
}

/// `HTTP/1.1 200 OK` and the router's headers, the body delimited by closing the connection.
fn response_head(response: &Response<Body>) -> BytesMut {
    let mut head = BytesMut::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 200 OK\r\n");
    for (name, value) in response.headers() {
        if name == header::CONTENT_LENGTH
            || name == header::TRANSFER_ENCODING
            || name == header::CONNECTION
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head
}
