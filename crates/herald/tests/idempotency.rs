//! Idempotent publishing: a retry with the same `Idempotency-Key` answers the first attempt's
//! ids and delivers nothing twice; keys are per credential; malformed keys are refused.
//! (Across two nodes on Redis: `redis_realtime.rs`.)

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn a_repeated_key_answers_the_same_ids_and_delivers_once() {
    let server = Server::start(&["--publish-key", "second-key"]);
    let addr = &server.addr;
    let mut sse = Sse::ok(addr, &token("alice", &[])).await;
    let body = json!([{"user": "alice", "event": "paid", "data": 1}, {"user": "alice", "event": "paid", "data": 2}]);
    let first = publish_with_key(addr, KEY, "order-42", &body).await;
    assert_eq!(first.status, 200);
    assert!(!first.headers.contains_key("idempotent-replayed"));
    let again = publish_with_key(addr, KEY, "order-42", &body).await;
    assert_eq!(
        (again.status, again.body.clone()),
        (200, first.body.clone()),
        "same answer"
    );
    assert_eq!(again.headers["idempotent-replayed"], "true");
    // Another credential with the same key is another key.
    let other = publish_with_key(
        addr,
        "second-key",
        "order-42",
        &json!({"user": "alice", "event": "other", "data": 3}),
    )
    .await;
    assert_eq!(other.status, 200);
    assert_ne!(other.body, first.body);
    publish(addr, json!({"user": "alice", "event": "end", "data": 0})).await;
    let names = sse.names_until("end").await;
    assert_eq!(
        names,
        ["paid", "paid", "other", "end"],
        "the repeat delivered nothing"
    );
    assert_eq!(metric_at(addr, "herald_publish_repeated_total").await, 1.0);
}

#[tokio::test]
async fn malformed_keys_are_refused() {
    let server = Server::start(&[]);
    for key in ["x".repeat(129), "has space".into(), "ünï".into()] {
        let reply = publish_with_key(&server.addr, KEY, &key, &json!({"data": 1})).await;
        assert_eq!(reply.status, 400, "{key:?}: {}", reply.body);
        assert!(reply.body.contains("Idempotency-Key"));
    }
}
