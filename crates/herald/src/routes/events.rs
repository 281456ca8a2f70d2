//! `GET /events`: authenticate, authorise topics, open (or resume) a stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use bytes::Bytes;
use futures_util::Stream;
use herald_core::{EventStream, Pattern, SubscribeError, SubscribeRequest};
use parking_lot::Mutex;

use crate::app::AppState;
use crate::auth::Subscriber;
use crate::error::ApiError;

/// Most topic subscriptions one stream may hold.
pub const MAX_TOPICS_PER_STREAM: usize = 64;

/// The query parameters `/events` understands (repeatable `topic`).
#[derive(Default)]
struct EventsQuery {
    access_token: Option<String>,
    topics: Vec<String>,
    last_event_id: Option<String>,
}

impl EventsQuery {
    fn parse(uri: &Uri) -> Result<Self, ApiError> {
        let mut query = Self::default();
        let Some(raw) = uri.query() else {
            return Ok(query);
        };
        // form_urlencoded would turn invalid UTF-8 into U+FFFD and carry on; a topic or token
        // that is not what the client sent must be refused instead. (UTF-8 is
        // self-synchronising, so the whole query decodes cleanly exactly when every part does.)
        if percent_encoding::percent_decode_str(raw)
            .decode_utf8()
            .is_err()
        {
            return Err(ApiError::bad_request(
                "the query string is not valid UTF-8 after percent-decoding",
            ));
        }
        for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
            match &*key {
                "access_token" => query.access_token = Some(value.into_owned()),
                "topic" => query.topics.push(value.into_owned()),
                "lastEventId" => query.last_event_id = Some(value.into_owned()),
                _ => {}
            }
        }
        Ok(query)
    }
}

/// The token, from `Authorization: Bearer`, else cookie `herald_token`, else `?access_token=`.
fn subscriber_token(
    headers: &HeaderMap,
    query: &mut EventsQuery,
) -> Result<Option<String>, ApiError> {
    if let Some(token) = bearer(headers)? {
        return Ok(Some(token.to_owned()));
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for pair in cookies.split(';') {
            if let Some(("herald_token", value)) = pair.trim().split_once('=') {
                if !value.is_empty() {
                    return Ok(Some(value.to_owned()));
                }
            }
        }
    }
    Ok(query.access_token.take().filter(|t| !t.is_empty()))
}

/// The credential in `Authorization: Bearer <credential>`, if the header is present.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, credential))
            if scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty() =>
        {
            Ok(Some(credential.trim()))
        }
        _ => Err(ApiError::unauthorized(
            "Authorization must be \"Bearer <token>\"",
        )),
    }
}

pub async fn subscribe(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut query = EventsQuery::parse(&uri)?;
    let token = subscriber_token(&headers, &mut query)?;
    let who = state.auth.subscriber(token.as_deref())?;

    if query.topics.len() > MAX_TOPICS_PER_STREAM {
        return Err(ApiError::bad_request(format!(
            "too many topics: at most {MAX_TOPICS_PER_STREAM} per stream"
        )));
    }
    let topics = query
        .topics
        .iter()
        .map(|t| Pattern::parse(t).map_err(|e| ApiError::bad_request(format!("topic: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    state.auth.authorize_topics(&who, &topics)?;

    let last_event_id = headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or(query.last_event_id)
        .filter(|id| !id.is_empty());
    let (user, expires_at) = match who {
        Subscriber::User { id, expires_at, .. } => (Some(id), Some(expires_at)),
        Subscriber::Anonymous => (None, None),
    };
    let topic_count = topics.len();
    let stream = state
        .herald
        .subscribe(SubscribeRequest {
            user: user.clone(),
            topics,
            last_event_id,
            expires_at,
        })
        .await
        .map_err(|error| match error {
            SubscribeError::TooManyConnections | SubscribeError::ShuttingDown => {
                ApiError::unavailable(error.to_string())
            }
            SubscribeError::TooManyForUser => ApiError::too_many(error.to_string()),
            SubscribeError::Broker(_) => ApiError::unavailable(error.to_string()),
        })?;
    tracing::info!(
        stream = stream.id(),
        user = %user.as_deref().unwrap_or("-"),
        topics = topic_count,
        "stream opened"
    );

    let slot = StreamSlot::new(LoggedStream {
        inner: stream,
        user,
        opened: Instant::now(),
    });
    let mut response = Response::new(Body::new(SlotBody {
        slot: slot.clone(),
        stream: None,
    }));
    response.extensions_mut().insert(slot);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// An open stream waiting for whoever writes the response: hyper, which polls it as the body,
/// or the plain HTTP/1.1 path in [`crate::plain_sse`], which takes it from the response
/// extensions and writes to the socket itself. Whoever takes it first owns it.
#[derive(Clone)]
pub struct StreamSlot(Arc<Mutex<Option<LoggedStream>>>);

impl StreamSlot {
    fn new(stream: LoggedStream) -> Self {
        Self(Arc::new(Mutex::new(Some(stream))))
    }

    pub fn take(&self) -> Option<LoggedStream> {
        self.0.lock().take()
    }
}

/// The response body: the stream, taken from its slot on the first poll.
struct SlotBody {
    slot: StreamSlot,
    stream: Option<LoggedStream>,
}

impl http_body::Body for SlotBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.stream.is_none() {
            self.stream = self.slot.take();
        }
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream)
                .poll_next(cx)
                .map(|chunk| chunk.map(|bytes| Ok(http_body::Frame::data(bytes)))),
            None => Poll::Ready(None),
        }
    }
}

/// The stream, logging one line when it ends.
pub struct LoggedStream {
    inner: EventStream,
    user: Option<String>,
    opened: Instant,
}

impl Stream for LoggedStream {
    type Item = Bytes;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        Pin::new(&mut self.inner).poll_next(cx)
    }
}

impl LoggedStream {
    /// See [`EventStream::attach_direct`].
    pub fn attach_direct(&self, socket: Arc<dyn herald_core::DirectWrite>) {
        self.inner.attach_direct(socket);
    }

    /// Ends the stream because its client stopped taking bytes; counted with slow consumers
    /// (unless the hub has already ended it, which counted it then).
    pub fn close_write_timeout(&self) {
        if self.inner.close_reason().is_none() {
            metrics::counter!(herald_core::metrics::SLOW_CONSUMER_DISCONNECTS).increment(1);
            self.inner.close(herald_core::CloseReason::WriteTimeout);
        }
    }

    /// See [`EventStream::poll_cut_off`].
    pub fn poll_cut_off(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.inner.poll_cut_off(cx)
    }
}

impl Drop for LoggedStream {
    fn drop(&mut self) {
        let reason = self
            .inner
            .close_reason()
            .map_or("client_gone", |r| r.as_str());
        tracing::info!(
            stream = self.inner.id(),
            user = %self.user.as_deref().unwrap_or("-"),
            duration_ms = self.opened.elapsed().as_millis() as u64,
            reason = %reason,
            "stream closed"
        );
    }
}
