//! Many SSE streams over raw HTTP/1.1 (on TCP or TLS), each a small task reading into one
//! buffer.
//!
//! Streams connect from source addresses spread over 127.0.x.y: one source address has only
//! ~28k ephemeral ports, and the kernel reuses them slowly, so 18k streams plus reconnects
//! would otherwise run out.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::marker::{now_us, Scanner};
use crate::multiplexed;
use crate::stats::{Deliveries, LatencyShards};
use crate::transport::{Conn, Transport};

const READ_BUFFER: usize = 16 * 1024;
const CONNECT_CONCURRENCY: usize = 256;

/// Source address for stream `index`.
fn source_addr(index: usize) -> SocketAddr {
    let index = index % (200 * 250);
    let ip = Ipv4Addr::new(127, 0, 1 + (index / 250) as u8, 1 + (index % 250) as u8);
    SocketAddr::from((ip, 0))
}

/// Connects from the source address of connection `index` (TLS on top when the transport is).
pub(crate) async fn dial(
    transport: &Transport,
    server: SocketAddr,
    index: usize,
) -> Result<Conn, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(source_addr(index))
        .map_err(|e| format!("bind: {e}"))?;
    let tcp = socket
        .connect(server)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    transport.wrap(tcp).await
}

/// Connects, sends `request`, and reads the response head. Returns the stream and any body
/// bytes that arrived with the head.
pub async fn connect(
    transport: &Transport,
    server: SocketAddr,
    index: usize,
    request: &str,
) -> Result<(Conn, Vec<u8>), String> {
    let mut stream = dial(transport, server, index).await?;
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        let n = stream
            .read(&mut buf)
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err("closed before the response head".to_owned());
        }
        head.extend_from_slice(&buf[..n]);
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            let status_line = String::from_utf8_lossy(
                &head[..head.iter().position(|&b| b == b'\r').unwrap_or(0)],
            )
            .into_owned();
            if !status_line.contains(" 200") {
                return Err(format!("subscribe answered {status_line:?}"));
            }
            return Ok((stream, head.split_off(end + 4)));
        }
        if head.len() > 64 * 1024 {
            return Err("response head too large".to_owned());
        }
    }
}

/// How streams reach the server.
#[derive(Clone, Debug)]
pub struct StreamTransport {
    pub transport: Transport,
    /// 0: HTTP/1.1, a connection per stream; N: N streams per HTTP/2 connection.
    pub http2_streams: usize,
    /// The server's `host[:port]` (HTTP/2's `:authority`).
    pub host: String,
}

/// Counters shared by every stream of a run.
#[derive(Default)]
pub struct StreamCounters {
    pub open: AtomicU64,
    pub closed_by_server: AtomicU64,
    pub connect_errors: AtomicU64,
}

/// The set of open streams; dropping it closes them all.
pub struct Streams {
    tasks: JoinSet<()>,
    pub counters: Arc<StreamCounters>,
    pub connect_time: Duration,
    pub first_error: Option<String>,
}

