//! Soak: churning subscribers (connect, read a while, drop, resume), steady publishing and
//! stalled clients, all at once. Asserts that every churning user gets every one of its events
//! exactly once and in order across all its reconnects, that memory stays flat, and that the
//! open file descriptors return to the baseline once everyone has gone.
//!
//! 30 seconds by default (the CI form); `HERALD_SOAK_SECS=600 cargo test -p herald --test soak`
//! for a longer run.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;

const USERS: usize = 20;
const STALLED: usize = 3;

fn proc_value(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn rss_kib(pid: u32) -> u64 {
    proc_value(pid, "status", "VmRSS:")
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// One user's subscriber: reconnects over and over, resuming from the last id it saw, and
/// returns every sequence number it received.
async fn churn(
    addr: String,
    user: String,
    stop: Arc<AtomicBool>,
    last_sent: Arc<AtomicU64>,
    connected: tokio::sync::mpsc::Sender<()>,
) -> (Vec<u64>, Vec<String>) {
    let jwt = token(&user, &[]);
    let mut received = Vec::new();
    let mut last_id: Option<String> = None;
    let mut round = 0u64;
    // What each connection resumed from and got first, to explain a failure.
    let mut rounds = Vec::new();
    loop {
        let stopping = stop.load(Ordering::SeqCst);
        let mut stream = Sse::open(
            &addr,
            Open {
                token: Some(&jwt),
                last_event_id: last_id.as_deref(),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(stream.status, 200);
        rounds.push(format!("resume after {last_id:?} at {}", received.len()));
        if round == 0 {
            // Registered: from now on every event for this user reaches it or its resume.
            let _ = connected.send(()).await;
        }
        // Read for a while (varying per round), or, once publishing has stopped, until caught up.
        let window = Duration::from_millis(100 + (round * 37) % 400);
        let deadline = Instant::now() + window;
        loop {
            if stopping && received.last() == Some(&last_sent.load(Ordering::SeqCst)) {
                return (received, rounds);
            }
            let left = if stopping {
                WAIT
            } else {
                match deadline.checked_duration_since(Instant::now()) {
                    Some(left) => left,
                    None => break,
                }
            };
            match tokio::time::timeout(left, stream.next_event()).await {
                Ok(event) => {
                    received.push(event.data.parse().expect("sequence number"));
                    last_id = Some(event.last_event_id);
                }
                Err(_) if stopping => {
                    panic!("{user}: never caught up; got {} events", received.len())
                }
                Err(_) => break,
            }
        }
        round += 1;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_publishing_and_stalled_clients_lose_nothing_and_leak_nothing() {
    let secs: u64 = std::env::var("HERALD_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    // History covers several seconds of reconnect gaps and is full (so no longer growing) well
    // before the warm-up sample.
    let server = Server::start(&["--history", "5000"]);
    let addr = server.addr.clone();
    let pid = server.pid();
    let fds_at_start = open_fds(pid);

    let stop = Arc::new(AtomicBool::new(false));
    // Per user, the last sequence number published (all users get the same sequence).
    let last_sent = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::new();
    let (connected, mut first_connections) = tokio::sync::mpsc::channel(USERS);
    for n in 0..USERS {
        subscribers.push(tokio::spawn(churn(
            addr.clone(),
            format!("u{n}"),
            stop.clone(),
            last_sent.clone(),
            connected.clone(),
        )));
    }
    for _ in 0..USERS {
        first_connections
            .recv()
            .await
            .expect("a subscriber connected");
    }
    // Stalled clients: send the request, never read.
    let mut stalled = Vec::new();
    for n in 0..STALLED {
        let mut tcp = tokio::net::TcpStream::connect(&addr)
            .await
            .expect("connect");
        let request = format!(
            "GET /events HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer {}\r\n\r\n",
            token(&format!("stalled{n}"), &[])
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        stalled.push(tcp);
    }

    let started = Instant::now();
    let big = "x".repeat(64 * 1024);
    let mut rss_after_warmup = None;
    let mut seq = 0u64;
    while started.elapsed() < Duration::from_secs(secs) {
        seq += 1;
        let batch: Vec<_> = (0..USERS)
            .map(|n| json!({"user": format!("u{n}"), "event": "seq", "data": seq}))
            .collect();
        publish(&addr, json!(batch)).await;
        last_sent.store(seq, Ordering::SeqCst);
        if seq.is_multiple_of(5) {
            let users: Vec<String> = (0..STALLED).map(|n| format!("stalled{n}")).collect();
            publish(&addr, json!({"users": users, "event": "big", "data": big})).await;
        }
        if rss_after_warmup.is_none() && started.elapsed() > Duration::from_secs(secs / 3) {
            rss_after_warmup = Some(rss_kib(pid));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::SeqCst);
    for (n, subscriber) in subscribers.into_iter().enumerate() {
        let (received, rounds) = subscriber.await.expect("subscriber task");
        let expected: Vec<u64> = (1..=seq).collect();
        if received != expected {
            let missing: Vec<_> = expected.iter().filter(|s| !received.contains(s)).collect();
            let jumps: Vec<_> = received.windows(2).filter(|w| w[1] != w[0] + 1).collect();
            panic!(
                "u{n}: {} events, expected 1..={seq} exactly once in order; missing {missing:?}, jumps {jumps:?}; rounds {rounds:?}",
                received.len()
            );
        }
    }
    let rss_end = rss_kib(pid);
    let warm = rss_after_warmup.expect("warm-up sample");
    assert!(
        rss_end < warm + 32 * 1024,
        "RSS grew from {warm} KiB after warm-up to {rss_end} KiB"
    );
    // However slow this machine was, the stalled clients' queues overflow eventually.
    let cut = format!("herald_slow_consumer_disconnects_total {STALLED}");
    let deadline = Instant::now() + WAIT;
    while !get(&addr, "/metrics").await.body.contains(&cut) {
        assert!(Instant::now() < deadline, "every stalled client was cut");
        let users: Vec<String> = (0..STALLED).map(|n| format!("stalled{n}")).collect();
        publish(&addr, json!({"users": users, "event": "big", "data": big})).await;
    }

    drop(stalled);
    // Every socket is closed by now or soon; the count must come back to where it started.
    let deadline = Instant::now() + WAIT;
    loop {
        let fds = open_fds(pid);
        if fds <= fds_at_start {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{fds} fds open, {fds_at_start} at start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("soak: {secs}s, {seq} rounds x {USERS} users, RSS {warm} -> {rss_end} KiB");
}
