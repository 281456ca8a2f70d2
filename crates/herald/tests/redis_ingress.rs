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

#[tokio::test]
async fn seed_format_messages_are_delivered_once_per_stream_with_several_nodes() {
    let redis = Redis::start().await;
    let nodes = [node(&redis, &[]), node(&redis, &[]), node(&redis, &[])];
    let mut admin = redis.conn().await;
    eventually("every node subscribed to the ingress channel", || {
        let mut admin = admin.clone();
        async move {
            let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
                .arg("NUMSUB")
                .arg(CHANNEL)
                .query_async(&mut admin)
                .await
                .unwrap();
            counts.first().map(|(_, n)| *n) == Some(3)
        }
    })
    .await;

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
        r#"{"event":"maintenance","data":{"at":"22:00"}}"#,
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
