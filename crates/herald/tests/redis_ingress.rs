//! Seed compatibility: services that `PUBLISH user:events '{"userId":..}'` keep working with
//! several nodes listening, each message delivered once per matching stream, with an id and in
//! history; malformed messages are counted and dropped without hurting anything.

mod common;
mod redis_harness;

use common::*;
use redis_harness::*;

const CHANNEL: &str = "user:events";
const PUBLISHED: &str = "herald_redis_ingress_messages_total{outcome=\"published\"}";
const DUPLICATE: &str = "herald_redis_ingress_messages_total{outcome=\"duplicate\"}";
const MALFORMED: &str = "herald_redis_ingress_messages_total{outcome=\"malformed\"}";

/// Waits until `nodes` nodes listen on the ingress channel.
async fn subscribed(admin: &redis::aio::MultiplexedConnection, nodes: usize) {
    eventually("the nodes subscribed to the ingress channel", || {
        let mut admin = admin.clone();
        async move {
            let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(CHANNEL)
                .query_async(&mut admin)
                .await
                .unwrap();
            counts.first().map(|(_, n)| *n) == Some(nodes)
        }
    })
    .await;
}

#[tokio::test]
async fn seed_format_messages_are_delivered_once_per_stream_with_several_nodes() {
    let redis = Redis::start().await;
    let nodes = [node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let mut admin = redis.conn().await;
    subscribed(&admin, 3).await;

    let user_token = token("user_123", &["orders/*"]);
    let mut streams = Vec::new();
    for n in &nodes {
        streams.push(open(n, &user_token, "topic=orders/7", None).await);
    }
    let other = token("someone_else", &[]);
    let mut bystander = open(&nodes[1], &other, "", None).await;

    // The seed's own message, twice (two real payments), a topic message, a broadcast, and
    // garbage in between; the malformed ones must change nothing.
    let seed = r#"{"userId":"user_123","event":"payment_completed","data":{"amount":5000}}"#;
    let messages = [
        seed,
        "not json at all",
        seed,
        r#"{"topic":"orders/7","event":"order_update","data":"shipped"}"#,
        r#"{"userId":"user_123","event":"herald.missed","data":1}"#,
        // A broadcast says so (DESIGN v2: a message without a recipient reaches no one).
        r#"{"event":"maintenance","data":{"at":"22:00"},"broadcast":true}"#,
        r#"{"userId":"user_123","event":"end","data":0}"#,
    ];
    for message in messages {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(message)
            .query_async(&mut admin)
            .await
            .unwrap();
    }

    let mut ids_per_stream = Vec::new();
    for sse in &mut streams {
        let events = events_until(sse, "end").await;
        let names: Vec<&str> = events.iter().map(|(n, _, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "payment_completed",
                "payment_completed",
                "order_update",
                "maintenance",
                "end"
            ]
        );
        assert_eq!(events[0].2, r#"{"amount":5000}"#);
        assert_eq!(events[2].2, r#""shipped""#, "JSON, as the seed sent it");
        ids_per_stream.push(events.into_iter().map(|(_, id, _)| id).collect::<Vec<_>>());
    }
    assert!(
        ids_per_stream.windows(2).all(|w| w[0] == w[1]),
        "same ids on every node"
    );
    assert_eq!(bystander.next_event().await.event_type, "maintenance");

    // Exactly one node appended each valid message; the others saw it as a duplicate.
    let valid = 5.0;
    eventually("every node handled every message", || async {
        let mut published = 0.0;
        let mut duplicate = 0.0;
        for n in &nodes {
            published += metric(n, PUBLISHED).await;
            duplicate += metric(n, DUPLICATE).await;
        }
        published + duplicate >= valid * 3.0
    })
    .await;
    let mut published = 0.0;
    for n in &nodes {
        published += metric(n, PUBLISHED).await;
        assert_eq!(
            metric(n, MALFORMED).await,
            2.0,
            "each node logs and counts garbage"
        );
        assert_eq!(readyz(n).await, 200);
    }
    assert_eq!(published, valid);

    // Ingress events are ordinary events: they have ids and are in history for resume.
    let first = &ids_per_stream[0][0];
    let mut resumed = open(&nodes[2], &user_token, "", Some(first)).await;
    let names: Vec<String> = events_until(&mut resumed, "end")
        .await
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    assert_eq!(names, ["payment_completed", "maintenance", "end"]);
}

#[tokio::test]
async fn a_message_without_a_recipient_reaches_no_one_and_is_counted() {
    let redis = Redis::start().await;
    let n = node(&redis, &["--max-body-bytes", "64KiB"]);
    let mut admin = redis.conn().await;
    subscribed(&admin, 1).await;
    let mut alice = open(&n, &token("alice", &[]), "", None).await;
    let mut anonymous_minded = open(&n, &token("bob", &[]), "", None).await;

    // What a publishing service's bugs produce: userId null (a failed lookup), missing
    // (`JSON.stringify({userId: undefined, ...})`), of another type; too deep; too large.
    let deep = format!(
        r#"{{"userId":"alice","data":{}1{}}}"#,
        "[".repeat(40),
        "]".repeat(40)
    );
    let large = format!(r#"{{"userId":"alice","data":"{}"}}"#, "p".repeat(100_000));
    let bad = [
        r#"{"userId":null,"event":"dm","data":{"text":"private to someone"}}"#.to_owned(),
        r#"{"event":"dm","data":{"text":"private to someone"}}"#.to_owned(),
        r#"{"userId":{"id":"alice"},"event":"dm","data":{"text":"private"}}"#.to_owned(),
        deep,
        large,
    ];
    for message in bad.iter().map(String::as_str).chain([
        r#"{"userId":"alice","event":"end","data":0}"#,
        r#"{"event":"end","data":0,"broadcast":true}"#,
    ]) {
        let _: i64 = redis::cmd("PUBLISH")
            .arg(CHANNEL)
            .arg(message)
            .query_async(&mut admin)
            .await
            .unwrap();
    }
    // Alice's stream gets her own `end` and the broadcast `end`, nothing in between; Bob's
    // only the broadcast.
    let names: Vec<String> = {
        let mut names = Vec::new();
        while names.len() < 2 {
            names.push(alice.next_event().await.event_type);
        }
        names
    };
    assert_eq!(names, ["end", "end"]);
    assert_eq!(anonymous_minded.next_event().await.event_type, "end");
    eventually("every bad message counted", || async {
        metric(&n, MALFORMED).await == bad.len() as f64
    })
    .await;
    assert!(
        !n.output().contains("private"),
        "no message content in the log"
    );
}
