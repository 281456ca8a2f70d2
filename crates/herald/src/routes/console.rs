//! The developer console: `GET /console`, a page served by the binary itself.
//!
//! The page (HTML, CSS and JS compiled into the binary, no Node needed) shows live counts, the
//! busiest users and topics, recent events, and a form to publish test events. It holds no
//! secret: the browser asks for the publish key and sends it as a bearer credential to
//! `/console/api/snapshot` and `/publish`, exactly like any other publisher. In development mode
//! the banner prints a link carrying the key in the URL fragment, which browsers never send to
//! the server; the page reads it and removes it from the address bar.
//!
//! Off unless `--console` is given, except in development mode.

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use herald_core::broker::HubEvent;
use herald_core::EventId;
use herald_proto::{Item, Parser};
use serde::Serialize;

use crate::app::AppState;
use crate::auth::bearer;
use crate::auth::Publisher;
use crate::error::ApiError;

const PAGE: &str = include_str!("../../assets/console.html");
const SCRIPT: &str = include_str!("../../assets/console.js");
const STYLE: &str = include_str!("../../assets/console.css");

/// Users and topics listed in a snapshot.
const TOP: usize = 20;
/// Events returned per snapshot.
const RECENT: usize = 100;
/// Event data shown in the console is cut at this many bytes.
const DATA_PREVIEW: usize = 2048;

/// Strict policy: only the page's own script and style, only requests to this origin.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

pub async fn page(State(state): State<Arc<AppState>>) -> Response {
    asset(&state, PAGE, "text/html; charset=utf-8")
}

pub async fn script(State(state): State<Arc<AppState>>) -> Response {
    asset(&state, SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style(State(state): State<Arc<AppState>>) -> Response {
    asset(&state, STYLE, "text/css; charset=utf-8")
}

fn asset(state: &AppState, body: &'static str, content_type: &'static str) -> Response {
    if !state.console {
        return disabled().into_response();
    }
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

fn disabled() -> ApiError {
    ApiError::not_found_because("the developer console is off; start herald with --console")
}

#[derive(Serialize)]
pub struct Snapshot {
    connections: usize,
    users: usize,
    topics: usize,
    subscriptions: usize,
    anonymous: usize,
    last_event_id: String,
    top_users: Vec<Count>,
    top_topics: Vec<Count>,
    events: Vec<ConsoleEvent>,
}

#[derive(Serialize)]
struct Count {
    name: String,
    streams: usize,
}

#[derive(Serialize)]
struct ConsoleEvent {
    id: String,
    event: String,
    users: Vec<String>,
    topics: Vec<String>,
    /// Microseconds since the Unix epoch, when the hub accepted it.
    published_us: Option<u64>,
    data: String,
    truncated: bool,
}

/// `GET /console/api/snapshot`: counts, top users/topics and recent events. Publish key only.
pub async fn snapshot(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Snapshot>, ApiError> {
    if !state.console {
        return Err(disabled());
    }
    match state.auth.publisher(bearer(&headers)?).await? {
        Publisher::Key => {}
        Publisher::Token(_) => {
            return Err(ApiError::forbidden(
                "the console needs a publish key, not a publisher token",
            ))
        }
    }
    // `after`: only events after this id (the newest the page has already shown). Read here,
    // after the checks above, so a malformed query gets the same JSON errors as the rest.
    let mut after = None;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if key == "after" {
            if after.is_some() {
                return Err(ApiError::bad_request("after is given more than once"));
            }
            after = Some(value.into_owned());
        }
    }
    let after = match after.as_deref().filter(|a| !a.is_empty()) {
        None => None,
        Some(text) => Some(
            text.parse::<EventId>()
                .map_err(|_| ApiError::bad_request(format!("after={text:?} is not an event id")))?,
        ),
    };
    let hub = state.herald.hub();
    let inside = hub.snapshot(TOP);
    let counts = |list: Vec<(String, usize)>| {
        list.into_iter()
            .map(|(name, streams)| Count { name, streams })
            .collect()
    };
    Ok(Json(Snapshot {
        connections: inside.stats.connections,
        users: inside.stats.users,
        topics: inside.stats.topics,
        subscriptions: inside.stats.subscriptions,
        anonymous: inside.anonymous,
        last_event_id: inside.stats.last_event_id.to_string(),
        top_users: counts(inside.top_users),
        top_topics: counts(inside.top_topics),
        events: hub
            .recent_events(after, RECENT)
            .iter()
            .map(|e| console_event(e))
            .collect(),
    }))
}

/// Reads the event's data back from its encoded frame, the bytes subscribers receive.
fn console_event(event: &HubEvent) -> ConsoleEvent {
    let mut parser = Parser::new();
    let _ = parser.feed(&event.frame.bytes);
    let mut data = parser
        .drain()
        .find_map(|item| match item {
            Item::Event(message) => Some(message.data),
            _ => None,
        })
        .unwrap_or_default();
    let truncated = data.len() > DATA_PREVIEW;
    if truncated {
        let mut cut = DATA_PREVIEW;
        while !data.is_char_boundary(cut) {
            cut -= 1;
        }
        data.truncate(cut);
    }
    ConsoleEvent {
        id: event.id.to_string(),
        event: event.event.as_deref().unwrap_or("message").to_owned(),
        users: event.targets.users.iter().map(|u| u.to_string()).collect(),
        topics: event.targets.topics.iter().map(|t| t.to_string()).collect(),
        published_us: event.frame.published_us,
        data,
        truncated,
    }
}
