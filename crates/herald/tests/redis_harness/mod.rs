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
    /// `--cluster-enabled yes`, with its cluster bus on this port.
    cluster_bus: Option<u16>,
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
        Self::start_as(false, Some(master.port), false).await
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
        Self::start_as(persistent, None, false).await
    }

    async fn start_as(persistent: bool, replica_of: Option<u16>, cluster: bool) -> Redis {
        // A port found free can be taken by a parallel test before redis-server binds it; then
        // our server exits and we try another port (we never talk to someone else's server).
        for _ in 0..5 {
            let port = free_port();
            let dir = std::env::temp_dir()
                .join(format!("herald-redis-test-{port}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("redis dir");
            let mut redis = Redis {
                child: None,
                port,
                dir,
                persistent,
                replica_of,
                cluster_bus: cluster.then(free_port),
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
                self.cluster_bus
                    .map(|bus| {
                        [
                            "--cluster-enabled".to_owned(),
                            "yes".to_owned(),
                            "--cluster-port".to_owned(),
                            bus.to_string(),
                            "--cluster-node-timeout".to_owned(),
                            "2000".to_owned(),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A Redis Cluster of masters without replicas, made as users make one: `redis-server` with
/// `--cluster-enabled yes` per node, then `redis-cli --cluster create`.
pub struct RedisCluster {
    pub nodes: Vec<Redis>,
}

impl RedisCluster {
    pub async fn start(masters: usize) -> RedisCluster {
        Self::start_replicated(masters, 0).await
    }

    /// `masters` masters with `replicas` replicas each, every replica in sync.
    pub async fn start_replicated(masters: usize, replicas: usize) -> RedisCluster {
        let total = masters * (1 + replicas);
        let mut nodes = Vec::new();
        for _ in 0..total {
            nodes.push(Redis::start_as(false, None, true).await);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let created = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli must be installed (scripts/test-all.sh installs it)");
        assert!(
            created.status.success(),
            "redis-cli --cluster create: {}",
            String::from_utf8_lossy(&created.stdout)
        );
        let cluster = RedisCluster { nodes };
        eventually("every node sees the whole cluster", || async {
            for node in &cluster.nodes {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query_async(&mut node.conn().await)
                    .await
                    .unwrap_or_default();
                if !info.contains("cluster_state:ok")
                    || !info.contains(&format!("cluster_known_nodes:{total}\r\n"))
                {
                    return false;
                }
            }
            let mut in_sync = 0;
            for node in &cluster.nodes {
                in_sync += node.replicas().await;
            }
            in_sync == masters * replicas
        })
        .await;
        cluster
    }

    /// The slot of `key` (`CLUSTER KEYSLOT`).
    pub async fn slot_of(&self, key: &str) -> u16 {
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query_async(&mut self.nodes[0].conn().await)
            .await
            .expect("CLUSTER KEYSLOT")
    }

    /// Which node serves `slot`, as node 0 sees it.
    pub async fn owner_of(&self, slot: u16) -> usize {
        self.owner_as_seen_by(0, slot).await
    }

    /// Which node serves `slot`, as node `by` sees it.
    pub async fn owner_as_seen_by(&self, by: usize, slot: u16) -> usize {
        let mut conn = self.nodes[by].conn().await;
        let ranges: Vec<(u16, u16, (String, u16))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query_async::<Vec<redis::Value>>(&mut conn)
            .await
            .expect("CLUSTER SLOTS")
            .into_iter()
            .map(|range| {
                let redis::Value::Array(parts) = range else {
                    panic!("CLUSTER SLOTS range: {range:?}")
                };
                let (start, end): (u16, u16) = (
                    redis::from_redis_value(&parts[0]).expect("start"),
                    redis::from_redis_value(&parts[1]).expect("end"),
                );
                let redis::Value::Array(master) = &parts[2] else {
                    panic!("CLUSTER SLOTS master: {:?}", parts[2])
                };
                let host: String = redis::from_redis_value(&master[0]).expect("host");
                let port: u16 = redis::from_redis_value(&master[1]).expect("port");
                (start, end, (host, port))
            })
            .collect();
        let (_, _, (_, port)) = ranges
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .expect("the slot is served");
        self.nodes
            .iter()
            .position(|n| n.port == *port)
            .expect("a node of ours")
    }

    async fn id_of(&self, node: usize) -> String {
        redis::cmd("CLUSTER")
            .arg("MYID")
            .query_async(&mut self.nodes[node].conn().await)
            .await
            .expect("CLUSTER MYID")
    }

    /// Moves `slot` from node `from` to node `to` the way `redis-cli --cluster reshard` does:
    /// mark it importing and migrating, `MIGRATE` its keys ten at a time (redis-cli's default
    /// `--cluster-pipeline`), then give it to `to` everywhere. While it moves, clients meet
    /// `ASK` for keys already moved and `TRYAGAIN` for commands whose keys are split across
    /// the two nodes; `MOVED` after.
    pub async fn migrate_slot(&self, slot: u16, from: usize, to: usize) {
        let (from_id, to_id) = (self.id_of(from).await, self.id_of(to).await);
        let mut source = self.nodes[from].conn().await;
        let mut target = self.nodes[to].conn().await;
        let setslot = |state: &str, id: &str| {
            let mut cmd = redis::cmd("CLUSTER");
            cmd.arg("SETSLOT").arg(slot).arg(state).arg(id);
            cmd
        };
        let _: () = setslot("IMPORTING", &from_id)
            .query_async(&mut target)
            .await
            .expect("SETSLOT IMPORTING");
        let _: () = setslot("MIGRATING", &to_id)
            .query_async(&mut source)
            .await
            .expect("SETSLOT MIGRATING");
        loop {
            let keys: Vec<String> = redis::cmd("CLUSTER")
                .arg("GETKEYSINSLOT")
                .arg(slot)
                .arg(10)
                .query_async(&mut source)
                .await
                .expect("GETKEYSINSLOT");
            if keys.is_empty() {
                break;
            }
            let _: () = redis::cmd("MIGRATE")
                .arg("127.0.0.1")
                .arg(self.nodes[to].port)
                .arg("")
                .arg(0)
                .arg(5000)
                .arg("KEYS")
                .arg(&keys)
                .query_async(&mut source)
                .await
                .expect("MIGRATE");
        }
        for node in std::iter::once(to)
            .chain(std::iter::once(from))
            .chain((0..self.nodes.len()).filter(|n| *n != from && *n != to))
        {
            let _: () = setslot("NODE", &to_id)
                .query_async(&mut self.nodes[node].conn().await)
                .await
                .expect("SETSLOT NODE");
        }
    }

    /// `redis://` URLs of the nodes, in order.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Redis::url).collect()
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

/// A Herald node on `redis`, with quick reconnects so fault tests run fast, and a one-second
/// command timeout unless `extra` sets one.
pub fn node(redis: &Redis, extra: &[&str]) -> Server {
    let url = redis.url();
    let mut args = vec!["--redis", url.as_str(), "--redis-backoff-max-ms", "200"];
    if !extra.contains(&"--redis-command-timeout-ms") {
        args.extend(["--redis-command-timeout-ms", "1000"]);
    }
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// Broadcasts numbered events (`n`, data 1, 2, 3…) to a node until `count` are acknowledged,
/// whatever happens meanwhile (failovers): only a 200 counts as acknowledged.
pub struct Traffic {
    pub acknowledged: std::sync::Arc<std::sync::Mutex<Vec<u64>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Traffic {
    pub fn start(node: &Server, count: usize) -> Traffic {
        let acknowledged = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (addr, acked) = (node.addr.clone(), acknowledged.clone());
        let task = tokio::spawn(async move {
            for n in 1..=u64::MAX {
                let body = serde_json::json!({"event": "n", "data": n}).to_string();
                if common::publish_raw(&addr, Some(common::KEY), body)
                    .await
                    .status
                    == 200
                {
                    acked.lock().unwrap().push(n);
                }
                if acked.lock().unwrap().len() >= count {
                    return;
                }
            }
        });
        Traffic { acknowledged, task }
    }

    pub fn count(&self) -> usize {
        self.acknowledged.lock().unwrap().len()
    }

    /// Waits (a minute at most) for all `count` to be acknowledged; returns them in order.
    pub async fn finish(self) -> Vec<u64> {
        tokio::time::timeout(Duration::from_secs(60), self.task)
            .await
            .expect("publishing goes on to the end")
            .expect("traffic task");
        let acknowledged = self.acknowledged.lock().unwrap().clone();
        acknowledged
    }
}

/// Publishes `last` on `node`, reads `sse` up to it, and asserts that every number in
/// `acknowledged` arrived, each once, all in order.
pub async fn assert_delivered_once_in_order(node: &Server, sse: &mut Sse, acknowledged: &[u64]) {
    let body = serde_json::json!({"event": "last", "data": 0}).to_string();
    let last = common::publish_raw(&node.addr, Some(common::KEY), body).await;
    assert_eq!(last.status, 200, "{}", last.body);
    let delivered: Vec<u64> = events_until(sse, "last")
        .await
        .into_iter()
        .filter(|(name, _, _)| name == "n")
        .map(|(_, _, data)| data.parse().expect("a number"))
        .collect();
    let mut sorted = delivered.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted, delivered, "delivered once each, in order");
    let missing: Vec<u64> = acknowledged
        .iter()
        .filter(|n| !delivered.contains(n))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged but never delivered: {missing:?}"
    );
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
