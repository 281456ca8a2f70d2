//! `GET /events`: authentication, authorisation, headers, routing, heartbeats, expiry.

mod common;

use common::*;
use herald::Claims;
use herald_proto::Item;
use serde_json::json;

fn open(token: &str, query: &str) -> Open<'static> {
    Open {
        token: Some(Box::leak(token.to_owned().into_boxed_str())),
        query: Box::leak(query.to_owned().into_boxed_str()),
        ..Default::default()
    }
}

#[tokio::test]
async fn stream_headers_first_comment_and_retry_hint() {
    let server = Server::start(&["--retry-ms", "4321"]);
    let mut sse = Sse::ok(&server.addr, &token("alice", &[])).await;
    assert_eq!(sse.headers["content-type"], "text/event-stream");
    assert_eq!(sse.headers["cache-control"], "no-cache");
    assert_eq!(sse.headers["x-accel-buffering"], "no");
    // The very first bytes are a comment, sent before any event exists.
    assert!(matches!(sse.next_item().await, Some(Item::Comment(_))));
    assert!(sse.raw_text().starts_with(':'), "{:?}", sse.raw_text());
    assert_eq!(sse.next_item().await, Some(Item::Retry(4321)));
}

#[tokio::test]
async fn missing_invalid_and_expired_tokens_get_401() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let none = Sse::open(addr, Open::default()).await;
    assert_eq!(none.status, 401);

    let garbage = Sse::open(addr, open("not-a-jwt", "")).await;
    assert_eq!(garbage.status, 401);

    let expired = token_with(Claims {
        sub: Some("alice".into()),
        exp: now() - 10,
        ..Default::default()
    });
    let reply = get(addr, &format!("/events?access_token={expired}")).await;
    assert_eq!(reply.status, 401);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("expired"));

    let other_secret = herald::mint_hs256(
        "some-other-secret",
        &Claims {
            sub: Some("alice".into()),
            exp: now() + 60,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(Sse::open(addr, open(&other_secret, "")).await.status, 401);

    let no_sub = token_with(Claims {
        exp: now() + 60,
        ..Default::default()
    });
    assert_eq!(Sse::open(addr, open(&no_sub, "")).await.status, 401);
    let bad_scheme = request(
        addr,
        http::Request::get("/events")
            .header("host", addr.as_str())
            .header("authorization", format!("Basic {}", token("alice", &[])))
            .body(Default::default())
            .unwrap(),
    )
    .await;
    assert_eq!(bad_scheme.status, 401);
}

#[tokio::test]
async fn wrong_algorithm_and_alg_none_are_rejected() {
    let server = Server::start(&[]);
    let claims = Claims {
        sub: Some("alice".into()),
        exp: now() + 60,
        ..Default::default()
    };
    // Same secret, but HS384: only the configured algorithm (HS256) is accepted.
    let hs384 = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS384),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let reply = get(&server.addr, &format!("/events?access_token={hs384}")).await;
    assert_eq!(reply.status, 401);
    assert!(reply.json()["message"]
        .as_str()
        .unwrap()
        .contains("algorithm"));

    // An unsigned token: header {"alg":"none"}.
    use base64::Engine;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT"})),
        b64(json!({"sub": "alice", "exp": now() + 60}))
    );
    assert_eq!(
        get(&server.addr, &format!("/events?access_token={unsigned}"))
            .await
            .status,
        401
    );
}

#[tokio::test]
async fn token_is_accepted_from_header_cookie_and_query() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &[]);
    let mut by_header = Sse::open(addr, open(&t, "")).await;
    let cookie = format!("theme=dark; herald_token={t}");
    let mut by_cookie = Sse::open(
        addr,
        Open {
            cookie: Some(&cookie),
            ..Default::default()
        },
    )
    .await;
    let query = format!("access_token={t}");
    let mut by_query = Sse::open(
        addr,
        Open {
            query: &query,
            ..Default::default()
        },
    )
    .await;
    for sse in [&by_header, &by_cookie, &by_query] {
        assert_eq!(sse.status, 200);
    }
    publish(
        addr,
        json!({"user": "alice", "event": "hello", "data": {"n": 1}}),
    )
    .await;
    for sse in [&mut by_header, &mut by_cookie, &mut by_query] {
        let event = sse.next_event().await;
        assert_eq!(event.event_type, "hello");
        assert_eq!(event.data, r#"{"n":1}"#);
    }
}

