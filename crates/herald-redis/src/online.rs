//! The cluster's presence book for online/offline announcements (`herald_core::announce`),
//! kept in Redis and changed only by scripts, so that of two nodes racing on one transition
//! exactly one sees it.
//!
//! * `{prefix}:online:<user>`: the nodes that have streams of the user. The node whose arrival
//!   makes it non-empty, with no offline pending, announces `user.online`.
//! * `{prefix}:offline:due` (users scored by when their offline is due) and `{prefix}:offline:at`
//!   (when their last stream ended): written by the departure that empties a user's set,
//!   cancelled by an arrival before it is due. Every node claims due offlines on its ticks;
//!   the script hands each to one node, which announces `user.offline`. A node that dies
//!   after a departure leaves nothing hanging: any node claims it.
//! * `{prefix}:node-users:<node>`: the users each node has streams of. A node silent for
//!   [`DEAD_AFTER`] (its heartbeat is [`crate::presence`]'s) is dead: the next tick of any node
//!   makes its users leave as of its last heartbeat, a bounded number per tick, and notes it in
//!   `{prefix}:reaped`, so that a node taken for dead while it was only cut off tells the book
//!   again about its users when it comes back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use herald_core::announce::{Due, PresenceBook, DUE_PER_TICK};
use herald_core::broker::BrokerError;
use redis::Script;

use crate::keys::Keys;
use crate::shared_connection::{Request, SharedConnection};

/// A node not heard from for this long is taken for dead and its users leave. Longer than the
/// presence answer's [`crate::presence::LIVE_WITHIN`]: a node that misses a few heartbeats (a
/// Redis failover) must not make its users go offline and online again.
pub const DEAD_AFTER: Duration = Duration::from_secs(15);

/// Users of a dead node made to leave per tick, at most (a script must not hold Redis long).
const REAPED_PER_TICK: usize = 1000;

const ARRIVE: &str = r"
local online, node_users, due, at = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local node, user = ARGV[1], ARGV[2]
redis.call('SADD', node_users, user)
if redis.call('SADD', online, node) == 1 and redis.call('SCARD', online) == 1 then
  if redis.call('ZREM', due, user) == 1 then
    redis.call('HDEL', at, user)
    return 0
  end
  return 1
end
return 0
";

const DEPART: &str = r"
local online, node_users, due, at = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local node, user, at_ms, due_ms = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
redis.call('SREM', node_users, user)
if redis.call('SREM', online, node) == 1 and redis.call('SCARD', online) == 0 then
  redis.call('ZADD', due, due_ms, user)
  redis.call('HSET', at, user, at_ms)
end
return 0
";

/// Reaps dead nodes, then claims due offlines. Answers `{forgotten, user, at, user, at, ...}`.
/// The online and node-users keys are built from prefixes: they share the `{prefix}` hash tag
/// with the declared keys, so they live in the same Redis Cluster slot.
const TICK: &str = r"
local nodes, due, at, reaped = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local me, now, dead_before = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local delay, online, node_users = tonumber(ARGV[4]), ARGV[5], ARGV[6]
local reap_limit, due_limit = tonumber(ARGV[7]), ARGV[8]
local forgotten = 0
if redis.call('SREM', reaped, me) == 1 then forgotten = 1 end
local dead = redis.call('ZRANGEBYSCORE', nodes, '-inf', '(' .. dead_before, 'WITHSCORES', 'LIMIT', 0, 4)
for i = 1, #dead, 2 do
  local node, last = dead[i], dead[i + 1]
  if node ~= me then
    local users = redis.call('SPOP', node_users .. node, reap_limit)
    for _, user in ipairs(users) do
      local key = online .. user
      if redis.call('SREM', key, node) == 1 and redis.call('SCARD', key) == 0 then
        redis.call('ZADD', due, tonumber(last) + delay, user)
        redis.call('HSET', at, user, last)
      end
    end
    if redis.call('SCARD', node_users .. node) == 0 then
      redis.call('ZREM', nodes, node)
      redis.call('SADD', reaped, node)
      redis.call('PEXPIRE', reaped, 3600000)
    end
  end
