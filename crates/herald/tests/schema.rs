//! Typed events: `herald serve --schema` refuses data that does not match its event's schema,
//! and `herald typegen` turns the same file into TypeScript.

mod common;

use std::process::Command;

use common::*;
use serde_json::json;

const SCHEMA: &str = r#"{
  "events": {
    "order_update": {
      "type": "object",
      "required": ["orderId", "status"],
      "properties": {
        "orderId": {"type": "string"},
        "status": {"enum": ["pending", "shipped", "delivered"]}
      }
    },
    "message": {"type": "string"}
  }
}"#;

fn schema_file(text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-schema-test-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("events.schema.json");
    std::fs::write(&path, text).expect("write");
    path
}

#[tokio::test]
async fn publishes_are_checked_against_their_events_schema() {
    let path = schema_file(SCHEMA);
    let server = Server::start(&["--schema", path.to_str().unwrap()]);
    let addr = &server.addr;
    let mut stream = Sse::ok(addr, &token("alice", &[])).await;

    let good = json!({"user": "alice", "event": "order_update", "data": {"orderId": "1", "status": "shipped"}});
    let id = publish_id(addr, good).await;

    let bad = json!({"user": "alice", "event": "order_update", "data": {"orderId": "1", "status": "lost"}});
    let reply = publish_raw(addr, Some(KEY), bad.to_string()).await;
    assert_eq!(reply.status, 400, "{}", reply.body);
    let message = reply.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("order_update") && message.contains("data/status"),
        "{message}"
    );

    // A batch with one bad item publishes nothing.
    let batch = json!([
        {"user": "alice", "event": "order_update", "data": {"orderId": "2", "status": "pending"}},
        {"user": "alice", "data": 42}
    ]);
    let reply = publish_raw(addr, Some(KEY), batch.to_string()).await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("item 1:"), "{}", reply.body);

    // Events the file does not list pass (no --schema-strict).
    let other = publish_id(
        addr,
        json!({"user": "alice", "event": "other", "data": [1]}),
    )
    .await;

    assert_eq!(stream.next_event().await.last_event_id, id);
    let next = stream.next_event().await;
    assert_eq!(
        (next.last_event_id, next.event_type),
        (other, "other".to_owned())
    );
}

#[tokio::test]
async fn strict_mode_refuses_events_the_file_does_not_list() {
    let path = schema_file(SCHEMA);
    let server = Server::start(&["--schema", path.to_str().unwrap(), "--schema-strict"]);
    let reply = publish_raw(
        &server.addr,
        Some(KEY),
        json!({"event": "other", "data": 1}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 400);
    assert!(reply.body.contains("--schema-strict"), "{}", reply.body);
    publish(&server.addr, json!({"data": "plain message text"})).await;
}

#[test]
fn a_broken_schema_file_stops_the_hub_at_startup_with_the_reason() {
    for (text, expected) in [
        ("{not json", "must be {\"events\""),
        (
            r#"{"events": {"e": {"type": 12}}}"#,
            "event \"e\": invalid schema",
        ),
    ] {
        let path = schema_file(text);
        let stderr = serve_refuses(&["--schema", path.to_str().unwrap()]);
        assert!(stderr.contains(expected), "{stderr}");
    }
}

#[test]
fn typegen_prints_the_events_type() {
    let path = schema_file(SCHEMA);
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["typegen", "--schema", path.to_str().unwrap()])
        .output()
        .expect("run");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let ts = String::from_utf8_lossy(&output.stdout);
    assert!(ts.contains("export type Events = {"), "{ts}");
    assert!(
        ts.contains("status: \"pending\" | \"shipped\" | \"delivered\";"),
        "{ts}"
    );
    assert!(ts.contains("\"message\": string;"), "{ts}");

    let missing = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["typegen", "--schema", "/nonexistent/schema.json"])
        .output()
        .expect("run");
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read the schema file"));
}