#[tokio::test]
async fn users_events_reach_all_their_tabs_and_nobody_else() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let mut tab1 = Sse::ok(addr, &token("alice", &[])).await;
    let mut tab2 = Sse::ok(addr, &token("alice", &[])).await;
    let mut bob = Sse::ok(addr, &token("bob", &[])).await;

    let id = publish_id(
        addr,
        json!({"user": "alice", "event": "secret", "data": "for alice"}),
    )
    .await;
    publish(addr, json!({"event": "sentinel", "data": "everyone"})).await;

    for tab in [&mut tab1, &mut tab2] {
        let event = tab.next_event().await;
        assert_eq!(
            (event.event_type.as_str(), event.data.as_str()),
            ("secret", "for alice")
        );
        assert_eq!(event.last_event_id, id);
        assert_eq!(tab.next_event().await.event_type, "sentinel");
    }
    // Bob's first event is the broadcast published after Alice's: hers never reached him.
    let first = bob.next_event().await;
    assert_eq!(first.event_type, "sentinel");
    assert!(!bob.raw_text().contains("for alice"));
}

#[tokio::test]
async fn topics_exact_and_wildcards_and_authorisation() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &["orders/*", "news/**"]);

    // Allowed: covered by a claim pattern.
    for q in [
        "topic=orders/1",
        "topic=orders/*",
        "topic=news/a/b",
        "topic=news/**",
    ] {
        assert_eq!(Sse::open(addr, open(&t, q)).await.status, 200, "{q}");
    }
    // Not covered: 403 with the topic named.
    for q in [
        "topic=orders/**",
        "topic=orders/1/items",
        "topic=news",
        "topic=secret",
        "topic=orders/1&topic=admin/x",
    ] {
        let reply = request(
            addr,
            http::Request::get(format!("/events?{q}"))
                .header("host", addr.as_str())
                .header("authorization", format!("Bearer {t}"))
                .body(Default::default())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 403, "{q}");
        assert_eq!(reply.json()["error"], "forbidden");
    }
    // Malformed pattern: 400.
    assert_eq!(
        Sse::open(addr, open(&t, "topic=orders/**/x")).await.status,
        400
    );
    // No topics claim: private topics are refused, public ones allowed.
    let plain = token("bob", &[]);
    assert_eq!(
        Sse::open(addr, open(&plain, "topic=orders/1")).await.status,
        403
    );
    assert_eq!(
        Sse::open(addr, open(&plain, "topic=public/news"))
            .await
            .status,
        200
    );

    let mut exact = Sse::open(addr, open(&t, "topic=orders/1")).await;
    let mut star = Sse::open(addr, open(&t, "topic=orders/*")).await;
    let mut deep = Sse::open(addr, open(&t, "topic=news/**")).await;
    publish(addr, json!({"topic": "orders/2", "event": "o2", "data": 2})).await;
    publish(addr, json!({"topic": "orders/1", "event": "o1", "data": 1})).await;
    publish(
        addr,
        json!({"topic": "news/world/eu", "event": "n", "data": 3}),
    )
    .await;
    publish(addr, json!({"event": "end", "data": 0})).await;

    assert_eq!(exact.names_until("end").await, ["o1", "end"]);
    assert_eq!(star.names_until("end").await, ["o2", "o1", "end"]);
    assert_eq!(deep.names_until("end").await, ["n", "end"]);
}

#[tokio::test]
async fn a_stream_matching_several_ways_gets_each_event_once() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &["orders/**"]);
    let mut sse = Sse::open(
        addr,
        open(&t, "topic=orders/1&topic=orders/*&topic=orders/**"),
    )
    .await;
    publish(
        addr,
        json!({"user": "alice", "topic": "orders/1", "event": "once", "data": 1}),
    )
    .await;
    publish(addr, json!({"event": "end", "data": 0})).await;
    assert_eq!(sse.next_event().await.event_type, "once");
    assert_eq!(sse.next_event().await.event_type, "end");
}

