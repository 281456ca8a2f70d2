//! Active subscriptions (`--mercure-subscriptions`): subscription events and the subscriptions
//! API, as Mercure hubs offer them.
//!
//! Every selector of a Mercure stream is a subscription. When the stream opens, the hub
//! publishes one private update per subscription, `"active": true`, and `"active": false` when
//! the stream ends. The topic of each is the subscription's IRI, in the dialect the subscriber
//! used: `/.well-known/mercure/subscriptions/{topic}/{subscriber}` for 0.x `topic=`, and
//! `/.well-known/mercure/subscriptions/{matchType}/{match}/{subscriber}` for 1.0 `match=` and
//! `match_urlpattern=`, each variable percent-encoded once, whole. The updates are ordinary
//! labelled events: numbered, kept in history for resume, and sent through Redis to every node.
//! Publishers cannot forge them: a publish to a topic in the hub's namespace is refused.
//!
//! The subscriber is the token's `sub`, else a `urn:uuid:` the hub draws for the stream. A
//! subscription's payload is the first 1.0 `subscribe` detail's whose topics match its selector
//! (read as a topic), else the 0.x `mercure.payload` claim.
//!
//! The API (`GET /.well-known/mercure/subscriptions[/…]`, JSON-LD) answers from a table of the
//! subscriptions of streams open on this node: one entry per selector, at most
//! `MAX_TOPICS_PER_STREAM` per stream, so the table is bounded as the streams are
//! (`--max-connections`). A request is allowed a resource when its token grants subscribing to
//! the resource's path, the same rule that lets it receive the events.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use herald_core::labels::MAX_LABEL_LEN;
use herald_core::{Batch, Herald, Labels, Publication};
use parking_lot::Mutex;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::{json, Value};

use super::claims::{self, Payloads};
use super::selector::any_matches;
use super::MercureError;
use crate::app::AppState;

/// Where the subscriptions API lives, and the prefix of subscription topics.
pub const PATH: &str = "/.well-known/mercure/subscriptions";

/// RFC 6570 simple expansion: everything but the unreserved characters is percent-encoded.
const VARIABLE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How a subscriber wrote a selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// 0.x `topic=`.
    Topic,
    /// 1.0 `match=` / `matchExact=`.
    Exact,
    /// 1.0 `match_urlpattern=` / `matchURLPattern=`.
    UrlPattern,
}

impl Dialect {
    /// The 1.0 matcher type name; `None` for 0.x topic selectors.
    fn match_type(self) -> Option<&'static str> {
        match self {
            Dialect::Topic => None,
            Dialect::Exact => Some("Exact"),
            Dialect::UrlPattern => Some("URLPattern"),
        }
    }
}

/// One selector as the subscriber wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub dialect: Dialect,
    pub text: String,
}

#[derive(Debug, Clone)]
struct Subscription {
    source: Source,
    subscriber: Arc<str>,
    payload: Option<Arc<Value>>,
}

impl Subscription {
    /// Its IRI: the topic of its events, and its URL in the API.
    fn iri(&self) -> String {
        let encode = |text: &str| utf8_percent_encode(text, VARIABLE).to_string();
        let (text, subscriber) = (encode(&self.source.text), encode(&self.subscriber));
        match self.source.dialect.match_type() {
            None => format!("{PATH}/{text}/{subscriber}"),
            Some(kind) => format!("{PATH}/{kind}/{text}/{subscriber}"),
        }
    }

    fn document(&self, active: bool) -> Value {
        let mut document = json!({
            "id": self.iri(),
            "type": "Subscription",
            "subscriber": &*self.subscriber,
            "active": active,
        });
        match self.source.dialect.match_type() {
            None => document["topic"] = json!(self.source.text),
            Some(kind) => {
                document["matchType"] = json!(kind);
                document["match"] = json!(self.source.text);
            }
        }
        if let Some(payload) = &self.payload {
            document["payload"] = (**payload).clone();
        }
        document
    }

