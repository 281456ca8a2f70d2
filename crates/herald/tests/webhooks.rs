//! Online/offline webhooks on one node: one signed `user.online` when a user's first stream
//! opens, one `user.offline` when the last one closed `--offline-delay` ago with none since, a
//! reload within the delay announces nothing, failed calls are retried, and the settings are
//! checked at start. (Two nodes sharing Redis: tests/redis_realtime.rs.)

mod common;

use std::time::Duration;

use common::stub::{Answer, Recorded, Stub};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

pub const WEBHOOK_SECRET: &str = "whsec-test-0123456789";

/// The receiver's check: the signature is the body's HMAC-SHA256 under the shared secret.
pub fn verify(request: &Recorded) -> bool {
    let Some(hex) = request
        .header("herald-signature")
        .and_then(|s| s.strip_prefix("sha256="))
    else {
        return false;
    };
    let Some(signature) = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()
    else {
        return false;
    };
    let mut mac = Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).unwrap();
    mac.update(&request.body);
    mac.verify_slice(&signature).is_ok()
}

fn hub(stub: &Stub, delay: &str) -> Server {
    hub_with(stub, delay, &[])
}

fn hub_with(stub: &Stub, delay: &str, extra: &[&str]) -> Server {
    let url = stub.url("/hooks/herald");
    let mut args = vec![
        "--webhook-url",
        &url,
        "--webhook-secret",
        WEBHOOK_SECRET,
        "--offline-delay",
        delay,
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// (type, user) of every call so far.
fn calls(stub: &Stub) -> Vec<(String, String)> {
    stub.requests()
        .iter()
        .map(|r| {
            let body = r.json();
            (
                body["type"].as_str().unwrap_or_default().to_owned(),
                body["user"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn call(kind: &str, user: &str) -> (String, String) {
    (kind.to_owned(), user.to_owned())
}

async fn changes(node: &Server, change: &str) -> f64 {
    metric_at(
        &node.addr,
        &format!("herald_presence_changes_total{{change=\"{change}\"}}"),
    )
    .await
}

/// Waits until the node has recorded `n` changes of this kind (the announcer works in the
/// background, after the stream opened or closed).
async fn recorded(node: &Server, change: &str, n: f64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while changes(node, change).await < n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {change} #{n} recorded"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn one_signed_online_then_one_offline_after_the_delay() {
    let stub = Stub::start(|_| Answer::status(204));
    let server = hub(&stub, "300ms");
    let alice = token("alice", &[]);
    let first = Sse::ok(&server.addr, &alice).await;
    let second = Sse::ok(&server.addr, &alice).await;
    stub.wait_for_count(1).await;
    let online = &stub.requests()[0];
    assert_eq!(online.method, "POST");
    assert_eq!(online.path, "/hooks/herald");
    assert_eq!(online.header("content-type"), Some("application/json"));
    assert!(verify(online), "the signature verifies with the secret");
    let body: Value = online.json();
    assert_eq!(
        (&body["type"], &body["user"]),
        (&json!("user.online"), &json!("alice"))
    );
    let online_at = body["at"].as_u64().expect("at: unix ms");
    assert!(online_at.abs_diff(now() * 1000) < 60_000);

    drop(first);
    drop(second);
    let closed_at = now() * 1000;
    stub.wait_for_count(2).await;
    let offline = &stub.requests()[1];
    assert!(verify(offline));
    assert_eq!(offline.json()["type"], "user.offline");
    assert!(offline.json()["at"].as_u64().unwrap() + 1000 >= closed_at);

    // Bob's online comes after anything else the hub had to say about alice.
    let _bob = Sse::ok(&server.addr, &token("bob", &[])).await;
    stub.wait_for_count(3).await;
    assert_eq!(
        calls(&stub),
        [
            call("user.online", "alice"),
            call("user.offline", "alice"),
            call("user.online", "bob")
        ]
    );
    // A forged or altered body does not verify.
    let mut forged = stub.requests()[2].clone();
    forged.body = br#"{"type":"user.online","user":"mallory","at":0}"#.to_vec().into();
    assert!(!verify(&forged));
}

#[tokio::test]
async fn a_reload_within_the_delay_announces_nothing() {
    let stub = Stub::start(|_| Answer::status(200));
    let server = hub(&stub, "2s");
    let alice = token("alice", &[]);
    let page = Sse::ok(&server.addr, &alice).await;
    stub.wait_for_count(1).await;
    drop(page);
    // The hub took note that alice's last stream closed: her offline is pending.
    recorded(&server, "depart", 1.0).await;
    let reloaded = Sse::ok(&server.addr, &alice).await;
    recorded(&server, "arrive", 2.0).await;
    drop(reloaded);
    recorded(&server, "depart", 2.0).await;
    stub.wait_for_count(2).await;
    let _bob = Sse::ok(&server.addr, &token("bob", &[])).await;
    stub.wait_for_count(3).await;
    assert_eq!(
        calls(&stub),
        [
            call("user.online", "alice"),
            call("user.offline", "alice"),
            call("user.online", "bob")
        ],
        "one online and one offline: the reload was not a departure"
    );
    assert_eq!(
        metric_at(
            &server.addr,
            "herald_announcements_total{type=\"user.offline\"}"
        )
        .await,
        1.0
    );
}

#[tokio::test]
async fn a_failed_call_is_retried_with_the_same_signed_body() {
    let stub = Stub::start(|_| Answer::status(500));
    let server = hub(&stub, "5s");
    let _page = Sse::ok(&server.addr, &token("alice", &[])).await;
    stub.wait_for_count(1).await;
    stub.respond(|_| Answer::status(200));
    stub.wait_for_count(2).await;
    let requests = stub.requests();
    assert_eq!(requests[0].body, requests[1].body);
    assert!(verify(&requests[1]));
    let deadline = tokio::time::Instant::now() + WAIT;
    while metric_at(
        &server.addr,
        "herald_webhook_deliveries_total{outcome=\"delivered\"}",
    )
    .await
        < 1.0
    {
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(metric_at(&server.addr, "herald_webhook_retries_total").await >= 1.0);
}

#[tokio::test]
async fn anonymous_streams_are_nobody_and_announce_nothing() {
    let stub = Stub::start(|_| Answer::status(200));
    let server = hub_with(&stub, "100ms", &["--allow-anonymous"]);
    let anonymous = Sse::open(&server.addr, Default::default()).await;
    assert_eq!(anonymous.status, 200);
    drop(anonymous);
    let _carol = Sse::ok(&server.addr, &token("carol", &[])).await;
    stub.wait_for_count(1).await;
    assert_eq!(calls(&stub), [call("user.online", "carol")]);
}

#[test]
fn webhook_settings_are_checked_at_start() {
    let refused = serve_refuses(&["--webhook-url", "http://127.0.0.1:9/hook"]);
    assert!(refused.contains("--webhook-secret"), "{refused}");
    let refused = serve_refuses(&[
        "--webhook-url",
        "ftp://example.com/hook",
        "--webhook-secret",
        "s3cret-value",
    ]);
    assert!(refused.contains("http:// or https://"), "{refused}");
    assert!(
        !refused.contains("s3cret-value"),
        "the secret is not echoed: {refused}"
    );
}
