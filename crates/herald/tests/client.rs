//! herald-client against a real hub: publishing, typed events, errors that end a subscription,
//! and reconnection with `Last-Event-ID` through a proxy whose connections the test cuts.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::*;
use futures_util::StreamExt;
use herald::Claims;
use herald_client::{
    subscribe, Backoff, ClientError, Event, EventStream, PublishItem, Publisher, SubscribeOptions,
};
use serde::Deserialize;
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

async fn next(stream: &mut EventStream) -> Event {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Ok(event))) => event,
        other => panic!("expected an event, got {other:?}"),
    }
}

async fn next_error(stream: &mut EventStream) -> ClientError {
    match tokio::time::timeout(WAIT, stream.next()).await {
        Ok(Some(Err(error))) => error,
        other => panic!("expected an error, got {other:?}"),
    }
}

fn fast_backoff() -> Backoff {
    Backoff {
        base: Duration::from_millis(20),
        cap: Duration::from_millis(200),
    }
}

/// Publishes `ping` broadcasts until the stream yields one: the subscription is then live.
async fn wait_live(stream: &mut EventStream, publisher: &Publisher) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        publisher.broadcast("ping", &0).await.expect("ping");
        if let Ok(Some(Ok(event))) =
            tokio::time::timeout(Duration::from_millis(200), stream.next()).await
        {
            assert_eq!(event.event, "ping");
            // Drain the other pings that may be in flight.
            while let Ok(Some(Ok(_))) =
                tokio::time::timeout(Duration::from_millis(50), stream.next()).await
            {}
            return;
        }
    }
    panic!("subscription never became live");
}

#[derive(Debug, Deserialize, PartialEq)]
struct Payment {
    amount: u64,
}

#[tokio::test]
async fn publisher_and_subscriber_round_trip_with_typed_data() {
    let server = Server::start(&[]);
    let base = server.url("");
    let publisher = Publisher::new(&base, KEY).expect("publisher");
    let mut alice = subscribe(
        SubscribeOptions::new(&base)
            .token(token("alice", &["orders/*"]))
            .topic("orders/7"),
    )
    .expect("subscribe");
    wait_live(&mut alice, &publisher).await;

    let id = publisher
        .send_to_user("alice", "payment_completed", &json!({"amount": 5000}))
        .await
        .expect("send");
    let event = next(&mut alice).await;
    assert_eq!(
        (event.id.as_str(), event.event.as_str()),
        (id.as_str(), "payment_completed")
    );
    assert_eq!(
        event.json::<Payment>().expect("typed"),
        Payment { amount: 5000 }
    );

    publisher
        .to_topic("orders/7", "order_update", &json!({"status": "shipped"}))
        .await
        .expect("topic");
    publisher
        .send_to_user("bob", "not_for_alice", &json!(1))
        .await
        .expect("bob");
    publisher
        .broadcast("maintenance", &"at noon")
        .await
        .expect("broadcast");
    let ids = publisher
        .publish_batch(&[
            PublishItem::to_user("alice", "b1", json!(1)),
            PublishItem::to_topic("orders/8", "other_order", json!(2)),
            PublishItem::to_user("alice", "b2", json!("x")),
        ])
        .await
        .expect("batch");
    assert_eq!(ids.len(), 3);
    let mut names = Vec::new();
    for _ in 0..3 {
        names.push(next(&mut alice).await.event);
    }
    assert_eq!(names, ["order_update", "maintenance", "b1"]);
    let last = next(&mut alice).await;
    assert_eq!(
        (last.event.as_str(), last.id.as_str()),
        ("b2", ids[2].as_str())
    );
    assert!(matches!(
        last.json::<u64>(),
        Err(ClientError::Decode { .. })
    ));
}

#[tokio::test]
async fn refusals_end_the_subscription_with_the_hubs_reason() {
    let server = Server::start(&[]);
    let base = server.url("");

    let mut bad_token = subscribe(SubscribeOptions::new(&base).token("not-a-jwt")).expect("sub");
    match next_error(&mut bad_token).await {
        ClientError::Status {
            status: 401,
            message,
        } => assert!(!message.is_empty()),
        other => panic!("expected 401, got {other:?}"),
    }
    assert!(
        bad_token.next().await.is_none(),
        "the stream ends after a final error"
    );

    let mut forbidden = subscribe(
        SubscribeOptions::new(&base)
            .token(token("alice", &[]))
            .topic("billing/1"),
    )
    .expect("sub");
    assert!(matches!(
        next_error(&mut forbidden).await,
        ClientError::Status { status: 403, .. }
    ));

    let publisher = Publisher::new(&base, "wrong-key").expect("publisher");
    assert!(matches!(
        publisher.broadcast("x", &1).await,
        Err(ClientError::Status { status: 401, .. })
    ));
    let publisher = Publisher::new(&base, KEY).expect("publisher");
    let bad = PublishItem::broadcast("herald.reserved", json!(1));
    match publisher.publish(&bad).await {
        Err(ClientError::Status {
            status: 400,
            message,
        }) => {
            assert!(message.contains("reserved"), "{message}")
        }
        other => panic!("expected 400, got {other:?}"),
    }
}