    /// What an API path (decoded segments after [`PATH`]) selects of it.
    fn is_selected_by(&self, segments: &[String]) -> bool {
        let kind = self.source.dialect.match_type();
        let (text, subscriber) = (&self.source.text, &*self.subscriber);
        match (segments, kind) {
            ([], _) => true,
            ([topic], None) => topic == text,
            ([first, second], None) => first == text && second == subscriber,
            ([first, second], Some(kind)) => first == kind && second == text,
            ([first, second, third], Some(kind)) => {
                first == kind && second == text && third == subscriber
            }
            _ => false,
        }
    }
}

/// The subscriptions of this node's open Mercure streams, and their events.
#[derive(Default)]
pub struct Subscriptions {
    /// Set once the hub exists (the end-of-stream hook is made before it).
    herald: OnceLock<Herald>,
    /// By stream id.
    open: Mutex<HashMap<u64, Vec<Subscription>>>,
}

impl Subscriptions {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// The hub the events go to.
    pub fn attach(&self, herald: Herald) {
        let _ = self.herald.set(herald);
    }

    /// A stream opened with these selectors: lists them and publishes their events.
    pub async fn opened(
        &self,
        stream: u64,
        subject: Option<String>,
        sources: Vec<Source>,
        payloads: &Payloads,
    ) {
        let subscriber: Arc<str> = subject.unwrap_or_else(super::publish::urn_uuid).into();
        let subscriptions: Vec<Subscription> = sources
            .into_iter()
            .map(|source| Subscription {
                payload: payloads.for_subscription(&source.text).map(Arc::new),
                source,
                subscriber: subscriber.clone(),
            })
            .collect();
        // Listed first: if the stream ends while this publishes, the end hook finds it.
        self.open.lock().insert(stream, subscriptions.clone());
        self.publish(&subscriptions, true).await;
    }

    /// A stream ended (the hub's end-of-stream hook, which must not wait): unlists its
    /// subscriptions and publishes their end in the background.
    pub fn ended(self: &Arc<Self>, stream: u64) {
        let Some(subscriptions) = self.open.lock().remove(&stream) else {
            return;
        };
        let this = self.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { this.publish(&subscriptions, false).await });
        }
    }

    /// One private update per subscription whose IRI fits in a label.
    async fn publish(&self, subscriptions: &[Subscription], active: bool) {
        let Some(herald) = self.herald.get() else {
            return;
        };
        let publications: Vec<Publication> = subscriptions
            .iter()
            .filter_map(|subscription| {
                let iri = subscription.iri();
                if iri.len() > MAX_LABEL_LEN {
                    tracing::debug!("a subscription IRI is too long for an event; not announced");
                    return None;
                }
                let mut document = subscription.document(active);
                document["@context"] = json!("https://mercure.rocks/");
                Some(Publication {
                    data: document.to_string(),
                    labels: Some(Labels {
                        names: vec![iri],
                        private: true,
                    }),
                    wire_id: Some(super::publish::urn_uuid()),
                    ..Publication::default()
                })
            })
            .collect();
        if publications.is_empty() {
            return;
        }
        let published = match Batch::new(publications) {
            Ok(batch) => herald.publish(&batch).await.map_err(|e| e.to_string()),
            Err(error) => Err(error.to_string()),
        };
        if let Err(error) = published {
            tracing::warn!(%error, "could not publish subscription events");
        }
    }

    /// The listed subscriptions an API path selects.
    fn select(&self, segments: &[String]) -> Vec<Subscription> {
        self.open
            .lock()
            .values()
            .flatten()
            .filter(|s| s.is_selected_by(segments))
            .cloned()
            .collect()
    }
}

