//! Several Herald nodes on one Redis behave as one hub: cross-node delivery in publish order,
//! resume on any node (from a node's window or from Redis history), bounded shared history,
//! and a node killed with SIGKILL whose streams resume elsewhere with nothing lost or doubled.

mod common;
mod redis_harness;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use common::*;
use redis_harness::*;
use serde_json::json;

#[tokio::test]
async fn events_published_on_any_node_reach_every_matching_stream_on_every_node_in_order() {
    let redis = Redis::start().await;
    let nodes = [node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let alice = token("alice", &[]);
    let carol = token("carol", &["orders/*"]);
    let bob = token("bob", &[]);
    let mut alices = Vec::new();
    for n in &nodes {
        alices.push(open(n, &alice, "", None).await);
    }
    let mut carol_orders = open(&nodes[1], &carol, "topic=orders/1", None).await;
    let mut bob_stream = open(&nodes[2], &bob, "", None).await;

    // Round-robin over the nodes: to alice, to topic orders/1, broadcast.
    let (mut for_alice, mut for_carol, mut for_bob) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..30 {
        let name = format!("e{i}");
        let body = match i % 3 {
            0 => json!({"user": "alice", "event": name, "data": i}),
            1 => json!({"topic": "orders/1", "event": name, "data": i}),
            _ => json!({"event": name, "data": i}),
        };
        let id = publish_id(&nodes[i % 3].addr, body).await;
        let entry = (name, id, i.to_string());
        match i % 3 {
            0 => for_alice.push(entry),
            1 => for_carol.push(entry),
            _ => {
                for_alice.push(entry.clone());
                for_carol.push(entry.clone());
                for_bob.push(entry);
            }
        }
    }
    let end = publish_id(&nodes[0].addr, json!({"event": "end", "data": "end"})).await;
    for list in [&mut for_alice, &mut for_carol, &mut for_bob] {
        list.push(("end".into(), end.clone(), "end".into()));
    }

    let ids: Vec<herald_core::EventId> = for_alice
        .iter()
        .map(|(_, id, _)| id.parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase across nodes"
    );
    for sse in &mut alices {
        assert_eq!(events_until(sse, "end").await, for_alice);
    }
    assert_eq!(events_until(&mut carol_orders, "end").await, for_carol);
    assert_eq!(events_until(&mut bob_stream, "end").await, for_bob);
}

#[tokio::test]
async fn a_stream_resumes_on_a_different_node_with_no_gap_and_no_duplicate() {
    let redis = Redis::start().await;
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let t = token("alice", &[]);
    let mut first = open(&n1, &t, "", None).await;
    let e1 = publish_id(&n1.addr, json!({"user": "alice", "event": "e1", "data": 1})).await;
    assert_eq!(first.next_event().await.last_event_id, e1);
    drop(first);

    publish(&n2.addr, json!({"user": "alice", "event": "e2", "data": 2})).await;
    publish(
        &n1.addr,
        json!({"user": "bob", "event": "not-hers", "data": 3}),
    )
    .await;
    publish(&n2.addr, json!({"event": "e4", "data": 4})).await;

    let mut resumed = open(&n2, &t, "", Some(&e1)).await;
    let names: Vec<String> = events_until(&mut resumed, "e4")
        .await
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(names, ["e2", "e4"]);
    publish(
        &n1.addr,
        json!({"user": "alice", "event": "live", "data": 5}),
    )
    .await;
    assert_eq!(resumed.next_event().await.event_type, "live");

    // A node started after those events has none of them in memory: it replays from Redis.
    let n3 = node(&redis, &[]);
    let mut late = open(&n3, &t, "", Some(&e1)).await;
    let names: Vec<String> = events_until(&mut late, "live")
        .await
        .into_iter()
        .map(|(name, _, _)| name)
        .collect();
    assert_eq!(names, ["e2", "e4", "live"]);
}

#[tokio::test]
async fn resuming_elsewhere_right_after_a_publish_never_reports_a_valid_id_as_unknown() {
    let redis = Redis::start().await;
    // Twenty resumes by one user in a second or two: over --resume-rate's default, which this
    // test is not about.
    let unlimited = ["--resume-rate", "0"];
    let (n1, n2) = (node(&redis, &unlimited), node(&redis, &unlimited));
    let t = token("alice", &[]);
    for i in 0..20 {
        // The id comes from n1; n2 may not have read it from Redis yet when the client arrives.
        let id = publish_id(&n1.addr, json!({"user": "alice", "event": "a", "data": i})).await;
        let mut sse = open(&n2, &t, "", Some(&id)).await;
        let next = publish_id(&n1.addr, json!({"user": "alice", "event": "b", "data": i})).await;
        let event = sse.next_event().await;
        assert_eq!(
            (event.event_type.as_str(), event.last_event_id.as_str()),
            ("b", next.as_str()),
            "round {i}: {}",
            sse.raw_text()
        );
    }
}

#[tokio::test]
async fn history_is_shared_through_redis_and_bounded_by_the_history_flag() {
    let redis = Redis::start().await;
    let n1 = node(&redis, &["--history", "20"]);
    let t = token("alice", &[]);
    let oldest = publish_id(
        &n1.addr,
        json!({"user": "alice", "event": "old", "data": 0}),
    )
    .await;
    let batch: Vec<serde_json::Value> = (1..=20)
        .map(|i| json!({"user": "alice", "event": format!("e{i}"), "data": i}))
        .collect();
    publish(&n1.addr, json!(batch)).await;

    // A node started now has none of these in memory: the 20 come from the Redis stream.
    let n2 = node(&redis, &["--history", "20"]);
    let mut sse = open(&n2, &t, "", Some(&oldest)).await;
    let names: Vec<String> = events_until(&mut sse, "e20")
        .await
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    let expected: Vec<String> = (1..=20).map(|i| format!("e{i}")).collect();
    assert_eq!(names, expected);

    // One more and `oldest` is more than --history events ago: herald.missed on every node,
    // although the stream itself still holds it (it keeps at least 1000 for lagging nodes).
    // Both nodes have seen it before they are asked (n2 hears of it over Redis, a moment later;
    // until then it would serve the still-available e1.. rather than a gap, which is allowed).
    let mut bob_on_n2 = open(&n2, &token("bob", &[]), "", None).await;
    publish(&n1.addr, json!({"user": "bob", "event": "e21", "data": 21})).await;
    events_until(&mut bob_on_n2, "e21").await;
    for n in [&n1, &n2] {
        let mut sse = open(n, &t, "", Some(&oldest)).await;
        let missed = sse.next_event().await;
        assert_eq!(missed.event_type, "herald.missed");
        let data: serde_json::Value = serde_json::from_str(&missed.data).unwrap();
        assert_eq!(data["reason"], "history_expired");
    }
}

#[tokio::test]
async fn streams_of_a_sigkilled_node_resume_on_another_with_nothing_lost_or_duplicated() {
    let redis = Redis::start().await;
    let doomed = node(&redis, &[]);
    let survivor = node(&redis, &[]);
    let users = ["u0", "u1", "u2", "u3"];
    let tokens: Vec<String> = users.iter().map(|u| token(u, &[])).collect();
    let mut streams = Vec::new();
    for t in &tokens {
        streams.push(open(&doomed, t, "", None).await);
    }

    // Publish to the users round-robin through the survivor until told to stop.
    let accepted: Arc<Mutex<BTreeMap<String, Vec<String>>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (accepted, stop, addr) = (accepted.clone(), stop.clone(), survivor.addr.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) && i < 20_000 {
                let user = users[i % users.len()];
                let id = publish_id(&addr, json!({"user": user, "event": "e", "data": i})).await;
                accepted
                    .lock()
                    .unwrap()
                    .entry(user.into())
                    .or_default()
                    .push(id);
                i += 1;
            }
            for user in users {
                let id = publish_id(&addr, json!({"user": user, "event": "end", "data": 0})).await;
                accepted
                    .lock()
                    .unwrap()
                    .entry(user.into())
                    .or_default()
                    .push(id);
            }
        })
    };

    let mut received: Vec<Vec<String>> = vec![Vec::new(); users.len()];
    for (sse, got) in streams.iter_mut().zip(&mut received) {
        while got.len() < 20 {
            got.push(sse.next_event().await.last_event_id);
        }
    }
    sigkill(&doomed);
    // Each client reads what reached it before the kill, then reconnects to the survivor.
    let mut resumed = Vec::new();
    for ((sse, got), t) in streams.iter_mut().zip(&mut received).zip(&tokens) {
        for item in sse.until_end().await {
            if let herald_proto::Item::Event(event) = item {
                got.push(event.last_event_id);
            }
        }
        let last = got.last().cloned();
        resumed.push(open(&survivor, t, "", last.as_deref()).await);
    }
    for (sse, got) in resumed.iter_mut().zip(&mut received) {
        let target = got.len() + 20;
        while got.len() < target {
            got.push(sse.next_event().await.last_event_id);
        }
    }
    stop.store(true, Ordering::Relaxed);
    publisher.await.unwrap();
    for (sse, got) in resumed.iter_mut().zip(&mut received) {
        for (_, id, _) in events_until(sse, "end").await {
            got.push(id);
        }
    }
    let accepted = accepted.lock().unwrap();
    for (user, got) in users.iter().zip(&received) {
        assert_eq!(got, &accepted[*user], "{user}: delivered != accepted");
    }
}

#[tokio::test]
async fn a_bad_redis_url_or_prefix_is_refused_at_startup_with_a_message() {
    for (flag, value, expected) in [
        ("--redis", "http://nope", "--redis"),
        ("--redis-prefix", "a}b", "--redis-prefix"),
    ] {
        let mut args = vec!["serve", "--listen", "127.0.0.1:0", "--jwt-secret", SECRET];
        if flag != "--redis" {
            args.extend(["--redis", "redis://127.0.0.1:1"]);
        }
        args.extend([flag, value]);
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(&args)
            .env_remove("HERALD_REDIS")
            .output()
            .expect("run herald");
        assert_eq!(output.status.code(), Some(2), "{flag} {value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(expected), "{stderr}");
    }
}
