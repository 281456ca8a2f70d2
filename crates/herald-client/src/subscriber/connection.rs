//! One subscription's connection task: connect, read, forward, and reconnect with
//! `Last-Event-ID` after the hub's `retry:` hint or backoff ([`super`] has the story).

use std::time::Duration;

use bytes::Bytes;
use herald_proto::{Item, Parser};
use http::{Request, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::sync::mpsc;

use super::{Event, SubscribeOptions};
use crate::error::{error_chain, ClientError};
use herald_core::backoff::Backoff;

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

pub(super) struct Connection {
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
    pub(super) fn new(
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

    pub(super) async fn run(mut self) {
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
