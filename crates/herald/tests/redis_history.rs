//! History on Redis, read by a node that holds none of it in memory: replays of any size come
//! page by page, in order; the history bounds (bytes, age) hold cluster-wide, in what resume
//! reaches and in what the Redis stream keeps.

mod common;
mod redis_harness;

use std::time::{Duration, Instant};

use common::*;
use redis_harness::*;
use serde_json::json;

/// Publishes `n` events of `size` bytes to alice on `via`; their ids.
async fn publish_many(via: &Server, n: usize, size: usize) -> Vec<String> {
    let filler = "x".repeat(size);
    let mut ids = Vec::new();
    for i in 0..n {
        let body = json!({"user": "alice", "event": "e", "data": format!("{i:05}:{filler}")});
        ids.push(publish_id(&via.addr, body).await);
    }
    ids
}

/// Publishes to alice on `via` a `start` event, `batches` batches of `per_batch` events whose
/// data is their number and `filler`, and an `end` event; the `start` event's id.
async fn publish_batches(via: &Server, batches: usize, per_batch: usize, filler: &str) -> String {
    let start = publish_id(
        &via.addr,
        json!({"user": "alice", "event": "start", "data": 0}),
    )
    .await;
    for chunk in 0..batches {
        let batch: Vec<_> = (0..per_batch)
            .map(|i| json!({"user": "alice", "event": "e", "data": format!("{:05}:{filler}", chunk * per_batch + i)}))
            .collect();
        publish(&via.addr, json!(batch)).await;
    }
    publish(
        &via.addr,
        json!({"user": "alice", "event": "end", "data": 0}),
    )
    .await;
    start
}

/// Resumes alice on `node` from `from` and returns the data of the events up to `end`.
async fn replay(node: &Server, from: &str) -> Vec<String> {
    let mut sse = open(node, &token("alice", &[]), "", Some(from)).await;
    events_until(&mut sse, "end")
        .await
        .into_iter()
        .filter(|(name, _, _)| name != "end")
        .map(|(name, _, data)| {
            assert_eq!(name, "e", "{}", &data[..data.len().min(120)]);
            data
        })
        .collect()
}

#[tokio::test]
async fn a_fresh_node_replays_fifty_events_of_100_kib_from_redis_in_order() {
    let redis = Redis::start().await;
    let n1 = node(&redis, &[]);
    let start = publish_id(
        &n1.addr,
        json!({"user": "alice", "event": "start", "data": 0}),
    )
    .await;
    publish_many(&n1, 50, 100 << 10).await;
    publish(
        &n1.addr,
        json!({"user": "alice", "event": "end", "data": 0}),
    )
    .await;
    // n2 starts now: everything comes from the Redis stream.
    let n2 = node(&redis, &[]);
    let data = replay(&n2, &start).await;
    assert_eq!(data.len(), 50);
    for (i, d) in data.iter().enumerate() {
        assert!(d.starts_with(&format!("{i:05}:")) && d.len() == (100 << 10) + 6);
    }
}

#[tokio::test]
async fn a_long_replay_from_redis_comes_in_pages_without_a_gap() {
    let redis = Redis::start().await;
    let n1 = node(&redis, &[]);
    // More than two pages (512 events each), in batches.
    let start = publish_batches(&n1, 6, 250, "").await;
    let n2 = node(&redis, &[]);
    let data = replay(&n2, &start).await;
    assert_eq!(data.len(), 1500);
    assert!(data
        .iter()
        .enumerate()
        .all(|(i, d)| d == &format!("{i:05}:")));
}

/// Bytes Redis has sent to its clients so far.
async fn redis_output_bytes(redis: &Redis) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("stats")
        .query_async(&mut redis.conn().await)
        .await
        .expect("INFO stats");
    info.lines()
        .find_map(|line| line.strip_prefix("total_net_output_bytes:"))
        .and_then(|n| n.trim().parse().ok())
        .expect("total_net_output_bytes in INFO stats")
}

#[tokio::test]
async fn a_replay_of_large_batches_reads_each_entry_from_redis_about_once() {
    // 36 batches of 250 events: each batch is one stream entry, so a page of 512 events is
    // two or three entries, not the 32 a fixed entry count would read (16 times the history).
    let redis = Redis::start().await;
    let n1 = node(&redis, &[]);
    let start = publish_batches(&n1, 36, 250, &"z".repeat(40)).await;
    let n2 = node(&redis, &[]);
    // What reading the whole history once costs, measured the same way.
    let before = redis_output_bytes(&redis).await;
    let _: redis::Value = redis::cmd("XRANGE")
        .arg(stream_key(&n1))
        .arg("-")
        .arg("+")
        .query_async(&mut redis.conn().await)
        .await
        .expect("XRANGE");
    let middle = redis_output_bytes(&redis).await;
    let data = replay(&n2, &start).await;
    let after = redis_output_bytes(&redis).await;
    assert_eq!(data.len(), 9_000);
    assert!(data
        .iter()
        .enumerate()
        .all(|(i, d)| d.starts_with(&format!("{i:05}:"))));
    let (once, replayed) = (middle - before, after - middle);
    eprintln!("the history is {once} bytes; the replay read {replayed}");
    assert!(
        replayed < 2 * once,
        "the replay read {replayed} bytes from Redis for a history of {once}"
    );
}

#[tokio::test]
async fn the_byte_bound_holds_cluster_wide() {
    let redis = Redis::start().await;
    let bound = ["--history-bytes", "1MiB"];
    let n1 = node(&redis, &bound);
    let ids = publish_many(&n1, 40, 60_000).await;
    publish(
        &n1.addr,
        json!({"user": "alice", "event": "end", "data": 0}),
    )
    .await;
    let n2 = node(&redis, &bound);
    // The first events are more than 1 MiB ago: a miss on the node that never held them too.
    let mut sse = open(&n2, &token("alice", &[]), "", Some(&ids[0])).await;
    let missed = sse.next_event().await;
    assert_eq!(missed.event_type, "herald.missed");
    assert!(missed.data.contains("history_expired"));
    // The last few are within it: replayed exactly.
    let data = replay(&n2, &ids[35]).await;
    assert_eq!(data.len(), 4);
    assert!(data[0].starts_with("00036:"));
    // And Redis itself keeps no more than the bound and one event: 17 of 60 KB fit in 1 MiB,
    // one more may straddle it, and the small `end`.
    let mut conn = redis.conn().await;
    let prefix = stream_key(&n1);
    let len: usize = redis::cmd("XLEN")
        .arg(&prefix)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(len <= 19, "{len} entries of 60 KB kept for a 1 MiB bound");
}

#[tokio::test]
async fn the_age_bound_holds_cluster_wide() {
    let redis = Redis::start().await;
    let bound = ["--history-ttl", "1s"];
    let n1 = node(&redis, &bound);
    let old = publish_id(&n1.addr, json!({"user": "alice", "data": "old"})).await;
    publish(&n1.addr, json!({"user": "alice", "data": "after"})).await;
    let n2 = node(&redis, &bound);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut sse = open(&n2, &token("alice", &[]), "", Some(&old)).await;
        let first = sse.next_event().await;
        if first.event_type == "herald.missed" {
            assert!(first.data.contains("history_expired"));
            break;
        }
        assert!(Instant::now() < deadline, "history never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The Redis key of the event stream of `node`'s cluster (from its startup log).
fn stream_key(node: &Server) -> String {
    let output = node.output();
    let at = output
        .find("stream=")
        .expect("the stream is logged at startup")
        + "stream=".len();
    output[at..]
        .split_whitespace()
        .next()
        .expect("stream key")
        .to_owned()
}
