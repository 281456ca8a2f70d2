//! Retained values: a page that opens shows the current counter at once. A fresh stream first
//! receives the latest retained event of its user, of every topic it subscribed to (patterns
//! included) and of everyone, each once, in id order; a resuming stream gets only its replay.
//! (Two nodes on Redis: `redis_realtime.rs`.)

mod common;

use common::*;
use serde_json::json;

/// The (event, id, data) of the next `n` events.
async fn next_events(sse: &mut Sse, n: usize) -> Vec<(String, String, String)> {
    let mut events = Vec::new();
    while events.len() < n {
        let e = sse.next_event().await;
        events.push((e.event_type, e.last_event_id, e.data));
    }
    events
}

#[tokio::test]
async fn a_fresh_stream_starts_with_the_latest_retained_values_of_its_user_and_topics() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let retain = |target: serde_json::Value, event: &str, data: i64| {
        let mut body = json!({"event": event, "data": data, "retain": true});
        body.as_object_mut()
            .unwrap()
            .extend(target.as_object().unwrap().clone());
        body
    };
    publish(addr, retain(json!({"user": "alice"}), "unread", 1)).await;
    let unread = publish_id(addr, retain(json!({"user": "alice"}), "unread", 2)).await;
    publish(addr, retain(json!({"user": "bob"}), "unread", 9)).await;
    let score = publish_id(addr, retain(json!({"topic": "scores/1"}), "score", 3)).await;
    let other = publish_id(addr, retain(json!({"topic": "scores/2"}), "score", 4)).await;
    publish(
        addr,
        json!({"topic": "scores/1", "event": "chatter", "data": 0}),
    )
    .await;

    let t = token("alice", &["scores/*"]);
    let mut sse = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: "topic=scores/*",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sse.status, 200);
    let first = next_events(&mut sse, 3).await;
    assert_eq!(
        first,
        [
            ("unread".into(), unread.clone(), "2".into()),
            ("score".into(), score.clone(), "3".into()),
            ("score".into(), other.clone(), "4".into()),
        ],
        "the latest per slot, patterns included, in id order, nothing else"
    );
    let live = publish_id(addr, json!({"user": "alice", "event": "live", "data": 5})).await;
    assert_eq!(next_events(&mut sse, 1).await[0].1, live);

    // Resuming gets what it missed, not the retained values again.
    let missed = publish_id(addr, retain(json!({"user": "alice"}), "unread", 3)).await;
    let mut resumed = Sse::resume(addr, Some(&t), &live).await;
    assert_eq!(
        next_events(&mut resumed, 1).await[0],
        ("unread".into(), missed, "3".into())
    );
}

#[tokio::test]
async fn a_clear_forgets_a_value_and_reaches_no_stream() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &["room/*"]);
    publish(
        addr,
        json!({"topic": "room/1", "event": "state", "data": "open", "retain": true}),
    )
    .await;
    let mut watching = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: "topic=room/1",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next_events(&mut watching, 1).await[0].2, "open");
    publish(
        addr,
        json!({"topic": "room/1", "event": "state", "retain": "clear"}),
    )
    .await;
    let after = publish_id(
        addr,
        json!({"topic": "room/1", "event": "after", "data": 0}),
    )
    .await;
    // The open stream never saw the clear; a new one gets nothing retained.
    assert_eq!(next_events(&mut watching, 1).await[0].1, after);
    let mut fresh = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: "topic=room/1",
            ..Default::default()
        },
    )
    .await;
    let later = publish_id(
        addr,
        json!({"topic": "room/1", "event": "later", "data": 1}),
    )
    .await;
    assert_eq!(next_events(&mut fresh, 1).await[0].1, later);
}

#[tokio::test]
async fn the_store_is_bounded_and_the_oldest_values_leave_first() {
    let server = Server::start(&["--retained-values", "2"]);
    let addr = &server.addr;
    let mut ids = Vec::new();
    for n in 0..4 {
        let body = json!({"topic": format!("t/{n}"), "event": "v", "data": n, "retain": true});
        ids.push(publish_id(addr, body).await);
    }
    let t = token("alice", &["t/*"]);
    let mut sse = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: "topic=t/*",
            ..Default::default()
        },
    )
    .await;
    let first = next_events(&mut sse, 2).await;
    assert_eq!(
        [first[0].1.clone(), first[1].1.clone()],
        [ids[2].clone(), ids[3].clone()]
    );
    assert_eq!(metric_at(addr, "herald_retained_evicted_total").await, 2.0);
}
