//! Mercure mode against a real `herald serve --mercure`: form publishes, every selector kind,
//! private updates, anonymous subscribers, tokens from header, cookie and query (0.x claims and
//! 1.0 `authorization_details`), resume by Mercure id, refusals, discovery.

mod common;

use bytes::Bytes;
use common::mercure::*;
use common::{now, request, Open, Server, Sse};
use herald_proto::Item;
use http_body_util::Full;
use serde_json::json;

const BOOK_1: &str = "https://example.com/books/1";
const BOOK_2: &str = "https://example.com/books/2";
const AUTHOR_1: &str = "https://example.com/authors/1";

fn anonymous_hub() -> Server {
    Server::start(&["--mercure", "--allow-anonymous"])
}

#[tokio::test]
async fn a_form_publish_reaches_the_subscriber_exactly() {
    let hub = anonymous_hub();
    let mut sse = anonymous(&hub, &[("topic", BOOK_1)]).await;
    let id = publish(
        &hub,
        &[
            ("topic", BOOK_1),
            ("data", "line 1\n\nline 3\n  indented"),
            ("id", "https://example.com/events/1"),
            ("type", "book.updated"),
            ("retry", "4321"),
        ],
    )
    .await;
    assert_eq!(id, "https://example.com/events/1");
    let mut retry = None;
    let event = loop {
        match sse.next_item().await.expect("an update") {
            Item::Retry(ms) => retry = Some(ms),
            Item::Event(event) => break event,
            Item::Comment(_) => {}
        }
    };
    assert_eq!(event.data, "line 1\n\nline 3\n  indented");
    assert_eq!(event.last_event_id, "https://example.com/events/1");
    assert_eq!(event.event_type, "book.updated");
    assert_eq!(retry, Some(4321));
    let raw = sse.raw_text();
    assert!(
        raw.contains("data: line 1\ndata:\ndata: line 3\ndata:   indented\n"),
        "{raw:?}"
    );

    // Without an id the hub makes a urn:uuid one, and the subscriber sees the same.
    let id = publish(&hub, &[("topic", BOOK_1), ("data", "x")]).await;
    assert!(id.starts_with("urn:uuid:") && id.len() == 45, "{id}");
    let event = next_update(&mut sse).await;
    assert_eq!((event.last_event_id, event.data), (id, "x".to_owned()));
    assert_eq!(event.event_type, "message");
}

#[tokio::test]
async fn each_selector_kind_gets_exactly_its_updates() {
    let hub = anonymous_hub();
    let both: &[&str] = &["author", "book 1"];
    let cases: &[(Query, &[&str])] = &[
        (&[("topic", BOOK_1)], &["book 1"]),
        (&[("topic", "*")], both),
        (&[("topic", "https://example.com/books/{id}")], &["book 1"]),
        (&[("topic", "https://example.com/{+rest}")], both),
        (&[("match", BOOK_1)], &["book 1"]),
        (&[("match", "https://example.com/books/{id}")], &[]),
        (
            &[("match_urlpattern", "https://example.com/books/:id")],
            &["book 1"],
        ),
        (&[("match_urlpattern", "https://example.com/*")], both),
        (
            &[("match_urlpattern", "https://example.com/authors/:id")],
            &["author"],
        ),
        (
            &[(
                "match_urlpattern",
                "https://example.com/(books|authors)/:id(\\d+)",
            )],
            both,
        ),
        (
            &[(
                "match_urlpattern",
                "https://example.com/:kind(books)/:id(\\d+)",
            )],
            &["book 1"],
        ),
        (
            &[("match_urlpattern", "https://example.com/authors/:id?")],
            &["author"],
        ),
        (
            &[("topic", BOOK_2), ("match", "nothing"), ("topic", BOOK_1)],
            &["book 1"],
        ),
        (&[("topic", BOOK_2)], &[]),
    ];
    let mut streams = Vec::new();
    for (query, _) in cases {
        streams.push(anonymous(&hub, query).await);
    }
    publish(&hub, &[("topic", AUTHOR_1), ("data", "author")]).await;
    publish(&hub, &[("topic", BOOK_1), ("data", "book 1")]).await;
    // A last update every stream selects (by one of its topics), so each stream's updates so
    // far can be awaited rather than waited for.
    let end = [
        ("topic", "https://example.com/end"),
        ("topic", BOOK_1),
        ("topic", BOOK_2),
        ("topic", "https://example.com/books/{id}"),
        ("topic", "https://example.com/authors/9"),
        ("data", "end"),
    ];
    publish(&hub, &end).await;
    for ((query, expected), sse) in cases.iter().zip(&mut streams) {
        let mut seen = Vec::new();
        loop {
            let data = next_update(sse).await.data;
            if data == "end" {
                break;
            }
            seen.push(data);
        }
        assert_eq!(seen, *expected, "{query:?}");
    }
}