#[tokio::test]
async fn an_unreachable_hub_fails_fast_on_the_first_connection() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let mut stream = subscribe(SubscribeOptions::new(&base).token("t")).expect("sub");
    assert!(matches!(
        next_error(&mut stream).await,
        ClientError::Unreachable { .. }
    ));
    assert!(matches!(
        Publisher::new(&base, KEY)
            .expect("p")
            .broadcast("x", &1)
            .await,
        Err(ClientError::Unreachable { .. })
    ));
    assert!(matches!(
        subscribe(SubscribeOptions::new("https://example.com")),
        Err(ClientError::InvalidUrl { .. })
    ));
}

/// A TCP proxy whose open connections can all be cut at once, as a flaky network would.
struct CuttingProxy {
    addr: String,
    cut: watch::Sender<u64>,
    connections: Arc<AtomicU32>,
}

impl CuttingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let (cut, cuts) = watch::channel(0u64);
        let connections = Arc::new(AtomicU32::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let upstream = upstream.clone();
                let mut cuts = cuts.clone();
                cuts.mark_unchanged();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cuts.changed() => {}
                    }
                });
            }
        });
        Self {
            addr,
            cut,
            connections,
        }
    }

    fn cut_all(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

#[tokio::test]
async fn reconnects_after_a_cut_and_resumes_with_nothing_lost_or_repeated() {
    // The hub's `retry: 20` must replace the client's own (hour-long) backoff base: a client
    // that ignored the hint would not be back within the test's patience.
    let server = Server::start(&["--retry-ms", "20"]);
    let proxy = CuttingProxy::start(server.addr.clone()).await;
    let publisher = Publisher::new(&server.url(""), KEY).expect("publisher");
    let mut stream = subscribe(
        SubscribeOptions::new(format!("http://{}", proxy.addr))
            .token(token("alice", &[]))
            .backoff(Backoff {
                base: Duration::from_secs(3600),
                cap: Duration::from_secs(3600),
            }),
    )
    .expect("subscribe");
    wait_live(&mut stream, &publisher).await;

    let mut received = Vec::new();
    let mut sent = Vec::new();
    for round in 0..3 {
        for i in 0..10 {
            if i == 5 {
                // Events published while the connection is down must come back on resume.
                proxy.cut_all();
            }
            let id = publisher
                .send_to_user("alice", "n", &(round * 10 + i))
                .await
                .expect("publish");
            sent.push(id);
        }
        while received.len() < sent.len() {
            received.push(next(&mut stream).await.id);
        }
    }
    assert_eq!(received, sent, "every event once, in order");
    assert!(
        proxy.connections.load(Ordering::SeqCst) >= 4,
        "the client reconnected after each cut"
    );
}

#[tokio::test]
async fn fetches_a_fresh_token_when_the_hub_says_401() {
    let server = Server::start(&[]);
    let base = server.url("");
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let mut stream = subscribe(
        SubscribeOptions::new(&base)
            .backoff(fast_backoff())
            .token_fn(move || {
                let call = counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    // The first token handed out has already expired.
                    let exp = if call == 0 { now() - 10 } else { now() + 3600 };
                    Ok(token_with(Claims {
                        sub: Some("alice".into()),
                        exp,
                        topics: None,
                        publish: None,
                    }))
                }
            }),
    )
    .expect("subscribe");
    let publisher = Publisher::new(&base, KEY).expect("publisher");
    wait_live(&mut stream, &publisher).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn subscribes_over_http2_with_prior_knowledge() {
    let server = Server::start(&[]);
    let base = server.url("");
    let publisher = Publisher::new(&base, KEY).expect("publisher");
    let mut stream = subscribe(
        SubscribeOptions::new(&base)
            .token(token("alice", &[]))
            .http2(true),
    )
    .expect("subscribe");
    wait_live(&mut stream, &publisher).await;
    let id = publisher
        .send_to_user("alice", "over_h2", &json!({}))
        .await
        .expect("publish");
    assert_eq!(next(&mut stream).await.id, id);
}

#[tokio::test]
async fn a_204_answer_stops_the_subscription_for_good() {
    // Not something Herald sends, but the SSE rule for any server: 204 means "do not reconnect".
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicU32::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let mut buffer = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut buffer).await;
            let _ = tokio::io::AsyncWriteExt::write_all(
                &mut socket,
                b"HTTP/1.1 204 No Content\r\nconnection: close\r\n\r\n",
            )
            .await;
        }
    });
    let mut stream = subscribe(
        SubscribeOptions::new(format!("http://{addr}"))
            .token("t")
            .backoff(fast_backoff()),
    )
    .expect("subscribe");
    assert_eq!(next_error(&mut stream).await, ClientError::Stopped);
    assert!(stream.next().await.is_none());
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "no reconnect after 204");
}
