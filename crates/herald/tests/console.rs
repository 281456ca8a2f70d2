//! The developer console's HTTP side: off unless enabled, a page without secrets behind a strict
//! CSP, and a snapshot API that only a publish key opens. (tests/browser drives the page itself
//! in Chromium.)

mod common;

use common::*;
use herald::Claims;
use http_body_util::Full;
use serde_json::json;

async fn snapshot(addr: &str, auth: Option<&str>, query: &str) -> Reply {
    let mut builder =
        http::Request::get(format!("/console/api/snapshot{query}")).header("host", addr);
    if let Some(auth) = auth {
        builder = builder.header("authorization", format!("Bearer {auth}"));
    }
    request(addr, builder.body(Full::default()).unwrap()).await
}

#[tokio::test]
async fn the_console_is_off_unless_asked_for() {
    let server = Server::start(&[]);
    for path in ["/console", "/console/console.js", "/console/api/snapshot"] {
        let reply = get(&server.addr, path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.body.contains("--console"), "{path}: {}", reply.body);
    }
}

#[tokio::test]
async fn the_page_holds_no_secret_and_a_strict_policy() {
    let server = Server::start(&["--console"]);
    for path in ["/console", "/console/console.js", "/console/console.css"] {
        let reply = get(&server.addr, path).await;
        assert_eq!(reply.status, 200, "{path}");
        assert!(
            !reply.body.contains(KEY),
            "{path} must not embed the publish key"
        );
        assert!(
            !reply.body.contains(SECRET),
            "{path} must not embed the JWT secret"
        );
        let csp = reply.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
    }
    assert!(get(&server.addr, "/console")
        .await
        .body
        .contains("Publish key"));
}

#[tokio::test]
async fn the_snapshot_needs_a_publish_key_and_shows_streams_and_events() {
    let server = Server::start(&["--console"]);
    let addr = &server.addr;
    assert_eq!(snapshot(addr, None, "").await.status, 401);
    assert_eq!(snapshot(addr, Some("wrong"), "").await.status, 401);
    let publisher_token = token_with(Claims {
        sub: None,
        exp: now() + 60,
        topics: None,
        publish: Some(vec!["@users".into()]),
    });
    assert_eq!(snapshot(addr, Some(&publisher_token), "").await.status, 403);
    let subscriber = token("alice", &["orders/*"]);
    assert_eq!(snapshot(addr, Some(&subscriber), "").await.status, 403);
    assert_eq!(
        snapshot(addr, Some(KEY), "?after=nonsense").await.status,
        400
    );

    let _a1 = Sse::ok(addr, &subscriber).await;
    let _a2 = Sse::open(
        addr,
        Open {
            token: Some(&subscriber),
            query: "topic=orders/1",
            ..Default::default()
        },
    )
    .await;
    let first = publish_id(
        addr,
        json!({"user": "alice", "event": "hello", "data": {"n": 1}}),
    )
    .await;
    let second = publish_id(addr, json!({"topic": "orders/1", "data": "two\nlines"})).await;

    let all = snapshot(addr, Some(KEY), "").await;
    assert_eq!(all.status, 200, "{}", all.body);
    let all = all.json();
    assert_eq!(all["connections"], 2);
    assert_eq!(all["users"], 1);
    assert_eq!(all["top_users"], json!([{"name": "alice", "streams": 2}]));
    assert_eq!(
        all["top_topics"],
        json!([{"name": "orders/1", "streams": 1}])
    );
    assert_eq!(all["last_event_id"], second);
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 2);
    assert_eq!(
        (
            &events[0]["id"],
            &events[0]["event"],
            &events[0]["users"],
            &events[0]["data"]
        ),
        (
            &json!(first),
            &json!("hello"),
            &json!(["alice"]),
            &json!("{\"n\":1}")
        )
    );
    assert_eq!(
        (
            &events[1]["event"],
            &events[1]["topics"],
            &events[1]["data"]
        ),
        (
            &json!("message"),
            &json!(["orders/1"]),
            &json!("two\nlines")
        )
    );

    let newer = snapshot(addr, Some(KEY), &format!("?after={first}"))
        .await
        .json();
    let ids: Vec<_> = newer["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!(second)], "only events after the given id");
}

#[tokio::test]
async fn development_mode_turns_the_console_on_and_prints_its_link() {
    let server = Server::start_raw(&[], &[]);
    let line = server
        .wait_for_line(|l| l.contains("/console#key="))
        .expect("the banner links the console");
    let key = line.trim().rsplit("#key=").next().unwrap().to_owned();
    assert_eq!(get(&server.addr, "/console").await.status, 200);
    assert_eq!(snapshot(&server.addr, Some(&key), "").await.status, 200);
}