end
local answer = {forgotten}
local ready = redis.call('ZRANGEBYSCORE', due, '-inf', now, 'LIMIT', 0, due_limit)
for _, user in ipairs(ready) do
  answer[#answer + 1] = user
  answer[#answer + 1] = redis.call('HGET', at, user) or tostring(now)
  redis.call('ZREM', due, user)
  redis.call('HDEL', at, user)
end
return answer
";

pub(crate) struct RedisBook {
    conn: Arc<SharedConnection>,
    keys: Keys,
    node: String,
    offline_delay_ms: u64,
    arrive: Script,
    depart: Script,
    tick: Script,
}

impl RedisBook {
    pub fn new(
        conn: Arc<SharedConnection>,
        keys: Keys,
        node: String,
        offline_delay: Duration,
    ) -> Self {
        Self {
            conn,
            keys,
            node,
            offline_delay_ms: offline_delay.as_millis() as u64,
            arrive: Script::new(ARRIVE),
            depart: Script::new(DEPART),
            tick: Script::new(TICK),
        }
    }

    fn keys_of<'a>(&self, script: &'a Script, user: &str) -> redis::ScriptInvocation<'a> {
        let mut call = script.prepare_invoke();
        call.key(self.keys.online(user))
            .key(self.keys.node_users(&self.node))
            .key(&self.keys.offline_due)
            .key(&self.keys.offline_at)
            .arg(&self.node)
            .arg(user);
        call
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        call: &redis::ScriptInvocation<'_>,
    ) -> Result<T, BrokerError> {
        self.conn
            .call(Request::Script(call), Duration::ZERO)
            .await?
            .map_err(|error| BrokerError(format!("Redis: {error}")))
    }
}

#[async_trait]
impl PresenceBook for RedisBook {
    async fn arrive(&self, user: &str, _at_ms: u64) -> Result<bool, BrokerError> {
        let call = self.keys_of(&self.arrive, user);
        Ok(self.run::<i64>(&call).await? == 1)
    }

    async fn depart(&self, user: &str, at_ms: u64) -> Result<(), BrokerError> {
        let mut call = self.keys_of(&self.depart, user);
        call.arg(at_ms).arg(at_ms + self.offline_delay_ms);
        self.run::<i64>(&call).await?;
        Ok(())
    }

    async fn due(&self, now_ms: u64) -> Result<Due, BrokerError> {
        let mut call = self.tick.prepare_invoke();
        call.key(&self.keys.nodes)
            .key(&self.keys.offline_due)
            .key(&self.keys.offline_at)
            .key(&self.keys.reaped)
            .arg(&self.node)
            .arg(now_ms)
            .arg(now_ms.saturating_sub(DEAD_AFTER.as_millis() as u64))
            .arg(self.offline_delay_ms)
            .arg(self.keys.online(""))
            .arg(self.keys.node_users(""))
            .arg(REAPED_PER_TICK)
            .arg(DUE_PER_TICK);
        let reply: Vec<redis::Value> = self.run(&call).await?;
        let mut fields = reply.into_iter();
        let forgotten = matches!(fields.next(), Some(redis::Value::Int(1)));
        let mut offline = Vec::new();
        while let (Some(user), Some(at)) = (fields.next(), fields.next()) {
            let user: String = redis::from_redis_value(&user)
                .map_err(|e| BrokerError(format!("Redis: bad tick answer: {e}")))?;
            let at: u64 = redis::from_redis_value::<String>(&at)
                .ok()
                .and_then(|at| at.parse().ok())
                .unwrap_or(now_ms);
            offline.push((user, at));
        }
        Ok(Due { offline, forgotten })
    }
}
