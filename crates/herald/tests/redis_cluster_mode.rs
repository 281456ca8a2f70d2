//! Redis Cluster (`--redis-cluster`): three real masters joined with `redis-cli --cluster
//! create`. Each node is given one seed that does not serve Herald's slot, so every command
//! starts by following `MOVED`; delivery across nodes, resume on another node, seed ingress
//! over cluster Pub/Sub, a slot migration in the middle of traffic, and a master failover.

mod common;
mod redis_harness;

use std::sync::{Arc, Mutex};

use common::*;
use redis_harness::*;
use serde_json::json;

/// The slot every key of the default prefix lives in (they share the hash tag `{herald}`).
const HASH_TAG: &str = "{herald}";

/// A Herald node on the cluster, knowing only `seed`.
fn cluster_node(seed: &str) -> Server {
    Server::start_raw(
        &[
            "--jwt-secret",
            SECRET,
            "--publish-key",
            KEY,
            "--redis-cluster",
            seed,
            "--redis-backoff-max-ms",
            "200",
            "--redis-command-timeout-ms",
            "2000",
        ],
        &[],
    )
}

/// A node of the cluster other than the one serving Herald's slot.
async fn not_serving(cluster: &RedisCluster) -> usize {
    let owner = cluster.owner_of(cluster.slot_of(HASH_TAG).await).await;
    (owner + 1) % cluster.nodes.len()
}

