//! A subscription that survives the network.
//!
//! One background task owns the connection: it connects, feeds the body into herald-proto's
//! parser, forwards events through a bounded channel, and when the connection drops it waits
//! (the hub's `retry:` hint, then exponential backoff with full jitter) and reconnects with
//! `Last-Event-ID`, so the hub replays whatever was published meanwhile. The consumer sees one
//! uninterrupted [`Stream`] of events. Dropping the [`EventStream`] stops the task.
//!
//! Which failures end the stream and which are retried follows what the hub's answers mean:
//! `204` (stop), `400`, `403` and `404` are final; `401` is retried once with a fresh token when
//! a token function is configured; `429`, `503` and network errors are retried, honouring
//! `Retry-After`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use herald_proto::{Item, Parser};
use http::header::{HeaderName, HeaderValue};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::backoff::Backoff;
use crate::error::ClientError;

/// The hub's reserved event: the resume point is older than its history, so events may have
/// been missed and the application should refetch its state.
pub const MISSED_EVENT: &str = "herald.missed";

/// Events buffered between the connection task and a slow consumer. When full, the task stops
/// reading the socket, and the hub's own bound on that stream takes over.
const CHANNEL_CAPACITY: usize = 256;

/// Produces a fresh token before each connection attempt (e.g. by calling the app's backend).
pub type TokenFn = Arc<
    dyn Fn() -> Pin<Box<dyn Future<Output = Result<String, ClientError>> + Send>> + Send + Sync,
>;

/// One event as an `EventSource` would deliver it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The event's id (the stream's last event id when the event carried none).
    pub id: String,
    /// The event name; `"message"` for unnamed events.
    pub event: String,
    /// The data lines joined with LF.
    pub data: String,
}

impl Event {
    /// Deserialises `data` as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_str(&self.data).map_err(|e| ClientError::Decode {
            what: "event data",
            reason: e.to_string(),
        })
    }

    /// Is this the hub's reserved "missed" event?
    pub fn is_missed(&self) -> bool {
        self.event == MISSED_EVENT
    }
}

/// What to subscribe to and how to behave. Built with chained setters:
/// `SubscribeOptions::new(url).token(t).topic("orders/*")`.
#[derive(Clone)]
pub struct SubscribeOptions {
    url: String,
    token: Option<String>,
    token_fn: Option<TokenFn>,
    topics: Vec<String>,
    last_event_id: Option<String>,
    headers: Vec<(HeaderName, HeaderValue)>,
    backoff: Backoff,
    http2: bool,
    retry_first_connect: bool,
    max_event_bytes: usize,
}

impl fmt::Debug for SubscribeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are secrets: never printed.
        f.debug_struct("SubscribeOptions")
            .field("url", &self.url)
            .field("topics", &self.topics)
            .field("last_event_id", &self.last_event_id)
            .field("backoff", &self.backoff)
            .field("http2", &self.http2)
            .finish_non_exhaustive()
    }
}

impl SubscribeOptions {
    /// `url` is the hub's base URL (`http://host:8080`, `/events` is added) or the full
    /// subscribe URL.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            token: None,
            token_fn: None,
            topics: Vec::new(),
            last_event_id: None,
            headers: Vec::new(),
            backoff: Backoff::default(),
            http2: false,
            retry_first_connect: false,
            max_event_bytes: 1 << 20,
        }
    }

    /// A fixed subscriber token, sent as `Authorization: Bearer`.
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// A function called for a fresh token before every connection attempt; it replaces
    /// [`token`](Self::token).
    pub fn token_fn<F, Fut>(mut self, f: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<String, ClientError>> + Send + 'static,
    {
        self.token_fn = Some(Arc::new(move || Box::pin(f())));
        self
    }

    /// Subscribes to a topic or pattern (repeatable).
    pub fn topic(mut self, topic: impl Into<String>) -> Self {
        self.topics.push(topic.into());
        self
    }

    /// Resumes after this event id: the hub replays what came after it.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }

    /// Adds a request header to every connection attempt.
    pub fn header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Reconnection delays (the hub's `retry:` hint replaces `base`).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Speaks HTTP/2 with prior knowledge (h2c) instead of HTTP/1.1.
    pub fn http2(mut self, yes: bool) -> Self {
        self.http2 = yes;
        self
    }

    /// By default a hub that cannot be reached on the very first attempt is an error (so a
    /// wrong URL fails fast); with this set, the first connection is retried like later ones.
    pub fn retry_first_connect(mut self, yes: bool) -> Self {
        self.retry_first_connect = yes;
        self
    }

    /// The largest event the client accepts (default 1 MiB); a bigger one ends the connection,
    /// which is then retried.
    pub fn max_event_bytes(mut self, bytes: usize) -> Self {
        self.max_event_bytes = bytes;
        self
    }

    fn events_uri(&self) -> Result<Uri, ClientError> {
        let invalid = |reason: String| ClientError::InvalidUrl {
            url: self.url.clone(),
            reason,
        };
        let base: Uri = self
            .url
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))?;
        match base.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(invalid(
                    "https is not supported by this client yet; use http".into(),
                ))
            }
            _ => return Err(invalid("the URL must start with http://".into())),
        }
        let path = match base.path() {
            "" | "/" => "/events",
            path => path,
        };
        let mut query = base.query().map(str::to_owned).unwrap_or_default();
        for topic in &self.topics {
            if !query.is_empty() {
                query.push('&');
            }
            query.push_str("topic=");
            query.push_str(&percent_encode(topic));
        }
        let path_and_query = if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        };
        let authority = base.authority().map(|a| a.as_str()).unwrap_or_default();
        format!("http://{authority}{path_and_query}")
            .parse()
            .map_err(|e: http::uri::InvalidUri| invalid(e.to_string()))
    }
}

