//! Mercure's active subscriptions (`--mercure-subscriptions`), over real sockets: a private
//! update when a subscription starts and when it ends, in the subscriber's dialect, only to
//! subscribers allowed to see it; and the JSON-LD subscriptions API with its authorization.

mod common;

use common::mercure::*;
use common::{Open, Reply, Server};
use serde_json::{json, Value};

const BOOK: &str = "https://example.com/books/1";
const EVENTS: &str = "/.well-known/mercure/subscriptions";
/// The 0.x template that selects every subscription event.
const ALL_EVENTS: &str = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";

fn tracking_hub() -> Server {
    Server::start(&["--mercure", "--allow-anonymous", "--mercure-subscriptions"])
}

/// An API request with `token`.
async fn api(hub: &Server, path: &str, token: Option<&str>) -> Reply {
    let mut builder = http::Request::get(path).header("host", &hub.addr);
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    common::request(&hub.addr, builder.body(Default::default()).unwrap()).await
}

fn json_of(event: &herald_proto::MessageEvent) -> Value {
    serde_json::from_str(&event.data).expect("a JSON-LD document")
}

/// A watcher allowed every subscription event, as Mercure's own examples grant it.
async fn watcher(hub: &Server) -> common::Sse {
    let token = legacy(&[], &[ALL_EVENTS]);
    let sse = subscribe(
        hub,
        &[("topic", ALL_EVENTS), ("authorization", token.as_str())],
        Open::default(),
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.raw_text());
    sse
}

#[tokio::test]
async fn a_subscription_is_announced_when_it_starts_and_when_it_ends() {
    let hub = tracking_hub();
    let mut watching = watcher(&hub).await;
    // The watcher's own subscription is announced too.
    let own = json_of(&next_update(&mut watching).await);
    assert_eq!(own["topic"], ALL_EVENTS);

    let token = jwt(json!({
        "sub": "urn:user:ada",
        "mercure": {"subscribe": [BOOK], "payload": {"name": "Ada"}},
    }));
    let legacy_sub = subscribe(
        &hub,
        &[("topic", BOOK), ("authorization", token.as_str())],
        Open::default(),
    )
    .await;
    assert_eq!(legacy_sub.status, 200);
    let started = next_update(&mut watching).await;
    let iri =
        "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F1/urn%3Auser%3Aada";
    assert_eq!(
        json_of(&started),
        json!({
            "@context": "https://mercure.rocks/",
            "id": iri,
            "type": "Subscription",
            "topic": BOOK,
            "subscriber": "urn:user:ada",
            "active": true,
            "payload": {"name": "Ada"},
        })
    );
    assert!(started.last_event_id.starts_with("urn:uuid:"));

    // 1.0 selectors are described in 1.0's shape; an anonymous subscriber gets a urn:uuid.
    let pattern = anonymous(
        &hub,
        &[("match_urlpattern", "https://example.com/books/:id")],
    )
    .await;
    let document = json_of(&next_update(&mut watching).await);
    assert_eq!(document["matchType"], "URLPattern");
    assert_eq!(document["match"], "https://example.com/books/:id");
    assert_eq!(document["active"], true);
    let subscriber = document["subscriber"].as_str().unwrap().to_owned();
    assert!(subscriber.starts_with("urn:uuid:"), "{subscriber}");
    assert!(document["id"]
        .as_str()
        .unwrap()
        .starts_with("/.well-known/mercure/subscriptions/URLPattern/https%3A%2F%2Fexample.com%2Fbooks%2F%3Aid/urn%3Auuid%3A"));

    drop(legacy_sub);
    let ended = json_of(&next_update(&mut watching).await);
    assert_eq!(
        (ended["id"].as_str(), ended["active"].as_bool()),
        (Some(iri), Some(false))
    );
    drop(pattern);
    let ended = json_of(&next_update(&mut watching).await);
    assert_eq!(ended["subscriber"], subscriber.as_str());
    assert_eq!(ended["active"], false);
}

#[tokio::test]
async fn subscription_events_are_private_and_cannot_be_forged() {
    let hub = tracking_hub();
    // An anonymous subscriber selecting the events gets none: they are private.
    let mut nosy = anonymous(&hub, &[("topic", ALL_EVENTS), ("topic", BOOK)]).await;
    let _other = anonymous(&hub, &[("topic", BOOK)]).await;
    let marker = publish(&hub, &[("topic", BOOK), ("data", "marker")]).await;
    assert_eq!(next_update(&mut nosy).await.last_event_id, marker);
    // Publishers may not write into the hub's namespace.
    let forged = publish_as(
        &hub,
        Some(&publisher()),
        &[
            ("topic", "/.well-known/mercure/subscriptions/x/y"),
            ("data", "{}"),
        ],
    )
    .await;
    assert_eq!(forged.status, 400, "{}", forged.body);
}

