//! HTTP/1.1 streams over TLS, which the hub writes itself rather than through hyper (the
//! rustls connection and the socket are all an idle stream keeps): every event arrives, in
//! order, whether queued or written directly by the publisher, and however large; a refused
//! subscribe still gets its answer; a client that leaves ends its stream; TLS 1.2 clients and
//! a client's key update mid-stream are served like the rest.

mod common;

use bytes::Bytes;
use common::tls::{self_signed, send_tls, tls_connect, tls_connect_with};
use common::*;
use herald_proto::Item;
use http_body_util::{BodyExt, Full};
use rustls::pki_types::CertificateDer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct TlsHub {
    server: Server,
    root: CertificateDer<'static>,
}

impl TlsHub {
    fn start(extra: &[&str]) -> Self {
        let (cert, key, root) = self_signed();
        let mut args = vec!["--tls-cert", cert.as_str(), "--tls-key", key.as_str()];
        args.extend_from_slice(extra);
        TlsHub {
            server: Server::start(&args),
            root,
        }
    }

    fn get(&self, path: &str) -> http::request::Builder {
        http::Request::get(path).header("host", "localhost")
    }

    /// Sends `request` and reads the whole answer, which must be a 200.
    async fn ok(&self, request: http::Request<Full<Bytes>>) -> Bytes {
        let response = send_tls(&self.server.addr, &self.root, request).await;
        assert_eq!(response.status(), 200);
        response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
    }

    async fn publish(&self, body: Value) -> Value {
        let request = http::Request::post("/publish")
            .header("host", "localhost")
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        serde_json::from_slice(&self.ok(request).await).expect("JSON answer")
    }

    /// The value of the metric `series` (a line of `/metrics`), 0 if it has none yet.
    async fn metric(&self, series: &str) -> f64 {
        let body = self
            .ok(self.get("/metrics").body(Full::default()).unwrap())
            .await;
        let text = String::from_utf8_lossy(&body).into_owned();
        let prefix = format!("{series} ");
        text.lines()
            .find_map(|line| line.strip_prefix(&prefix))
            .and_then(|value| value.parse().ok())
            .unwrap_or(0.0)
    }

    /// Streams open now (the `herald_connections` gauge).
    async fn streams_open(&self) -> f64 {
        self.metric("herald_connections").await
    }

    /// Waits until `metric` reaches `value`.
    async fn until_metric(&self, series: &str, value: f64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.metric(series).await != value {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{series} did not reach {value}"
            );
            tokio::task::yield_now().await;
        }
    }
}

async fn next_event(items: &mut Items) -> (String, String) {
    loop {
        let item = tokio::time::timeout(WAIT, items.recv())
            .await
            .expect("an event in time")
            .flatten()
            .expect("the stream is still open");
        if let Item::Event(event) = item {
            return (event.event_type, event.data);
        }
    }
}

#[tokio::test]
async fn every_event_arrives_in_order_over_tls_small_and_large() {
    let hub = TlsHub::start(&[]);
    let alice = token("alice", &["news"]);
    let request = hub
        .get("/events?topic=news")
        .header("authorization", format!("Bearer {alice}"))
        .header("accept", "text/event-stream")
        .body(Full::default())
        .unwrap();
    let response = send_tls(&hub.server.addr, &hub.root, request).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
    assert_eq!(
        response.headers()["content-type"],
        "text/event-stream",
        "the stream's head is the router's"
    );
    let (mut items, _, _reader) = read_items(response.into_body());

    // Events for the user (written by the publisher straight to an idle stream's socket) and
    // for a topic, some larger than rustls's 64 KiB buffer and than the socket takes at once.
    let large = "x".repeat(300 * 1024);
    let mut sent = Vec::new();
    for i in 0..40 {
        let (target, data) = match i % 10 {
            3 => (json!({"topic": "news"}), json!(large.clone())),
            n if n % 2 == 0 => (json!({"user": "alice"}), json!(i)),
            _ => (json!({"topic": "news"}), json!(i)),
        };
        let mut body = target;
        body["event"] = json!(format!("e{i}"));
        body["data"] = data.clone();
        hub.publish(body).await;
        // A string's data goes out verbatim; other JSON as JSON.
        let wire = data
            .as_str()
            .map_or_else(|| data.to_string(), str::to_owned);
        sent.push((format!("e{i}"), wire));
    }
    for (name, data) in &sent {
        let (got_name, got_data) = next_event(&mut items).await;
        assert_eq!(&got_name, name);
        assert_eq!(got_data.len(), data.len(), "{name}'s data is whole");
        assert_eq!(&got_data, data);
    }
}

