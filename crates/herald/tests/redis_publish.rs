//! Publishing through Redis: concurrent requests share calls of the append script, and each
//! request keeps its own guarantees (its batch contiguous and whole, its idempotency key).

mod common;
mod redis_harness;

use std::collections::BTreeMap;

use common::*;
use redis_harness::*;
use serde_json::json;

const CALLS: &str = "herald_redis_publish_calls_total";
const REQUESTS: &str = "herald_redis_publish_requests_total";

#[tokio::test]
async fn concurrent_publishes_share_calls_and_keep_each_batch_whole_and_each_key_once() {
    let redis = Redis::start().await;
    let url = redis.url();
    let hub = Server::start(&["--redis", &url, "--redis-command-timeout-ms", "5000"]);
    let other = node(&redis, &[]);
    let mut sse = open(&other, &token("ada", &[]), "", None).await;

    // Redis holds writes for a moment, as a busy Redis would, so that requests pile up behind
    // the calls already out. 64 requests at once, each a batch of three; every fourth carries
    // an idempotency key that the next request repeats, so pairs of equal keys are in flight
    // together.
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(500)
        .arg("WRITE")
        .query_async(&mut redis.conn().await)
        .await
        .expect("CLIENT PAUSE");
    let requests: Vec<_> = (0..64)
        .map(|r| {
            let addr = hub.addr.clone();
            tokio::spawn(async move {
                let body = json!([
                    {"user": "ada", "event": "e", "data": format!("{r}.0")},
                    {"user": "ada", "event": "e", "data": format!("{r}.1")},
                    {"user": "ada", "event": "e", "data": format!("{r}.2")},
                ]);
                let key = format!("k{}", r / 2);
                let reply = if r % 4 < 2 {
                    publish_with_key(&addr, KEY, &key, &body).await
                } else {
                    publish_raw(&addr, Some(KEY), body.to_string()).await
                };
                assert_eq!(reply.status, 200, "{}", reply.body);
                let ids: Vec<String> = reply.json()["ids"]
                    .as_array()
                    .expect("ids")
                    .iter()
                    .map(|id| id.as_str().expect("id").to_owned())
                    .collect();
                (r, ids)
            })
        })
        .collect();
    let mut answered = BTreeMap::new();
    for request in requests {
        let (r, ids) = request.await.expect("request");
        answered.insert(r, ids);
    }
    let (calls, shared) = (metric(&hub, CALLS).await, metric(&hub, REQUESTS).await);
    assert_eq!(shared, 64.0, "every request went to Redis");
    assert!(
        calls < shared,
        "{calls} calls for {shared} requests: none shared"
    );

    // A repeated key got the first attempt's ids; its events exist once.
    for pair in (0..64).step_by(4) {
        assert_eq!(
            answered[&pair],
            answered[&(pair + 1)],
            "requests {pair} and {}",
            pair + 1
        );
    }
    let expected: usize = 64 * 3 - 16 * 3;
    let publish_last = publish_id(
        &hub.addr,
        json!({"user": "ada", "event": "last", "data": 0}),
    );
    let last = publish_last.await;
    let delivered = events_until(&mut sse, "last").await;
    assert_eq!(delivered.last().map(|(_, id, _)| id.clone()), Some(last));
    let delivered = &delivered[..delivered.len() - 1];
    assert_eq!(delivered.len(), expected, "each event once");

    // Each request's batch arrived whole and contiguous, with the ids it was answered.
    for (r, ids) in &answered {
        let start = delivered
            .iter()
            .position(|(_, _, data)| data == &format!("{r}.0"));
        let Some(start) = start else {
            // One of a pair with the same key published nothing of its own: it was answered
            // the other's ids (checked above).
            assert!(r % 4 < 2, "request {r} was not delivered");
            continue;
        };
        let run: Vec<(String, String)> = delivered[start..start + 3]
            .iter()
            .map(|(_, id, data)| (id.clone(), data.clone()))
            .collect();
        let want: Vec<(String, String)> = (0..3)
            .map(|n| (ids[n].clone(), format!("{r}.{n}")))
            .collect();
        assert_eq!(run, want, "request {r}");
    }
}
