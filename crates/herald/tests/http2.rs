//! HTTP/2: over TLS with ALPN (`h2`, falling back to `http/1.1`) from `--tls-cert/--tls-key`,
//! and cleartext h2c with prior knowledge. Many streams share one connection, which is the
//! point: browsers get six HTTP/1.1 connections per origin, but one h2 connection carries all.

mod common;

use bytes::Bytes;
use common::tls::{self_signed, tls_connect};
use common::*;
use futures_util::future::join_all;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

/// Opens `n` streams and a publish on one HTTP/2 connection; every stream gets the broadcast.
async fn hundred_streams_on_one_connection<I>(io: I, authority: &str)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(io))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    let alice = token("alice", &[]);
    let opened = join_all((0..100).map(|_| {
        let mut sender = sender.clone();
        let request = http::Request::get(format!("https://{authority}/events"))
            .header("authorization", format!("Bearer {alice}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        async move { sender.send_request(request).await.expect("stream") }
    }))
    .await;
    let mut bodies = Vec::new();
    for response in opened {
        assert_eq!(response.status(), 200);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let mut body = response.into_body();
        // The opening comment, retry and id-only block arrive first.
        let first = tokio::time::timeout(WAIT, body.frame())
            .await
            .expect("preamble");
        assert!(first.is_some());
        bodies.push(body);
    }

    let mut publisher = sender.clone();
    let publish = http::Request::post(format!("https://{authority}/publish"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(
            r#"{"event":"over_h2","data":"hello"}"#,
        )))
        .unwrap();
    let reply = publisher.send_request(publish).await.expect("publish");
    assert_eq!(reply.status(), 200);

    let received = join_all(bodies.into_iter().map(|mut body| async move {
        let mut text = String::new();
        while !text.contains("event: over_h2\n") {
            let frame = tokio::time::timeout(WAIT, body.frame())
                .await
                .expect("event in time")
                .expect("stream open")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
        }
        text
    }))
    .await;
    assert_eq!(received.len(), 100);
    assert!(received.iter().all(|t| t.contains("data: hello\n")));
}

#[tokio::test]
async fn tls_negotiates_h2_and_carries_a_hundred_streams_on_one_connection() {
    let (cert, key, der) = self_signed();
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let tls = tls_connect(&server.addr, der, &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    hundred_streams_on_one_connection(tls, &server.addr).await;
}

#[tokio::test]
async fn tls_serves_http_1_1_to_clients_without_h2() {
    let (cert, key, der) = self_signed();
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let tls = tls_connect(&server.addr, der, &[b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let response = sender
        .send_request(
            http::Request::get("/healthz")
                .header("host", "localhost")
                .body(Full::<Bytes>::default())
                .unwrap(),
        )
        .await
        .expect("request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_11);
}

#[tokio::test]
async fn cleartext_h2c_with_prior_knowledge_carries_a_hundred_streams() {
    let server = Server::start(&[]);
    let tcp = TcpStream::connect(&server.addr).await.expect("connect");
    hundred_streams_on_one_connection(tcp, &server.addr).await;
}

#[test]
fn curl_speaks_http2_over_tls() {
    let (cert, key, _) = self_signed();
    let server = Server::start(&["--tls-cert", &cert, "--tls-key", &key]);
    let port = server.addr.rsplit(':').next().unwrap();
    let url = format!("https://localhost:{port}/healthz");
    for (flag, expected) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let output = std::process::Command::new("curl")
            .args([
                "-sS",
                flag,
                "--cacert",
                &cert,
                "-o",
                "/dev/null",
                "-w",
                "%{http_version} %{http_code}",
            ])
            .args(["--resolve", &format!("localhost:{port}:127.0.0.1"), &url])
            .output()
            .expect("curl is installed (scripts/test-all.sh installs it)");
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            format!("{expected} 200"),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn bad_tls_settings_stop_the_hub_with_the_reason() {
    let (cert, _key, _) = self_signed();
    let cases: [(&[&str], &str); 3] = [
        (&["--tls-cert", &cert], "must be given together"),
        (
            &["--tls-cert", &cert, "--tls-key", "/nonexistent.pem"],
            "--tls-key",
        ),
        (&["--tls-cert", &cert, "--tls-key", &cert], "--tls-key"),
    ];
    for (args, expected) in cases {
        let stderr = serve_refuses(args);
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
}

/// Opens event streams one after another on one h2c connection; the statuses.
async fn statuses_of_streams_on_one_connection(addr: &str, n: usize) -> Vec<u16> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, connection) = http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    tokio::spawn(connection);
    let alice = token("alice", &[]);
    let mut statuses = Vec::new();
    let mut open = Vec::new();
    for _ in 0..n {
        let request = http::Request::get(format!("http://{addr}/events"))
            .header("authorization", format!("Bearer {alice}"))
            .body(Full::<Bytes>::default())
            .unwrap();
        let response = sender.clone().send_request(request).await.expect("stream");
        statuses.push(response.status().as_u16());
        open.push(response);
    }
    statuses
}

#[tokio::test]
async fn http2_event_streams_count_against_the_per_ip_limits() {
    // The connection is one of the three; two streams fit beside it, the third does not.
    let capped = Server::start(&["--max-connections-per-ip", "3"]);
    let statuses = statuses_of_streams_on_one_connection(&capped.addr, 4).await;
    assert_eq!(statuses, [200, 200, 429, 429]);
    // Each stream is a new connection for the rate, too.
    let rated = Server::start(&["--max-connect-rate-per-ip", "3"]);
    let statuses = statuses_of_streams_on_one_connection(&rated.addr, 4).await;
    assert_eq!(statuses, [200, 200, 429, 429]);
}