/// `GET /.well-known/mercure/subscriptions[/…]`: the collection, a selector's collection, or
/// one subscription, as JSON-LD.
pub async fn api(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, MercureError> {
    let Some(subscriptions) = &state.mercure_subscriptions else {
        return Err(MercureError::not_found(
            "the subscriptions API is off (start the hub with --mercure-subscriptions)",
        ));
    };
    let path = uri.path();
    let query_token = super::publish::query_token(uri.query());
    let Some(token) = claims::token(&headers, query_token.as_deref())? else {
        return Err(MercureError::token_required(
            "the subscriptions API needs a token whose subscribe claim selects this URL",
        ));
    };
    let grants = claims::grants(&state.auth, &token).await?;
    if !any_matches(&grants.subscribe, &[path.to_owned()]) {
        return Err(MercureError::insufficient_scope(format!(
            "this token may not subscribe to {path}"
        )));
    }
    let segments = segments(path)?;
    let selected = subscriptions.select(&segments);
    // A Herald id: resuming from it (`lastEventID`) misses no subscription event after this
    // answer, even before any update was published.
    let last_event_id = state.herald.hub().last_event_id().to_string();
    let single = match segments.as_slice() {
        [_, _, _] => true,
        [first, _] => !matches!(first.as_str(), "Exact" | "URLPattern"),
        _ => false,
    };
    let mut document = if single {
        let Some(subscription) = selected.first() else {
            return Err(MercureError::not_found("no such subscription"));
        };
        subscription.document(true)
    } else {
        let listed: Vec<Value> = selected.iter().map(|s| s.document(true)).collect();
        json!({"id": path, "type": "Subscriptions", "subscriptions": listed})
    };
    document["@context"] = json!("https://mercure.rocks/");
    document["lastEventID"] = json!(last_event_id);
    let mut response = document.to_string().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json"),
    );
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("must-revalidate"),
    );
    Ok(response)
}

/// The decoded segments of an API path after [`PATH`]: at most three.
fn segments(path: &str) -> Result<Vec<String>, MercureError> {
    let rest = path.strip_prefix(PATH).unwrap_or_default();
    let rest = rest.strip_prefix('/').unwrap_or(rest);
    if rest.is_empty() {
        return Ok(Vec::new());
    }
    let segments = rest
        .split('/')
        .map(|segment| {
            percent_decode_str(segment)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| MercureError::invalid_request("the path is not valid UTF-8"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if segments.len() > 3 {
        return Err(MercureError::not_found("no such subscription resource"));
    }
    Ok(segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(dialect: Dialect, text: &str, subscriber: &str) -> Subscription {
        Subscription {
            source: Source {
                dialect,
                text: text.into(),
            },
            subscriber: subscriber.into(),
            payload: None,
        }
    }

    #[test]
    fn iris_encode_each_variable_once_in_the_subscribers_dialect() {
        let legacy = subscription(Dialect::Topic, "https://example.com/books/{id}", "urn:a%b");
        assert_eq!(
            legacy.iri(),
            "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F%7Bid%7D/urn%3Aa%25b"
        );
        let pattern = subscription(Dialect::UrlPattern, "https://example.com/:s", "u");
        assert_eq!(
            pattern.iri(),
            "/.well-known/mercure/subscriptions/URLPattern/https%3A%2F%2Fexample.com%2F%3As/u"
        );
        let document = pattern.document(false);
        assert_eq!(document["matchType"], "URLPattern");
        assert_eq!(document["match"], "https://example.com/:s");
        assert_eq!(document["active"], false);
        assert!(document.get("topic").is_none());
        assert_eq!(
            legacy.document(true)["topic"],
            "https://example.com/books/{id}"
        );
    }

    #[test]
    fn api_paths_select_collections_and_single_subscriptions() {
        let legacy = subscription(Dialect::Topic, "t", "s");
        let exact = subscription(Dialect::Exact, "t", "s");
        let seg = |s: &[&str]| s.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert!(legacy.is_selected_by(&[]) && exact.is_selected_by(&[]));
        assert!(legacy.is_selected_by(&seg(&["t"])));
        assert!(!exact.is_selected_by(&seg(&["t"])));
        assert!(legacy.is_selected_by(&seg(&["t", "s"])));
        assert!(exact.is_selected_by(&seg(&["Exact", "t"])));
        assert!(exact.is_selected_by(&seg(&["Exact", "t", "s"])));
        assert!(!exact.is_selected_by(&seg(&["Exact", "t", "other"])));
        assert!(!legacy.is_selected_by(&seg(&["Exact", "t", "s"])));
        assert_eq!(
            segments("/.well-known/mercure/subscriptions/a%2Fb/c").unwrap(),
            seg(&["a/b", "c"])
        );
        assert!(segments("/.well-known/mercure/subscriptions/a/b/c/d").is_err());
    }
}
