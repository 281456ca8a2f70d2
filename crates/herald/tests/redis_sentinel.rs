//! Sentinel (`--redis-sentinel` + `--redis-master`): real `redis-server` processes (a primary,
//! two replicas) and a real sentinel. The primary is killed mid-traffic; the node follows the
//! replica Sentinel promotes without a restart, its stream stays open, and with
//! `--redis-min-replicas 1` every publish it acknowledged is delivered exactly once, in order.

mod common;
mod redis_harness;

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use redis_harness::*;
use serde_json::json;

const MASTER: &str = "herald-primary";

/// A sentinel process watching `primary`, quick to declare it down.
struct Sentinel {
    child: Child,
    port: u16,
    dir: std::path::PathBuf,
}

impl Sentinel {
    async fn start(primary: &Redis) -> Sentinel {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let dir =
            std::env::temp_dir().join(format!("herald-sentinel-{port}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("sentinel dir");
        let conf = dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {MASTER} 127.0.0.1 {} 1\n\
                 sentinel down-after-milliseconds {MASTER} 500\n\
                 sentinel failover-timeout {MASTER} 2000\n\
                 sentinel parallel-syncs {MASTER} 2\n",
                dir.display(),
                primary.port
            ),
        )
        .expect("sentinel.conf");
        let child = Command::new("redis-server")
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (with --sentinel) must be installed");
        let sentinel = Sentinel { child, port, dir };
        eventually("the sentinel knows both replicas", || {
            sentinel.replicas_known(2)
        })
        .await;
        sentinel
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn ask(&self, args: &[&str]) -> Option<redis::Value> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = tokio::time::timeout(
            Duration::from_secs(1),
            client.get_multiplexed_async_connection(),
        )
        .await
        .ok()?
        .ok()?;
        redis::cmd("SENTINEL")
            .arg(args)
            .query_async(&mut conn)
            .await
            .ok()
    }

    async fn replicas_known(&self, count: usize) -> bool {
        matches!(
            self.ask(&["replicas", MASTER]).await,
            Some(redis::Value::Array(replicas)) if replicas.len() == count
        )
    }

    async fn primary_port(&self) -> Option<u16> {
        let value = self.ask(&["get-master-addr-by-name", MASTER]).await?;
        let (_, port): (String, String) = redis::from_redis_value(&value).ok()?;
        port.parse().ok()
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_killed_primary_is_followed_and_no_acknowledged_event_is_lost() {
    let mut primary = Redis::start().await;
    let replicas = [
        Redis::start_replica_of(&primary).await,
        Redis::start_replica_of(&primary).await,
    ];
    eventually("both replicas are in sync", || async {
        primary.replicas().await == 2
    })
    .await;
    let sentinel = Sentinel::start(&primary).await;
    let sentinel_url = sentinel.url();
    let hub = Server::start_raw(
        &[
            "--jwt-secret",
            SECRET,
            "--publish-key",
            KEY,
            "--redis-sentinel",
            &sentinel_url,
            "--redis-master",
            MASTER,
            "--redis-min-replicas",
            "1",
            "--redis-backoff-max-ms",
            "200",
            "--redis-command-timeout-ms",
            "1000",
        ],
        &[],
    );
    let mut sse = open(&hub, &token("ada", &[]), "", None).await;

    // Publishers go on throughout; only the answers decide what was acknowledged.
    let acknowledged = Arc::new(Mutex::new(Vec::<u64>::new()));
    let traffic = {
        let (addr, acknowledged) = (hub.addr.clone(), acknowledged.clone());
        tokio::spawn(async move {
            for n in 1..=u64::MAX {
                let body = json!({"event": "n", "data": n}).to_string();
                let reply = publish_raw(&addr, Some(KEY), body).await;
                if reply.status == 200 {
                    acknowledged.lock().unwrap().push(n);
                }
                if acknowledged.lock().unwrap().len() >= 200 {
                    return;
                }
            }
        })
    };
    eventually("traffic flows", || async {
        acknowledged.lock().unwrap().len() >= 30
    })
    .await;
    let before_failover = acknowledged.lock().unwrap().len();
    primary.stop();
    let old_port = primary.port;
    let deadline = Instant::now() + Duration::from_secs(30);
    while sentinel.primary_port().await == Some(old_port) {
        assert!(
            Instant::now() < deadline,
            "Sentinel did not promote a replica"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let promoted = sentinel.primary_port().await.expect("a new primary");
    assert!(replicas.iter().any(|r| r.port == promoted), "{promoted}");
    tokio::time::timeout(Duration::from_secs(60), traffic)
        .await
        .expect("publishing resumes on the promoted replica")
        .expect("traffic task");
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > before_failover);

    let last = publish_raw(
        &hub.addr,
        Some(KEY),
        json!({"event": "last", "data": 0}).to_string(),
    )
    .await;
    assert_eq!(last.status, 200, "{}", last.body);
    let delivered: Vec<u64> = events_until(&mut sse, "last")
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
