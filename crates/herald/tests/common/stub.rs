//! A small HTTP server the tests start to stand in for an identity provider's JWKS or the app's
//! session hook: it answers with whatever the test says, and records every request (method,
//! path, headers, body), how many connections it accepted and how many requests it had in
//! flight at most.
//!
//! It runs on a thread and runtime of its own, so it answers while the test's thread is blocked
//! (`Server::start` waits for the hub to start, and the hub fetches its JWKS before that).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::watch;

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON request body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// What the stub answers.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    /// Wait this long before answering (a slow app: the behaviour under test, not a sync).
    pub delay: Duration,
}

impl Answer {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            body: body.to_string(),
            delay: Duration::ZERO,
        }
    }

    pub fn status(status: u16) -> Self {
        Self {
            status,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Answer + Send + Sync>;

struct Shared {
    responder: Mutex<Responder>,
    requests: Mutex<Vec<Recorded>>,
    count: watch::Sender<usize>,
    connections: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

pub struct Stub {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    count: watch::Receiver<usize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl Stub {
    /// A plain HTTP stub on a free loopback port.
    pub fn start(respond: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) -> Stub {
        Self::spawn(Arc::new(respond), None)
    }

    /// The same over TLS with this acceptor.
    pub fn start_tls(
        respond: impl Fn(&Recorded) -> Answer + Send + Sync + 'static,
        tls: tokio_rustls::TlsAcceptor,
    ) -> Stub {
        Self::spawn(Arc::new(respond), Some(tls))
    }

    fn spawn(responder: Responder, tls: Option<tokio_rustls::TlsAcceptor>) -> Stub {
        let (count_tx, count) = watch::channel(0);
        let shared = Arc::new(Shared {
            responder: Mutex::new(responder),
            requests: Mutex::new(Vec::new()),
            count: count_tx,
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind stub");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("stub address");
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = shared.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("stub runtime");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                tokio::select! {
                    _ = accept_loop(listener, serving, tls) => {}
                    _ = stopped => {}
                }
            });
        });
        Stub {
            addr,
            shared,
            count,
            stop: Some(stop),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Answer from now on with `respond`.
    pub fn respond(&self, respond: impl Fn(&Recorded) -> Answer + Send + Sync + 'static) {
        *self.shared.responder.lock().unwrap() = Arc::new(respond);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        *self.count.borrow()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// The most requests the stub was answering at once.
    pub fn max_in_flight(&self) -> usize {
        self.shared.max_in_flight.load(Ordering::SeqCst)
    }

    /// Waits (bounded by the harness's `WAIT`) until the stub has received `n` requests.
    pub async fn wait_for_count(&self, n: usize) {
        let mut count = self.count.clone();
        tokio::time::timeout(super::WAIT, count.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("the stub got {} requests, not {n}", self.count()))
            .expect("stub running");
    }
}

async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let shared = shared.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                Some(tls) => {
                    if let Ok(stream) = tls.accept(tcp).await {
                        serve_connection(TokioIo::new(stream), shared).await;
                    }
                }
                None => serve_connection(TokioIo::new(tcp), shared).await,
            }
        });
    }
}

async fn serve_connection<IO>(io: IO, shared: Arc<Shared>)
where
    IO: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = service_fn(move |request: http::Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move {
            let now = shared.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            shared.max_in_flight.fetch_max(now, Ordering::SeqCst);
            let (parts, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let recorded = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                headers: parts.headers,
                body,
            };
            let responder = shared.responder.lock().unwrap().clone();
            let answer = responder(&recorded);
            shared.requests.lock().unwrap().push(recorded);
            shared.count.send_modify(|c| *c += 1);
            if !answer.delay.is_zero() {
                tokio::time::sleep(answer.delay).await;
            }
            shared.in_flight.fetch_sub(1, Ordering::SeqCst);
            let response = http::Response::builder()
                .status(answer.status)
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(answer.body)))
                .expect("response");
            Ok::<_, Infallible>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(io, service)
        .await;
}
