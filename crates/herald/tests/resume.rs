//! Resume with `Last-Event-ID`: exact replay, the missed event, and no gap or duplicate while
//! events are being published during reconnects.

mod common;

use common::*;
use serde_json::json;

#[tokio::test]
async fn resume_by_header_replays_exactly_what_the_stream_would_have_received() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &["orders/*"]);
    let mut first = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: "topic=orders/1",
            ..Default::default()
        },
    )
    .await;
    let e1 = publish_id(addr, json!({"user": "alice", "event": "e1", "data": 1})).await;
    assert_eq!(first.next_event().await.last_event_id, e1);
    drop(first);

    publish(addr, json!({"user": "alice", "event": "e2", "data": 2})).await;
    publish(addr, json!({"user": "bob", "event": "not-hers", "data": 3})).await;
    publish(addr, json!({"event": "e4", "data": 4})).await;
    publish(addr, json!({"topic": "orders/1", "event": "e5", "data": 5})).await;
    publish(
        addr,
        json!({"topic": "orders/2", "event": "other-topic", "data": 6}),
    )
    .await;

    let mut resumed = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: "topic=orders/1",
            last_event_id: Some(&e1),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(resumed.status, 200);
    let e5 = resumed.names_until("e5").await;
    assert_eq!(e5, ["e2", "e4", "e5"]);
    publish(addr, json!({"user": "alice", "event": "live", "data": 7})).await;
    assert_eq!(resumed.next_event().await.event_type, "live");
}

#[tokio::test]
async fn resume_by_query_parameter() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &[]);
    let id = publish_id(addr, json!({"user": "alice", "event": "before", "data": 1})).await;
    publish(addr, json!({"user": "alice", "event": "after", "data": 2})).await;
    let query = format!("lastEventId={id}");
    let mut sse = Sse::open(
        addr,
        Open {
            token: Some(&t),
            query: &query,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sse.next_event().await.event_type, "after");
}

#[tokio::test]
async fn a_fresh_stream_learns_its_position_so_a_reconnect_loses_nothing() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let t = token("alice", &[]);
    let mut sse = Sse::ok(addr, &t).await;
    // The preamble ends with an id-only block: no event, but the client now has a Last-Event-ID.
    let mut position = String::new();
    while position.is_empty() {
        sse.next_item().await;
        position = sse
            .raw_text()
            .lines()
            .find_map(|l| l.strip_prefix("id: ").map(str::to_owned))
            .unwrap_or_default();
    }
    drop(sse);
    publish(
        addr,
        json!({"user": "alice", "event": "while-away", "data": 1}),
    )
    .await;
    let mut back = Sse::open(
        addr,
        Open {
            token: Some(&t),
            last_event_id: Some(&position),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(back.next_event().await.event_type, "while-away");
}

#[tokio::test]
async fn too_old_or_unknown_ids_get_the_missed_event_then_live_events() {
    let server = Server::start(&["--history", "3"]);
    let addr = &server.addr;
    let t = token("alice", &[]);
    let oldest = publish_id(addr, json!({"user": "alice", "data": 0})).await;
    for n in 1..=5 {
        publish(addr, json!({"user": "alice", "data": n})).await;
    }
    for (id, reason) in [
        (oldest.as_str(), "history_expired"),
        ("not-an-id", "unknown_id"),
        ("99999999999999-0", "unknown_id"),
    ] {
        let mut sse = Sse::open(
            addr,
            Open {
                token: Some(&t),
                last_event_id: Some(id),
                ..Default::default()
            },
        )
        .await;
        let missed = sse.next_event().await;
        assert_eq!(missed.event_type, "herald.missed", "{id}");
        let data: serde_json::Value = serde_json::from_str(&missed.data).unwrap();
        assert_eq!(data["reason"], reason);
        assert_eq!(data["lastEventId"], id);
        publish(addr, json!({"user": "alice", "event": "live", "data": 9})).await;
        assert_eq!(sse.next_event().await.event_type, "live", "{id}");
    }
}

/// Keeps publishing while the subscriber repeatedly drops and resumes; in the end it must have
/// every event exactly once, in order.
#[tokio::test]
async fn resume_is_race_free_under_concurrent_publishing() {
    const EVENTS: u64 = 1500;
    let server = Server::start(&[]);
    let addr = server.addr.clone();
    let t = token("alice", &[]);
    // The first stream is open before anything is published, so it is owed every event.
    let mut first = Some(Sse::ok(&addr, &t).await);

    let publisher = {
        let addr = addr.clone();
        tokio::spawn(async move {
            for n in 0..EVENTS {
                // Mix single events and broadcasts, so routing and replay filters both matter.
                let body = if n % 3 == 0 {
                    json!({"event": "n", "data": n})
                } else {
                    json!({"user": "alice", "event": "n", "data": n})
                };
                publish(&addr, body).await;
                publish(&addr, json!({"user": "bob", "event": "noise", "data": n})).await;
            }
        })
    };

    let mut received: Vec<u64> = Vec::new();
    let mut last_id: Option<String> = None;
    let mut reconnects = 0;
    while received.last() != Some(&(EVENTS - 1)) {
        let mut sse = match first.take() {
            Some(sse) => sse,
            None => {
                Sse::open(
                    &addr,
                    Open {
                        token: Some(&t),
                        last_event_id: last_id.as_deref(),
                        ..Default::default()
                    },
                )
                .await
            }
        };
        assert_eq!(sse.status, 200);
        reconnects += 1;
        // Read a varying number of events, then drop the connection mid-stream.
        for _ in 0..(37 + reconnects * 13 % 101) {
            let event = sse.next_event().await;
            assert_eq!(event.event_type, "n", "no missed/noise events expected");
            received.push(event.data.parse().unwrap());
            last_id = Some(event.last_event_id);
            if received.last() == Some(&(EVENTS - 1)) {
                break;
            }
        }
    }
    publisher.await.unwrap();
    let expected: Vec<u64> = (0..EVENTS).collect();
    assert_eq!(received, expected, "after {reconnects} reconnects");
    assert!(reconnects > 5);
}