#[tokio::test]
async fn private_updates_reach_only_subscribers_allowed_by_their_token() {
    let hub = anonymous_hub();
    let books = [("topic", "https://example.com/books/{id}")];
    let allowed = legacy(&[], &[BOOK_1]);
    let other = legacy(&[], &["https://example.com/authors/{id}"]);
    let everything = access_token(&["subscribe"], json!([{"match": "*"}]));
    let pattern = access_token(
        &["subscribe"],
        json!([{"match": "https://example.com/books/:id", "matchType": "URLPattern"}]),
    );
    let mut with_claim = subscribe(
        &hub,
        &books,
        Open {
            token: Some(allowed.as_str()),
            ..Default::default()
        },
    )
    .await;
    let cookie = format!("mercureAuthorization={other}");
    let mut wrong_claim = subscribe(
        &hub,
        &books,
        Open {
            cookie: Some(cookie.as_str()),
            ..Default::default()
        },
    )
    .await;
    let mut anonymous_one = anonymous(&hub, &books).await;
    let mut star = subscribe(
        &hub,
        &books,
        Open {
            token: Some(everything.as_str()),
            ..Default::default()
        },
    )
    .await;
    let mut by_pattern = subscribe(
        &hub,
        &[("authorization", pattern.as_str()), books[0]],
        Open::default(),
    )
    .await;
    for sse in [
        &with_claim,
        &wrong_claim,
        &anonymous_one,
        &star,
        &by_pattern,
    ] {
        assert_eq!(sse.status, 200, "{}", sse.raw_text());
    }

    publish(
        &hub,
        &[("topic", BOOK_1), ("data", "secret"), ("private", "on")],
    )
    .await;
    publish(&hub, &[("topic", BOOK_2), ("data", "public")]).await;
    for sse in [&mut with_claim, &mut star, &mut by_pattern] {
        assert_eq!(next_update(sse).await.data, "secret");
        assert_eq!(next_update(sse).await.data, "public");
    }
    for sse in [&mut wrong_claim, &mut anonymous_one] {
        assert_eq!(next_update(sse).await.data, "public");
    }

    // An alternate topic the token allows opens a private update too.
    publish(
        &hub,
        &[
            ("topic", BOOK_2),
            ("topic", BOOK_1),
            ("data", "alt"),
            ("private", ""),
        ],
    )
    .await;
    publish(&hub, &[("topic", BOOK_2), ("data", "after")]).await;
    assert_eq!(next_update(&mut with_claim).await.data, "alt");
    assert_eq!(next_update(&mut anonymous_one).await.data, "after");
}

