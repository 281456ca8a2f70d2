//! Resume at size: a client that missed more than a stream's queue holds gets everything, in
//! order; resumes are rate limited; history is bounded by bytes and age, not only by count.
//! (Resuming in a loop: `resume_loop.rs`; a fresh node on Redis: `redis_history.rs`.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// `n` events of `size` bytes of data for alice after `from`, then resumes from `from` and
/// returns the data of every event received up to the closing `end`.
async fn miss_and_resume(server: &Server, n: usize, size: usize) -> Vec<String> {
    let addr = &server.addr;
    let t = token("alice", &[]);
    let mut sse = Sse::ok(addr, &t).await;
    let start = publish_id(addr, json!({"user": "alice", "event": "start", "data": 0})).await;
    assert_eq!(sse.next_event().await.event_type, "start");
    drop(sse);
    let filler = "x".repeat(size);
    for i in 0..n {
        publish(
            addr,
            json!({"user": "alice", "event": "big", "data": format!("{i:04}:{filler}")}),
        )
        .await;
    }
    publish(addr, json!({"user": "alice", "event": "end", "data": 0})).await;
    let mut resumed = Sse::resume(addr, Some(&t), &start).await;
    assert_eq!(resumed.status, 200);
    let mut data = Vec::new();
    loop {
        let event = resumed.next_event().await;
        match event.event_type.as_str() {
            "end" => return data,
            "big" => data.push(event.data),
            other => panic!(
                "unexpected {other}: {}",
                &event.data[..event.data.len().min(200)]
            ),
        }
    }
}

fn assert_all_in_order(data: &[String], n: usize, size: usize) {
    assert_eq!(data.len(), n, "every missed event is replayed");
    for (i, d) in data.iter().enumerate() {
        assert!(d.starts_with(&format!("{i:04}:")), "event {i} in order");
        assert_eq!(d.len(), size + 5, "event {i} whole");
    }
}

#[tokio::test]
async fn missing_fifty_events_of_100_kib_resumes_every_one_in_order() {
    // 5 MiB of replay: more than a stream's queue holds (4 MiB), which used to be one frame.
    let server = Server::start(&[]);
    let data = miss_and_resume(&server, 50, 100 << 10).await;
    assert_all_in_order(&data, 50, 100 << 10);
}

#[tokio::test]
async fn missing_five_events_of_1_mib_resumes_every_one_in_order() {
    let server = Server::start(&["--max-body-bytes", "2MiB"]);
    let data = miss_and_resume(&server, 5, 1 << 20).await;
    assert_all_in_order(&data, 5, 1 << 20);
}

#[tokio::test]
async fn resumes_beyond_the_resume_rate_get_429_with_retry_after() {
    let server = Server::start(&["--allow-anonymous", "--resume-rate", "2"]);
    let addr = &server.addr;
    let id = publish_id(addr, json!({"event": "e", "data": 1})).await;
    let resume = || {
        Sse::open(
            addr,
            Open {
                last_event_id: Some(&id),
                ..Default::default()
            },
        )
    };
    let mut statuses = Vec::new();
    let mut refusal = None;
    for _ in 0..4 {
        let sse = resume().await;
        statuses.push(sse.status);
        if sse.status == 429 {
            refusal = Some(sse);
        }
    }
    assert_eq!(&statuses[..2], [200, 200], "{statuses:?}");
    assert_eq!(statuses[3], 429, "{statuses:?}");
    let refusal = refusal.unwrap();
    assert!(refusal.headers.contains_key("retry-after"));
    // A fresh stream (no Last-Event-ID) is not a resume.
    assert_eq!(Sse::open(addr, Open::default()).await.status, 200);
    // Another user has a budget of its own.
    let t = token("carol", &[]);
    let own = Sse::resume(addr, Some(&t), &id).await;
    assert_eq!(own.status, 200);
}

#[tokio::test]
async fn history_is_bounded_in_bytes_whatever_the_event_count() {
    let server = Server::start(&["--history-bytes", "8MiB"]);
    let addr = &server.addr;
    let chunk = "z".repeat(60_000);
    let first = publish_id(addr, json!({"user": "nobody", "data": chunk})).await;
    // Let the allocator settle with a few events of the same size before measuring.
    for _ in 0..20 {
        publish(addr, json!({"user": "nobody", "data": chunk})).await;
    }
    let before = proc_kib(server.pid(), "VmRSS");
    for _ in 0..700 {
        publish(addr, json!({"user": "nobody", "data": chunk})).await;
    }
    let after = proc_kib(server.pid(), "VmRSS");
    eprintln!("700 x 60 KB with --history-bytes 8MiB: RSS {before} -> {after} KiB");
    assert!(
        after.saturating_sub(before) < 24 << 10,
        "RSS grew by {} KiB for 42 MB published",
        after.saturating_sub(before)
    );
    let held = metric_at(addr, "herald_history_bytes").await;
    assert!(held > 0.0 && held <= (8 << 20) as f64 + 70_000.0, "{held}");
    // The oldest events left: resuming from the first is a miss.
    let t = token("nobody", &[]);
    let mut sse = Sse::resume(addr, Some(&t), &first).await;
    let missed = sse.next_event().await;
    assert_eq!(missed.event_type, "herald.missed");
    assert!(missed.data.contains("history_expired"), "{}", missed.data);
}

#[tokio::test]
async fn events_older_than_the_history_ttl_leave_history() {
    let server = Server::start(&["--history-ttl", "1s"]);
    let addr = &server.addr;
    let old = publish_id(addr, json!({"user": "alice", "data": "old"})).await;
    publish(addr, json!({"user": "alice", "data": "missed"})).await;
    // The maintenance tick (every second) expires history: resume until the point is gone.
    let t = token("alice", &[]);
    let deadline = Instant::now() + WAIT;
    let missed = loop {
        let mut sse = Sse::resume(addr, Some(&t), &old).await;
        let first = sse.next_event().await;
        if first.event_type == "herald.missed" {
            break first;
        }
        assert_eq!(first.data, "missed", "before expiry, the replay");
        assert!(Instant::now() < deadline, "the event never expired");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(metric_at(addr, "herald_history_events").await, 0.0);
    assert!(missed.data.contains("history_expired"), "{}", missed.data);
}