impl Streams {
    /// Opens `count` streams; stream `i` sends `request(i)`. Over HTTP/1.1 each stream has its
    /// own connection; with `over.http2_streams > 0`, that many share each HTTP/2 connection.
    pub async fn open(
        over: &StreamTransport,
        server: SocketAddr,
        count: usize,
        request: impl Fn(usize) -> String,
        deliveries: Arc<Deliveries>,
        latency: Arc<LatencyShards>,
    ) -> Streams {
        let counters = Arc::new(StreamCounters::default());
        let gate = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
        let mut tasks = JoinSet::new();
        let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel();
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
        let started = Instant::now();
        let transport = &over.transport;
        if over.http2_streams > 0 {
            let per = over.http2_streams;
            for (connection, first) in (0..count).step_by(per).enumerate() {
                let requests: Vec<(usize, String)> = (first..(first + per).min(count))
                    .map(|i| (i, request(i)))
                    .collect();
                let shared = multiplexed::Shared {
                    counters: counters.clone(),
                    deliveries: deliveries.clone(),
                    latency: latency.clone(),
                    errors: errors_tx.clone(),
                    ready: ready_tx.clone(),
                };
                let transport = transport.clone();
                let host = over.host.clone();
                let gate = gate.clone();
                tasks.spawn(async move {
                    multiplexed::run_connection(
                        &transport, server, &host, connection, requests, gate, shared,
                    )
                    .await;
                });
            }
        }
        // Over HTTP/1.1, a connection of its own for each stream.
        let own_connections = if over.http2_streams > 0 { 0 } else { count };
        for index in 0..own_connections {
            let request = request(index);
            let transport = transport.clone();
            let gate = gate.clone();
            let counters = counters.clone();
            let deliveries = deliveries.clone();
            let latency = latency.clone();
            let errors_tx = errors_tx.clone();
            let ready_tx = ready_tx.clone();
            tasks.spawn(async move {
                let permit = gate.acquire_owned().await;
                let connected = connect(&transport, server, index, &request).await;
                drop(permit);
                if connected.is_ok() {
                    counters.open.fetch_add(1, Ordering::Relaxed);
                }
                let _ = ready_tx.send(());
                match connected {
                    Ok((stream, leftover)) => {
                        read_events(stream, leftover, index, &deliveries, &latency).await;
                        counters.open.fetch_sub(1, Ordering::Relaxed);
                        counters.closed_by_server.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(error) => {
                        counters.connect_errors.fetch_add(1, Ordering::Relaxed);
                        let _ = errors_tx.send(error);
                    }
                }
            });
        }
        drop(ready_tx);
        for _ in 0..count {
            if ready_rx.recv().await.is_none() {
                break;
            }
        }
        let connect_time = started.elapsed();
        Streams {
            tasks,
            counters,
            connect_time,
            first_error: errors_rx.try_recv().ok(),
        }
    }

    pub fn open_count(&self) -> u64 {
        self.counters.open.load(Ordering::Relaxed)
    }

    pub async fn close(mut self) {
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
    }
}

/// Reads until the server closes the stream, counting every marker seen.
async fn read_events(
    mut stream: Conn,
    leftover: Vec<u8>,
    index: usize,
    deliveries: &Deliveries,
    latency: &LatencyShards,
) {
    let mut events = EventCounter::new(index, deliveries, latency);
    events.feed(&leftover);
    let mut buf = vec![0u8; READ_BUFFER];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => events.feed(&buf[..n]),
        }
    }
}

/// One stream's view of the markers it receives: each counted once as a delivery (or a
/// duplicate), with its latency.
pub(crate) struct EventCounter<'a> {
    index: usize,
    scanner: Scanner,
    seen: SeenWindow,
    deliveries: &'a Deliveries,
    latency: &'a LatencyShards,
}

impl<'a> EventCounter<'a> {
    pub(crate) fn new(
        index: usize,
        deliveries: &'a Deliveries,
        latency: &'a LatencyShards,
    ) -> Self {
        Self {
            index,
            scanner: Scanner::default(),
            seen: SeenWindow::default(),
            deliveries,
            latency,
        }
    }

    /// Takes the next bytes of the stream's body.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        let now = now_us();
        let mut fresh = 0u64;
        let mut duplicates = 0u64;
        let mut shard = self.latency.shard(self.index);
        let (seen, deliveries) = (&mut self.seen, self.deliveries);
        self.scanner.feed(bytes, |marker| {
            if !seen.insert(marker.seq) {
                duplicates += 1;
                return;
            }
            fresh += 1;
            deliveries.delivered_seq(marker.seq);
            shard.record(now.saturating_sub(marker.sent_us));
        });
        if fresh + duplicates > 0 {
            self.deliveries.add(fresh, duplicates, now);
        }
    }
}

/// Which of the last 128 sequence numbers a stream has seen. Publishers run concurrently, so
/// events may arrive slightly out of sequence order; a repeat inside the window is a duplicate,
/// and anything older than the window is counted as one too (it would be absurdly late).
#[derive(Default)]
struct SeenWindow {
    max: Option<u64>,
    /// Bit `i` set: `max - i` was seen.
    bits: u128,
}

impl SeenWindow {
    /// Records `seq`; false if it was seen before.
    fn insert(&mut self, seq: u64) -> bool {
        let Some(max) = self.max else {
            self.max = Some(seq);
            self.bits = 1;
            return true;
        };
        if seq > max {
            let shift = seq - max;
            self.bits = if shift >= 128 { 0 } else { self.bits << shift };
            self.bits |= 1;
            self.max = Some(seq);
            return true;
        }
        let back = max - seq;
        if back >= 128 || self.bits & (1 << back) != 0 {
            return false;
        }
        self.bits |= 1 << back;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::SeenWindow;

    #[test]
    fn out_of_order_is_fine_repeats_are_not() {
        let mut w = SeenWindow::default();
        assert!(w.insert(5));
        assert!(w.insert(7));
        assert!(w.insert(6));
        assert!(!w.insert(6));
        assert!(!w.insert(7));
        assert!(w.insert(300));
        assert!(!w.insert(7));
    }
}
