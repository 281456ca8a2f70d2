//! Multi-node test harness: a private `redis-server` and Herald nodes that share it.
//!
//! Each test starts its own Redis on a free port with persistence off (never the machine's
//! 6379), and Herald nodes as real processes (`common::Server`) with `--redis`. Waiting is on
//! conditions polled against a deadline, never a fixed sleep.

#![allow(dead_code)]

use std::future::Future;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::{self, Server, Sse, WAIT};

pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: std::path::PathBuf,
    /// Append-only file with fsync on every write: a restart keeps every acknowledged event.
    persistent: bool,
    /// `--replicaof 127.0.0.1 <port>`: a replica of that server.
    replica_of: Option<u16>,
}

impl Redis {
    /// A fresh `redis-server` on a free loopback port, answering PING.
    pub async fn start() -> Redis {
        Self::start_with(false).await
    }

    /// Like [`Redis::start`], with `appendonly yes` and `appendfsync always`.
    pub async fn start_persistent() -> Redis {
        Self::start_with(true).await
    }

    /// A replica of `master` (it may take a moment to be in sync: [`Redis::replicas`]).
    pub async fn start_replica_of(master: &Redis) -> Redis {
        Self::start_as(false, Some(master.port)).await
    }

    /// How many replicas the server says are connected and in sync.
    pub async fn replicas(&self) -> usize {
        let Some(mut conn) = connect(&self.url()).await else {
            return 0;
        };
        let info: String = redis::cmd("INFO")
            .arg("replication")
            .query_async(&mut conn)
            .await
            .unwrap_or_default();
        // `slaveN:ip=…,state=online,…`: connected and done with the initial sync.
        info.lines()
            .filter(|line| line.starts_with("slave") && line.contains("state=online"))
            .count()
    }

    async fn start_with(persistent: bool) -> Redis {
        Self::start_as(persistent, None).await
    }

    async fn start_as(persistent: bool, replica_of: Option<u16>) -> Redis {
        // A port found free can be taken by a parallel test before redis-server binds it; then
        // our server exits and we try another port (we never talk to someone else's server).
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let dir = std::env::temp_dir()
                .join(format!("herald-redis-test-{port}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("redis dir");
            let mut redis = Redis {
                child: None,
                port,
                dir,
                persistent,
                replica_of,
            };
            if redis.spawn().await {
                return redis;
            }
        }
        panic!("could not start redis-server on a free port");
    }

    /// Starts `redis-server` on `self.port`; true once *this* process answers (its INFO
    /// `process_id` is our child's), false if it exited (port taken).
    async fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", ""])
            .args(if self.persistent {
                ["--appendonly", "yes", "--appendfsync", "always"]
            } else {
                ["--appendonly", "no", "--appendfsync", "everysec"]
            })
            .arg("--dir")
            .arg(&self.dir)
            .args(
                self.replica_of
                    .map(|port| {
                        [
                            "--replicaof".to_owned(),
                            "127.0.0.1".to_owned(),
                            port.to_string(),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (scripts/test-all.sh installs it)");
        let pid = child.id();
        self.child = Some(child);
        let url = self.url();
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(_)) = child.try_wait() {
                    self.child = None;
                    return false;
                }
            }
            if let Some(mut conn) = connect(&url).await {
                let info: Result<String, _> = redis::cmd("INFO")
                    .arg("server")
                    .query_async(&mut conn)
                    .await;
                if info.is_ok_and(|info| info.contains(&format!("process_id:{pid}\r\n"))) {
                    return true;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not answer");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Stops the server abruptly (SIGKILL).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty unless persistent).
    pub async fn restart(&mut self) {
        self.stop();
        assert!(
            self.spawn().await,
            "redis-server could not take its port back"
        );
    }

    pub async fn conn(&self) -> redis::aio::MultiplexedConnection {
        connect(&self.url()).await.expect("connect to test redis")
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn connect(url: &str) -> Option<redis::aio::MultiplexedConnection> {
    let client = redis::Client::open(url).ok()?;
    tokio::time::timeout(
        Duration::from_secs(1),
        client.get_multiplexed_async_connection(),
    )
    .await
    .ok()?
    .ok()
}

/// A Herald node on `redis`, with quick reconnects so fault tests run fast.
pub fn node(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec![
        "--redis",
        url.as_str(),
        "--redis-backoff-max-ms",
        "200",
        "--redis-command-timeout-ms",
        "1000",
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Polls `condition` until it holds; panics with `what` after the harness's deadline.
pub async fn eventually<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while !condition().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `/readyz` status of a node.
pub async fn readyz(node: &Server) -> u16 {
    common::get(&node.addr, "/readyz").await.status
}

/// The value of one Prometheus series (exact name including labels), 0 if absent.
pub async fn metric(node: &Server, series: &str) -> f64 {
    common::metric_at(&node.addr, series).await
}

/// Sends SIGKILL: no shutdown, no goodbye to its streams.
pub fn sigkill(node: &Server) {
    let status = Command::new("kill")
        .args(["-KILL", &node.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

/// Opens a stream for `user` (optionally resuming) and asserts it was accepted.
pub async fn open(node: &Server, token: &str, query: &str, last_event_id: Option<&str>) -> Sse {
    let sse = Sse::open(
        &node.addr,
        common::Open {
            token: Some(token),
            query,
            last_event_id,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sse.status, 200, "stream refused: {}", sse.raw_text());
    sse
}

/// Reads events until one named `last`; returns (name, id, data) of each, `last` included.
pub async fn events_until(sse: &mut Sse, last: &str) -> Vec<(String, String, String)> {
    let mut seen = Vec::new();
    loop {
        let event = sse.next_event().await;
        let done = event.event_type == last;
        seen.push((event.event_type, event.last_event_id, event.data));
        if done {
            return seen;
        }
    }
}

/// A TCP proxy in front of Redis that can cut one node off (a network partition of that node
/// only): while cut, it closes every connection it carries and refuses new ones. It runs on the
/// test's runtime, so tests using it need a multi-threaded one (`Server::start` blocks).
pub struct Partition {
    pub port: u16,
    cut: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Partition {
    pub async fn new(redis: &Redis) -> Partition {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = format!("127.0.0.1:{}", redis.port);
        let cut = std::sync::Arc::new(tokio::sync::watch::Sender::new(false));
        let state = cut.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if *state.borrow() {
                    continue; // dropped: refused
                }
                let upstream = upstream.clone();
                let mut cut = state.subscribe();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = cut.wait_for(|cut| *cut) => {}
                    }
                });
            }
        });
        Partition { port, cut, task }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.task.abort();
    }
}
