//! Test harness: a real `herald serve` process on a free port, and real HTTP clients for it.
//!
//! Everything goes over sockets to the binary cargo just built, exactly as a user's browser or
//! backend would talk to it. Waiting is always on an event (a line on stdout, a frame on a
//! stream) bounded by a timeout, never a sleep.

#![allow(dead_code)]

pub mod mercure;
pub mod stub;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use herald::mint_hs256;
use herald::Claims;
use herald_proto::{Item, MessageEvent, Parser};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

pub const SECRET: &str = "test-secret-0123456789";
pub const KEY: &str = "test-publish-key";
/// Generous bound for things that should happen "now"; only reached when a test fails.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Server {
    child: Child,
    pub addr: String,
    /// Everything the process wrote to stdout and stderr so far.
    pub output: Arc<Mutex<String>>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Server {
    /// `herald serve` with a known secret and publish key, plus `extra` flags.
    ///
    /// With `HERALD_TEST_REDIS=<url>` in the environment the server runs on the Redis broker
    /// (its own key prefix, no ingress), so the same behavioural tests check both brokers;
    /// `scripts/test-all.sh` runs them that way too.
    pub fn start(extra: &[&str]) -> Self {
        let mut args = vec!["--jwt-secret", SECRET, "--publish-key", KEY];
        let redis = redis_broker_args();
        args.extend(redis.iter().map(String::as_str));
        args.extend_from_slice(extra);
        Self::start_raw(&args, &[])
    }

    /// `herald serve --listen 127.0.0.1:0 <args>` with extra environment variables.
    pub fn start_raw(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = herald_command();
        command
            .arg("serve")
            .args(["--listen", "127.0.0.1:0"])
            .args(args);
        for (key, value) in env {
            command.env(key, value);
        }
        Self::spawn(command)
    }

    /// A hub started by a shell `script` that ends by exec'ing `herald serve` (to set limits
    /// with `ulimit` first, say); `{herald}` in the script is the binary.
    pub fn start_shell(script: &str) -> Self {
        let herald = herald_command();
        let script = script.replace("{herald}", &herald.get_program().to_string_lossy());
        let mut command = Command::new("bash");
        command.args(["-c", &script]).stdin(Stdio::null());
        for (key, _) in std::env::vars() {
            if key.starts_with("HERALD_") {
                command.env_remove(key);
            }
        }
        Self::spawn(command)
    }

    fn spawn(mut command: Command) -> Self {
        command
            .env("HERALD_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn herald");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, lines) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        for pipe in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let output = output.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    output.lock().unwrap().push_str(&line);
                    output.lock().unwrap().push('\n');
                    let _ = tx.send(line);
                }
            });
        }
        let mut server = Self {
            child,
            addr: String::new(),
            output,
            lines,
        };
        let line = server
            .wait_for_line(|l| l.starts_with("herald listening on "))
            .unwrap_or_else(|| panic!("herald did not start:\n{}", server.output()));
        server.addr = line
            .trim_start_matches("herald listening on ")
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        server
    }

    /// Waits for an output line matching `pred` (stdout or stderr).
    pub fn wait_for_line(&self, pred: impl Fn(&str) -> bool) -> Option<String> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.checked_duration_since(std::time::Instant::now())?;
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return Some(line),
                Ok(_) => continue,
                Err(_) => return None,
            }
        }
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Redis URL the behavioural tests run against, if any (`HERALD_TEST_REDIS`).
pub fn test_redis() -> Option<String> {
    std::env::var("HERALD_TEST_REDIS")
        .ok()
        .filter(|url| !url.is_empty())
}

fn redis_broker_args() -> Vec<String> {
    match test_redis() {
        Some(url) => vec![
            "--redis".into(),
            url,
            "--redis-prefix".into(),
            format!("test-{:016x}", rand::random::<u64>()),
            "--redis-channel".into(),
            String::new(),
        ],
        None => Vec::new(),
    }
}

/// The binary cargo built, with no stdin and none of the `HERALD_*` settings of the environment
/// the tests run in (so a developer's own configuration cannot change what a test sees).
///
/// `HERALD_TEST_BIN` runs another build instead (say, an older release, to see a test fail
/// without the change it covers).
pub fn herald_command() -> Command {
    let binary =
        std::env::var_os("HERALD_TEST_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_herald").into());
    let mut command = Command::new(binary);
    command.stdin(Stdio::null());
    for (key, _) in std::env::vars() {
        if key.starts_with("HERALD_") {
            command.env_remove(key);
        }
    }
    command
}

