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

use futures_util::Stream;
use http::header::{HeaderName, HeaderValue};
use http::Uri;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;

use crate::error::ClientError;
use herald_core::backoff::Backoff;

mod connection;
use connection::Connection;

/// The hub's reserved event: the resume point is older than its history, so events may have
/// been missed and the application should refetch its state.
pub use herald_proto::MISSED_EVENT;

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

/// What a topic keeps unencoded in a query value: unreserved characters, `/` and `*`, which
/// topics use and which are safe in a query.
const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~')
    .remove(b'/')
    .remove(b'*');

fn percent_encode(value: &str) -> String {
    percent_encoding::utf8_percent_encode(value, QUERY_VALUE).to_string()
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
