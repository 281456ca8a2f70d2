//! Presence across nodes, asked at query time.
//!
//! Nodes keep no presence bookkeeping anywhere: each node's registry already knows its own
//! streams. A node answering `GET /presence` publishes the question on
//! `{prefix}:presence`, every other live node answers on the asker's own channel with its
//! registry's answer, and the asker adds them up. So the answer is fresh (it is made when asked)
//! and costs nothing per event or per stream.
//!
//! Which nodes are alive: each node writes its id with the time into the sorted set
//! `{prefix}:nodes` every second. The asker waits for the nodes seen in the last
//! [`LIVE_WITHIN`], at most [`ANSWER_WITHIN`]; a node that dies stops being waited for (and
//! counted) within [`LIVE_WITHIN`], and its streams are gone with it anyway.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::endpoint::Endpoint;
use futures_util::StreamExt;
use herald_core::presence::{PresenceAnswer, PresenceQuery};
use herald_core::{unix_ms, Hub};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::config::RedisConfig;
use crate::keys::Keys;
use crate::shared_connection::{Request, SharedConnection, Unreachable};

/// A node not seen for this long is not waited for.
pub const LIVE_WITHIN: Duration = Duration::from_secs(3);
/// How long an asker waits for the other nodes' answers.
pub const ANSWER_WITHIN: Duration = Duration::from_millis(500);
/// A node silent this long leaves the set of nodes (long after its users were made to leave,
/// see [`crate::online`]).
const FORGET_AFTER: Duration = Duration::from_secs(3600);
/// How often a node says it is alive.
const HEARTBEAT: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize)]
struct Question {
    id: u64,
    from: String,
    query: PresenceQuery,
}

#[derive(Serialize, Deserialize)]
struct Reply {
    id: u64,
    answer: PresenceAnswer,
}

pub(crate) struct Presence {
    /// This node's id (random, new at every start).
    pub node: String,
    conn: Arc<SharedConnection>,
    keys: Keys,
    /// Questions this node asked, waiting for answers.
    waiting: Mutex<HashMap<u64, mpsc::Sender<PresenceAnswer>>>,
}

impl Presence {
    pub fn new(conn: Arc<SharedConnection>, keys: Keys) -> Arc<Self> {
        Arc::new(Self {
            node: format!("{:016x}", rand::random::<u64>()),
            conn,
            keys,
            waiting: Mutex::new(HashMap::new()),
        })
    }

    fn waiting(&self) -> std::sync::MutexGuard<'_, HashMap<u64, mpsc::Sender<PresenceAnswer>>> {
        // A panic while holding it leaves the map usable: it is only ever inserted into and
        // removed from.
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// `local` (this node's answer) plus every other live node's.
    pub async fn ask(
        &self,
        query: &PresenceQuery,
        local: PresenceAnswer,
    ) -> Result<PresenceAnswer, Unreachable> {
        let since = unix_ms().saturating_sub(LIVE_WITHIN.as_millis() as u64);
        let mut live = redis::cmd("ZRANGEBYSCORE");
        live.arg(&self.keys.nodes).arg(since).arg("+inf");
        let nodes: Vec<String> = self
            .conn
            .call(Request::Cmd(&live), Duration::ZERO)
            .await?
            .map_err(|e| Unreachable(e.to_string()))?;
        let others = nodes.iter().filter(|n| **n != self.node).count();
        let mut total = local;
        if others == 0 {
            return Ok(total);
        }
        let id = rand::random::<u64>();
        let (tx, mut rx) = mpsc::channel(others);
        self.waiting().insert(id, tx);
        let question = Question {
            id,
            from: self.node.clone(),
            query: query.clone(),
        };
        let mut publish = redis::cmd("PUBLISH");
        publish
            .arg(self.keys.presence_questions())
            .arg(serde_json::to_string(&question).unwrap_or_default());
        let sent = self
            .conn
            .call::<i64>(Request::Cmd(&publish), Duration::ZERO)
            .await;
        if sent.is_ok() {
            let collect = async {
                for _ in 0..others {
                    match rx.recv().await {
                        Some(answer) => total.add(answer),
                        None => break,
                    }
                }
            };
            // A node that does not answer in time (it just died) is left out.
            let _ = tokio::time::timeout(ANSWER_WITHIN, collect).await;
        }
        self.waiting().remove(&id);
        sent?.map_err(|e| Unreachable(e.to_string()))?;
        Ok(total)
    }

    /// Says this node is alive, and answers other nodes' questions, until the hub is gone.
    pub(crate) async fn run(
        self: Arc<Self>,
        client: Endpoint,
        hub: Weak<Hub>,
        config: RedisConfig,
    ) {
        let heartbeat = tokio::spawn(self.clone().beat(hub.clone()));
        let mut retries = config.retries();
        loop {
            if hub.strong_count() == 0 {
                break;
            }
            if let Err(error) = self.listen(&client, &hub, &config).await {
                tracing::debug!(%error, "presence channel lost; resubscribing");
            }
            tokio::time::sleep(retries.next_delay()).await;
        }
        heartbeat.abort();
    }

    async fn beat(self: Arc<Self>, hub: Weak<Hub>) {
        let mut interval = tokio::time::interval(HEARTBEAT);
        while hub.strong_count() > 0 {
            interval.tick().await;
            let now = unix_ms();
            let mut pipe = redis::pipe();
            pipe.cmd("ZADD")
                .arg(&self.keys.nodes)
                .arg(now)
                .arg(&self.node)
                .ignore()
                .cmd("ZREMRANGEBYSCORE")
                .arg(&self.keys.nodes)
                .arg("-inf")
                .arg(now.saturating_sub(FORGET_AFTER.as_millis() as u64))
                .ignore();
            let _ = self
                .conn
                .call::<()>(Request::Pipe(&pipe), Duration::ZERO)
                .await;
        }
    }

    async fn listen(
        &self,
        client: &Endpoint,
        hub: &Weak<Hub>,
        config: &RedisConfig,
    ) -> Result<(), redis::RedisError> {
        let mut pubsub = client.pubsub(config.connect_timeout).await?;
        let questions = self.keys.presence_questions();
        let replies = self.keys.presence_replies(&self.node);
        pubsub.subscribe(&questions).await?;
        pubsub.subscribe(&replies).await?;
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let payload = message.get_payload_bytes();
            if message.get_channel_name() == replies {
                if let Ok(reply) = serde_json::from_slice::<Reply>(payload) {
                    let waiting = self.waiting().get(&reply.id).cloned();
                    if let Some(tx) = waiting {
                        let _ = tx.try_send(reply.answer);
                    }
                }
                continue;
            }
            let Ok(question) = serde_json::from_slice::<Question>(payload) else {
                continue;
            };
            if question.from == self.node {
                continue;
            }
            let Some(hub) = hub.upgrade() else {
                return Ok(());
            };
            let reply = Reply {
                id: question.id,
                answer: hub.presence(&question.query),
            };
            let mut publish = redis::cmd("PUBLISH");
            publish
                .arg(self.keys.presence_replies(&question.from))
                .arg(serde_json::to_string(&reply).unwrap_or_default());
            let _ = self
                .conn
                .call::<i64>(Request::Cmd(&publish), Duration::ZERO)
                .await;
        }
        Ok(())
    }
}
