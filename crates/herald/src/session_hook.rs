//! `--auth-url`: the session hook. A subscribe request without a token is authorised by the
//! app, which already knows the browser from its session cookie.
//!
//! The hub sends `POST <url>` with the request's `Cookie`, `Authorization`, `Origin`,
//! `User-Agent` and `X-Forwarded-For` headers (`X-Forwarded-For` is the client's address when
//! the request has none) and the JSON body `{"topics": [...requested...], "lastEventId": <id or
//! null>}`. The app answers `200 {"user": "<id>" | null, "topics"?: [patterns], "expiresIn"?:
//! <seconds>}` (a null user is an anonymous stream), or `401`/`403`, which the subscriber gets
//! as such. No answer within `--auth-timeout`, no connection, a malformed answer or any other
//! status is `503` with `Retry-After`. At most `--auth-max-concurrent` calls are in flight;
//! beyond that, `503` at once. Connections to the app are pooled.
//!
//! Cookies and authorization headers are secrets: nothing here logs them.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_core::{validate_user, Pattern};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::auth::Subscriber;
use crate::error::ApiError;
use crate::jwks::redacted;
use crate::metrics as m;
use crate::outbound::{FetchError, HttpClient};

/// The most of an answer that is read.
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// `Retry-After` of a 503 when the app could not say (seconds).
pub const RETRY_AFTER: u32 = 2;

/// The request headers passed on to the app.
const FORWARDED: [HeaderName; 4] = [
    header::COOKIE,
    header::AUTHORIZATION,
    header::ORIGIN,
    header::USER_AGENT,
];
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

pub struct SessionHook {
    url: http::Uri,
    timeout: Duration,
    slots: Arc<Semaphore>,
    max_concurrent: usize,
    client: HttpClient,
}

/// How a call went, for the metrics label.
#[derive(Clone, Copy)]
enum Outcome {
    Allowed,
    Unauthorized,
    Forbidden,
    Failed,
    Timeout,
    Unreachable,
    Overloaded,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Unauthorized => "unauthorized",
            Outcome::Forbidden => "forbidden",
            Outcome::Failed => "failed",
            Outcome::Timeout => "timeout",
            Outcome::Unreachable => "unreachable",
            Outcome::Overloaded => "overloaded",
        }
    }

    pub const ALL: [Outcome; 7] = [
        Outcome::Allowed,
        Outcome::Unauthorized,
        Outcome::Forbidden,
        Outcome::Failed,
        Outcome::Timeout,
        Outcome::Unreachable,
        Outcome::Overloaded,
    ];
}

/// The metrics' outcome labels, to create the series at zero.
pub fn outcomes() -> impl Iterator<Item = &'static str> {
    Outcome::ALL.into_iter().map(Outcome::as_str)
}

impl SessionHook {
    pub fn new(url: http::Uri, timeout: Duration, max_concurrent: usize) -> Result<Self, String> {
        let max_concurrent = max_concurrent.max(1);
        Ok(Self {
            url,
            timeout,
            slots: Arc::new(Semaphore::new(max_concurrent)),
            max_concurrent,
            client: HttpClient::new(max_concurrent.min(64))?,
        })
    }

    /// Asks the app who this request is and what it may subscribe to.
    pub async fn authorise(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        topics: &[String],
        last_event_id: Option<&str>,
    ) -> Result<Subscriber, ApiError> {
        let started = std::time::Instant::now();
        let (outcome, result) = match self.slots.clone().try_acquire_owned() {
            Err(_) => (
                Outcome::Overloaded,
                Err(ApiError::unavailable(format!(
                    "too many session checks in flight (--auth-max-concurrent {}); retry shortly",
                    self.max_concurrent
                ))
                .retry_after(1)),
            ),
            Ok(slot) => {
                let result = self.call(headers, client, topics, last_event_id).await;
                drop(slot);
                result
            }
        };
        metrics::counter!(m::AUTH_HOOK_CALLS, "outcome" => outcome.as_str()).increment(1);
        if !matches!(outcome, Outcome::Overloaded) {
            metrics::histogram!(m::AUTH_HOOK_DURATION).record(started.elapsed().as_secs_f64());
        }
        result
    }

