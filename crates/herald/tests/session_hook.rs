//! `--auth-url`: a real `herald serve` asking a stub app's session hook who a token-less
//! subscribe request is (the app knows the browser by its session cookie).

mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::stub::{Answer, Recorded, Stub};
use common::*;
use http_body_util::Full;
use serde_json::json;

const SESSION: &str = "sid=alice-session-3f9a";

/// The app: the session cookie of alice is alice, who may follow orders; no session is 401.
fn app(request: &Recorded) -> Answer {
    match request.header("cookie") {
        Some(cookie) if cookie.contains(SESSION) => {
            Answer::json(200, json!({"user": "alice", "topics": ["orders/*"]}))
        }
        _ => Answer::status(401),
    }
}

fn hub_with(stub: &Stub, extra: &[&str]) -> Server {
    let url = stub.url("/herald/auth");
    let mut args = vec!["--auth-url", url.as_str()];
    args.extend_from_slice(extra);
    Server::start(&args)
}

async fn open_with_cookie<'a>(addr: &str, cookie: &'a str, query: &'a str) -> Sse {
    Sse::open(
        addr,
        Open {
            cookie: Some(cookie),
            query,
            ..Default::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_session_cookie_authorised_by_the_hook_opens_the_users_stream() {
    let stub = Stub::start(app);
    let hub = hub_with(&stub, &[]);
    let mut sse = open_with_cookie(&hub.addr, SESSION, "topic=orders/42").await;
    assert_eq!(sse.status, 200, "{}", sse.raw_text());
    publish(
        &hub.addr,
        json!({"user": "alice", "event": "for-alice", "data": 1}),
    )
    .await;
    publish(
        &hub.addr,
        json!({"user": "bob", "event": "for-bob", "data": 2}),
    )
    .await;
    publish(
        &hub.addr,
        json!({"topic": "orders/42", "event": "order", "data": 3}),
    )
    .await;
    assert_eq!(sse.names_until("order").await, ["for-alice", "order"]);

    let calls = stub.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "POST");
    assert_eq!(calls[0].path, "/herald/auth");
    assert_eq!(
        calls[0].json(),
        json!({"topics": ["orders/42"], "lastEventId": null})
    );
    assert!(
        !hub.output().contains("alice-session"),
        "a cookie reached the log:\n{}",
        hub.output()
    );
    assert_eq!(
        metric_at(
            &hub.addr,
            "herald_auth_hook_calls_total{outcome=\"allowed\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric_at(&hub.addr, "herald_auth_hook_duration_seconds_count").await,
        1.0
    );
}

#[tokio::test]
async fn the_request_headers_and_body_are_forwarded_as_specified() {
    let stub = Stub::start(|_| Answer::status(403));
    let hub = hub_with(&stub, &[]);
    let subscribe = http::Request::get("/events?topic=orders/1&topic=chat/**")
        .header("host", &hub.addr)
        .header("cookie", "sid=abc; theme=dark")
        .header("authorization", "Basic YWxpY2U6c2VjcmV0")
        .header("origin", "https://app.example.com")
        .header("user-agent", "TestBrowser/1.0")
        .header("x-forwarded-for", "203.0.113.7")
        .header("last-event-id", "1732460000123-0")
        .body(Full::<Bytes>::default())
        .unwrap();
    let reply = request(&hub.addr, subscribe).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert_eq!(reply.json()["error"], "forbidden");
    let call = &stub.requests()[0];
    assert_eq!(call.header("cookie"), Some("sid=abc; theme=dark"));
    assert_eq!(call.header("authorization"), Some("Basic YWxpY2U6c2VjcmV0"));
    assert_eq!(call.header("origin"), Some("https://app.example.com"));
    assert_eq!(call.header("user-agent"), Some("TestBrowser/1.0"));
    assert_eq!(call.header("x-forwarded-for"), Some("203.0.113.7"));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(
        call.json(),
        json!({"topics": ["orders/1", "chat/**"], "lastEventId": "1732460000123-0"})
    );

    // Without X-Forwarded-For, the app hears the client's address.
    let sse = open_with_cookie(&hub.addr, "sid=abc", "lastEventId=7-0").await;
    assert_eq!(sse.status, 403);
    let calls = stub.requests();
    assert_eq!(calls.len(), 2, "one call per subscribe request");
    let call = &calls[1];
    assert_eq!(call.header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(call.json(), json!({"topics": [], "lastEventId": "7-0"}));
}

#[tokio::test]
async fn a_topic_outside_the_hooks_answer_is_forbidden_and_its_401_passed_on() {
    let stub = Stub::start(app);
    let hub = hub_with(&stub, &[]);
    let sse = open_with_cookie(&hub.addr, SESSION, "topic=billing/1").await;
    assert_eq!(sse.status, 403);
    let mut sse = open_with_cookie(&hub.addr, "sid=nobody", "").await;
    assert_eq!(sse.status, 401);
    sse.until_end().await;
    assert!(
        sse.raw_text().contains("session hook"),
        "{}",
        sse.raw_text()
    );
    // Public topics stay open to a signed-in user.
    let sse = open_with_cookie(&hub.addr, SESSION, "topic=public/news").await;
    assert_eq!(sse.status, 200);
    // Connections to the app are reused.
    let calls = stub.count();
    assert_eq!(calls, 3);
    assert!(
        stub.connections() < calls,
        "{calls} calls took {} connections",
        stub.connections()
    );
    // A token still works as before, and the hook is not asked about it.
    let sse = Sse::ok(&hub.addr, &token("carol", &[])).await;
    drop(sse);
    assert_eq!(stub.count(), calls);
}

#[tokio::test]
async fn a_null_user_is_an_anonymous_stream_with_the_hooks_topics() {
    let stub = Stub::start(|_| Answer::json(200, json!({"user": null, "topics": ["scores/*"]})));
    let hub = hub_with(&stub, &[]);
    let mut sse = open_with_cookie(&hub.addr, "visitor=1", "topic=scores/final").await;
    assert_eq!(sse.status, 200, "{}", sse.raw_text());
    publish(
        &hub.addr,
        json!({"topic": "scores/final", "event": "score", "data": "2-1"}),
    )
    .await;
    assert_eq!(sse.next_event().await.data, "2-1");
    let sse = open_with_cookie(&hub.addr, "visitor=1", "topic=orders/1").await;
    assert_eq!(sse.status, 403);
}

#[tokio::test]
async fn expires_in_ends_the_stream_like_exp() {
    let stub = Stub::start(|_| Answer::json(200, json!({"user": "alice", "expiresIn": 2})));
    let hub = hub_with(&stub, &[]);
    let opened = Instant::now();
    let mut sse = open_with_cookie(&hub.addr, SESSION, "").await;
    assert_eq!(sse.status, 200);
    sse.until_end().await;
    let lasted = opened.elapsed();
    // Expiry is in whole seconds and checked on the hub's clock tick, so "2 s" ends between
    // 1 and about 3 s in; the upper bound leaves room for a loaded machine (without
    // `expiresIn` the stream would stay open until `until_end` gave up).
    assert!(
        (Duration::from_millis(1000)..=Duration::from_millis(6000)).contains(&lasted),
        "the stream lasted {lasted:?}"
    );
}

#[tokio::test]
async fn a_failing_slow_or_unreachable_hook_is_503_with_retry_after() {
    let stub = Stub::start(|request| match request.header("cookie") {
        Some("case=500") => Answer::status(500),
        Some("case=slow") => {
            Answer::json(200, json!({"user": "alice"})).after(Duration::from_secs(3))
        }
        Some("case=malformed") => Answer::json(200, json!({"userId": "alice"})),
        _ => Answer::status(502),
    });
    let hub = hub_with(&stub, &["--auth-timeout", "300ms"]);
    for case in ["case=500", "case=slow", "case=malformed", "case=other"] {
        let started = Instant::now();
        let mut sse = open_with_cookie(&hub.addr, case, "").await;
        assert_eq!(sse.status, 503, "{case}");
        assert!(
            sse.headers.contains_key("retry-after"),
            "{case}: no Retry-After"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{case}: {:?}",
            started.elapsed()
        );
        sse.until_end().await;
        assert!(
            sse.raw_text().contains("session"),
            "{case}: {}",
            sse.raw_text()
        );
    }
    assert_eq!(
        metric_at(
            &hub.addr,
            "herald_auth_hook_calls_total{outcome=\"timeout\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric_at(
            &hub.addr,
            "herald_auth_hook_calls_total{outcome=\"failed\"}"
        )
        .await,
        3.0
    );

    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/auth", closed.local_addr().unwrap());
    drop(closed);
    let hub = Server::start(&["--auth-url", &url]);
    let sse = open_with_cookie(&hub.addr, SESSION, "").await;
    assert_eq!(sse.status, 503);
    assert!(sse.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn concurrent_hook_calls_are_bounded() {
    let stub = Stub::start(|_| {
        Answer::json(200, json!({"user": "alice"})).after(Duration::from_millis(1500))
    });
    let hub = hub_with(
        &stub,
        &["--auth-max-concurrent", "2", "--auth-timeout", "5s"],
    );
    let opens = (0..5).map(|_| {
        let addr = hub.addr.clone();
        tokio::spawn(async move { open_with_cookie(&addr, SESSION, "").await })
    });
    let streams: Vec<Sse> = futures_util::future::join_all(opens)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let refused: Vec<&Sse> = streams.iter().filter(|s| s.status == 503).collect();
    let opened = streams.iter().filter(|s| s.status == 200).count();
    assert!((1..=2).contains(&opened), "{opened} streams opened");
    assert_eq!(refused.len(), 5 - opened);
    assert!(refused
        .iter()
        .all(|s| s.headers.contains_key("retry-after")));
    assert!(
        stub.max_in_flight() <= 2,
        "{} calls at once",
        stub.max_in_flight()
    );
    assert!(
        metric_at(
            &hub.addr,
            "herald_auth_hook_calls_total{outcome=\"overloaded\"}"
        )
        .await
            >= 3.0
    );
}

#[test]
fn a_bad_auth_url_stops_the_start() {
    let stderr = serve_refuses(&["--auth-url", "app.example.com/auth"]);
    assert!(stderr.contains("--auth-url"), "{stderr}");
}