#[tokio::test]
async fn a_refused_subscribe_over_tls_gets_its_answer_and_nothing_else_breaks() {
    let hub = TlsHub::start(&[]);
    let request = hub
        .get("/events?topic=news")
        .header("authorization", "Bearer not-a-token")
        .body(Full::default())
        .unwrap();
    let response = send_tls(&hub.server.addr, &hub.root, request).await;
    assert_eq!(response.status(), 401);
    assert!(response.headers().contains_key("www-authenticate"));
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let answer: Value = serde_json::from_slice(&body).expect("JSON error");
    assert_eq!(answer["error"], "unauthorized");
    assert!(answer["message"].as_str().is_some_and(|m| !m.is_empty()));

    // Without a token (and no anonymous access) the answer is 401 too; the hub serves on.
    let request = hub.get("/events").body(Full::default()).unwrap();
    let response = send_tls(&hub.server.addr, &hub.root, request).await;
    assert_eq!(response.status(), 401);
    let request = hub.get("/healthz").body(Full::default()).unwrap();
    let response = send_tls(&hub.server.addr, &hub.root, request).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_client_that_leaves_ends_its_tls_stream() {
    let hub = TlsHub::start(&[]);
    let bob = token("bob", &[]);
    let request = hub
        .get("/events")
        .header("authorization", format!("Bearer {bob}"))
        .body(Full::default())
        .unwrap();
    let response = send_tls(&hub.server.addr, &hub.root, request).await;
    assert_eq!(response.status(), 200);
    let (mut items, _, reader) = read_items(response.into_body());
    hub.publish(json!({"user": "bob", "event": "hello", "data": 1}))
        .await;
    assert_eq!(next_event(&mut items).await.0, "hello");
    assert_eq!(hub.streams_open().await, 1.0);

    reader.abort();
    hub.until_metric("herald_connections", 0.0).await;
}

#[tokio::test]
async fn a_tls_client_that_stops_reading_is_cut_off_and_the_publisher_never_waits() {
    // Small events keep the stream's queue at its 4 MiB floor (it holds 8 of the largest).
    let hub = TlsHub::start(&["--max-body-bytes", "128KiB"]);
    let carol = token("carol", &[]);
    let mut tls = tls_connect(&hub.server.addr, hub.root.clone(), &[b"http/1.1"]).await;
    let request =
        format!("GET /events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {carol}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut head = [0u8; 12];
    tls.read_exact(&mut head).await.expect("answer");
    assert_eq!(&head, b"HTTP/1.1 200");
    hub.until_metric("herald_connections", 1.0).await;

    // Far more than the stream's queue (4 MiB) and the socket buffers hold, never read.
    let chunk = "y".repeat(64 * 1024);
    for i in 0..400 {
        hub.publish(json!({"user": "carol", "event": format!("e{i}"), "data": chunk}))
            .await;
    }
    hub.until_metric("herald_slow_consumer_disconnects_total", 1.0)
        .await;
    hub.until_metric("herald_connections", 0.0).await;
    drop(tls);
}

/// Reads from `tls` until what arrived contains `needle`.
async fn read_until<R: AsyncReadExt + Unpin>(tls: &mut R, seen: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(n > 0, "the stream ended before {needle:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

#[tokio::test]
async fn tls_1_2_clients_and_key_updates_mid_stream_keep_their_streams() {
    let hub = TlsHub::start(&[]);
    let dave = token("dave", &[]);
    let request =
        format!("GET /events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {dave}\r\n\r\n");

    // A TLS 1.2 client streams, and publishes over TLS 1.2 too.
    let mut old = tls_connect_with(
        &hub.server.addr,
        hub.root.clone(),
        &[b"http/1.1"],
        &[&rustls::version::TLS12],
    )
    .await;
    assert_eq!(
        old.get_ref().1.protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    old.write_all(request.as_bytes()).await.expect("request");
    let mut seen = Vec::new();
    read_until(&mut old, &mut seen, "HTTP/1.1 200").await;

    // A TLS 1.3 client that renews its keys while its stream is open.
    let mut new = tls_connect(&hub.server.addr, hub.root.clone(), &[b"http/1.1"]).await;
    new.write_all(request.as_bytes()).await.expect("request");
    let mut seen_new = Vec::new();
    read_until(&mut new, &mut seen_new, "HTTP/1.1 200").await;
    hub.until_metric("herald_connections", 2.0).await;

    hub.publish(json!({"user": "dave", "event": "one", "data": 1}))
        .await;
    read_until(&mut old, &mut seen, "event: one").await;
    read_until(&mut new, &mut seen_new, "event: one").await;

    // KeyUpdate, asking the hub to renew its keys as well: the hub must read it, answer with
    // its own, and encrypt what follows with the new keys, or the client fails to decrypt.
    new.get_mut().1.refresh_traffic_keys().expect("key update");
    new.flush().await.expect("send the key update");
    for i in 0..3 {
        hub.publish(json!({"user": "dave", "event": format!("after{i}"), "data": i}))
            .await;
    }
    read_until(&mut new, &mut seen_new, "event: after2").await;
    read_until(&mut old, &mut seen, "event: after2").await;
    assert_eq!(hub.streams_open().await, 2.0);

    // On a keep-alive connection the next request comes under the client's new keys: the hub
    // reads it only if it took the key update.
    let mut client = tls_connect(&hub.server.addr, hub.root.clone(), &[b"http/1.1"]).await;
    let health = "GET /healthz HTTP/1.1\r\nhost: localhost\r\n\r\n";
    let mut answers = Vec::new();
    client.write_all(health.as_bytes()).await.expect("request");
    read_until(&mut client, &mut answers, "HTTP/1.1 200").await;
    client
        .get_mut()
        .1
        .refresh_traffic_keys()
        .expect("key update");
    client.write_all(health.as_bytes()).await.expect("request");
    while String::from_utf8_lossy(&answers)
        .matches("HTTP/1.1 200")
        .count()
        < 2
    {
        let mut buf = [0u8; 1024];
        let n = tokio::time::timeout(WAIT, client.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        assert!(
            n > 0,
            "the hub closed instead of answering under the new keys"
        );
        answers.extend_from_slice(&buf[..n]);
    }
}

/// `--write-timeout` is about progress, not speed: a TLS client that reads slowly but steadily
/// keeps its stream for longer than the timeout and gets everything; one that stops reading is
/// cut by the timeout (with a backlog the stream's queue still holds, so not by its bound).
#[tokio::test]
async fn a_slow_tls_reader_keeps_its_stream_while_it_makes_progress() {
    let hub = TlsHub::start(&["--write-timeout", "500ms", "--max-body-bytes", "512KiB"]);
    let erin = token("erin", &[]);
    // A small receive buffer, so that the hub's writes block on this client.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let tcp = socket
        .connect(hub.server.addr.parse().expect("addr"))
        .await
        .expect("connect");
    let mut tls = common::tls::tls_over_tcp(tcp, hub.root.clone()).await;
    let request =
        format!("GET /events HTTP/1.1\r\nhost: localhost\r\nauthorization: Bearer {erin}\r\n\r\n");
    tls.write_all(request.as_bytes()).await.expect("request");
    let mut seen = Vec::new();
    read_until(&mut tls, &mut seen, "\r\n\r\n").await;
    assert!(seen.starts_with(b"HTTP/1.1 200"));
    hub.until_metric("herald_connections", 1.0).await;

    // Four events of 60 KiB, read 4 KiB every 50 ms (80 KiB/s): three seconds of reading,
    // six times the timeout, with bytes moving every 50 ms.
    let chunk = "z".repeat(60 * 1024);
    for i in 0..4 {
        hub.publish(json!({"user": "erin", "event": format!("e{i}"), "data": chunk}))
            .await;
    }
    let started = std::time::Instant::now();
    let mut buf = vec![0u8; 4096];
    while String::from_utf8_lossy(&seen).matches(&chunk).count() < 4 {
        let n = tokio::time::timeout(WAIT, tls.read(&mut buf))
            .await
            .expect("bytes in time")
            .expect("read");
        assert!(n > 0, "the stream was cut while its client was reading");
        seen.extend_from_slice(&buf[..n]);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        started.elapsed() > std::time::Duration::from_secs(1),
        "the backlog must outlast the write timeout for this test to mean anything"
    );
    assert_eq!(
        hub.metric("herald_slow_consumer_disconnects_total").await,
        0.0
    );
    assert_eq!(hub.streams_open().await, 1.0);

    // Now it stops reading: 3.5 MiB more is beyond what the socket buffers hold and within
    // the queue (4 MiB), so only the write timeout can end the stream.
    for i in 4..64 {
        hub.publish(json!({"user": "erin", "event": format!("e{i}"), "data": chunk}))
            .await;
    }
    hub.until_metric("herald_connections", 0.0).await;
    let closed = hub
        .server
        .wait_for_line(|l| l.contains("stream closed") && l.contains("user=erin"));
    let line = closed.expect("the stream's end is logged");
    assert!(line.contains("write_timeout"), "{line}");
}
