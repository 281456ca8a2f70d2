//! `GET /.well-known/mercure`: a Mercure subscription, as a filtered Herald stream.
//!
//! Selectors come from `topic=` (0.x: `*`, an exact topic or a URI template), `match=` /
//! `matchExact=` (1.0 exact) and `match_urlpattern=` / `matchURLPattern=` (1.0 URL pattern),
//! each repeatable and OR'ed together; any other `match…` parameter is refused, as 1.0 reserves
//! the prefix. The stream receives an update when one of the update's topics matches one of
//! them; a private update also needs one of its topics to match a selector the token grants for
//! subscribing. Without a token the request is anonymous: allowed with `--allow-anonymous`
//! (public updates only), else 401.
//!
//! Resume: the `Last-Event-ID` header, else `lastEventID`; `earliest` replays the whole history
//! window. When a resume point was asked for, the answer's `Last-Event-ID` (and
//! `Mercure-Last-Event-ID`) header says where the stream starts: that id when the hub holds it,
//! else `earliest` — the stream then goes on live, never stuck (see [`super`]).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::Response;
use axum::Extension;
use herald_core::{EventId, Labels, StreamFilter, SubscribeError, SubscribeRequest};

use super::claims;
use super::selector::{any_matches, Selector};
use super::subscriptions::{Dialect, Source};
use super::MercureError;
use crate::app::{AppState, ClientIp};
use crate::metrics::RESUMES_RATE_LIMITED;
use crate::routes::events::{stream_response, MAX_TOPICS_PER_STREAM};

/// The resume keyword: everything the hub holds.
const EARLIEST: &str = "earliest";

/// A Mercure subscription's view of labelled events.
#[derive(Debug)]
struct MercureFilter {
    /// What the subscriber asked for.
    selected: Vec<Selector>,
    /// What its token lets it read of private updates.
    private: Vec<Selector>,
}

impl StreamFilter for MercureFilter {
    fn accepts(&self, labels: &Labels) -> bool {
        any_matches(&self.selected, &labels.names)
            && (!labels.private || any_matches(&self.private, &labels.names))
    }
}

#[derive(Default)]
struct Query {
    selectors: Vec<Selector>,
    /// The selectors as written, for subscription events.
    sources: Vec<Source>,
    token: Option<String>,
    last_event_id: Option<String>,
}

fn parse_query(uri: &Uri) -> Result<Query, MercureError> {
    let mut query = Query::default();
    let raw = uri.query().unwrap_or_default();
    if percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .is_err()
    {
        return Err(MercureError::invalid_request(
            "the query string is not valid UTF-8 after percent-decoding",
        ));
    }
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        let (selector, dialect) = match &*key {
            "topic" => (Selector::topic(&value), Dialect::Topic),
            "match" | "matchExact" => (Selector::exact(&value), Dialect::Exact),
            "match_urlpattern" | "matchURLPattern" => {
                (Selector::url_pattern(&value), Dialect::UrlPattern)
            }
            name if name.to_ascii_lowercase().starts_with("match") => {
                return Err(MercureError::invalid_request(format!(
                    "unknown matcher parameter {name:?} (use topic, match or match_urlpattern)"
                )))
            }
            "authorization" | "access_token" => {
                query.token = Some(value.into_owned());
                continue;
            }
            "lastEventID" | "lastEventId" => {
                query.last_event_id = Some(value.into_owned());
                continue;
            }
            _ => continue,
        };
        let selector =
            selector.map_err(|e| MercureError::invalid_request(format!("{key}: {e}")))?;
        if query.selectors.len() == MAX_TOPICS_PER_STREAM {
            return Err(MercureError::invalid_request(format!(
                "too many topic selectors: at most {MAX_TOPICS_PER_STREAM} per subscription"
            )));
        }
        query.selectors.push(selector);
        query.sources.push(Source {
            dialect,
            text: value.into_owned(),
        });
    }
    Ok(query)
}

