//! Tokens and requests that bend the rules: a JWT that is not valid yet, one with critical
//! header extensions, HTTP/1.1 requests with no `Host` or two. Each is refused.

mod common;

use base64::Engine;
use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An HS256 token with any header and claims (the library's encoder cannot write `crit`).
fn sign_hs256(header: &Value, claims: &Value) -> String {
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let signing_input = format!("{}.{}", b64(header), b64(claims));
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes());
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &key,
        jsonwebtoken::Algorithm::HS256,
    )
    .expect("sign");
    format!("{signing_input}.{signature}")
}

async fn status_with_token(addr: &str, token: &str) -> u16 {
    Sse::open(
        addr,
        Open {
            token: Some(token),
            ..Default::default()
        },
    )
    .await
    .status
}

#[tokio::test]
async fn a_token_whose_nbf_is_in_the_future_is_refused() {
    let server = Server::start(&[]);
    let claims = |nbf: u64| json!({"sub": "alice", "exp": now() + 3600, "nbf": nbf});
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let later = sign_hs256(&header, &claims(now() + 600));
    assert_eq!(status_with_token(&server.addr, &later).await, 401);
    let earlier = sign_hs256(&header, &claims(now() - 10));
    assert_eq!(status_with_token(&server.addr, &earlier).await, 200);
}

#[tokio::test]
async fn a_token_with_critical_header_extensions_is_refused() {
    let server = Server::start(&[]);
    let claims = json!({"sub": "alice", "exp": now() + 3600});
    let crit = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT", "crit": ["exp-ext"], "exp-ext": 1}),
        &claims,
    );
    assert_eq!(status_with_token(&server.addr, &crit).await, 401);
    let plain = sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims);
    assert_eq!(status_with_token(&server.addr, &plain).await, 200);
    // Publishing with such a token is refused too.
    let publisher = sign_hs256(
        &json!({"alg": "HS256", "crit": ["b64"], "b64": true}),
        &json!({"exp": now() + 3600, "publish": ["@broadcast"]}),
    );
    let reply = publish_raw(
        &server.addr,
        Some(&publisher),
        json!({"data": 1}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 401);
}

/// The status code of the answer to raw request bytes.
async fn raw_status(addr: &str, request: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(WAIT, tcp.read(&mut answer))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

#[tokio::test]
async fn http_1_1_requests_need_exactly_one_host() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &[]);
    for path in ["/healthz", "/events"] {
        let auth = format!("Authorization: Bearer {t}\r\n");
        let none = format!("GET {path} HTTP/1.1\r\n{auth}Connection: close\r\n\r\n");
        assert_eq!(raw_status(addr, &none).await, 400, "{path} without Host");
        let two =
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nHost: b\r\n{auth}Connection: close\r\n\r\n");
        assert_eq!(raw_status(addr, &two).await, 400, "{path} with two");
        let one = format!("GET {path} HTTP/1.1\r\nHost: a\r\n{auth}Connection: close\r\n\r\n");
        assert_eq!(raw_status(addr, &one).await, 200, "{path} with one");
    }
    // HTTP/1.0 had no Host requirement.
    assert_eq!(raw_status(addr, "GET /healthz HTTP/1.0\r\n\r\n").await, 200);
    // A publish without Host changes nothing.
    let body = r#"{"data":1}"#;
    let publish = format!(
        "POST /publish HTTP/1.1\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(raw_status(addr, &publish).await, 400);
    assert_eq!(metric_at(addr, "herald_events_published_total").await, 0.0);
}