/// Opens a subscription. Connecting happens in the background; the first item of the stream is
/// an event or, if the hub refuses or cannot be reached, the error.
///
/// Must be called inside a tokio runtime.
pub fn subscribe(options: SubscribeOptions) -> Result<EventStream, ClientError> {
    let uri = options.events_uri()?;
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let task = tokio::spawn(Connection::new(options, uri, tx).run());
    Ok(EventStream { rx, task })
}

/// The events of a subscription, in order. Ends after an error that will not be retried.
pub struct EventStream {
    rx: mpsc::Receiver<Result<Event, ClientError>>,
    task: tokio::task::JoinHandle<()>,
}

impl Stream for EventStream {
    type Item = Result<Event, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for EventStream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// How one connection attempt ended.
enum Outcome {
    /// The consumer dropped the stream.
    Closed,
    /// Try again after the backoff (or after the hub's `Retry-After`).
    Retry {
        retry_after: Option<Duration>,
        received: bool,
    },
    /// Give up with this error.
    Fatal(ClientError),
}

struct Connection {
    options: SubscribeOptions,
    uri: Uri,
    tx: mpsc::Sender<Result<Event, ClientError>>,
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    /// What `Last-Event-ID` the next attempt sends.
    last_event_id: Option<String>,
    /// The hub's `retry:` hint, which replaces the backoff's base.
    retry_hint: Option<Duration>,
}

impl Connection {
    fn new(
        options: SubscribeOptions,
        uri: Uri,
        tx: mpsc::Sender<Result<Event, ClientError>>,
    ) -> Self {
        let client = Client::builder(TokioExecutor::new())
            .http2_only(options.http2)
            .build_http::<Empty<Bytes>>();
        let last_event_id = options.last_event_id.clone();
        Self {
            options,
            uri,
            tx,
            client,
            last_event_id,
            retry_hint: None,
        }
    }

    async fn run(mut self) {
        let mut attempt: u32 = 0;
        let mut ever_connected = false;
        let mut refreshed_after_401 = false;
        loop {
            let outcome = self
                .attempt(&mut ever_connected, &mut refreshed_after_401)
                .await;
            let delay = match outcome {
                Outcome::Closed => return,
                Outcome::Fatal(error) => {
                    let _ = self.tx.send(Err(error)).await;
                    return;
                }
                Outcome::Retry {
                    retry_after,
                    received,
                } => {
                    if received {
                        attempt = 0;
                    }
                    let backoff = Backoff {
                        base: self.retry_hint.unwrap_or(self.options.backoff.base),
                        cap: self.options.backoff.cap,
                    };
                    let delay = retry_after.unwrap_or_else(|| backoff.delay(attempt));
                    attempt = attempt.saturating_add(1);
                    delay
                }
            };
            tracing::debug!(?delay, attempt, "reconnecting to the hub");
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = self.tx.closed() => return,
            }
        }
    }