#[tokio::test]
async fn nodes_on_a_cluster_deliver_in_order_resume_anywhere_and_take_seed_ingress() {
    let cluster = RedisCluster::start(3).await;
    let seed = cluster.urls()[not_serving(&cluster).await].clone();
    let nodes = [cluster_node(&seed), cluster_node(&seed)];
    let ada = token("ada", &[]);
    let mut streams = [
        open(&nodes[0], &ada, "", None).await,
        open(&nodes[1], &ada, "", None).await,
    ];

    let mut published = Vec::new();
    for n in 0..20 {
        let id = publish_id(
            &nodes[n % 2].addr,
            json!({"user": "ada", "event": format!("e{n}"), "data": n}),
        )
        .await;
        published.push((format!("e{n}"), id, n.to_string()));
    }
    for sse in &mut streams {
        assert_eq!(
            events_until(sse, "e19").await,
            published,
            "in publish order"
        );
    }

    // Resume on the other node, from its window, and on a node started after the events,
    // from the stream in Redis: exactly what followed the id.
    let late = cluster_node(&seed);
    for (node, from) in [(&nodes[1], 4), (&late, 9)] {
        let mut resumed = open(node, &ada, "", Some(&published[from].1)).await;
        assert_eq!(
            events_until(&mut resumed, "e19").await,
            published[from + 1..]
        );
    }

    // Seed ingress: a service publishes on any node of the cluster, and the cluster delivers
    // the message to each node's subscription wherever it is.
    let mut admins = Vec::new();
    for redis in &cluster.nodes {
        admins.push(redis.conn().await);
    }
    eventually("all three nodes subscribed to the ingress channel", || {
        let admins = admins.clone();
        async move {
            let mut subscribers = 0;
            for mut admin in admins {
                let counts: Vec<(String, usize)> = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg("user:events")
                    .query_async(&mut admin)
                    .await
                    .unwrap_or_default();
                subscribers += counts.first().map_or(0, |(_, n)| *n);
            }
            subscribers == 3
        }
    })
    .await;
    let _: i64 = redis::cmd("PUBLISH")
        .arg("user:events")
        .arg(r#"{"userId":"ada","event":"from_seed","data":{"amount":5}}"#)
        .query_async(&mut admins[2])
        .await
        .expect("PUBLISH");
    for sse in &mut streams {
        let events = events_until(sse, "from_seed").await;
        assert_eq!(events.len(), 1, "delivered once per stream: {events:?}");
        assert_eq!(events[0].2, r#"{"amount":5}"#);
    }
}

#[tokio::test]
async fn a_slot_migration_during_traffic_loses_nothing() {
    let cluster = RedisCluster::start(3).await;
    let slot = cluster.slot_of(HASH_TAG).await;
    let owner = cluster.owner_of(slot).await;
    let seed = cluster.urls()[not_serving(&cluster).await].clone();
    let nodes = [cluster_node(&seed), cluster_node(&seed)];
    let bo = token("bo", &[]);
    let mut streams = [
        open(&nodes[0], &bo, "", None).await,
        open(&nodes[1], &bo, "", None).await,
    ];

    // Publishers on both nodes throughout. A publish that fails while the slot moves is sent
    // again with its Idempotency-Key, as a careful client would: an attempt whose answer was
    // lost may have happened, and the key makes it count once.
    let acknowledged = Arc::new(Mutex::new(Vec::<(u64, String)>::new()));
    let traffic = {
        let addrs = [nodes[0].addr.clone(), nodes[1].addr.clone()];
        let acknowledged = acknowledged.clone();
        tokio::spawn(async move {
            for n in 0..300u64 {
                let body = json!({"user": "bo", "event": "n", "data": n});
                let key = format!("event-{n}");
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    let reply = publish_with_key(&addrs[n as usize % 2], KEY, &key, &body).await;
                    if reply.status == 200 {
                        let id = reply.json()["id"].as_str().expect("id").to_owned();
                        acknowledged.lock().unwrap().push((n, id));
                        break;
                    }
                    assert_eq!(reply.status, 503, "only unavailability is expected");
                    assert!(attempts < 100, "publishing did not recover: {}", reply.body);
                }
            }
        })
    };
    eventually("traffic flows", || async {
        acknowledged.lock().unwrap().len() >= 50
    })
    .await;
    let to = (owner + 2) % cluster.nodes.len();
    cluster.migrate_slot(slot, owner, to).await;
    assert_eq!(cluster.owner_of(slot).await, to, "the slot moved");
    let migrated_at = acknowledged.lock().unwrap().len();
    traffic.await.expect("traffic task");
    assert!(migrated_at < 300, "traffic went on after the migration");

    let last = publish_id(
        &nodes[0].addr,
        json!({"user": "bo", "event": "last", "data": 0}),
    )
    .await;
    let acknowledged = acknowledged.lock().unwrap().clone();
    let mut expected: Vec<(String, String, String)> = acknowledged
        .iter()
        .map(|(n, id)| ("n".to_owned(), id.clone(), n.to_string()))
        .collect();
    expected.push(("last".to_owned(), last, "0".to_owned()));
    for sse in &mut streams {
        assert_eq!(
            events_until(sse, "last").await,
            expected,
            "every acknowledged event once, in order"
        );
    }
    // And the moved stream still serves resume from before the migration.
    let mut resumed = open(&nodes[1], &bo, "", Some(&expected[9].1)).await;
    assert_eq!(events_until(&mut resumed, "last").await, expected[10..]);
}

#[tokio::test]
async fn a_master_failover_inside_the_cluster_loses_no_acknowledged_event() {
    // Two replicas per master: after a failover the promoted replica still has one, so
    // `--redis-min-replicas 1` can go on acknowledging.
    let mut cluster = RedisCluster::start_replicated(3, 2).await;
    let slot = cluster.slot_of(HASH_TAG).await;
    let master = cluster.owner_of(slot).await;
    let mut args = vec![
        "--jwt-secret",
        SECRET,
        "--publish-key",
        KEY,
        "--redis-min-replicas",
        "1",
        "--redis-backoff-max-ms",
        "200",
        "--redis-command-timeout-ms",
        "1000",
    ];
    let urls = cluster.urls();
    for url in &urls {
        args.extend(["--redis-cluster", url.as_str()]);
    }
    let hub = Server::start_raw(&args, &[]);
    let mut sse = open(&hub, &token("cy", &[]), "", None).await;

    // Publishers go on throughout; only the answers decide what was acknowledged.
    let traffic = Traffic::start(&hub, 200);
    eventually("traffic flows", || async { traffic.count() >= 30 }).await;
    let before_failover = traffic.count();
    cluster.nodes[master].stop();
    let witness = (master + 1) % cluster.nodes.len();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while cluster.owner_as_seen_by(witness, slot).await == master {
        assert!(
            std::time::Instant::now() < deadline,
            "the cluster did not promote a replica"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let acknowledged = traffic.finish().await;
    assert!(acknowledged.len() > before_failover);
    assert_delivered_once_in_order(&hub, &mut sse, &acknowledged).await;
}
