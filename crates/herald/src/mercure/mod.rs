//! Mercure mode (`--mercure`): the Mercure protocol at `/.well-known/mercure`, on Herald's own
//! delivery path.
//!
//! Mercure users switch hubs by changing one URL, so the protocol is spoken as its clients and
//! publisher libraries expect it (0.x and the 1.0 draft side by side). Nothing here is a second
//! pub/sub system:
//!
//! * a publish ([`publish`]) becomes a *labelled* Herald event (`herald_core::labels`): its
//!   Mercure topics are the labels, `private` the labels' privacy, the Mercure id its wire id.
//!   It is numbered, kept in history, sent through Redis in multi-node mode and dispatched like
//!   every other event, and encoded once, by herald-proto, for all its subscribers;
//! * a subscription ([`subscribe`]) is a Herald stream with a filter: its selectors
//!   ([`selector`]) and, for private updates, the selectors its token grants ([`claims`]). The
//!   hub asks the filter about each labelled event; Herald's own events never reach it, nor do
//!   Mercure updates reach Herald's streams;
//! * resume is Herald's: `Last-Event-ID` (or `lastEventID`) names a Mercure id, found in the
//!   history window; an id the hub does not hold gets Herald's gap signal (`herald.missed`, a
//!   named event Mercure clients ignore) and the stream goes on live, never stuck.
//!
//! Errors are RFC 6750 answers: `text/plain` with a message for humans, and on 401/403 a
//! `WWW-Authenticate: Bearer error="…"` challenge.

pub mod claims;
pub mod publish;
pub mod selector;
pub mod subscribe;
pub mod subscriptions;
pub mod template;
pub mod urlpattern;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};

/// Where the hub speaks Mercure.
pub const PATH: &str = "/.well-known/mercure";

/// The discovery header every response of a Mercure-mode hub carries.
pub const LINK: &str = "</.well-known/mercure>; rel=\"mercure\"";

/// A refused Mercure request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MercureError {
    pub status: StatusCode,
    /// RFC 6750's error code, for the `WWW-Authenticate` challenge.
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    pub retry_after: Option<u32>,
}

impl MercureError {
    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            code: "invalid_request",
            message: message.into(),
            retry_after: None,
        }
    }

    /// No token where one is needed: 401 with a challenge but no error code (RFC 6750 §3.1).
    pub fn token_required(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "",
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn invalid_token(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            code: "invalid_token",
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn insufficient_scope(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            code: "insufficient_scope",
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            code: "",
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn too_large(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "invalid_request",
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "",
            message: message.into(),
            retry_after: Some(1),
        }
    }

    pub fn too_many(message: impl Into<String>, retry_after: u32) -> Self {
        Self {
            status: StatusCode::TOO_MANY_REQUESTS,
            code: "",
            message: message.into(),
            retry_after: Some(retry_after),
        }
    }
}

impl IntoResponse for MercureError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.message),
        )
            .into_response();
        let challenge = match (self.status, self.code) {
            (StatusCode::UNAUTHORIZED, "") => Some("Bearer realm=\"mercure\"".to_owned()),
            (StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN, code) => {
                Some(format!("Bearer realm=\"mercure\", error=\"{code}\""))
            }
            _ => None,
        };
        if let Some(value) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, value);
        }
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

/// Adds the discovery `Link` header to every response (a middleware of Mercure mode).
pub async fn discovery(mut response: Response) -> Response {
    response
        .headers_mut()
        .append(header::LINK, HeaderValue::from_static(LINK));
    response
}

/// `GET /`: the hub's origin answers with a small page (Mercure clients and test suites load a
/// page from the hub's origin).
pub async fn home() -> Html<&'static str> {
    Html(include_str!("home.html"))
}