/// `herald serve` with the test secret and key plus `extra`, expected to refuse to start: asserts
/// exit status 2 and returns what it printed on stderr.
pub fn serve_refuses(extra: &[&str]) -> String {
    let output = herald_command()
        .args(["serve", "--listen", "127.0.0.1:0", "--jwt-secret", SECRET])
        .args(["--publish-key", KEY])
        .args(extra)
        .output()
        .expect("run herald");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{extra:?}: {stderr}");
    stderr
}

/// A subscriber token for `sub`, valid for `ttl_secs`, allowed `topics`.
pub fn token(sub: &str, topics: &[&str]) -> String {
    token_with(Claims {
        sub: Some(sub.to_owned()),
        exp: now() + 3600,
        topics: (!topics.is_empty()).then(|| topics.iter().map(|t| t.to_string()).collect()),
        publish: None,
    })
}

pub fn token_with(claims: Claims) -> String {
    mint_hs256(SECRET, &claims).expect("sign")
}

pub fn now() -> u64 {
    herald_core::unix_ms() / 1000
}

/// A plain HTTP response.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

async fn send(addr: &str, request: http::Request<Full<Bytes>>) -> http::Response<Incoming> {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    sender.send_request(request).await.expect("request")
}

/// Any request; the whole body is read.
pub async fn request(addr: &str, request: http::Request<Full<Bytes>>) -> Reply {
    let response = tokio::time::timeout(WAIT, send(addr, request))
        .await
        .expect("timely answer");
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = tokio::time::timeout(WAIT, response.into_body().collect())
        .await
        .expect("timely body")
        .expect("body")
        .to_bytes();
    Reply {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// The status of `GET path`, or `None` if the hub could not be reached or did not answer.
pub async fn get_status(addr: &str, path: &str) -> Option<u16> {
    let attempt = async {
        let tcp = TcpStream::connect(addr).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header("host", addr)
            .body(Full::<Bytes>::default())
            .ok()?;
        Some(sender.send_request(request).await.ok()?.status().as_u16())
    };
    tokio::time::timeout(WAIT, attempt).await.ok()?
}

pub async fn get(addr: &str, path: &str) -> Reply {
    request(
        addr,
        http::Request::get(path)
            .header("host", addr)
            .body(Full::default())
            .unwrap(),
    )
    .await
}

/// `POST /publish` with `auth` as the bearer credential and a raw body.
pub async fn publish_raw(addr: &str, auth: Option<&str>, body: impl Into<Bytes>) -> Reply {
    let mut builder = http::Request::post("/publish")
        .header("host", addr)
        .header("content-type", "application/json");
    if let Some(auth) = auth {
        builder = builder.header("authorization", format!("Bearer {auth}"));
    }
    request(addr, builder.body(Full::new(body.into())).unwrap()).await
}

/// `POST /publish` with `credential`, `body` and an `Idempotency-Key`.
pub async fn publish_with_key(addr: &str, credential: &str, key: &str, body: &Value) -> Reply {
    let publish = http::Request::post("/publish")
        .header("host", addr)
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {credential}"))
        .header("idempotency-key", key)
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    request(addr, publish).await
}

/// Publishes with the test publish key and expects 200; returns the assigned id(s) JSON.
pub async fn publish(addr: &str, body: Value) -> Value {
    let reply = publish_raw(addr, Some(KEY), body.to_string()).await;
    assert_eq!(reply.status, 200, "publish failed: {}", reply.body);
    reply.json()
}

/// Publishes one event and returns its id.
pub async fn publish_id(addr: &str, body: Value) -> String {
    publish(addr, body).await["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

/// An open SSE stream, parsed with herald-proto's parser.
pub struct Sse {
    pub status: u16,
    pub headers: http::HeaderMap,
    items: mpsc::UnboundedReceiver<Option<Item>>,
    /// Raw bytes received so far.
    pub raw: Arc<Mutex<Vec<u8>>>,
    ended: bool,
    /// The task reading the body; aborting it drops the body, which closes the connection.
    reader: tokio::task::AbortHandle,
}

/// Parsed items of a stream's body, `None` once it ends.
pub type Items = mpsc::UnboundedReceiver<Option<Item>>;

/// Reads an SSE body on a task of its own: its items as they are parsed, and every byte as
/// received. Aborting the task drops the body (which closes its connection).
pub fn read_items(mut body: Incoming) -> (Items, Arc<Mutex<Vec<u8>>>, tokio::task::AbortHandle) {
    let (tx, items) = mpsc::unbounded_channel();
    let raw = Arc::new(Mutex::new(Vec::new()));
    let raw_in = raw.clone();
    let reader = tokio::spawn(async move {
        // Big enough for the largest events the tests publish (an event of 1 MiB and more).
        let mut parser = Parser::with_max_buffer(16 << 20);
        while let Some(Ok(frame)) = body.frame().await {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            raw_in.lock().unwrap().extend_from_slice(&data);
            if parser.feed(&data).is_err() {
                break;
            }
            while let Some(item) = parser.next_item() {
                if tx.send(Some(item)).is_err() {
                    return;
                }
            }
        }
        let _ = tx.send(None);
    });
    (items, raw, reader.abort_handle())
}

impl Drop for Sse {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// How to open a stream.
#[derive(Default, Clone)]
pub struct Open<'a> {
    pub token: Option<&'a str>,
    pub cookie: Option<&'a str>,
    pub query: &'a str,
    pub last_event_id: Option<&'a str>,
    pub origin: Option<&'a str>,
}

impl Sse {
    pub async fn open(addr: &str, how: Open<'_>) -> Sse {
        Sse::open_at(addr, "/events", how).await
    }

    /// [`Sse::open`] on another path (Mercure's `/.well-known/mercure`).
    pub async fn open_at(addr: &str, path: &str, how: Open<'_>) -> Sse {
        let path = if how.query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", how.query)
        };
        let mut builder = http::Request::get(path)
            .header("host", addr)
            .header("accept", "text/event-stream");
        if let Some(token) = how.token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if let Some(cookie) = how.cookie {
            builder = builder.header("cookie", cookie);
        }
        if let Some(id) = how.last_event_id {
            builder = builder.header("last-event-id", id);
        }
        if let Some(origin) = how.origin {
            builder = builder.header("origin", origin);
        }
        let response =
            tokio::time::timeout(WAIT, send(addr, builder.body(Full::default()).unwrap()))
                .await
                .expect("timely response head");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let (items, raw, reader) = read_items(response.into_body());
        Sse {
            status,
            headers,
            items,
            raw,
            ended: false,
            reader,
        }
    }

    /// Opens a stream resuming from `last_event_id` (anonymous without a token).
    pub async fn resume(addr: &str, token: Option<&str>, last_event_id: &str) -> Sse {
        Sse::open(
            addr,
            Open {
                token,
                last_event_id: Some(last_event_id),
                ..Default::default()
            },
        )
        .await
    }

    /// Opens a stream for `token` and asserts it was accepted.
    pub async fn ok(addr: &str, token: &str) -> Sse {
        let sse = Sse::open(
            addr,
            Open {
                token: Some(token),
                ..Default::default()
            },
        )
        .await;
        assert_eq!(sse.status, 200);
        sse
    }

    /// The next parsed item (event, retry or comment); `None` when the stream ended.
    pub async fn next_item(&mut self) -> Option<Item> {
        if self.ended {
            return None;
        }
        match tokio::time::timeout(WAIT, self.items.recv()).await {
            Ok(Some(Some(item))) => Some(item),
            Ok(_) => {
                self.ended = true;
                None
            }
            Err(_) => panic!(
                "no SSE item within {WAIT:?}; raw so far: {:?}",
                self.raw_text()
            ),
        }
    }

    /// The next dispatched event, skipping comments and retry hints.
    pub async fn next_event(&mut self) -> MessageEvent {
        loop {
            match self.next_item().await {
                Some(Item::Event(event)) => return event,
                Some(_) => continue,
                None => panic!("stream ended; raw: {:?}", self.raw_text()),
            }
        }
    }

    /// Waits until the stream ends; returns the items seen on the way.
    pub async fn until_end(&mut self) -> Vec<Item> {
        let mut seen = Vec::new();
        while let Some(item) = self.next_item().await {
            seen.push(item);
        }
        seen
    }

    /// Event names received up to and including the event named `last`.
    pub async fn names_until(&mut self, last: &str) -> Vec<String> {
        let mut names = Vec::new();
        loop {
            let event = self.next_event().await;
            names.push(event.event_type.clone());
            if event.event_type == last {
                return names;
            }
        }
    }

    pub fn raw_text(&self) -> String {
        String::from_utf8_lossy(&self.raw.lock().unwrap()).into_owned()
    }
}

/// The value of one Prometheus series (exact name including labels) on the hub at `addr`, 0 if
/// absent.
pub async fn metric_at(addr: &str, series: &str) -> f64 {
    let text = get(addr, "/metrics").await.body;
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == series).then(|| value.parse().ok())?
        })
        .unwrap_or(0.0)
}

/// A field of `/proc/<pid>/status` in KiB (`VmRSS` now, `VmHWM` the peak).
pub fn proc_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}