#[tokio::test]
async fn anonymous_streams_get_broadcasts_and_public_topics_only() {
    let server = Server::start(&["--allow-anonymous"]);
    let addr = &server.addr;
    let mut anon = Sse::open(
        addr,
        Open {
            query: "topic=public/scores",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(anon.status, 200);
    let private = Sse::open(
        addr,
        Open {
            query: "topic=orders/1",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(private.status, 403);
    // A bad token is still an error, not a downgrade to anonymous.
    assert_eq!(Sse::open(addr, open("garbage", "")).await.status, 401);

    publish(
        addr,
        json!({"user": "alice", "event": "private", "data": 1}),
    )
    .await;
    publish(
        addr,
        json!({"topic": "public/scores", "event": "score", "data": 2}),
    )
    .await;
    publish(addr, json!({"event": "all", "data": 3})).await;
    assert_eq!(anon.next_event().await.event_type, "score");
    assert_eq!(anon.next_event().await.event_type, "all");

    let without = Server::start(&[]);
    assert_eq!(Sse::open(&without.addr, Open::default()).await.status, 401);
}

#[tokio::test]
async fn string_data_lines_and_json_data_go_out_as_promised() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let mut sse = Sse::ok(addr, &token("alice", &[])).await;
    publish(
        addr,
        json!({"user": "alice", "data": "one\r\ntwo\rthree\nfour"}),
    )
    .await;
    // A literal body: the hub keeps the publisher's key order and only strips whitespace.
    let body = r#"{"user": "alice", "event": "j", "data": {"b": [1, 2], "a": "x"}, "retry": 2500}"#;
    assert_eq!(
        publish_raw(addr, Some(KEY), body.to_owned()).await.status,
        200
    );
    let first = sse.next_event().await;
    assert_eq!(first.event_type, "message");
    assert_eq!(first.data, "one\ntwo\nthree\nfour");
    assert!(sse
        .raw_text()
        .contains("data: one\ndata: two\ndata: three\ndata: four\n"));
    let second = sse.next_event().await;
    assert_eq!(second.data, r#"{"b":[1,2],"a":"x"}"#);
    assert!(sse.raw_text().contains("retry: 2500\n"));
}

#[tokio::test]
async fn idle_streams_get_heartbeat_comments() {
    let server = Server::start(&["--heartbeat", "1"]);
    let mut sse = Sse::ok(&server.addr, &token("alice", &[])).await;
    // Skip the opening comment and retry hint; then, with nothing published, a heartbeat comes.
    assert!(matches!(sse.next_item().await, Some(Item::Comment(_))));
    assert!(matches!(sse.next_item().await, Some(Item::Retry(_))));
    let started = std::time::Instant::now();
    assert!(matches!(sse.next_item().await, Some(Item::Comment(_))));
    assert!(matches!(sse.next_item().await, Some(Item::Comment(_))));
    // Two heartbeats need at least about one interval between them.
    assert!(started.elapsed() >= std::time::Duration::from_millis(900));
}

#[tokio::test]
async fn stream_closes_when_the_token_expires() {
    let server = Server::start(&[]);
    let short = token_with(Claims {
        sub: Some("alice".into()),
        exp: now() + 2,
        ..Default::default()
    });
    let mut sse = Sse::ok(&server.addr, &short).await;
    sse.until_end().await;
    let line = server
        .wait_for_line(|l| l.contains("stream closed"))
        .expect("close logged");
    assert!(line.contains("token_expired"), "{line}");
}

#[tokio::test]
async fn connection_limits_answer_503_and_429_with_retry_after() {
    let server = Server::start(&["--max-connections", "2", "--max-connections-per-user", "1"]);
    let addr = &server.addr;
    let _a = Sse::ok(addr, &token("alice", &[])).await;
    let second_tab = get(
        addr,
        &format!("/events?access_token={}", token("alice", &[])),
    )
    .await;
    assert_eq!(second_tab.status, 429);
    assert!(second_tab.headers.contains_key("retry-after"));
    let _b = Sse::ok(addr, &token("bob", &[])).await;
    let third = get(
        addr,
        &format!("/events?access_token={}", token("carol", &[])),
    )
    .await;
    assert_eq!(third.status, 503);
    assert!(third.headers.contains_key("retry-after"));
}

// Multi-threaded: the blocking wait for a log line must not stop the client closing its socket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_never_appear_in_logs() {
    // A departed client is noticed at the next write; a 1 s heartbeat makes that prompt.
    let server = Server::start(&["--heartbeat", "1"]);
    let t = token("alice", &[]);
    let query = format!("access_token={t}");
    let mut sse = Sse::open(
        &server.addr,
        Open {
            query: &query,
            ..Default::default()
        },
    )
    .await;
    sse.next_item().await;
    drop(sse);
    server
        .wait_for_line(|l| l.contains("stream closed"))
        .expect("close logged");
    let output = server.output();
    assert!(output.contains("stream opened"));
    assert!(!output.contains(&t), "token leaked into the log");
    assert!(!output.contains(SECRET), "secret leaked into the log");
}

/// Most streams are written by the hub's own HTTP/1.1 path; requests it leaves to hyper
/// (HTTP/1.0, a head split across packets) must stream just the same.
#[tokio::test]
async fn streams_work_over_http_1_0_and_with_a_head_split_across_packets() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(&[]);
    let addr = &server.addr;
    for (version, split) in [("HTTP/1.0", false), ("HTTP/1.1", true), ("HTTP/1.1", false)] {
        let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        let head = format!(
            "GET /events {version}\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\r\n",
            token("alice", &[])
        );
        if split {
            let (a, b) = head.split_at(20);
            socket.write_all(a.as_bytes()).await.unwrap();
            socket.flush().await.unwrap();
            socket.write_all(b.as_bytes()).await.unwrap();
        } else {
            socket.write_all(head.as_bytes()).await.unwrap();
        }
        // The stream is open once its position block (`id: ...`) has arrived.
        let mut received = Vec::new();
        let mut buf = [0u8; 4096];
        while !String::from_utf8_lossy(&received).contains("\nid: ") {
            let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
                .await
                .expect("stream opens")
                .unwrap();
            assert!(
                n > 0,
                "closed early: {}",
                String::from_utf8_lossy(&received)
            );
            received.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&received).to_string();
        assert!(
            text.starts_with("HTTP/1.") && text.contains(" 200 "),
            "{text}"
        );
        assert!(
            text.to_ascii_lowercase()
                .contains("content-type: text/event-stream"),
            "{text}"
        );
        publish(
            addr,
            json!({"user": "alice", "event": "hello", "data": version}),
        )
        .await;
        while !String::from_utf8_lossy(&received).contains("event: hello") {
            let n = tokio::time::timeout(WAIT, socket.read(&mut buf))
                .await
                .expect("event arrives")
                .unwrap();
            assert!(n > 0);
            received.extend_from_slice(&buf[..n]);
        }
    }
}

/// Events for a user are written to its sockets by the publisher when the stream is idle, and
/// through the stream's queue otherwise (topic events, a busy or full socket). Whatever the mix,
/// with publishers racing on several connections and events too big for one write, every tab
/// gets every event once and in id order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn direct_and_queued_writes_never_reorder_or_repeat_events() {
    const PUBLISHERS: usize = 4;
    const ROUNDS: usize = 40;
    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let t = token("alice", &["room"]);
    let mut tabs = vec![
        Sse::open(&addr, open(&t, "topic=room")).await,
        Sse::open(&addr, open(&t, "topic=room")).await,
    ];
    for tab in &mut tabs {
        assert_eq!(tab.status, 200);
    }
    let big = "x".repeat(256 * 1024);
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let (addr, big) = (addr.clone(), big.clone());
            tokio::spawn(async move {
                for round in 0..ROUNDS {
                    let data = if round % 16 == p {
                        big.as_str()
                    } else {
                        "small"
                    };
                    publish(
                        &addr,
                        json!([
                            {"user": "alice", "event": "user", "data": data},
                            {"topic": "room", "event": "topic", "data": round},
                            {"user": "alice", "event": "user", "data": round},
                        ]),
                    )
                    .await;
                }
            })
        })
        .collect();
    for publisher in publishers {
        publisher.await.unwrap();
    }
    let total = PUBLISHERS * ROUNDS * 3;
    for tab in &mut tabs {
        let mut last = (0u64, 0u64);
        for n in 0..total {
            let event = tab.next_event().await;
            let (ms, seq) = event.last_event_id.split_once('-').expect("ms-seq id");
            let id = (ms.parse().unwrap(), seq.parse().unwrap());
            assert!(id > last, "event {n}: {id:?} after {last:?}");
            last = id;
        }
    }
}
