//! Retained values, idempotent publishing and presence across two nodes sharing a real
//! `redis-server`: what one node did is what the other (and a node that starts later) sees.

mod common;
mod redis_harness;

use common::*;
use redis_harness::*;
use serde_json::json;

#[tokio::test]
async fn retained_values_are_the_clusters_and_a_later_node_serves_them() {
    let redis = Redis::start().await;
    let n1 = node(&redis, &[]);
    let n2 = node(&redis, &[]);
    publish(
        &n1.addr,
        json!({"user": "alice", "event": "unread", "data": 1, "retain": true}),
    )
    .await;
    let unread = publish_id(
        &n2.addr,
        json!({"user": "alice", "event": "unread", "data": 2, "retain": true}),
    )
    .await;
    let score = publish_id(
        &n1.addr,
        json!({"topic": "scores/1", "event": "score", "data": "3-1", "retain": true}),
    )
    .await;
    publish(
        &n1.addr,
        json!({"topic": "old/1", "event": "gone", "data": 0, "retain": true}),
    )
    .await;
    publish(
        &n2.addr,
        json!({"topic": "old/1", "event": "gone", "retain": "clear"}),
    )
    .await;
    // A node that starts now holds none of it in memory: it loads the cluster's store.
    let n3 = node(&redis, &[]);
    let t = token("alice", &["scores/*", "old/*"]);
    for n in [&n1, &n2, &n3] {
        let mut sse = open(n, &t, "topic=scores/*&topic=old/*", None).await;
        let first = sse.next_event().await;
        let second = sse.next_event().await;
        assert_eq!(
            [
                (first.event_type, first.last_event_id, first.data),
                (second.event_type, second.last_event_id, second.data),
            ],
            [
                ("unread".into(), unread.clone(), "2".into()),
                ("score".into(), score.clone(), "3-1".into()),
            ],
            "on {}",
            n.addr
        );
        // Nothing else retained comes (the cleared value is gone): the next event is live.
        let live = publish_id(
            &n1.addr,
            json!({"user": "alice", "event": "live", "data": 0}),
        )
        .await;
        assert_eq!(sse.next_event().await.last_event_id, live);
    }
}

