//! Redis trouble: connections killed mid-traffic, and Redis stopped and started again.
//!
//! What must hold: every event a publisher got a 200 for is delivered to every matching stream
//! exactly once and in order; while Redis is unreachable `/readyz` is not 200 and publishing
//! answers 503 (nothing is accepted that cannot be delivered); open streams stay open and
//! delivery resumes when Redis is back.

mod common;
mod redis_harness;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use common::*;
use redis_harness::*;
use serde_json::json;
use tokio::sync::watch;

#[tokio::test]
async fn client_kill_mid_traffic_loses_and_duplicates_nothing_accepted() {
    let redis = Redis::start().await;
    let nodes = [node(&redis, &[]), node(&redis, &[])];
    let t = token("alice", &[]);
    let mut streams = Vec::new();
    for n in &nodes {
        streams.push(open(n, &t, "", None).await);
    }

    // Publish 600 numbered events to alice, alternating nodes; remember which were accepted.
    const TOTAL: usize = 600;
    let accepted = Arc::new(Mutex::new(Vec::new()));
    let (progress_tx, mut progress) = watch::channel(0usize);
    let publisher = {
        let accepted = accepted.clone();
        let addrs: Vec<String> = nodes.iter().map(|n| n.addr.clone()).collect();
        tokio::spawn(async move {
            let mut refused = 0;
            for i in 0..TOTAL {
                let body = json!({"user": "alice", "event": "e", "data": i}).to_string();
                let reply = publish_raw(&addrs[i % 2], Some(KEY), body).await;
                match reply.status {
                    200 => accepted.lock().unwrap().push(i),
                    503 => refused += 1,
                    other => panic!("unexpected {other}: {}", reply.body),
                }
                progress_tx.send_replace(i + 1);
            }
            refused
        })
    };

    // Kill every Herald connection to Redis (readers, publishers, subscriptions) five times.
    let mut admin = redis.conn().await;
    for round in 1..=5 {
        progress
            .wait_for(|done| *done >= round * TOTAL / 6)
            .await
            .unwrap();
        for kind in ["normal", "pubsub"] {
            let _: redis::Value = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg(kind)
                .arg("SKIPME")
                .arg("yes")
                .query_async(&mut admin)
                .await
                .unwrap();
        }
    }
    let refused = publisher.await.unwrap();
    // A final marker; retried, since a 503 right after the last kill is allowed.
    eventually("a publish is accepted again", || {
        let addr = nodes[0].addr.clone();
        async move {
            let end = r#"{"user":"alice","event":"end","data":0}"#;
            publish_raw(&addr, Some(KEY), end).await.status == 200
        }
    })
    .await;

    let accepted = accepted.lock().unwrap().clone();
    eprintln!(
        "{} of {TOTAL} publishes accepted, {refused} refused with 503",
        accepted.len()
    );
    assert!(
        accepted.len() > TOTAL / 2,
        "most publishes succeed ({refused} refused)"
    );
    for sse in &mut streams {
        let got: Vec<usize> = events_until(sse, "end")
            .await
            .into_iter()
            .filter(|(name, _, _)| name == "e")
            .map(|(_, _, data)| data.parse().unwrap())
            .collect();
        assert!(
            got.windows(2).all(|w| w[0] < w[1]),
            "in order, no duplicate: {got:?}"
        );
        let got: BTreeSet<usize> = got.into_iter().collect();
        let missing: Vec<_> = accepted.iter().filter(|i| !got.contains(i)).collect();
        assert!(
            missing.is_empty(),
            "accepted but not delivered: {missing:?}"
        );
    }
    for n in &nodes {
        assert!(metric(n, "herald_redis_reconnects_total").await >= 1.0);
    }
}

