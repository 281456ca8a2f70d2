//! Resuming in a loop costs the hub a bounded amount: each resume's replay is read from history
//! as the client takes it, in pieces, off the registry's lock, so a client that resumes and
//! disconnects as fast as it can neither pins the hub nor grows its memory, and publishing stays
//! fast meanwhile. (A test binary of its own, so no other test shares the machine with it.)

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Resumes from `from` again and again for `run`, reading up to `take` bytes each time.
/// Returns how many resumes were served (200) and refused (429).
async fn resume_loop(addr: String, from: String, take: usize, run: Duration) -> (u64, u64) {
    let until = Instant::now() + run;
    let (mut served, mut refused) = (0, 0);
    let mut buf = vec![0u8; 64 << 10];
    while Instant::now() < until {
        let Ok(mut tcp) = TcpStream::connect(&addr).await else {
            continue;
        };
        let request =
            format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nLast-Event-ID: {from}\r\n\r\n");
        if tcp.write_all(request.as_bytes()).await.is_err() {
            continue;
        }
        let mut read = 0;
        let mut head = Vec::new();
        while read < take {
            match tokio::time::timeout(WAIT, tcp.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {
                    if head.len() < 16 {
                        head.extend_from_slice(&buf[..n.min(16)]);
                    }
                    read += n;
                }
                _ => break,
            }
        }
        if head.starts_with(b"HTTP/1.1 200") {
            served += 1;
        } else if head.starts_with(b"HTTP/1.1 429") {
            refused += 1;
        }
    }
    (served, refused)
}

/// Publishes one event at a time for `run`; returns each publish's round trip.
async fn publish_latencies(addr: &str, run: Duration) -> Vec<Duration> {
    let until = Instant::now() + run;
    let mut latencies = Vec::new();
    while Instant::now() < until {
        let started = Instant::now();
        publish(addr, json!({"user": "bob", "event": "tick", "data": 1})).await;
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    latencies.sort();
    latencies
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_in_a_loop_costs_a_bounded_amount_and_publishing_stays_fast() {
    // 10k events of 1 KiB (10 MiB of history), anonymous resumes allowed and not rate limited:
    // each resume used to copy its whole replay under the registry's write lock. (Room in
    // history for the events published meanwhile, so the resume point stays in it.)
    let server = Server::start(&[
        "--allow-anonymous",
        "--resume-rate",
        "0",
        "--history",
        "20000",
    ]);
    let addr = server.addr.clone();
    let payload = "y".repeat(1000);
    let mut first = None;
    for _ in 0..20 {
        let batch: Vec<_> = (0..500)
            .map(|_| json!({"event": "old", "data": payload}))
            .collect();
        let ids = publish(&addr, json!(batch)).await;
        first.get_or_insert_with(|| ids["ids"][0].as_str().unwrap().to_owned());
    }
    let first = first.unwrap();
    let before = proc_kib(server.pid(), "VmRSS");

    let run = Duration::from_secs(5);
    let loops: Vec<_> = (0..4)
        .map(|_| tokio::spawn(resume_loop(addr.clone(), first.clone(), 512 << 10, run)))
        .collect();
    let latencies = publish_latencies(&addr, run).await;
    let mut served = 0;
    for task in loops {
        served += task.await.unwrap().0;
    }
    let p99 = latencies[latencies.len() * 99 / 100];
    let peak = proc_kib(server.pid(), "VmHWM");
    eprintln!(
        "{served} resumes, publish p99 {p99:?} over {} publishes, RSS {before} KiB before, peak {peak} KiB",
        latencies.len()
    );
    assert!(served >= 20, "the loop ran: {served} resumes");
    assert!(p99 < Duration::from_millis(50), "publish p99 {p99:?}");
    assert!(
        peak.saturating_sub(before) < 256 << 10,
        "peak RSS grew by {} KiB",
        peak.saturating_sub(before)
    );
}
