//! `GET /events`: authenticate, authorise topics, open (or resume) a stream.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use axum::Extension;
use bytes::Bytes;
use herald_core::{EventStream, Pattern, SubscribeError, SubscribeRequest};
use parking_lot::Mutex;

use crate::app::{AppState, ClientIp};
use crate::auth::{bearer, Subscriber};
use crate::error::ApiError;
use crate::metrics::RESUMES_RATE_LIMITED;

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
/// With a session hook, an `Authorization` header that is not a bearer token is the app's
/// business (it is passed on to the hook), not an error.
fn subscriber_token(
    headers: &HeaderMap,
    query: &mut EventsQuery,
    hook: bool,
) -> Result<Option<String>, ApiError> {
    match bearer(headers) {
        Ok(Some(token)) => return Ok(Some(token.to_owned())),
        Ok(None) => {}
        Err(_) if hook => {}
        Err(error) => return Err(error),
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

pub async fn subscribe(
    State(state): State<Arc<AppState>>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let mut query = EventsQuery::parse(&uri)?;
    let hook = state.session_hook.as_ref();
    let token = subscriber_token(&headers, &mut query, hook.is_some())?;
    let ip = client.map(|Extension(ClientIp(ip))| ip);
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or(query.last_event_id.take())
        .filter(|id| !id.is_empty());
    // A token is checked before the topics; the session hook is asked only about a request
    // that is otherwise well-formed.
    let who = match (&token, hook) {
        (None, Some(_)) => None,
        (token, _) => Some(state.auth.subscriber(token.as_deref()).await?),
    };

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
    let who = match (who, hook) {
        (Some(who), _) => who,
        (None, Some(hook)) => {
            hook.authorise(&headers, ip, &query.topics, last_event_id.as_deref())
                .await?
        }
        (None, None) => state.auth.subscriber(None).await?,
    };
    state.auth.authorize_topics(&who, &topics)?;

    let (user, expires_at) = match who {
        Subscriber::User { id, expires_at, .. } => (Some(id), expires_at),
        Subscriber::Anonymous { expires_at, .. } => (None, expires_at),
    };
    if last_event_id.is_some() {
        if let Err(retry) = state.limits.resume(user.as_deref(), ip) {
            metrics::counter!(RESUMES_RATE_LIMITED).increment(1);
            return Err(ApiError::too_many(format!(
                "too many resumes with Last-Event-ID for this {} (--resume-rate); retry in {} s",
                if user.is_some() { "user" } else { "address" },
                retry.seconds()
            ))
            .retry_after(retry.seconds()));
        }
    }
    let topic_count = topics.len();
    let stream = state
        .herald
        .subscribe(SubscribeRequest {
            user: user.clone(),
            topics,
            last_event_id,
            expires_at,
            ..SubscribeRequest::default()
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

    Ok(stream_response(stream))
}

/// The `200 text/event-stream` answer carrying an open stream, for whoever writes it (hyper,
/// or [`crate::plain_sse`] on a plain HTTP/1.1 socket). Mercure streams use it too.
pub(crate) fn stream_response(stream: EventStream) -> Response {
    let handoff = StreamHandoff::new(stream);
    let mut response = Response::new(Body::new(HandoffBody {
        handoff: handoff.clone(),
        stream: None,
    }));
    response.extensions_mut().insert(handoff);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// An open stream waiting for whoever writes the response. Usually that is hyper, which polls
/// the response body; but a plain HTTP/1.1 connection is written by `herald_core::serve_socket`
/// instead ([`crate::plain_sse`]), which finds this handoff in the response's extensions and
/// takes the stream. Whoever takes it first owns it; the other finds it gone.
#[derive(Clone)]
pub struct StreamHandoff(Arc<Mutex<Option<EventStream>>>);

impl StreamHandoff {
    fn new(stream: EventStream) -> Self {
        Self(Arc::new(Mutex::new(Some(stream))))
    }

    pub fn take(&self) -> Option<EventStream> {
        self.0.lock().take()
    }
}

/// The response body: the stream, taken from its handoff on the first poll.
struct HandoffBody {
    handoff: StreamHandoff,
    stream: Option<EventStream>,
}

impl http_body::Body for HandoffBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if self.stream.is_none() {
            self.stream = self.handoff.take();
        }
        match self.stream.as_mut() {
            Some(stream) => Pin::new(stream).poll_frame(cx),
            None => Poll::Ready(None),
        }
    }
}