#[tokio::test]
async fn redis_down_means_not_ready_and_503_then_delivery_resumes_when_it_is_back() {
    let mut redis = Redis::start().await;
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let t = token("alice", &[]);
    let mut sse = open(&n1, &t, "", None).await;
    eventually("both nodes are ready", || async {
        readyz(&n1).await == 200 && readyz(&n2).await == 200
    })
    .await;
    let before = publish_id(
        &n2.addr,
        json!({"user": "alice", "event": "before", "data": 1}),
    )
    .await;
    assert_eq!(sse.next_event().await.last_event_id, before);

    redis.stop();
    eventually("both nodes report not ready", || async {
        readyz(&n1).await == 503 && readyz(&n2).await == 503
    })
    .await;
    for n in [&n1, &n2] {
        let reply = publish_raw(&n.addr, Some(KEY), r#"{"user":"alice","data":2}"#).await;
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(reply.json()["error"], "unavailable");
        assert_eq!(get(&n.addr, "/healthz").await.status, 200);
    }

    redis.restart().await;
    eventually("both nodes are ready again", || async {
        readyz(&n1).await == 200 && readyz(&n2).await == 200
    })
    .await;
    let after = publish_id(
        &n2.addr,
        json!({"user": "alice", "event": "after", "data": 3}),
    )
    .await;
    // The restarted Redis has no persistence: it lost the stream, so the node cannot know what
    // else was published meanwhile. Its streams are told (herald.missed), then go on live.
    let missed = sse.next_event().await;
    assert_eq!(missed.event_type, "herald.missed", "{}", sse.raw_text());
    let event = sse.next_event().await;
    assert_eq!(
        (event.event_type.as_str(), event.last_event_id.as_str()),
        ("after", after.as_str())
    );
}

#[tokio::test]
async fn a_node_that_falls_further_behind_than_the_stream_keeps_reports_missed_not_a_hole() {
    let redis = Redis::start().await;
    // The stream keeps no more than 64 KiB of events: a few hundred of these.
    let bound = ["--history", "1", "--history-bytes", "64KiB"];
    let stalled = node(&redis, &bound);
    let other = node(&redis, &bound);
    let t = token("alice", &[]);
    let mut sse = open(&stalled, &t, "", None).await;

    // Freeze the node (its Redis connections stay open), publish far more than the stream keeps.
    signal(&stalled, "-STOP");
    const TOTAL: usize = 3000;
    for chunk in (0..TOTAL).collect::<Vec<_>>().chunks(500) {
        let batch: Vec<_> = chunk
            .iter()
            .map(|i| json!({"user": "alice", "event": "e", "data": i}))
            .collect();
        publish(&other.addr, json!(batch)).await;
    }
    publish(
        &other.addr,
        json!({"user": "alice", "event": "end", "data": 0}),
    )
    .await;
    signal(&stalled, "-CONT");

    // What arrives: a contiguous run from 0, then herald.missed, then a contiguous run to the
    // end. Never a jump without the missed event.
    let events = events_until(&mut sse, "end").await;
    let missed_at = events
        .iter()
        .position(|(name, _, _)| name == "herald.missed")
        .unwrap_or_else(|| panic!("no herald.missed among {} events", events.len()));
    let numbers = |slice: &[(String, String, String)]| -> Vec<usize> {
        slice
            .iter()
            .filter(|(name, _, _)| name == "e")
            .map(|(_, _, data)| data.parse().unwrap())
            .collect()
    };
    let before = numbers(&events[..missed_at]);
    let after = numbers(&events[missed_at + 1..]);
    assert!(
        before.iter().enumerate().all(|(k, &i)| k == i),
        "contiguous from 0 before the gap"
    );
    assert!(
        after.windows(2).all(|w| w[1] == w[0] + 1),
        "contiguous after the gap"
    );
    assert_eq!(after.last(), Some(&(TOTAL - 1)));
    assert!(metric(&stalled, "herald_redis_gaps_total").await >= 1.0);
}

fn signal(node: &common::Server, which: &str) {
    let status = std::process::Command::new("kill")
        .args([which, &node.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

// Multi-threaded: the proxy must keep running while `Server::start` blocks on the process.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_cut_off_from_redis_for_a_while_delivers_everything_accepted_meanwhile() {
    let redis = Redis::start().await;
    let partition = Partition::new(&redis).await;
    let proxied = partition.url();
    let cut_off = Server::start(&[
        "--redis",
        proxied.as_str(),
        "--redis-backoff-max-ms",
        "200",
        "--redis-command-timeout-ms",
        "1000",
    ]);
    let healthy = node(&redis, &[]);
    let t = token("alice", &[]);
    let mut sse = open(&cut_off, &t, "", None).await;
    let first = publish_id(
        &healthy.addr,
        json!({"user": "alice", "event": "e", "data": 0}),
    )
    .await;
    assert_eq!(sse.next_event().await.last_event_id, first);

    partition.cut();
    eventually("the cut-off node reports not ready", || async {
        readyz(&cut_off).await == 503
    })
    .await;
    let refused = publish_raw(&cut_off.addr, Some(KEY), r#"{"user":"alice","data":1}"#).await;
    assert_eq!(refused.status, 503);
    // Meanwhile, for two seconds, the rest of the cluster accepts events.
    let mut accepted = vec![first];
    let started = std::time::Instant::now();
    let mut i = 1;
    while started.elapsed() < std::time::Duration::from_secs(2) {
        let body = json!({"user": "alice", "event": "e", "data": i});
        accepted.push(publish_id(&healthy.addr, body).await);
        i += 1;
    }
    assert_eq!(readyz(&cut_off).await, 503);

    partition.heal();
    eventually("the node is ready again", || async {
        readyz(&cut_off).await == 200
    })
    .await;
    let end = publish_id(
        &cut_off.addr,
        json!({"user": "alice", "event": "end", "data": 0}),
    )
    .await;
    accepted.push(end);
    // Its stream stayed open and gets every event accepted while it was away, in order, once,
    // and no herald.missed.
    let mut got = vec![accepted[0].clone()];
    got.extend(
        events_until(&mut sse, "end")
            .await
            .into_iter()
            .map(|(name, id, _)| {
                assert_ne!(name, "herald.missed");
                id
            }),
    );
    assert_eq!(got, accepted);
}

#[tokio::test]
async fn when_redis_comes_back_with_its_data_nothing_is_missed() {
    let mut redis = Redis::start_persistent().await;
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let t = token("alice", &[]);
    let mut sse = open(&n1, &t, "", None).await;
    let mut accepted = Vec::new();
    for i in 0..5 {
        accepted
            .push(publish_id(&n2.addr, json!({"user": "alice", "event": "e", "data": i})).await);
    }
    redis.stop();
    eventually("both nodes report not ready", || async {
        readyz(&n1).await == 503 && readyz(&n2).await == 503
    })
    .await;
    redis.restart().await;
    eventually("both nodes are ready again", || async {
        readyz(&n1).await == 200 && readyz(&n2).await == 200
    })
    .await;
    accepted.push(
        publish_id(
            &n2.addr,
            json!({"user": "alice", "event": "end", "data": 0}),
        )
        .await,
    );
    let got: Vec<String> = events_until(&mut sse, "end")
        .await
        .into_iter()
        .map(|(name, id, _)| {
            assert_ne!(name, "herald.missed", "Redis kept everything");
            id
        })
        .collect();
    assert_eq!(got, accepted);
    // And the history survived too: resume from the first event on the other node.
    let mut resumed = open(&n2, &t, "", Some(&accepted[0])).await;
    let ids: Vec<String> = events_until(&mut resumed, "end")
        .await
        .into_iter()
        .map(|(_, id, _)| id)
        .collect();
    assert_eq!(ids, accepted[1..]);
}

/// `--redis-min-replicas 1`: a publish is acknowledged once a replica holds it, and refused
/// (503) while no replica confirms; a retry with the same Idempotency-Key once the replica is
/// back gets the same id, and each event is delivered exactly once, in order.
#[tokio::test]
async fn publishes_are_acknowledged_only_once_a_replica_holds_them() {
    let master = Redis::start().await;
    let mut replica = Redis::start_replica_of(&master).await;
    eventually("the replica connects", || async {
        master.replicas().await == 1
    })
    .await;
    // WAIT gets three quarters of the command timeout: generous, so that a replica on a busy
    // CI machine still answers in time; the refusal below takes that long.
    let hub = node(
        &master,
        &[
            "--redis-min-replicas",
            "1",
            "--redis-command-timeout-ms",
            "4000",
        ],
    );
    let mut sse = open(&hub, &token("ada", &[]), "", None).await;
    let one = publish_raw(
        &hub.addr,
        Some(KEY),
        json!({"event": "n", "data": 1}).to_string(),
    )
    .await;
    assert_eq!(one.status, 200, "{}", one.body);
    let one_id = one.json()["id"].as_str().unwrap().to_owned();
    // Acknowledged means the replica has it now.
    let mut replica_conn = replica.conn().await;
    let held: Vec<redis::Value> = redis::cmd("XRANGE")
        .arg("{herald}:events")
        .arg(&one_id)
        .arg(&one_id)
        .query_async(&mut replica_conn)
        .await
        .expect("XRANGE on the replica");
    assert_eq!(held.len(), 1, "the replica holds the acknowledged event");

    replica.stop();
    eventually("the master sees the replica gone", || async {
        master.replicas().await == 0
    })
    .await;
    let two = json!({"event": "n", "data": 2});
    let refused = publish_with_key(&hub.addr, KEY, "two", &two).await;
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(
        refused.body.contains("--redis-min-replicas"),
        "{}",
        refused.body
    );

    replica.restart().await;
    eventually("the replica is back", || async {
        master.replicas().await == 1
    })
    .await;
    let retried = publish_with_key(&hub.addr, KEY, "two", &two).await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    let three = publish_raw(
        &hub.addr,
        Some(KEY),
        json!({"event": "last", "data": 3}).to_string(),
    )
    .await;
    assert_eq!(three.status, 200, "{}", three.body);
    let data: Vec<String> = events_until(&mut sse, "last")
        .await
        .into_iter()
        .map(|(_, _, data)| data)
        .collect();
    assert_eq!(data, ["1", "2", "3"], "each event delivered once, in order");
}