#[tokio::test]
async fn an_idempotency_key_is_recognised_on_another_node() {
    let redis = Redis::start().await;
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let mut sse = open(&n1, &token("alice", &[]), "", None).await;
    let body = json!({"user": "alice", "event": "paid", "data": 1});
    let first = publish_with_key(&n1.addr, KEY, "payment-7", &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    // The publisher timed out and retried through the load balancer: another node.
    let retry = publish_with_key(&n2.addr, KEY, "payment-7", &body).await;
    assert_eq!((retry.status, &retry.body), (200, &first.body));
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    publish(
        &n2.addr,
        json!({"user": "alice", "event": "end", "data": 0}),
    )
    .await;
    assert_eq!(sse.names_until("end").await, ["paid", "end"]);
}

async fn streams_of(node: &Server, user: &str) -> u64 {
    let asked = http::Request::get(format!("/presence?user={user}"))
        .header("host", &node.addr)
        .header("authorization", format!("Bearer {KEY}"))
        .body(Default::default())
        .unwrap();
    request(&node.addr, asked).await.json()["streams"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn presence_counts_every_node_and_stops_counting_a_dead_one() {
    let redis = Redis::start().await;
    let (n1, n2) = (node(&redis, &[]), node(&redis, &[]));
    let t = token("alice", &["rooms/*"]);
    let _a = open(&n1, &t, "topic=rooms/1", None).await;
    let _b = open(&n2, &t, "", None).await;
    let _c = open(&n2, &token("bob", &["rooms/*"]), "topic=rooms/1", None).await;
    // Nodes announce themselves every second: wait until each sees the other.
    eventually("both nodes count both", || async {
        streams_of(&n1, "alice").await == 2 && streams_of(&n2, "alice").await == 2
    })
    .await;
    let topic = http::Request::get("/presence?topic=rooms/1")
        .header("host", &n1.addr)
        .header("authorization", format!("Bearer {KEY}"))
        .body(Default::default())
        .unwrap();
    assert_eq!(
        request(&n1.addr, topic).await.json(),
        json!({"topic": "rooms/1", "streams": 2, "users": ["alice", "bob"]})
    );
    sigkill(&n2);
    eventually("the dead node is no longer counted", || async {
        streams_of(&n1, "alice").await == 1
    })
    .await;
}

mod webhooks {
    //! Online/offline webhooks with a user's streams on two nodes: exactly one of each per
    //! transition, whichever node sees it.

    use std::time::Duration;

    use super::common::stub::{Answer, Stub};
    use super::*;

    const SECRET: &str = "whsec-cluster-0123456789";

    fn webhook_node(redis: &Redis, stub: &Stub, delay: &str) -> Server {
        node(
            redis,
            &[
                "--webhook-url",
                &stub.url("/hook"),
                "--webhook-secret",
                SECRET,
                "--offline-delay",
                delay,
            ],
        )
    }

    async fn total(nodes: &[&Server], series: &str) -> f64 {
        let mut sum = 0.0;
        for n in nodes {
            sum += metric(n, series).await;
        }
        sum
    }

    fn announced(kind: &str) -> String {
        format!("herald_announcements_total{{type=\"{kind}\"}}")
    }

    fn changes(change: &str) -> String {
        format!("herald_presence_changes_total{{change=\"{change}\"}}")
    }

    /// (type, user) of every call, and whether each one's signature verifies.
    fn calls(stub: &Stub) -> Vec<(String, String, bool)> {
        stub.requests()
            .iter()
            .map(|r| {
                let body = r.json();
                let expected = {
                    use hmac::{Hmac, Mac};
                    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
                    mac.update(&r.body);
                    let hex: String = mac
                        .finalize()
                        .into_bytes()
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect();
                    format!("sha256={hex}")
                };
                (
                    body["type"].as_str().unwrap_or_default().to_owned(),
                    body["user"].as_str().unwrap_or_default().to_owned(),
                    r.header("herald-signature") == Some(expected.as_str()),
                )
            })
            .collect()
    }

    fn call(kind: &str, user: &str) -> (String, String, bool) {
        (kind.to_owned(), user.to_owned(), true)
    }

    #[tokio::test]
    async fn one_online_and_one_offline_for_streams_on_two_nodes() {
        let redis = Redis::start().await;
        let stub = Stub::start(|_| Answer::status(204));
        let (n1, n2) = (
            webhook_node(&redis, &stub, "500ms"),
            webhook_node(&redis, &stub, "500ms"),
        );
        let alice = token("alice", &[]);
        let on_1 = open(&n1, &alice, "", None).await;
        let on_2 = open(&n2, &alice, "", None).await;
        // Both nodes told the cluster's book; only one of them brought alice online.
        eventually("both nodes record alice's arrival", || async {
            metric(&n1, &changes("arrive")).await == 1.0
                && metric(&n2, &changes("arrive")).await == 1.0
        })
        .await;
        assert_eq!(total(&[&n1, &n2], &announced("user.online")).await, 1.0);
        stub.wait_for_count(1).await;

        drop(on_1);
        eventually("node 1 records alice's departure", || async {
            metric(&n1, &changes("depart")).await == 1.0
        })
        .await;
        drop(on_2);
        stub.wait_for_count(2).await;
        assert_eq!(
            calls(&stub),
            [call("user.online", "alice"), call("user.offline", "alice")]
        );
        // Both nodes look for due offlines on every tick; one claimed it.
        let later = token("bob", &[]);
        let _bob_1 = open(&n1, &later, "", None).await;
        stub.wait_for_count(3).await;
        assert_eq!(total(&[&n1, &n2], &announced("user.offline")).await, 1.0);
        assert_eq!(stub.count(), 3);
    }

    #[tokio::test]
    async fn moving_to_another_node_within_the_delay_announces_nothing() {
        let redis = Redis::start().await;
        let stub = Stub::start(|_| Answer::status(200));
        let (n1, n2) = (
            webhook_node(&redis, &stub, "2s"),
            webhook_node(&redis, &stub, "2s"),
        );
        let alice = token("alice", &[]);
        let before = open(&n1, &alice, "", None).await;
        stub.wait_for_count(1).await;
        drop(before);
        eventually("node 1 records the departure", || async {
            metric(&n1, &changes("depart")).await == 1.0
        })
        .await;
        // The reconnect lands on the other node, within the delay.
        let after = open(&n2, &alice, "", None).await;
        eventually("node 2 records the arrival", || async {
            metric(&n2, &changes("arrive")).await == 1.0
        })
        .await;
        drop(after);
        stub.wait_for_count(2).await;
        assert_eq!(
            calls(&stub),
            [call("user.online", "alice"), call("user.offline", "alice")]
        );
        assert_eq!(total(&[&n1, &n2], &announced("user.online")).await, 1.0);
        assert_eq!(total(&[&n1, &n2], &announced("user.offline")).await, 1.0);
    }

    #[tokio::test]
    async fn the_users_of_a_node_that_dies_go_offline_once() {
        let redis = Redis::start().await;
        let stub = Stub::start(|_| Answer::status(200));
        let (n1, n2) = (
            webhook_node(&redis, &stub, "200ms"),
            webhook_node(&redis, &stub, "200ms"),
        );
        let _alice = open(&n2, &token("alice", &[]), "", None).await;
        let _bob_1 = open(&n1, &token("bob", &[]), "", None).await;
        let _bob_2 = open(&n2, &token("bob", &[]), "", None).await;
        eventually("both nodes record their users", || async {
            metric(&n1, &changes("arrive")).await == 1.0
                && metric(&n2, &changes("arrive")).await == 2.0
        })
        .await;
        stub.wait_for_count(2).await;
        sigkill(&n2);
        // Node 2 stops saying it is alive; node 1 makes its users leave after DEAD_AFTER (15 s):
        // alice, who had no other stream, goes offline; bob, still on node 1, does not.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(40);
        while stub.count() < 3 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no offline for alice"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let calls = calls(&stub);
        assert_eq!(calls[2], call("user.offline", "alice"));
        let mut online: Vec<_> = calls[..2].to_vec();
        online.sort();
        assert_eq!(
            online,
            [call("user.online", "alice"), call("user.online", "bob")]
        );
        let _carol = open(&n1, &token("carol", &[]), "", None).await;
        stub.wait_for_count(4).await;
        assert_eq!(
            stub.requests()[3].json()["user"],
            "carol",
            "nothing for bob"
        );
    }
}
