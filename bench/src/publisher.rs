//! Publishers: a few keep-alive HTTP/1.1 connections sending events at a target rate, flat out,
//! or closed-loop (waiting until an earlier event reached every stream).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;

use crate::marker;
use crate::stats::{new_histogram, Deliveries};
use crate::target::{Dest, Target};

/// How events are paced.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Events per second, spread evenly.
    Rate(f64),
    /// As fast as the server answers.
    FlatOut,
    /// Event `n` is sent only once event `n - window` reached `streams` streams.
    ClosedLoop { window: u64, streams: u32 },
}

/// What to publish.
#[derive(Debug, Clone)]
pub struct Plan {
    pub pace: Pace,
    pub duration: Duration,
    /// Stop after this many events even if time is left.
    pub max_events: u64,
    pub connections: usize,
    /// Events per request (batching servers only).
    pub batch: usize,
    pub payload_size: usize,
    /// Per-user targets; `None` broadcasts.
    pub users: Option<usize>,
}

/// What the publishers achieved.
#[derive(Debug, Default)]
pub struct Published {
    pub events: u64,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Events accepted per user (per-user runs), and to everyone (broadcast runs).
    pub per_user: Vec<u64>,
    pub broadcast: u64,
    pub request_p50_us: u64,
    pub request_p99_us: u64,
}

struct Shared {
    next_seq: AtomicU64,
    per_user: Vec<AtomicU64>,
    broadcast: AtomicU64,
    errors: AtomicU64,
    requests: AtomicU64,
}

/// Picks the user for event `seq`: a cheap deterministic scramble, so every user gets events.
fn user_for(seq: u64, users: usize) -> usize {
    (seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 17) as usize % users
}

pub async fn run(
    server: SocketAddr,
    target: &Target,
    plan: &Plan,
    deliveries: Arc<Deliveries>,
) -> Published {
    let shared = Arc::new(Shared {
        next_seq: AtomicU64::new(0),
        per_user: (0..plan.users.unwrap_or(0))
            .map(|_| AtomicU64::new(0))
            .collect(),
        broadcast: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        requests: AtomicU64::new(0),
    });
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections.max(1) {
        let (shared, target, plan, deliveries) = (
            shared.clone(),
            target.clone(),
            plan.clone(),
            deliveries.clone(),
        );
        tasks.spawn(async move {
            publish_loop(server, &target, &plan, &shared, &deliveries, started).await
        });
    }
    let mut histogram = new_histogram();
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        match done {
            Ok(Ok(h)) => {
                let _ = histogram.add(&h);
            }
            Ok(Err(error)) => {
                first_error.get_or_insert(error);
            }
            Err(join) => {
                first_error.get_or_insert(join.to_string());
            }
        }
    }
    let per_user: Vec<u64> = shared
        .per_user
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .collect();
    let broadcast = shared.broadcast.load(Ordering::Relaxed);
    Published {
        events: per_user.iter().sum::<u64>() + broadcast,
        requests: shared.requests.load(Ordering::Relaxed),
        errors: shared.errors.load(Ordering::Relaxed),
        first_error,
        elapsed: started.elapsed(),
        per_user,
        broadcast,
        request_p50_us: histogram.value_at_quantile(0.5),
        request_p99_us: histogram.value_at_quantile(0.99),
    }
}

async fn publish_loop(
    server: SocketAddr,
    target: &Target,
    plan: &Plan,
    shared: &Shared,
    deliveries: &Deliveries,
    started: Instant,
) -> Result<hdrhistogram::Histogram<u64>, String> {
    let conn = target
        .transport
        .connect(server)
        .await
        .map_err(|e| format!("publisher {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(conn))
        .await
        .map_err(|e| format!("publisher handshake: {e}"))?;
    tokio::spawn(connection);
    let mut histogram = new_histogram();
    let batch = plan.batch.max(1) as u64;
    loop {
        let seq = shared.next_seq.fetch_add(batch, Ordering::Relaxed);
        if seq >= plan.max_events || started.elapsed() >= plan.duration {
            return Ok(histogram);
        }
        match plan.pace {
            Pace::Rate(rate) => {
                let due = started + Duration::from_secs_f64(seq as f64 / rate);
                tokio::time::sleep_until(due.into()).await;
            }
            Pace::FlatOut => {}
            Pace::ClosedLoop { window, streams } => {
                if let Some(earlier) = seq.checked_sub(window) {
                    wait_until_delivered(deliveries, earlier, streams).await;
                }
            }
        }
        let dest = match plan.users {
            Some(users) => Dest::User(user_for(seq, users)),
            None => Dest::All,
        };
        let payloads: Vec<String> = (seq..seq + batch)
            .map(|n| marker::encode(n, plan.payload_size))
            .collect();
        let publish = target.publish_request(dest, &payloads, seq);
        let mut request = http::Request::post(&publish.path).header("host", &target.host);
        for (name, value) in &publish.headers {
            request = request.header(*name, value);
        }
        let request = request
            .body(Full::new(Bytes::from(publish.body)))
            .map_err(|e| e.to_string())?;
        let sent = Instant::now();
        let ok = match sender.send_request(request).await {
            Ok(response) => {
                let status = response.status();
                let _ = response.into_body().collect().await;
                status.is_success()
            }
            Err(error) => return Err(format!("publish: {error}")),
        };
        shared.requests.fetch_add(1, Ordering::Relaxed);
        let _ = histogram.record((sent.elapsed().as_micros() as u64).max(1));
        if !ok {
            shared.errors.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        match dest {
            Dest::User(u) => shared.per_user[u].fetch_add(batch, Ordering::Relaxed),
            Dest::All => shared.broadcast.fetch_add(batch, Ordering::Relaxed),
        };
    }
}

/// Waits (polling, bounded) until event `seq` reached `streams` streams. Gives up after a
/// second: a server that dropped the event must not stall the run, the loss shows in the
/// totals.
async fn wait_until_delivered(deliveries: &Deliveries, seq: u64, streams: u32) {
    let deadline = Instant::now() + Duration::from_secs(1);
    while deliveries.seq_count(seq) < streams && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
}
