//! Per-node rate limits: new connections per source IP, events per publish credential. Both
//! answer 429 with `Retry-After` and leave everyone else alone.

mod common;

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// A raw `GET /healthz` from `source` (an address on the loopback network); the whole answer.
async fn healthz_from(addr: &str, source: &str) -> String {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source"))
        .expect("bind source");
    let mut tcp = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut answer = String::new();
    tokio::time::timeout(WAIT, tcp.read_to_string(&mut answer))
        .await
        .expect("answer in time")
        .expect("read");
    answer
}

#[tokio::test]
async fn connections_over_an_ips_rate_get_429_and_other_ips_do_not_notice() {
    let server = Server::start(&["--max-connect-rate-per-ip", "3"]);
    let addr = &server.addr;
    for _ in 0..3 {
        assert!(healthz_from(addr, "127.0.0.1")
            .await
            .starts_with("HTTP/1.1 200"));
    }
    let refused = healthz_from(addr, "127.0.0.1").await;
    assert!(refused.starts_with("HTTP/1.1 429"), "{refused}");
    assert!(
        refused.to_lowercase().contains("retry-after: 1"),
        "{refused}"
    );
    assert!(refused.contains("--max-connect-rate-per-ip"), "{refused}");
    assert!(healthz_from(addr, "127.0.0.2")
        .await
        .starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn publishing_over_a_credentials_rate_gets_429_and_changes_nothing() {
    let server = Server::start(&["--publish-rate", "5", "--publish-key", "second-key"]);
    let addr = &server.addr;
    let mut stream = Sse::ok(addr, &token("alice", &[])).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(publish_id(addr, json!({"user": "alice", "data": n})).await);
    }
    let refused = publish_raw(
        addr,
        Some(KEY),
        json!({"user": "alice", "data": 5}).to_string(),
    )
    .await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.json()["error"], "too_many_requests");
    assert!(refused.headers.contains_key("retry-after"));

    // Another key has its own allowance, and a batch counts every event in it (six never fit
    // in a burst of five).
    let other = publish_raw(
        addr,
        Some("second-key"),
        json!({"user": "alice", "data": "other"}).to_string(),
    )
    .await;
    assert_eq!(other.status, 200, "{}", other.body);
    let batch: Vec<_> = (0..5)
        .map(|n| json!({"user": "alice", "data": n}))
        .collect();
    let too_big = publish_raw(addr, Some("second-key"), json!(batch).to_string()).await;
    assert_eq!(too_big.status, 429);

    for id in &ids {
        assert_eq!(&stream.next_event().await.last_event_id, id);
    }
    assert_eq!(
        stream.next_event().await.data,
        "other",
        "the refused publishes sent nothing"
    );
}

/// A client that stops reading while events trickle in (too slowly to fill its queue in the
/// hub) is closed once a write has made no progress for `--write-timeout`; others carry on.
#[tokio::test]
async fn a_stream_whose_client_stops_reading_is_closed_after_the_write_timeout() {
    let server = Server::start(&["--write-timeout", "1s"]);
    let addr = &server.addr;
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .set_recv_buffer_size(4096)
        .expect("small receive buffer");
    let mut stalled = socket
        .connect(addr.parse().expect("addr"))
        .await
        .expect("connect");
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        token("stalled", &[])
    );
    stalled.write_all(request.as_bytes()).await.expect("write");
    let mut healthy = Sse::ok(addr, &token("healthy", &[])).await;

    let big = "x".repeat(256 * 1024);
    let mut closed = None;
    for n in 0..200 {
        publish(
            addr,
            json!({"user": "stalled", "event": "big", "data": big}),
        )
        .await;
        publish(addr, json!({"user": "healthy", "event": "tick", "data": n})).await;
        assert_eq!(healthy.next_event().await.data, n.to_string());
        closed = server
            .output()
            .lines()
            .find(|l| l.contains("stream closed") && l.contains("user=stalled"))
            .map(str::to_owned);
        if closed.is_some() {
            break;
        }
        // Trickle: a few events a second, far below what would fill the 4 MiB queue quickly.
        tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    }
    let line = closed.expect("the stalled stream was closed");
    assert!(line.contains("write_timeout"), "{line}");
    let metrics = get(addr, "/metrics").await.body;
    assert!(
        metrics.contains("herald_slow_consumer_disconnects_total 1"),
        "counted"
    );
    drop(stalled);
}
