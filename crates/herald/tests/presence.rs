//! `GET /presence`: a user's open streams and a topic's subscribers, authorised like
//! publishing. (Across nodes on Redis: `redis_realtime.rs`.)

mod common;

use common::*;
use herald::Claims;
use serde_json::json;

async fn presence(addr: &str, credential: Option<&str>, query: &str) -> Reply {
    let mut builder = http::Request::get(format!("/presence?{query}")).header("host", addr);
    if let Some(credential) = credential {
        builder = builder.header("authorization", format!("Bearer {credential}"));
    }
    request(addr, builder.body(Default::default()).unwrap()).await
}

#[tokio::test]
async fn counts_a_users_streams_and_a_topics_subscribers() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    let alice = token("alice", &["orders/**"]);
    let bob = token("bob", &["orders/*"]);
    let open = |t: String, query: &'static str| async move {
        let sse = Sse::open(
            addr,
            Open {
                token: Some(&t),
                query,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(sse.status, 200);
        sse
    };
    let streams = vec![
        open(alice.clone(), "").await,
        open(alice.clone(), "topic=orders/**").await,
        open(bob.clone(), "topic=orders/42").await,
        open(bob.clone(), "topic=orders/*").await,
    ];
    let reply = presence(addr, Some(KEY), "user=alice").await;
    assert_eq!(reply.json(), json!({"user": "alice", "streams": 2}));
    let reply = presence(addr, Some(KEY), "topic=orders/42").await;
    assert_eq!(
        reply.json(),
        json!({"topic": "orders/42", "streams": 3, "users": ["alice", "bob"]})
    );
    drop(streams);
    let deadline = std::time::Instant::now() + WAIT;
    while presence(addr, Some(KEY), "user=alice").await.json()["streams"] != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "closed streams still counted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn presence_is_authorised_like_publishing() {
    let server = Server::start(&[]);
    let addr = &server.addr;
    assert_eq!(presence(addr, None, "user=alice").await.status, 401);
    assert_eq!(
        presence(addr, Some("wrong"), "user=alice").await.status,
        401
    );
    // A subscriber token has no publish claim.
    let subscriber = token("alice", &[]);
    assert_eq!(
        presence(addr, Some(&subscriber), "user=alice").await.status,
        403
    );
    let orders_only = token_with(Claims {
        exp: now() + 600,
        publish: Some(vec!["orders/**".into()]),
        ..Default::default()
    });
    assert_eq!(
        presence(addr, Some(&orders_only), "topic=orders/1")
            .await
            .status,
        200
    );
    assert_eq!(
        presence(addr, Some(&orders_only), "topic=news/1")
            .await
            .status,
        403
    );
    assert_eq!(
        presence(addr, Some(&orders_only), "user=alice")
            .await
            .status,
        403
    );
    for bad in ["", "user=a&topic=b", "topic=a/*", "user="] {
        let reply = presence(addr, Some(KEY), bad).await;
        assert_eq!(reply.status, 400, "{bad:?}: {}", reply.body);
    }
}
