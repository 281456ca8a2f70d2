//! Sentinel (`--redis-sentinel` + `--redis-master`): real `redis-server` processes (a primary,
//! two replicas) and a real sentinel. The primary is killed mid-traffic; the node follows the
//! replica Sentinel promotes without a restart, its stream stays open, and with
//! `--redis-min-replicas 1` every publish it acknowledged is delivered exactly once, in order.

mod common;
mod redis_harness;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use redis_harness::*;

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
    let traffic = Traffic::start(&hub, 200);
    eventually("traffic flows", || async { traffic.count() >= 30 }).await;
    let before_failover = traffic.count();
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
    let acknowledged = traffic.finish().await;
    assert!(acknowledged.len() > before_failover);
    assert_delivered_once_in_order(&hub, &mut sse, &acknowledged).await;
}
