//! Mercure mode on nodes sharing a real `redis-server`: the clustering Mercure's open-source hub
//! lacks. An update published on either node reaches subscribers on both, in order, private
//! ones only where the token allows; a subscriber resumes by a Mercure id on any node, even
//! one that has not dispatched that update yet or started after it.

mod common;
mod redis_harness;

use common::mercure::*;
use common::Open;
use redis_harness::*;

const BOOK: &str = "https://example.com/books/1";
const OTHER: &str = "https://example.com/books/2";

fn mercure_node(redis: &Redis) -> common::Server {
    node(redis, &["--mercure", "--allow-anonymous"])
}

#[tokio::test]
async fn updates_cross_nodes_in_order_and_private_ones_only_where_allowed() {
    let redis = Redis::start().await;
    let n1 = mercure_node(&redis);
    let n2 = mercure_node(&redis);
    let mut public_on_2 = anonymous(&n2, &[("topic", BOOK)]).await;
    let allowed = legacy(&[], &[BOOK]);
    let mut private_on_1 = subscribe(
        &n1,
        &[("topic", BOOK), ("authorization", allowed.as_str())],
        Open::default(),
    )
    .await;
    assert_eq!(private_on_1.status, 200, "{}", private_on_1.raw_text());

    let one = publish(
        &n1,
        &[("topic", BOOK), ("data", "one"), ("id", "urn:event:1")],
    )
    .await;
    publish(&n1, &[("topic", OTHER), ("data", "not for them")]).await;
    let secret = publish(
        &n2,
        &[("topic", BOOK), ("data", "secret"), ("private", "on")],
    )
    .await;
    let three = publish(&n2, &[("topic", BOOK), ("data", "three")]).await;
    assert!(three.starts_with("urn:uuid:"), "{three}");
    let mut late_on_1 = anonymous(&n1, &[("topic", BOOK)]).await;
    let four = publish(&n2, &[("topic", BOOK), ("data", "four")]).await;

    let mut public = Vec::new();
    for _ in 0..3 {
        let event = next_update(&mut public_on_2).await;
        public.push((event.last_event_id, event.data));
    }
    assert_eq!(
        public,
        [
            (one.clone(), "one".to_owned()),
            (three.clone(), "three".to_owned()),
            (four.clone(), "four".to_owned()),
        ],
        "the anonymous subscriber on the other node gets the public updates, in order"
    );
    let mut private = Vec::new();
    for _ in 0..4 {
        let event = next_update(&mut private_on_1).await;
        private.push((event.last_event_id, event.data));
    }
    assert_eq!(
        private,
        [
            (one.clone(), "one".to_owned()),
            (secret.clone(), "secret".to_owned()),
            (three.clone(), "three".to_owned()),
            (four.clone(), "four".to_owned()),
        ]
    );
    let event = next_update(&mut late_on_1).await;
    assert_eq!((event.last_event_id, event.data), (four, "four".to_owned()));
}

/// The next update on `sse`, which must be a plain message: no `herald.missed` before it.
async fn next_message(sse: &mut common::Sse) -> (String, String) {
    let event = sse.next_event().await;
    assert_eq!(event.event_type, "message", "{event:?}");
    (event.last_event_id, event.data)
}

#[tokio::test]
async fn resume_by_a_mercure_id_replays_exactly_what_followed_on_any_node() {
    let redis = Redis::start().await;
    let n1 = mercure_node(&redis);
    let n2 = mercure_node(&redis);
    let one = publish(
        &n1,
        &[("topic", BOOK), ("data", "one"), ("id", "urn:event:1")],
    )
    .await;
    publish(&n1, &[("topic", OTHER), ("data", "not for them")]).await;
    let two = publish(&n1, &[("topic", BOOK), ("data", "two")]).await;
    let three = publish(
        &n1,
        &[("topic", BOOK), ("data", "three"), ("id", "urn:event:3")],
    )
    .await;

    // At once on the other node, which may not have dispatched them yet: by header.
    let mut on_2 = subscribe(
        &n2,
        &[("topic", BOOK)],
        Open {
            last_event_id: Some(one.as_str()),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(on_2.status, 200, "{}", on_2.raw_text());
    assert_eq!(on_2.headers["last-event-id"], one);
    assert_eq!(on_2.headers["mercure-last-event-id"], one);

    // A node started after the updates holds none of them in its own window: by query, from a
    // generated id.
    let n3 = mercure_node(&redis);
    let mut on_3 = anonymous(&n3, &[("topic", BOOK), ("lastEventID", two.as_str())]).await;
    assert_eq!(on_3.headers["last-event-id"], two);

    let four = publish(&n2, &[("topic", BOOK), ("data", "four")]).await;
    assert_eq!(
        next_message(&mut on_2).await,
        (two.clone(), "two".to_owned())
    );
    for sse in [&mut on_2, &mut on_3] {
        assert_eq!(next_message(sse).await, (three.clone(), "three".to_owned()));
        assert_eq!(next_message(sse).await, (four.clone(), "four".to_owned()));
    }

    // An id no node ever published still does not leave the client stuck.
    let mut unknown = anonymous(&n3, &[("topic", BOOK), ("lastEventID", "urn:never")]).await;
    assert_eq!(unknown.headers["last-event-id"], "earliest");
    let five = publish(&n1, &[("topic", BOOK), ("data", "five")]).await;
    assert_eq!(next_update(&mut unknown).await.last_event_id, five);
}

#[tokio::test]
async fn subscription_events_reach_watchers_on_every_node() {
    let redis = Redis::start().await;
    let tracking = ["--mercure", "--allow-anonymous", "--mercure-subscriptions"];
    let n1 = node(&redis, &tracking);
    let n2 = node(&redis, &tracking);
    let all = "/.well-known/mercure/subscriptions{/topic}{/subscriber}";
    let token = legacy(&[], &[all]);
    let mut watching = subscribe(
        &n1,
        &[("topic", all), ("authorization", token.as_str())],
        Open::default(),
    )
    .await;
    assert_eq!(watching.status, 200, "{}", watching.raw_text());
    let own: serde_json::Value =
        serde_json::from_str(&next_update(&mut watching).await.data).unwrap();
    assert_eq!(own["topic"], all);

    let elsewhere = anonymous(&n2, &[("topic", BOOK)]).await;
    let started: serde_json::Value =
        serde_json::from_str(&next_update(&mut watching).await.data).unwrap();
    assert_eq!(
        (started["topic"].as_str(), started["active"].as_bool()),
        (Some(BOOK), Some(true))
    );
    drop(elsewhere);
    let ended: serde_json::Value =
        serde_json::from_str(&next_update(&mut watching).await.data).unwrap();
    assert_eq!(ended["id"], started["id"]);
    assert_eq!(ended["active"], false);
}
