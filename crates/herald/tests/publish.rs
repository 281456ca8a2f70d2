//! `POST /publish`: authentication, validation, batches, publisher tokens.

mod common;

use common::*;
use herald::Claims;
use serde_json::json;

fn publisher(grants: &[&str]) -> String {
    token_with(Claims {
        sub: None,
        exp: now() + 3600,
        topics: None,
        publish: Some(grants.iter().map(|g| g.to_string()).collect()),
    })
}

#[tokio::test]
async fn publish_answers_ids_that_increase() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let a = publish_id(addr, json!({"data": 1})).await;
    let b = publish_id(addr, json!({"data": 2})).await;
    let batch = publish(addr, json!([{"data": 3}, {"data": 4, "user": "u"}])).await;
    let ids: Vec<herald_core::EventId> = [a, b]
        .iter()
        .map(String::as_str)
        .chain(
            batch["ids"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap()),
        )
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[tokio::test]
async fn publishing_needs_a_key_or_a_publisher_token() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let body = json!({"data": 1}).to_string();
    let none = publish_raw(addr, None, body.clone()).await;
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"], "unauthorized");
    assert_eq!(
        publish_raw(addr, Some("wrong-key"), body.clone())
            .await
            .status,
        401
    );
    // A key that is a prefix of the real one is still wrong.
    assert_eq!(
        publish_raw(addr, Some(&KEY[..KEY.len() - 1]), body.clone())
            .await
            .status,
        401
    );
    // A subscriber token cannot publish.
    let subscriber = publish_raw(addr, Some(&token("alice", &["**"])), body.clone()).await;
    assert_eq!(subscriber.status, 403);
    assert!(subscriber.json()["message"]
        .as_str()
        .unwrap()
        .contains("publish claim"));
}

#[tokio::test]
async fn publisher_tokens_publish_only_within_their_claim() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let orders = publisher(&["orders/**"]);
    let mut sub = Sse::open(
        addr,
        Open {
            token: Some(&token("alice", &["orders/**"])),
            query: "topic=orders/**",
            ..Default::default()
        },
    )
    .await;

    let ok = publish_raw(
        addr,
        Some(&orders),
        json!({"topic": "orders/7", "event": "o", "data": 1}).to_string(),
    )
    .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    for body in [
        json!({"topic": "billing/1", "data": 1}),
        json!({"user": "alice", "data": 1}),
        json!({"data": 1}),
        json!([{"topic": "orders/8", "data": 1}, {"topic": "admin", "data": 1}]),
    ] {
        let reply = publish_raw(addr, Some(&orders), body.to_string()).await;
        assert_eq!(reply.status, 403, "{body}: {}", reply.body);
    }
    let wide = publisher(&["@users", "@broadcast"]);
    assert_eq!(
        publish_raw(
            addr,
            Some(&wide),
            json!({"user": "alice", "data": 1}).to_string()
        )
        .await
        .status,
        200
    );
    assert_eq!(
        publish_raw(
            addr,
            Some(&wide),
            json!({"event": "end", "data": 1}).to_string()
        )
        .await
        .status,
        200
    );
    // The refused batch published nothing: orders/8 never arrives; alice gets the user event.
    assert_eq!(sub.names_until("end").await, ["o", "message", "end"]);
}

#[tokio::test]
async fn bad_input_gets_400_or_413_and_publishes_nothing() {
    let server = Server::start(&["--max-body-bytes", "2048"]);
    let addr = &server.addr;
    let mut sse = Sse::ok(addr, &token("alice", &[])).await;
    let cases: Vec<(String, u16, &str)> = vec![
        ("{not json".into(), 400, "malformed JSON"),
        ("\"just a string\"".into(), 400, "JSON object"),
        ("[]".into(), 400, "empty"),
        (json!({"event": "x"}).to_string(), 400, "data"),
        (
            json!({"data": 1, "event": "bad\nname"}).to_string(),
            400,
            "event name",
        ),
        (
            json!({"data": 1, "event": "bad\rname"}).to_string(),
            400,
            "event name",
        ),
        (
            json!({"data": 1, "event": "bad\u{0}name"}).to_string(),
            400,
            "event name",
        ),
        (
            json!({"data": 1, "event": "herald.missed"}).to_string(),
            400,
            "reserved",
        ),
        (
            json!({"data": 1, "retry": "soon"}).to_string(),
            400,
            "retry",
        ),
        (json!({"data": 1, "retry": -5}).to_string(), 400, "retry"),
        (
            json!({"data": 1, "target": "alice"}).to_string(),
            400,
            "unknown field",
        ),
        (
            json!({"data": 1, "user": 5}).to_string(),
            400,
            "invalid type",
        ),
        (
            json!({"data": 1, "users": []}).to_string(),
            400,
            "must not be empty",
        ),
        (
            json!({"data": 1, "topic": "a/*"}).to_string(),
            400,
            "wildcard",
        ),
        (
            json!({"data": 1, "topic": "a//b"}).to_string(),
            400,
            "empty segment",
        ),
        (
            json!([{"data": 1, "user": "alice"}, {"data": 2, "event": "a\nb"}]).to_string(),
            400,
            "item 1",
        ),
        (
            format!("{{\"data\":\"{}\"}}", "x".repeat(4096)),
            413,
            "larger than",
        ),
        (
            format!("{}{}", "[".repeat(500), "]".repeat(500)),
            400,
            "nested deeper",
        ),
    ];
    for (body, status, needle) in cases {
        let reply = publish_raw(addr, Some(KEY), body.clone()).await;
        assert_eq!(reply.status, status, "{body:.80}: {}", reply.body);
        let message = reply.json()["message"].as_str().unwrap().to_owned();
        assert!(message.contains(needle), "{body:.80}: {message}");
    }
    // Invalid UTF-8 body.
    let reply = publish_raw(addr, Some(KEY), vec![b'{', 0xff, b'}']).await;
    assert_eq!(reply.status, 400);

    // Nothing above reached the subscriber: the next event is this sentinel.
    publish(
        addr,
        json!({"user": "alice", "event": "sentinel", "data": 0}),
    )
    .await;
    assert_eq!(sse.next_event().await.event_type, "sentinel");
}

#[tokio::test]
async fn arbitrary_json_bodies_never_break_the_hub() {
    use proptest::prelude::*;
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;

    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(serde_json::Value::from),
        "\\PC{0,12}".prop_map(serde_json::Value::from),
        prop::sample::select(vec![
            "data", "event", "user", "users", "topic", "topics", "retry", "a/b", "x\ny", "herald.x"
        ])
        .prop_map(serde_json::Value::from),
    ];
    let keys = prop::sample::select(vec![
        "data", "event", "user", "users", "topic", "topics", "retry", "other",
    ]);
    let value = leaf.prop_recursive(3, 24, 5, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(keys.clone(), inner, 0..5).prop_map(|m| {
                serde_json::Value::Object(m.into_iter().map(|(k, v)| (k.to_owned(), v)).collect())
            }),
        ]
    });
    let mut runner = TestRunner::deterministic();
    for _ in 0..300 {
        let body = value.new_tree(&mut runner).unwrap().current();
        let reply = publish_raw(&addr, Some(KEY), body.to_string()).await;
        assert!(
            reply.status == 200 || reply.status == 400,
            "{body}: {} {}",
            reply.status,
            reply.body
        );
        assert!(reply.json().is_object());
    }
    // Still serving.
    assert_eq!(get(&addr, "/healthz").await.status, 200);
}