    async fn call(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        topics: &[String],
        last_event_id: Option<&str>,
    ) -> (Outcome, Result<Subscriber, ApiError>) {
        let unavailable = |message: String| {
            ApiError::unavailable(format!("cannot check the session: {message}"))
                .retry_after(RETRY_AFTER)
        };
        let body = serde_json::json!({ "topics": topics, "lastEventId": last_event_id });
        let request = match self.request(headers, client, body.to_string()) {
            Ok(request) => request,
            Err(error) => return (Outcome::Failed, Err(unavailable(error))),
        };
        let answer = match self
            .client
            .send(request, Instant::now() + self.timeout, MAX_ANSWER_BYTES)
            .await
        {
            Ok(answer) => answer,
            Err(error) => {
                let outcome = match error {
                    FetchError::Timeout(_) => Outcome::Timeout,
                    FetchError::Connect(_) => Outcome::Unreachable,
                    FetchError::TooLarge(_) | FetchError::Body(_) => Outcome::Failed,
                };
                tracing::warn!(url = %redacted(&self.url), %error, "session hook failed");
                let message = match error {
                    FetchError::Timeout(_) => format!(
                        "the session hook did not answer within {:?} (--auth-timeout)",
                        self.timeout
                    ),
                    _ => "the session hook could not be reached".to_owned(),
                };
                return (outcome, Err(unavailable(message)));
            }
        };
        match answer.status {
            StatusCode::OK => {}
            StatusCode::UNAUTHORIZED => {
                return (
                    Outcome::Unauthorized,
                    Err(ApiError::unauthorized(
                        "not signed in (the app's session hook answered 401)",
                    )),
                )
            }
            StatusCode::FORBIDDEN => {
                return (
                    Outcome::Forbidden,
                    Err(ApiError::forbidden(
                        "not allowed (the app's session hook answered 403)",
                    )),
                )
            }
            status => {
                tracing::warn!(url = %redacted(&self.url), %status,
                    "session hook answered neither 200, 401 nor 403");
                return (
                    Outcome::Failed,
                    Err(unavailable(format!("the session hook answered {status}"))),
                );
            }
        }
        match verdict(&answer.body) {
            Ok(subscriber) => (Outcome::Allowed, Ok(subscriber)),
            Err(problem) => {
                tracing::warn!(url = %redacted(&self.url), %problem,
                    "session hook answered 200 with a body Herald cannot use");
                (
                    Outcome::Failed,
                    Err(unavailable(format!(
                        "the session hook's answer is malformed: {problem}"
                    ))),
                )
            }
        }
    }

    fn request(
        &self,
        headers: &HeaderMap,
        client: Option<IpAddr>,
        body: String,
    ) -> Result<Request<Full<Bytes>>, String> {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(self.url.clone())
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let out = request.headers_mut();
        for name in FORWARDED {
            let values: Vec<&HeaderValue> = headers.get_all(&name).iter().collect();
            if name == header::COOKIE && values.len() > 1 {
                // HTTP/2 may split cookies over several fields; HTTP/1.1 apps expect one.
                let joined: Vec<&[u8]> = values.iter().map(|v| v.as_bytes()).collect();
                if let Ok(value) = HeaderValue::from_bytes(&joined.join(&b"; "[..])) {
                    out.insert(name, value);
                }
                continue;
            }
            for value in values {
                out.append(name.clone(), value.clone());
            }
        }
        let forwarded: Vec<&HeaderValue> = headers.get_all(&X_FORWARDED_FOR).iter().collect();
        if forwarded.is_empty() {
            if let Some(ip) = client {
                if let Ok(value) = HeaderValue::from_str(&ip.to_string()) {
                    out.insert(X_FORWARDED_FOR, value);
                }
            }
        } else {
            for value in forwarded {
                out.append(X_FORWARDED_FOR, value.clone());
            }
        }
        Ok(request)
    }
}

