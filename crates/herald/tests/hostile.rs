//! Hostile input over raw sockets: each gets a clear 4xx, nothing changes, and the hub keeps
//! serving the stream that was open all along. (Token forgery, `alg: none`, publisher tokens
//! beyond their claim, subscriber tokens used to publish, bad publish bodies and CORS are covered
//! in subscribe.rs, publish.rs and ops.rs.)

mod common;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends raw bytes as one request and returns the status line's code and the whole answer.
async fn raw(addr: &str, request: &[u8]) -> (u16, String) {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    // The hub may answer and close before reading everything (e.g. an oversized head).
    let _ = tcp.write_all(request).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, tcp.read_to_end(&mut answer)).await;
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    (status, text)
}

#[tokio::test]
async fn hostile_requests_get_4xx_and_the_hub_keeps_serving() {
    let server = Server::start(&["--console"]);
    let addr = &server.addr;
    let alice = token("alice", &["orders/**"]);
    let mut bystander = Sse::ok(addr, &alice).await;

    // A request head far over the 64 KiB limit.
    let huge = format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {alice}\r\nX-Filler: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(200 * 1024)
    );
    let (status, _) = raw(addr, huge.as_bytes()).await;
    assert_eq!(status, 431, "oversized head");

    // Invalid UTF-8 in the path and in a query value.
    let mut bad_path = b"GET /ev\xffents HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n".to_vec();
    let (status, _) = raw(addr, &bad_path).await;
    assert_eq!(status, 400, "invalid UTF-8 in the path");
    bad_path.clear();
    let bad_query = format!(
        "GET /events?topic=orders/%FF%FE HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {alice}\r\nConnection: close\r\n\r\n"
    );
    let (status, answer) = raw(addr, bad_query.as_bytes()).await;
    assert!(
        status == 400 || status == 403,
        "invalid UTF-8 in a topic: {answer}"
    );

    // Thousands of topics in one subscription.
    let topics: Vec<String> = (0..3000).map(|n| format!("topic=orders/{n}")).collect();
    let many = format!(
        "GET /events?{} HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {alice}\r\nConnection: close\r\n\r\n",
        topics.join("&")
    );
    let (status, answer) = raw(addr, many.as_bytes()).await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer.contains("64"), "the limit is named: {answer}");

    // Path traversal on the routes that serve static files.
    for path in [
        "/console/../../../../etc/passwd",
        "/console/%2e%2e/%2e%2e/etc/passwd",
        "/console/..%2f..%2fetc%2fpasswd",
        "/console/console.js/../../Cargo.toml",
    ] {
        let request = format!("GET {path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
        let (status, answer) = raw(addr, request.as_bytes()).await;
        assert!(status == 404 || status == 400, "{path}: {status}");
        assert!(
            !answer.contains("root:") && !answer.contains("[workspace]"),
            "{path}"
        );
    }

    // Deeply nested JSON, a body that is not UTF-8, and a subscriber token used to publish.
    let deep = format!("{{\"data\":{}1{}}}", "[".repeat(5000), "]".repeat(5000));
    assert_eq!(publish_raw(addr, Some(KEY), deep).await.status, 400);
    assert_eq!(
        publish_raw(addr, Some(KEY), &b"{\"data\":\"\xff\"}"[..])
            .await
            .status,
        400
    );
    assert_eq!(
        publish_raw(addr, Some(&alice), json!({"data": 1}).to_string())
            .await
            .status,
        403
    );

    // A garbage request line, and a connection that sends half a head and goes away.
    let (status, _) = raw(addr, b"\x00\x01\x02 nonsense\r\n\r\n").await;
    assert_eq!(status, 400);
    drop(
        TcpStream::connect(addr)
            .await
            .expect("connect")
            .write_all(b"GET /ev")
            .await,
    );

    // The stream that was open all along still works, and nothing was published.
    let id = publish_id(
        addr,
        json!({"user": "alice", "event": "still_here", "data": 1}),
    )
    .await;
    let event = bystander.next_event().await;
    assert_eq!(
        (event.event_type.as_str(), event.last_event_id.as_str()),
        ("still_here", id.as_str())
    );
}
