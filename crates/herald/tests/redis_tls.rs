//! `rediss://` with a username and password: Herald speaks TLS to Redis, verifies the server's
//! certificate against the system's roots (here `SSL_CERT_FILE`, a test CA), and authenticates
//! as an ACL user.

mod common;
mod redis_harness;

use std::process::{Command, Stdio};

use common::*;
use redis_harness::*;
use serde_json::json;

#[tokio::test]
async fn a_node_on_rediss_with_acl_credentials_delivers_events() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("cert");
    let dir = std::env::temp_dir().join(format!("herald-redis-tls-{}", rand::random::<u64>()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    // ACL users only load from a file (the command line splits them wrongly).
    let conf = dir.join("redis.conf");
    std::fs::write(
        &conf,
        "user default off\nuser herald on >s3cret ~* &* +@all\n",
    )
    .unwrap();
    let mut redis = Command::new("redis-server")
        .arg(&conf)
        .args([
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--tls-auth-clients",
            "no",
        ])
        .arg("--tls-cert-file")
        .arg(&cert)
        .arg("--tls-key-file")
        .arg(&key)
        .arg("--dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("redis-server");
    eventually("redis accepts TLS connections", || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;

    let url = format!("rediss://herald:s3cret@localhost:{port}");
    let cert_file = cert.display().to_string();
    let args = [
        "--jwt-secret",
        SECRET,
        "--publish-key",
        KEY,
        "--redis",
        url.as_str(),
    ];
    let node = Server::start_raw(&args, &[("SSL_CERT_FILE", cert_file.as_str())]);
    assert!(
        !node.output().contains("s3cret"),
        "the password is never logged"
    );
    eventually("the node is ready", || readyz_is_200(&node)).await;
    let t = token("alice", &[]);
    let mut sse = open(&node, &t, "", None).await;
    let id = publish_id(
        &node.addr,
        json!({"user": "alice", "event": "tls", "data": 1}),
    )
    .await;
    let event = sse.next_event().await;
    assert_eq!(
        (event.event_type.as_str(), event.last_event_id.as_str()),
        ("tls", id.as_str())
    );

    drop(node);
    let _ = redis.kill();
    let _ = redis.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

async fn readyz_is_200(node: &Server) -> bool {
    readyz(node).await == 200
}