#[tokio::test]
async fn tokens_are_required_without_allow_anonymous_and_checked() {
    let hub = Server::start(&["--mercure"]);
    let refused = subscribe(&hub, &[("topic", BOOK_1)], Open::default()).await;
    assert_eq!(refused.status, 401);
    let challenge = refused.headers["www-authenticate"].to_str().unwrap();
    assert!(challenge.starts_with("Bearer"), "{challenge}");

    let expired = jwt(json!({"exp": now() - 10, "mercure": {"subscribe": ["*"]}}));
    let refused = subscribe(
        &hub,
        &[("topic", BOOK_1)],
        Open {
            token: Some(expired.as_str()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(refused.status, 401);
    assert!(refused.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("error=\"invalid_token\""));

    // A 1.0 detail in a token that does not say typ: at+jwt is refused.
    let untyped = jwt(json!({"authorization_details": [
        {"type": "mercure", "actions": ["subscribe"], "topics": [{"match": "*"}]}]}));
    let refused = subscribe(
        &hub,
        &[("topic", BOOK_1)],
        Open {
            token: Some(untyped.as_str()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(refused.status, 401);

    // Header, cookie and query all carry a token; no exp is fine.
    let token = legacy(&[], &["*"]);
    let cookie = format!("mercureAuthorization={token}");
    let mut by_header = subscribe(
        &hub,
        &[("topic", BOOK_1)],
        Open {
            token: Some(token.as_str()),
            ..Default::default()
        },
    )
    .await;
    let mut by_cookie = subscribe(
        &hub,
        &[("topic", BOOK_1)],
        Open {
            cookie: Some(cookie.as_str()),
            ..Default::default()
        },
    )
    .await;
    let mut by_query = subscribe(
        &hub,
        &[("topic", BOOK_1), ("authorization", token.as_str())],
        Open::default(),
    )
    .await;

    let reply = publish_as(&hub, None, &[("topic", BOOK_1), ("data", "x")]).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let reply = publish_as(&hub, Some("not-a-token"), &[("topic", BOOK_1)]).await;
    assert_eq!(reply.status, 401, "{}", reply.body);
    let subscriber_only = legacy(&[], &["*"]);
    let reply = publish_as(&hub, Some(subscriber_only.as_str()), &[("topic", BOOK_1)]).await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    let books_only = legacy(&["https://example.com/books/{id}"], &[]);
    let reply = publish_as(
        &hub,
        Some(books_only.as_str()),
        &[("topic", BOOK_1), ("topic", AUTHOR_1)],
    )
    .await;
    assert_eq!(reply.status, 403, "{}", reply.body);
    assert!(reply.headers["www-authenticate"]
        .to_str()
        .unwrap()
        .contains("insufficient_scope"));
    assert!(reply.body.contains("every topic"), "{}", reply.body);

    // A 1.0 publisher token, and Herald's publish key, may publish.
    let publisher_10 = access_token(&["publish"], json!([{"match": BOOK_1}]));
    let reply = publish_as(
        &hub,
        Some(publisher_10.as_str()),
        &[("topic", BOOK_1), ("data", "by 1.0")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let reply = publish_as(
        &hub,
        Some(common::KEY),
        &[("topic", BOOK_1), ("data", "by key")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    for sse in [&mut by_header, &mut by_cookie, &mut by_query] {
        assert_eq!(sse.status, 200);
        assert_eq!(next_update(sse).await.data, "by 1.0");
        assert_eq!(next_update(sse).await.data, "by key");
    }
}

#[tokio::test]
async fn a_stream_ends_when_its_tokens_exp_passes() {
    let hub = Server::start(&["--mercure"]);
    let soon = jwt(json!({"exp": now() + 2, "mercure": {"subscribe": ["*"]}}));
    let mut sse = subscribe(
        &hub,
        &[("topic", BOOK_1)],
        Open {
            token: Some(soon.as_str()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sse.status, 200, "{}", sse.raw_text());
    // The hub closes it at expiry (the harness fails the test if that takes over 10 s).
    sse.until_end().await;
}

#[tokio::test]
async fn resume_by_mercure_id_and_unknown_ids_do_not_leave_the_client_stuck() {
    let hub = anonymous_hub();
    for n in 1..=3 {
        let id = format!("urn:event:{n}");
        publish(
            &hub,
            &[
                ("topic", BOOK_1),
                ("data", &format!("{n}")),
                ("id", id.as_str()),
            ],
        )
        .await;
        publish(&hub, &[("topic", AUTHOR_1), ("data", "other")]).await;
    }
    let query = [("topic", BOOK_1)];

    let mut by_header = subscribe(
        &hub,
        &query,
        Open {
            last_event_id: Some("urn:event:1"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(by_header.headers["last-event-id"], "urn:event:1");
    assert_eq!(
        next_update(&mut by_header).await.last_event_id,
        "urn:event:2"
    );
    assert_eq!(
        next_update(&mut by_header).await.last_event_id,
        "urn:event:3"
    );

    let mut by_query = anonymous(&hub, &[("topic", BOOK_1), ("lastEventID", "urn:event:2")]).await;
    assert_eq!(by_query.headers["last-event-id"], "urn:event:2");
    let event = next_update(&mut by_query).await;
    assert_eq!(
        (event.data.as_str(), event.last_event_id.as_str()),
        ("3", "urn:event:3")
    );

    let mut earliest = anonymous(&hub, &[("topic", BOOK_1), ("lastEventID", "earliest")]).await;
    for n in 1..=3 {
        assert_eq!(next_update(&mut earliest).await.data, n.to_string());
    }

    let mut unknown = subscribe(
        &hub,
        &query,
        Open {
            last_event_id: Some("urn:never-published"),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(unknown.status, 200);
    assert_eq!(unknown.headers["last-event-id"], "earliest");
    publish(
        &hub,
        &[("topic", BOOK_1), ("data", "live"), ("id", "urn:event:4")],
    )
    .await;
    for sse in [&mut unknown, &mut by_header, &mut by_query, &mut earliest] {
        let event = next_update(sse).await;
        assert_eq!(
            (event.data.as_str(), event.last_event_id.as_str()),
            ("live", "urn:event:4")
        );
    }
}

#[tokio::test]
async fn bad_updates_are_refused_with_clear_messages() {
    let hub = Server::start(&["--mercure", "--allow-anonymous", "--max-body-bytes", "4096"]);
    let token = publisher();
    let bad: &[(&[(&str, &str)], &str)] = &[
        (&[("data", "no topic")], "topic"),
        (&[("topic", BOOK_1), ("retry", "10s")], "retry"),
        (&[("topic", BOOK_1), ("id", "#1")], "'#'"),
        (&[("topic", BOOK_1), ("id", "earliest")], "earliest"),
        (&[("topic", BOOK_1), ("type", "mercure")], "mercure"),
        (&[("topic", BOOK_1), ("type", "a\nb")], "type"),
        (
            &[(
                "topic",
                "https://example.com/.well-known/mercure/subscriptions",
            )],
            "namespace",
        ),
        (&[("topic", "/.well-known/mercure")], "namespace"),
    ];
    for (fields, says) in bad {
        let reply = publish_as(&hub, Some(token.as_str()), fields).await;
        assert_eq!(reply.status, 400, "{fields:?}: {}", reply.body);
        assert!(reply.body.contains(says), "{fields:?}: {}", reply.body);
    }
    let big = "x".repeat(5000);
    let reply = publish_as(
        &hub,
        Some(token.as_str()),
        &[("topic", BOOK_1), ("data", big.as_str())],
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);
    let long_topic = format!("https://example.com/{}", "t".repeat(3000));
    let reply = publish_as(
        &hub,
        Some(token.as_str()),
        &[("topic", long_topic.as_str())],
    )
    .await;
    assert_eq!(reply.status, 413, "{}", reply.body);

    let not_form = http::Request::post(HUB)
        .header("host", &hub.addr)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from("{}")))
        .unwrap();
    let reply = request(&hub.addr, not_form).await;
    assert_eq!(reply.status, 400);
    assert!(
        reply.body.contains("x-www-form-urlencoded"),
        "{}",
        reply.body
    );

    for query in [
        vec![],
        vec![("matchRegex", "x")],
        vec![("topic", "https://example.com/{id")],
    ] {
        let sse = subscribe(&hub, &query, Open::default()).await;
        assert_eq!(sse.status, 400, "{query:?}: {}", sse.raw_text());
    }
}

#[tokio::test]
async fn publishers_are_held_to_the_publish_rate() {
    let hub = Server::start(&["--mercure", "--publish-rate", "2"]);
    let token = publisher();
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..6 {
        let reply = publish_as(&hub, Some(token.as_str()), &[("topic", BOOK_1)]).await;
        statuses.push(reply.status);
        if reply.status == 429 {
            limited = Some(reply);
        }
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    let limited = limited.unwrap_or_else(|| panic!("no 429 in {statuses:?}"));
    assert!(limited.headers.contains_key("retry-after"));
    assert!(limited.body.contains("--publish-rate"), "{}", limited.body);
}

#[tokio::test]
async fn the_hub_is_discoverable_and_herald_keeps_working_alongside() {
    let hub = anonymous_hub();
    let home = common::get(&hub.addr, "/").await;
    assert_eq!(home.status, 200);
    assert!(home.headers["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(home.body.contains(HUB));
    let health = common::get(&hub.addr, "/healthz").await;
    assert_eq!(
        health.headers["link"],
        "</.well-known/mercure>; rel=\"mercure\""
    );

    // Herald's own streams and Mercure's do not see each other's events.
    let token = common::token("u1", &[]);
    let mut herald_stream = Sse::ok(&hub.addr, &token).await;
    let mut mercure_stream = anonymous(&hub, &[("topic", "*")]).await;
    publish(&hub, &[("topic", BOOK_1), ("data", "mercure")]).await;
    common::publish(&hub.addr, json!({"event": "note", "data": "herald"})).await;
    publish(&hub, &[("topic", BOOK_1), ("data", "mercure again")]).await;
    assert_eq!(herald_stream.next_event().await.data, "herald");
    assert_eq!(next_update(&mut mercure_stream).await.data, "mercure");
    assert_eq!(next_update(&mut mercure_stream).await.data, "mercure again");

    // Without --mercure there is no Mercure endpoint and no discovery header.
    let plain = Server::start(&["--allow-anonymous"]);
    let reply = common::get(&plain.addr, &format!("{HUB}?topic=x")).await;
    assert_eq!(reply.status, 404);
    assert!(reply.headers.get("link").is_none());
}