#[tokio::test]
async fn the_api_lists_active_subscriptions_to_tokens_allowed_to_see_them() {
    let hub = tracking_hub();
    // A 0.x template covering every resource of the API, and the collection itself.
    let reader = legacy(
        &[],
        &["/.well-known/mercure/subscriptions{/a}{/b}{/c}", EVENTS],
    );
    let token = jwt(json!({"sub": "urn:user:ada", "mercure": {"subscribe": [BOOK]}}));
    let _ada = subscribe(
        &hub,
        &[
            ("topic", BOOK),
            ("match", "https://example.com/exact"),
            ("authorization", token.as_str()),
        ],
        Open::default(),
    )
    .await;
    let _anon = anonymous(&hub, &[("topic", BOOK)]).await;

    let all = api(&hub, EVENTS, Some(&reader)).await;
    assert_eq!(all.status, 200, "{}", all.body);
    assert_eq!(all.headers["content-type"], "application/ld+json");
    let all: Value = serde_json::from_str(&all.body).unwrap();
    assert_eq!(all["@context"], "https://mercure.rocks/");
    assert_eq!(all["type"], "Subscriptions");
    assert_eq!(all["id"], EVENTS);
    assert!(all["lastEventID"].is_string());
    assert_eq!(all["subscriptions"].as_array().unwrap().len(), 3);

    let by_topic = "/.well-known/mercure/subscriptions/https%3A%2F%2Fexample.com%2Fbooks%2F1";
    let topic: Value =
        serde_json::from_str(&api(&hub, by_topic, Some(&reader)).await.body).unwrap();
    assert_eq!(topic["subscriptions"].as_array().unwrap().len(), 2);

    let one = format!("{by_topic}/urn%3Auser%3Aada");
    let single = api(&hub, &one, Some(&reader)).await;
    assert_eq!(single.status, 200, "{}", single.body);
    let single: Value = serde_json::from_str(&single.body).unwrap();
    assert_eq!(
        (
            single["type"].as_str(),
            single["subscriber"].as_str(),
            single["active"].as_bool()
        ),
        (Some("Subscription"), Some("urn:user:ada"), Some(true))
    );
    let exact = "/.well-known/mercure/subscriptions/Exact/https%3A%2F%2Fexample.com%2Fexact/urn%3Auser%3Aada";
    let exact: Value = serde_json::from_str(&api(&hub, exact, Some(&reader)).await.body).unwrap();
    assert_eq!(exact["match"], "https://example.com/exact");

    let missing = api(&hub, &format!("{by_topic}/urn%3Anobody"), Some(&reader)).await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(api(&hub, EVENTS, None).await.status, 401);
    let stranger = legacy(&[], &[BOOK]);
    let refused = api(&hub, EVENTS, Some(&stranger)).await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
}

#[tokio::test]
async fn without_the_flag_there_is_no_api_and_no_event() {
    let hub = Server::start(&["--mercure", "--allow-anonymous"]);
    let reader = legacy(&[], &["*"]);
    let off = api(&hub, EVENTS, Some(&reader)).await;
    assert_eq!(off.status, 404, "{}", off.body);
    assert!(off.body.contains("--mercure-subscriptions"), "{}", off.body);
    let mut watching = subscribe(
        &hub,
        &[
            ("topic", ALL_EVENTS),
            ("topic", BOOK),
            ("authorization", reader.as_str()),
        ],
        Open::default(),
    )
    .await;
    let _other = anonymous(&hub, &[("topic", BOOK)]).await;
    let marker = publish(&hub, &[("topic", BOOK), ("data", "marker")]).await;
    // Nothing came before the marker: neither stream was announced.
    assert_eq!(next_update(&mut watching).await.last_event_id, marker);
}

#[tokio::test]
async fn a_1_0_payload_comes_from_the_first_subscribe_detail_matching_the_selector() {
    let hub = tracking_hub();
    let mut watching = watcher(&hub).await;
    next_update(&mut watching).await;
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let details = json!([
        {"type": "mercure", "actions": ["subscribe"],
         "topics": [{"match": "https://example.com/books/:id", "matchType": "URLPattern"}],
         "payload": {"shelf": "books"}},
        {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}],
         "payload": {"shelf": "default"}},
    ]);
    let token = jsonwebtoken::encode(
        &header,
        &json!({"exp": common::now() + 60, "sub": "urn:user:bo", "authorization_details": details}),
        &jsonwebtoken::EncodingKey::from_secret(common::SECRET.as_bytes()),
    )
    .unwrap();
    let _bo = subscribe(
        &hub,
        &[
            ("match", BOOK),
            ("match", "https://example.com/films/1"),
            ("authorization", token.as_str()),
        ],
        Open::default(),
    )
    .await;
    let mut payloads = Vec::new();
    for _ in 0..2 {
        let document = json_of(&next_update(&mut watching).await);
        payloads.push((document["match"].clone(), document["payload"].clone()));
    }
    payloads.sort_by_key(|(m, _)| m.to_string());
    assert_eq!(
        payloads,
        [
            (json!(BOOK), json!({"shelf": "books"})),
            (
                json!("https://example.com/films/1"),
                json!({"shelf": "default"})
            ),
        ]
    );
}
