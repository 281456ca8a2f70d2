//! SSE streams multiplexed over HTTP/2 (`--http2-streams N`): N streams share each connection,
//! as a browser's tabs and `EventSource`s on one HTTP/2 origin do. Over TLS the connection
//! offers only ALPN `h2`; without `--tls-ca` it speaks cleartext HTTP/2 with prior knowledge.
//!
//! The harness's streams are written as raw HTTP/1.1 requests (see `target.rs`); here each is
//! turned into the same request for hyper's HTTP/2 client, minus the headers HTTP/2 forbids.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::sync::{mpsc, Semaphore};
use tokio::task::JoinSet;

use crate::stats::{Deliveries, LatencyShards};
use crate::stream::{dial, EventCounter, StreamCounters};
use crate::transport::Transport;

/// What every stream of a run reports to.
pub(crate) struct Shared {
    pub counters: Arc<StreamCounters>,
    pub deliveries: Arc<Deliveries>,
    pub latency: Arc<LatencyShards>,
    pub errors: mpsc::UnboundedSender<String>,
    /// One message per stream once it is open or has failed.
    pub ready: mpsc::UnboundedSender<()>,
}

impl Shared {
    fn failed(&self, error: String) {
        self.counters.connect_errors.fetch_add(1, Ordering::Relaxed);
        let _ = self.errors.send(error);
        let _ = self.ready.send(());
    }
}

/// Opens connection number `connection` and its streams (`(index, raw HTTP/1.1 request)`),
/// then reads them all until the server closes them.
pub(crate) async fn run_connection(
    transport: &Transport,
    server: SocketAddr,
    authority: &str,
    connection: usize,
    requests: Vec<(usize, String)>,
    gate: Arc<Semaphore>,
    shared: Shared,
) {
    let permit = gate.acquire_owned().await;
    let handshake = async {
        let io = dial(transport, server, connection).await?;
        http2::handshake(TokioExecutor::new(), TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP/2 handshake: {e}"))
    };
    let (sender, driver) = match handshake.await {
        Ok(pair) => pair,
        Err(error) => {
            for _ in &requests {
                shared.failed(error.clone());
            }
            return;
        }
    };
    drop(permit);
    let shared = Arc::new(shared);
    // Dropping this set (the run closes its streams) aborts the streams and the connection.
    let mut tasks = JoinSet::new();
    tasks.spawn(async move {
        let _ = driver.await;
    });
    let scheme = if transport.is_tls() { "https" } else { "http" };
    for (index, raw) in requests {
        let mut sender = sender.clone();
        let shared = shared.clone();
        let request = to_http2(&raw, scheme, authority);
        tasks.spawn(async move {
            let request = match request {
                Ok(request) => request,
                Err(error) => return shared.failed(error),
            };
            let response = match sender.send_request(request).await {
                Ok(response) if response.status() == 200 => response,
                Ok(response) => {
                    return shared.failed(format!("subscribe answered {}", response.status()))
                }
                Err(error) => return shared.failed(format!("HTTP/2 request: {error}")),
            };
            shared.counters.open.fetch_add(1, Ordering::Relaxed);
            let _ = shared.ready.send(());
            let mut events = EventCounter::new(index, &shared.deliveries, &shared.latency);
            let mut body = response.into_body();
            while let Some(Ok(frame)) = body.frame().await {
                if let Some(data) = frame.data_ref() {
                    events.feed(data);
                }
            }
            shared.counters.open.fetch_sub(1, Ordering::Relaxed);
            shared
                .counters
                .closed_by_server
                .fetch_add(1, Ordering::Relaxed);
        });
    }
    drop(sender);
    while tasks.join_next().await.is_some() {}
}

/// The raw HTTP/1.1 request `raw` as an HTTP/2 request: its method, path and headers, without
/// `Host` (the authority replaces it) and the connection-specific headers HTTP/2 forbids.
fn to_http2(
    raw: &str,
    scheme: &str,
    authority: &str,
) -> Result<http::Request<Empty<Bytes>>, String> {
    let mut lines = raw.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let (Some(method), Some(path)) = (start.next(), start.next()) else {
        return Err(format!("not a request line: {raw:?}"));
    };
    let mut request = http::Request::builder()
        .method(method)
        .uri(format!("{scheme}://{authority}{path}"));
    for line in lines.take_while(|line| !line.is_empty()) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let name = name.trim().to_ascii_lowercase();
        if matches!(
            name.as_str(),
            "host" | "connection" | "keep-alive" | "transfer-encoding" | "upgrade"
        ) {
            continue;
        }
        request = request.header(name, value.trim());
    }
    request.body(Empty::new()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::to_http2;

    #[test]
    fn a_raw_request_becomes_an_http2_request_without_host() {
        let raw = "GET /events?topic=a HTTP/1.1\r\nHost: x:1\r\nAuthorization: Bearer t\r\nConnection: keep-alive\r\n\r\n";
        let request = to_http2(raw, "https", "localhost:1").unwrap();
        assert_eq!(request.uri(), "https://localhost:1/events?topic=a");
        assert_eq!(request.headers()["authorization"], "Bearer t");
        assert!(request.headers().get("host").is_none());
        assert!(request.headers().get("connection").is_none());
    }
}
