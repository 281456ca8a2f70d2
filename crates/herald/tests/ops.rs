//! Operations: health, readiness, metrics, CORS, graceful shutdown, dev mode, configuration
//! sources, subcommands, slow consumers.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use serde_json::json;

#[tokio::test]
async fn health_readiness_and_metrics() {
    let server = Server::start(&["--history", "2"]);
    let addr = &server.addr;
    assert_eq!(get(addr, "/healthz").await.json()["status"], "ok");
    assert_eq!(get(addr, "/readyz").await.status, 200);

    let t = token("alice", &[]);
    let mut sse = Sse::ok(addr, &t).await;
    let first = publish_id(addr, json!({"user": "alice", "data": 1})).await;
    sse.next_event().await;
    for n in 0..3 {
        publish(addr, json!({"user": "alice", "data": n})).await;
    }
    // One resume that misses (history 2), one that hits.
    let mut missed = Sse::open(
        addr,
        Open {
            token: Some(&t),
            last_event_id: Some(&first),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(missed.next_event().await.event_type, "herald.missed");
    let last = publish_id(addr, json!({"user": "alice", "data": 9})).await;
    let mut hit = Sse::open(
        addr,
        Open {
            token: Some(&t),
            last_event_id: Some(&last),
            ..Default::default()
        },
    )
    .await;
    hit.next_item().await;

    let metrics = get(addr, "/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    let text = metrics.body;
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing from:\n{text}"))
    };
    assert_eq!(value("herald_connections"), 3.0);
    assert_eq!(value("herald_events_published_total"), 5.0);
    assert!(value("herald_events_delivered_total") >= 1.0);
    assert_eq!(value("herald_replay_misses_total"), 1.0);
    assert_eq!(value("herald_replay_hits_total"), 1.0);
    assert_eq!(value("herald_slow_consumer_disconnects_total"), 0.0);
    assert_eq!(value("herald_events_dropped_total"), 0.0);
    assert!(value("herald_subscriptions") >= 0.0);
    assert!(
        text.contains("herald_delivery_latency_seconds_bucket{le=\"0.001\"}"),
        "{text}"
    );
    assert!(value("herald_delivery_latency_seconds_count") >= 1.0);
}

#[tokio::test]
async fn cors_allows_configured_origins_with_credentials_only() {
    let server = Server::start(&["--cors-origin", "https://app.example.com"]);
    let addr = &server.addr;
    let preflight = |origin: &'static str| {
        http::Request::options("/publish")
            .header("host", addr.as_str())
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
            .body(Default::default())
            .unwrap()
    };
    let ok = request(addr, preflight("https://app.example.com")).await;
    assert_eq!(
        ok.headers["access-control-allow-origin"],
        "https://app.example.com"
    );
    assert_eq!(ok.headers["access-control-allow-credentials"], "true");
    let allowed = ok.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("last-event-id"),
        "{allowed}"
    );

    let evil = request(addr, preflight("https://evil.example.net")).await;
    assert!(!evil.headers.contains_key("access-control-allow-origin"));

    let t = token("alice", &[]);
    let sse = Sse::open(
        addr,
        Open {
            token: Some(&t),
            origin: Some("https://app.example.com"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        sse.headers["access-control-allow-origin"],
        "https://app.example.com"
    );

    // A wildcard with credentials is refused at startup.
    let output = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--cors-origin", "*"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("wildcard"));
}

#[tokio::test]
async fn sigterm_ends_streams_with_a_reconnect_hint_and_exits_quickly() {
    let mut server = Server::start(&["--retry-ms", "1000"]);
    let t = token("alice", &[]);
    let mut a = Sse::ok(&server.addr, &t).await;
    let mut b = Sse::ok(&server.addr, &t).await;
    for sse in [&mut a, &mut b] {
        sse.next_item().await;
    }
    let started = std::time::Instant::now();
    let status = server.terminate().expect("exited");
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    for sse in [&mut a, &mut b] {
        let items = sse.until_end().await;
        let hint = items.iter().rev().find_map(|i| match i {
            herald_proto::Item::Retry(ms) => Some(*ms),
            _ => None,
        });
        // Jittered between the configured delay and twice it.
        assert!(matches!(hint, Some(1000..=2000)), "{items:?}");
    }
}

#[test]
fn dev_mode_prints_commands_that_work_when_pasted() {
    let server = Server::start_raw(&[], &[]);
    // The banner's last command line; everything before it has been read once it is seen.
    server
        .wait_for_line(|l| l.trim_start().starts_with("herald token --secret"))
        .expect("banner");
    let out = server.output();
    let subscribe = out
        .lines()
        .find(|l| l.trim_start().starts_with("curl -N"))
        .expect("subscribe line");
    let lines: Vec<&str> = out.lines().collect();
    let publish_at = lines
        .iter()
        .position(|l| l.trim_start().starts_with("curl -X POST"))
        .expect("publish line");
    // The publish command spans two lines joined by a trailing backslash.
    let publish = format!("{}\n{}", lines[publish_at], lines[publish_at + 1]);

    let mut subscriber = Command::new("bash")
        .args(["-c", &format!("{} --max-time 20", subscribe.trim())])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(subscriber.stdout.take().unwrap()).lines();
    // Connected once the hub's opening comment arrives.
    let first = reader.next().unwrap().unwrap();
    assert!(first.starts_with(':'), "{first}");

    let published = Command::new("bash")
        .args(["-c", publish.trim()])
        .output()
        .unwrap();
    assert!(published.status.success());
    assert!(String::from_utf8_lossy(&published.stdout).contains("\"id\""));
    let delivered = reader
        .map_while(Result::ok)
        .find(|l| l.starts_with("data:"))
        .expect("event delivered");
    assert!(delivered.contains("Hello from Herald"), "{delivered}");
    let _ = subscriber.kill();
    let _ = subscriber.wait();
}

#[tokio::test]
async fn configuration_precedence_flag_over_env_over_file() {
    let dir = std::env::temp_dir().join(format!("herald-cfg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("herald.toml");
    std::fs::write(
        &file,
        format!("jwt-secret = \"{SECRET}\"\npublish-key = [\"from-file\"]\nheartbeat = 100\n"),
    )
    .unwrap();
    let file = file.to_str().unwrap();

    // File alone: its publish key works.
    let s = Server::start_raw(&["--config", file], &[]);
    assert_eq!(
        publish_raw(&s.addr, Some("from-file"), json!({"data": 1}).to_string())
            .await
            .status,
        200
    );
    drop(s);

    // Env beats file: HERALD_PUBLISH_KEY replaces the file's list, HERALD_HEARTBEAT its heartbeat.
    let s = Server::start_raw(
        &["--config", file],
        &[
            ("HERALD_PUBLISH_KEY", "env-1,env-2"),
            ("HERALD_HEARTBEAT", "1"),
        ],
    );
    assert_eq!(
        publish_raw(&s.addr, Some("from-file"), json!({"data": 1}).to_string())
            .await
            .status,
        401
    );
    assert_eq!(
        publish_raw(&s.addr, Some("env-2"), json!({"data": 1}).to_string())
            .await
            .status,
        200
    );
    let mut sse = Sse::ok(&s.addr, &token("alice", &[])).await;
    for _ in 0..3 {
        sse.next_item().await; // comment, retry, then a heartbeat comment within a second or two
    }
    drop(s);

    // Flag beats env.
    let s = Server::start_raw(
        &["--config", file, "--publish-key", "from-flag"],
        &[("HERALD_PUBLISH_KEY", "env-1")],
    );
    assert_eq!(
        publish_raw(&s.addr, Some("env-1"), json!({"data": 1}).to_string())
            .await
            .status,
        401
    );
    assert_eq!(
        publish_raw(&s.addr, Some("from-flag"), json!({"data": 1}).to_string())
            .await
            .status,
        200
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn token_and_publish_subcommands_work_against_a_running_hub() {
    let server = Server::start(&[]);
    let herald = env!("CARGO_BIN_EXE_herald");
    let minted = Command::new(herald)
        .args([
            "token", "--secret", SECRET, "--sub", "alice", "--topics", "orders/*", "--ttl", "10m",
        ])
        .output()
        .unwrap();
    assert!(minted.status.success());
    let t = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let mut sse = Sse::open(
        &server.addr,
        Open {
            token: Some(&t),
            query: "topic=orders/1",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sse.status, 200);

    let url = server.url("");
    let published = Command::new(herald)
        .args([
            "publish",
            "--url",
            &url,
            "--key",
            KEY,
            "--user",
            "alice",
            "--event",
            "paid",
            "--data",
            r#"{"amount":5000}"#,
        ])
        .output()
        .unwrap();
    assert!(
        published.status.success(),
        "{}",
        String::from_utf8_lossy(&published.stderr)
    );
    let event = sse.next_event().await;
    assert_eq!(
        (event.event_type.as_str(), event.data.as_str()),
        ("paid", r#"{"amount":5000}"#)
    );

    let bad_json = Command::new(herald)
        .args(["publish", "--url", &url, "--key", KEY, "--data", "{oops"])
        .output()
        .unwrap();
    assert!(!bad_json.status.success());
    assert!(String::from_utf8_lossy(&bad_json.stderr).contains("--data must be JSON"));
    let bad_key = Command::new(herald)
        .args(["publish", "--url", &url, "--key", "nope", "--data", "1"])
        .output()
        .unwrap();
    assert!(!bad_key.status.success());
    assert!(String::from_utf8_lossy(&bad_key.stderr).contains("401"));
    let unreachable = Command::new(herald)
        .args([
            "publish",
            "--url",
            "http://127.0.0.1:1",
            "--key",
            KEY,
            "--data",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!unreachable.status.success());
    assert!(String::from_utf8_lossy(&unreachable.stderr).contains("cannot reach"));
}

/// A client that stops reading while big events pile up is cut off; others are unaffected.
#[tokio::test]
async fn slow_consumer_is_disconnected_and_counted_while_others_keep_receiving() {
    use tokio::io::AsyncWriteExt;
    let server = Server::start(&[]);
    let addr = &server.addr;
    // A raw socket that sends the request and then never reads.
    let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /events HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
        token("slow", &[])
    );
    stalled.write_all(request.as_bytes()).await.unwrap();
    let mut healthy = Sse::ok(addr, &token("fast", &[])).await;

    let big = "x".repeat(64 * 1024);
    let mut slow_closed = false;
    for n in 0..400 {
        publish(addr, json!({"user": "slow", "event": "big", "data": big})).await;
        if n % 20 == 19 {
            publish(addr, json!({"user": "fast", "event": "tick", "data": n})).await;
            assert_eq!(healthy.next_event().await.event_type, "tick");
            let metrics = get(addr, "/metrics").await.body;
            if metrics.contains("herald_slow_consumer_disconnects_total 1") {
                slow_closed = true;
                break;
            }
        }
    }
    assert!(slow_closed, "the stalled stream was never cut off");
    // The server lets go of the stream at once, though the client still holds its socket and a
    // write to it is stuck (rather than when the 30 s write timeout would end that write), and
    // the log says why. The stream is counted once, not again when the write gives up.
    let line = server
        .wait_for_line(|l| l.contains("stream closed") && l.contains("user=slow"))
        .expect("logged while the client still holds its socket");
    assert!(line.contains("slow_consumer"), "{line}");
    let metrics = get(addr, "/metrics").await.body;
    assert!(metrics.contains("herald_slow_consumer_disconnects_total 1\n"));
    drop(stalled);
}

/// Threads of the server process running its runtime's workers.
fn worker_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the server's threads")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == "tokio-rt-worker")
        .count()
}

#[tokio::test]
async fn workers_sets_the_number_of_serving_threads() {
    let one = Server::start(&["--workers", "1"]);
    let three = Server::start_raw(
        &["--jwt-secret", SECRET, "--publish-key", KEY],
        &[("HERALD_WORKERS", "3")],
    );
    for (server, expected) in [(&one, 1), (&three, 3)] {
        // Both still serve streams and publishes.
        let t = token("alice", &[]);
        let mut sse = Sse::ok(&server.addr, &t).await;
        publish(&server.addr, json!({"user": "alice", "data": "hi"})).await;
        assert_eq!(sse.next_event().await.data, "hi");
        assert_eq!(worker_threads(server.pid()), expected);
    }
}