pub async fn subscribe(
    State(state): State<Arc<AppState>>,
    client: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, MercureError> {
    let mut query = parse_query(&uri)?;
    let token = claims::token(&headers, query.token.as_deref())?;
    let grants = match token {
        Some(token) => claims::grants(&state.auth, &token).await?,
        None if state.auth.allows_anonymous() => claims::Grants::default(),
        None => {
            return Err(MercureError::token_required(
                "subscribing needs a token (Authorization: Bearer, cookie \
                 mercureAuthorization, or ?authorization=); this hub admits no anonymous \
                 subscribers (--allow-anonymous)",
            ))
        }
    };
    if query.selectors.is_empty() {
        return Err(MercureError::invalid_request(
            "a subscription needs at least one topic, match or match_urlpattern parameter",
        ));
    }
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .or(query.last_event_id.take())
        .filter(|id| !id.is_empty());
    let from_earliest = last_event_id.as_deref() == Some(EARLIEST);
    let resume = last_event_id.filter(|_| !from_earliest);
    if resume.is_some() || from_earliest {
        let ip = client.map(|Extension(ClientIp(ip))| ip);
        if let Err(retry) = state.limits.resume(None, ip) {
            metrics::counter!(RESUMES_RATE_LIMITED).increment(1);
            return Err(MercureError::too_many(
                format!(
                    "too many resumes from this address (--resume-rate); retry in {} s",
                    retry.seconds()
                ),
                retry.seconds(),
            ));
        }
    }
    // Where the stream starts (for the response header), asked before registering so every
    // event after it still reaches the stream. A Herald id is resumed from as it is; a Mercure
    // id is looked up (the hub's window, else the broker's shared history: on Redis the update
    // may come from another node, or from before this one started) and the stream resumes from
    // the Herald id of that update.
    let hub = state.herald.hub();
    let (resume, starts_after) = match resume {
        None => (None, from_earliest.then(|| EARLIEST.to_owned())),
        Some(text) if text.parse::<EventId>().is_ok() || hub.find_wire_id(&text).is_some() => {
            let starts = if hub.holds_resume_point(&text) {
                text.clone()
            } else {
                EARLIEST.to_owned()
            };
            (Some(text), Some(starts))
        }
        Some(text) => match state.herald.find_wire_id(&text).await {
            Ok(Some(id)) => (Some(id.to_string()), Some(text)),
            // Unknown: the stream says `herald.missed` and goes on live.
            Ok(None) => (Some(text), Some(EARLIEST.to_owned())),
            Err(error) => return Err(MercureError::unavailable(error.to_string())),
        },
    };
    let filter = MercureFilter {
        selected: std::mem::take(&mut query.selectors),
        private: grants.subscribe,
    };
    let stream = state
        .herald
        .subscribe(SubscribeRequest {
            last_event_id: resume,
            expires_at: grants.expires_at,
            filter: Some(Arc::new(filter)),
            from_earliest,
            ..SubscribeRequest::default()
        })
        .await
        .map_err(|error| match error {
            SubscribeError::TooManyForUser => MercureError::too_many(error.to_string(), 5),
            error => MercureError::unavailable(error.to_string()),
        })?;
    tracing::info!(stream = stream.id(), "mercure stream opened");
    if let Some(subscriptions) = &state.mercure_subscriptions {
        subscriptions
            .opened(stream.id(), grants.subject, query.sources, &grants.payloads)
            .await;
    }
    let mut response = stream_response(stream);
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, no-cache"),
    );
    if let Some(value) = starts_after.and_then(|id| HeaderValue::from_str(&id).ok()) {
        headers.insert("last-event-id", value.clone());
        headers.insert("mercure-last-event-id", value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(names: &[&str], private: bool) -> Labels {
        Labels {
            names: names.iter().map(|n| n.to_string()).collect(),
            private,
        }
    }

    #[test]
    fn the_filter_selects_and_guards_private_updates() {
        let filter = MercureFilter {
            selected: vec![Selector::topic("https://example.com/books/{id}").unwrap()],
            private: vec![Selector::exact("https://example.com/books/1").unwrap()],
        };
        assert!(filter.accepts(&labels(&["https://example.com/books/2"], false)));
        assert!(!filter.accepts(&labels(&["https://example.com/authors/2"], false)));
        assert!(filter.accepts(&labels(&["https://example.com/books/1"], true)));
        assert!(!filter.accepts(&labels(&["https://example.com/books/2"], true)));
        // An alternate topic can select, and another can authorise.
        assert!(filter.accepts(&labels(
            &["https://example.com/books/2", "https://example.com/books/1"],
            true
        )));
    }

    #[test]
    fn unknown_matchers_are_refused() {
        let uri: Uri = "/.well-known/mercure?matchRegex=x".parse().unwrap();
        assert!(parse_query(&uri).is_err());
        let uri: Uri = "/.well-known/mercure?topic=a&match=b&match_urlpattern=/c/:d"
            .parse()
            .unwrap();
        assert_eq!(parse_query(&uri).unwrap().selectors.len(), 3);
    }
}
