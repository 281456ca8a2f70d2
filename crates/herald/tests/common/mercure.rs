//! Mercure clients for the tests: tokens (0.x claims and 1.0 access tokens), form publishes
//! and subscriptions to `/.well-known/mercure`.

use bytes::Bytes;
use http_body_util::Full;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use super::{now, request, Open, Reply, Server, Sse, SECRET};
use herald_proto::MessageEvent;

pub const HUB: &str = "/.well-known/mercure";

/// Query or form fields, in order.
pub type Query<'a> = &'a [(&'a str, &'a str)];

pub fn jwt(claims: Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

/// A 0.x token: `{"mercure": {"publish": [...], "subscribe": [...]}}`, no `exp`.
pub fn legacy(publish: &[&str], subscribe: &[&str]) -> String {
    jwt(json!({"mercure": {"publish": publish, "subscribe": subscribe}}))
}

/// A 1.0 access token (`typ: at+jwt`) with one `mercure` authorization detail.
pub fn access_token(actions: &[&str], topics: Value) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.typ = Some("at+jwt".into());
    let claims = json!({
        "exp": now() + 3600,
        "authorization_details": [{"type": "mercure", "actions": actions, "topics": topics}],
    });
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .expect("sign")
}

pub fn publisher() -> String {
    legacy(&["*"], &[])
}

pub fn form(fields: &[(&str, &str)]) -> String {
    let mut form = form_urlencoded::Serializer::new(String::new());
    for (key, value) in fields {
        form.append_pair(key, value);
    }
    form.finish()
}

pub async fn publish_as(hub: &Server, token: Option<&str>, fields: &[(&str, &str)]) -> Reply {
    let mut builder = http::Request::post(HUB)
        .header("host", &hub.addr)
        .header("content-type", "application/x-www-form-urlencoded");
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let body = Full::new(Bytes::from(form(fields)));
    request(&hub.addr, builder.body(body).unwrap()).await
}

/// Publishes with a token allowed everything; returns the update's id.
pub async fn publish(hub: &Server, fields: &[(&str, &str)]) -> String {
    let reply = publish_as(hub, Some(publisher().as_str()), fields).await;
    assert_eq!(reply.status, 200, "publish refused: {}", reply.body);
    let kind = reply.headers["content-type"].to_str().unwrap();
    assert!(kind.starts_with("text/plain"), "{kind}");
    reply.body
}

pub async fn subscribe(hub: &Server, query: &[(&str, &str)], how: Open<'_>) -> Sse {
    let query = form(query);
    Sse::open_at(
        &hub.addr,
        HUB,
        Open {
            query: &query,
            ..how
        },
    )
    .await
}

pub async fn anonymous(hub: &Server, query: &[(&str, &str)]) -> Sse {
    let sse = subscribe(hub, query, Open::default()).await;
    assert_eq!(sse.status, 200, "{}", sse.raw_text());
    sse
}

/// The next update, skipping Herald's gap signal (a named event Mercure clients ignore).
pub async fn next_update(sse: &mut Sse) -> MessageEvent {
    loop {
        let event = sse.next_event().await;
        if event.event_type != herald_proto::MISSED_EVENT {
            return event;
        }
    }
}