    async fn attempt(
        &mut self,
        ever_connected: &mut bool,
        refreshed_after_401: &mut bool,
    ) -> Outcome {
        let token = match self.token().await {
            Ok(token) => token,
            Err(error) => return Outcome::Fatal(error),
        };
        let request = match self.request(token.as_deref()) {
            Ok(request) => request,
            Err(error) => return Outcome::Fatal(error),
        };
        let response = tokio::select! {
            response = self.client.request(request) => response,
            () = self.tx.closed() => return Outcome::Closed,
        };
        let response = match response {
            Ok(response) => response,
            Err(error) => {
                let error = ClientError::Unreachable {
                    url: self.uri.to_string(),
                    reason: error_chain(&error),
                };
                if !*ever_connected && !self.options.retry_first_connect {
                    return Outcome::Fatal(error);
                }
                tracing::warn!(%error, "subscription: connection failed");
                return Outcome::Retry {
                    retry_after: None,
                    received: false,
                };
            }
        };
        *ever_connected = true;
        let status = response.status().as_u16();
        match status {
            200 => {
                *refreshed_after_401 = false;
                self.read_stream(response.into_body()).await
            }
            204 => Outcome::Fatal(ClientError::Stopped),
            401 if self.options.token_fn.is_some() && !*refreshed_after_401 => {
                // The token may just have expired: one more try with a fresh one.
                *refreshed_after_401 = true;
                Outcome::Retry {
                    retry_after: Some(Duration::ZERO),
                    received: false,
                }
            }
            429 | 502 | 503 | 504 => {
                let retry_after = response
                    .headers()
                    .get(http::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(Duration::from_secs);
                tracing::warn!(status, ?retry_after, "subscription: hub busy");
                Outcome::Retry {
                    retry_after,
                    received: false,
                }
            }
            _ => {
                let body = response
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                Outcome::Fatal(ClientError::from_response(status, &body))
            }
        }
    }

    async fn token(&self) -> Result<Option<String>, ClientError> {
        match &self.options.token_fn {
            Some(f) => f().await.map(Some),
            None => Ok(self.options.token.clone()),
        }
    }

    fn request(&self, token: Option<&str>) -> Result<Request<Empty<Bytes>>, ClientError> {
        let mut builder = Request::get(self.uri.clone())
            .header(http::header::ACCEPT, "text/event-stream")
            .header(http::header::CACHE_CONTROL, "no-cache");
        if let Some(token) = token {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(id) = self.last_event_id.as_deref().filter(|id| !id.is_empty()) {
            builder = builder.header("last-event-id", id);
        }
        for (name, value) in &self.options.headers {
            builder = builder.header(name, value);
        }
        builder
            .body(Empty::new())
            .map_err(|e| ClientError::InvalidUrl {
                url: self.uri.to_string(),
                reason: format!(
                    "cannot build the request (a header or the token is not valid in HTTP): {e}"
                ),
            })
    }

    /// Reads one connection's events until it ends.
    async fn read_stream(&mut self, mut body: hyper::body::Incoming) -> Outcome {
        let mut parser = Parser::with_max_buffer(self.options.max_event_bytes);
        let mut received = false;
        loop {
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = self.tx.closed() => return Outcome::Closed,
            };
            let chunk = match frame {
                None => {
                    return Outcome::Retry {
                        retry_after: None,
                        received,
                    }
                }
                Some(Err(error)) => {
                    tracing::warn!(error = %error_chain(&error), "subscription: stream broke");
                    return Outcome::Retry {
                        retry_after: None,
                        received,
                    };
                }
                Some(Ok(frame)) => match frame.into_data() {
                    Ok(data) => data,
                    Err(_) => continue, // trailers
                },
            };
            received = true;
            let fed = parser.feed(&chunk);
            for item in parser.drain() {
                match item {
                    Item::Event(message) => {
                        let event = Event {
                            id: message.last_event_id,
                            event: message.event_type,
                            data: message.data,
                        };
                        if self.tx.send(Ok(event)).await.is_err() {
                            return Outcome::Closed;
                        }
                    }
                    Item::Retry(ms) => self.retry_hint = Some(Duration::from_millis(ms)),
                    Item::Comment(_) => {}
                }
            }
            // Id-only blocks move the resume point too, so update after every chunk.
            if !parser.last_event_id().is_empty() {
                self.last_event_id = Some(parser.last_event_id().to_owned());
            }
            if let Err(error) = fed {
                tracing::warn!(%error, "subscription: unreadable stream, reconnecting");
                return Outcome::Retry {
                    retry_after: None,
                    received,
                };
            }
        }
    }
}

/// An error with its sources, which is where hyper puts the useful part ("connection refused").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Percent-encodes a query value: everything but unreserved characters, `/` and `*`, which
/// topics use and which are safe in a query.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'/' | b'*' => {
                out.push(byte as char)
            }
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_events_url_from_a_base_url_and_topics() {
        let options = SubscribeOptions::new("http://127.0.0.1:8080")
            .topic("orders/*")
            .topic("a&b");
        assert_eq!(
            options.events_uri().map(|u| u.to_string()),
            Ok("http://127.0.0.1:8080/events?topic=orders/*&topic=a%26b".to_owned())
        );
        let full = SubscribeOptions::new("http://h:1/custom/path?x=1").topic("t");
        assert_eq!(
            full.events_uri().map(|u| u.to_string()),
            Ok("http://h:1/custom/path?x=1&topic=t".to_owned())
        );
    }

    #[test]
    fn rejects_urls_it_cannot_use_with_a_reason() {
        for url in ["not a url", "ftp://h/", "https://h/"] {
            assert!(
                matches!(
                    SubscribeOptions::new(url).events_uri(),
                    Err(ClientError::InvalidUrl { .. })
                ),
                "{url}"
            );
        }
    }

    #[test]
    fn never_prints_the_token() {
        let options = SubscribeOptions::new("http://h").token("secret-token");
        assert!(!format!("{options:?}").contains("secret-token"));
    }
}
