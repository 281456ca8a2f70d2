//! How streams end on purpose, and that clients lose nothing when they do: token expiry
//! followed by a reconnect with a fresh token, and `--max-stream-lifetime` recycling.

mod common;

use common::*;
use herald::Claims;
use herald_proto::Item;
use serde_json::json;

fn resume<'a>(token: &'a str, last_event_id: &'a str) -> Open<'a> {
    Open {
        token: Some(token),
        last_event_id: Some(last_event_id),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_expired_token_ends_the_stream_and_a_fresh_one_resumes_with_nothing_lost() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let short = token_with(Claims {
        sub: Some("alice".into()),
        exp: now() + 2,
        ..Default::default()
    });
    let mut stream = Sse::ok(addr, &short).await;
    let first = publish_id(addr, json!({"user": "alice", "event": "before", "data": 1})).await;
    assert_eq!(stream.next_event().await.last_event_id, first);
    stream.until_end().await;

    // Published while the client was fetching a new token.
    let missed = publish_id(addr, json!({"user": "alice", "event": "during", "data": 2})).await;
    let fresh = token("alice", &[]);
    let mut resumed = Sse::open(addr, resume(&fresh, &first)).await;
    assert_eq!(resumed.status, 200);
    let event = resumed.next_event().await;
    assert_eq!(
        (event.event_type.as_str(), event.last_event_id.as_str()),
        ("during", missed.as_str())
    );
    let after = publish_id(addr, json!({"user": "alice", "event": "after", "data": 3})).await;
    assert_eq!(resumed.next_event().await.last_event_id, after);
}

#[tokio::test]
async fn streams_are_recycled_after_their_lifetime_with_a_jittered_reconnect_hint() {
    let server = Server::start(&["--max-stream-lifetime", "1s", "--retry-ms", "100"]);
    let addr = &server.addr;
    let alice = token("alice", &[]);
    let mut stream = Sse::ok(addr, &alice).await;
    let id = publish_id(addr, json!({"user": "alice", "event": "e", "data": 1})).await;
    assert_eq!(stream.next_event().await.last_event_id, id);

    let tail = stream.until_end().await;
    assert!(
        tail.contains(&Item::Comment("stream lifetime reached".into())),
        "{tail:?}"
    );
    let retry = tail
        .iter()
        .rev()
        .find_map(|item| match item {
            Item::Retry(ms) => Some(*ms),
            _ => None,
        })
        .expect("a retry hint before the end");
    assert!(
        (100..=200).contains(&retry),
        "retry {retry} is the delay plus jitter"
    );
    let line = server
        .wait_for_line(|l| l.contains("stream closed") && l.contains("user=alice"))
        .expect("logged");
    assert!(line.contains("lifetime"), "{line}");

    let mut resumed = Sse::open(addr, resume(&alice, &id)).await;
    let next = publish_id(addr, json!({"user": "alice", "event": "e", "data": 2})).await;
    assert_eq!(resumed.next_event().await.last_event_id, next);
}