/// The subscriber a 200 answer describes: `{"user": "<id>" | <number> | null, "topics"?:
/// [patterns], "expiresIn"?: <seconds>}`. `user` must be present (a typo there would
/// otherwise make every stream anonymous).
fn verdict(body: &[u8]) -> Result<Subscriber, String> {
    use serde_json::Value;
    const SHAPE: &str =
        "expected {\"user\": \"<id>\" | null, \"topics\"?: [...], \"expiresIn\"?: <seconds>}";
    let Ok(Value::Object(answer)) = serde_json::from_slice::<Value>(body) else {
        return Err(format!("{SHAPE}, not a JSON object"));
    };
    let user = match answer.get("user") {
        None => return Err(format!("{SHAPE}: \"user\" is missing")),
        Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(Value::Number(id)) if id.is_i64() || id.is_u64() => Some(id.to_string()),
        Some(_) => return Err("user must be a string, an integer or null".into()),
    };
    let topics = match answer.get("topics") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                let p = item
                    .as_str()
                    .ok_or_else(|| "topics must be strings".to_owned())?;
                Pattern::parse(p).map_err(|e| format!("topics: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => return Err("topics must be an array of patterns".into()),
    };
    let expires_at = match answer.get("expiresIn") {
        None | Some(Value::Null) => None,
        Some(Value::Number(secs)) => match secs.as_f64() {
            Some(secs) if secs.is_finite() && secs >= 0.0 => {
                let at_ms = herald_core::unix_ms().saturating_add((secs * 1000.0) as u64);
                Some(at_ms.div_ceil(1000))
            }
            _ => return Err("expiresIn must be a number of seconds, 0 or more".into()),
        },
        Some(_) => return Err("expiresIn must be a number of seconds, 0 or more".into()),
    };
    Ok(match user {
        Some(id) => {
            validate_user(&id).map_err(|e| format!("user: {e}"))?;
            Subscriber::User {
                id,
                topics,
                expires_at,
            }
        }
        None => Subscriber::Anonymous { topics, expires_at },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_become_subscribers() {
        let Subscriber::User {
            id,
            topics,
            expires_at,
        } = verdict(br#"{"user": "u1", "topics": ["orders/*"], "expiresIn": 60}"#).unwrap()
        else {
            panic!("a user")
        };
        assert_eq!(id, "u1");
        assert_eq!(topics.len(), 1);
        let now = herald_core::unix_ms() / 1000;
        assert!(expires_at.is_some_and(|at| at >= now + 60 && at <= now + 61));
        assert!(matches!(
            verdict(br#"{"user": null}"#).unwrap(),
            Subscriber::Anonymous {
                expires_at: None,
                ..
            }
        ));
        assert!(matches!(
            verdict(br#"{"user": 42}"#).unwrap(),
            Subscriber::User { id, .. } if id == "42"
        ));
        assert!(verdict(br#"{"user": true}"#).is_err());
    }

    #[test]
    fn malformed_answers_are_refused() {
        for body in [
            &br#"{}"#[..],
            br#"{"userId": "u1"}"#,
            br#"{"user": "u1", "topics": ["a//b"]}"#,
            br#"{"user": "u1", "topics": "a"}"#,
            br#"{"user": "u1", "expiresIn": -1}"#,
            br#"{"user": "u1", "expiresIn": "soon"}"#,
            br#"{"user": ""}"#,
            b"<html>",
        ] {
            assert!(
                verdict(body).is_err(),
                "{:?} was accepted",
                String::from_utf8_lossy(body)
            );
        }
    }
}
