//! Appending events to the stream: one Lua script for publishing and for seed ingress.
//!
//! Redis assigns each entry its id, and the script gives it two more fields that make the
//! stream self-describing:
//!
//! * `n`, the entry's sequence number (1, 2, 3… across the cluster's whole life). A reader that
//!   sees `n` jump knows entries were trimmed before it read them, exactly, with no extra round
//!   trip; a resume knows how many events followed its point (`--history`).
//! * `c`, the running total of the events' costs (`Publication::history_cost`). The bytes
//!   between two entries are the difference of their `c`, which is how every node agrees on
//!   `--history-bytes` without reading the events in between.
//!
//! The script also keeps the stream within the history bounds, cluster-wide: `MAXLEN ~` by
//! count, the oldest entries whose running total is more than `--history-bytes` behind the
//! newest, and entries older than `--history-ttl` (by the Redis server's clock). Trimming looks
//! at a bounded number of entries per call, so one call never blocks Redis for long; what it
//! leaves is trimmed by the next.
//!
//! One call appends one or more groups, each a publish request's batch (concurrent publishes
//! share calls: [`crate::publish_queue`]). A call runs whole, so each batch is all-or-nothing
//! and contiguous in the stream. An ingress message is appended only if its dedup key was not
//! set yet (see [`crate::ingress`]).
//!
//! Retained values (`herald_core::retained`) live beside the stream, so a node that starts later
//! serves the same ones: `{prefix}:retained` maps each slot to `id\ncost\nentry`, and
//! `{prefix}:retained:order` orders the slots by the sequence number of their event. The script
//! keeps or clears an event's slots and evicts the oldest past the bounds, by the same rule as
//! each node's memory store, which applies the same events in the same order.

use herald_core::retained::{slot_field, RetainedLimits, SlotTarget};
use herald_core::{Publication, Retain};
use redis::Script;

use crate::config::RedisConfig;
use crate::entry;
use crate::keys::Keys;

const APPEND: &str = r"
local stream, meta, dedup, retained, order = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local maxlen, max_bytes = ARGV[1], tonumber(ARGV[2])
local ttl_ms, dedup_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local retained_values, retained_max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
if dedup_ms > 0 and not redis.call('SET', dedup, '1', 'NX', 'PX', dedup_ms) then
  return {{'d'}}
end
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local total = tonumber(redis.call('HGET', meta, 'bytes') or '0')
local rbytes = tonumber(redis.call('HGET', meta, 'retained_bytes') or '0')
local function forget(field)
  local old = redis.call('HGET', retained, field)
  if old then
    rbytes = rbytes - tonumber(string.match(old, '^[^\n]*\n([0-9]+)\n'))
    redis.call('HDEL', retained, field)
    redis.call('ZREM', order, field)
  end
end
-- One group per publish request: its idempotency key is KEYS[5 + g]; its arguments are the
-- key's lifetime, its event count, and four per event.
local answers, i = {}, 7
for g = 1, #KEYS - 5 do
  local once, once_ms, count = KEYS[5 + g], tonumber(ARGV[i]), tonumber(ARGV[i + 1])
  i = i + 2
  local prior = once_ms > 0 and redis.call('GET', once)
  if prior then
    local answer = {'r'}
    for id in string.gmatch(prior, '[^ ]+') do answer[#answer + 1] = id end
    answers[g] = answer
    i = i + 4 * count
  else
    local ids = {'n'}
    for _ = 1, count do
      seq = seq + 1
      local cost = tonumber(ARGV[i + 1])
      total = total + cost
      local id = redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*',
        'event', ARGV[i], 'n', string.format('%d', seq), 'c', string.format('%d', total))
      ids[#ids + 1] = id
      local mode = ARGV[i + 2]
      if mode ~= '' then
        for field in string.gmatch(ARGV[i + 3], '[^\n]+') do
          forget(field)
          if mode == 'k' then
            local slot_cost = cost + 3 * #field + 160
            redis.call('HSET', retained, field, id .. '\n' .. slot_cost .. '\n' .. ARGV[i])
            redis.call('ZADD', order, seq, field)
            rbytes = rbytes + slot_cost
          end
        end
      end
      i = i + 4
    end
    if once_ms > 0 then
      redis.call('SET', once, table.concat(ids, ' ', 2), 'PX', once_ms)
    end
    answers[g] = ids
  end
end
while redis.call('ZCARD', order) > 1 and
    (redis.call('ZCARD', order) > retained_values or rbytes > retained_max_bytes) do
  forget(redis.call('ZRANGE', order, 0, 0)[1])
end
redis.call('HSET', meta, 'seq', string.format('%d', seq), 'bytes', string.format('%d', total),
  'retained_bytes', string.format('%d', rbytes))
local floor = total - max_bytes
if floor > 0 then
  -- Usually one entry goes and the next stays: look at two first, not a page of events.
  local from, count = '-', 2
  for _ = 1, 17 do
    local oldest = redis.call('XRANGE', stream, from, '+', 'COUNT', count)
    count = 64
    local keep = nil
    for _, entry in ipairs(oldest) do
      local fields, c = entry[2], nil
      for j = 1, #fields, 2 do
        if fields[j] == 'c' then c = tonumber(fields[j + 1]) end
      end
      if c == nil or c > floor then keep = entry[1]; break end
    end
    if keep then redis.call('XTRIM', stream, 'MINID', keep); break end
    if #oldest == 0 then break end
    from = '(' .. oldest[#oldest][1]
  end
end
if ttl_ms > 0 then
  local now = redis.call('TIME')
  local oldest_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) - ttl_ms
  if oldest_ms > 0 then redis.call('XTRIM', stream, 'MINID', string.format('%d', oldest_ms)) end
end
return answers
";

/// The script and the settings every call passes to it.
pub(crate) struct Appender {
    script: Script,
    keys: Keys,
    maxlen: usize,
    max_bytes: u64,
    ttl_ms: u64,
    retained: RetainedLimits,
}

/// One publish request's part of an append call: its events, encoded for the stream, and its
/// idempotency key (the key and how long it lives, in milliseconds), if any.
pub(crate) struct Group {
    events: Vec<EncodedEvent>,
    once: Option<(String, u64)>,
}

struct EncodedEvent {
    entry: String,
    cost: usize,
    /// `""`, `"k"` (keep as the retained value) or `"c"` (clear it).
    retain: &'static str,
    slots: String,
}

impl Group {
    /// `batch`, each event accepted at `accepted_us`, once per idempotency key `once`.
    pub fn new(batch: &[Publication], accepted_us: u64, once: Option<(String, u64)>) -> Self {
        let events = batch
            .iter()
            .map(|publication| {
                let (retain, slots) = match publication.retain {
                    Retain::No => ("", String::new()),
                    Retain::Keep => ("k", publication_slots(publication)),
                    Retain::Clear => ("c", publication_slots(publication)),
                };
                EncodedEvent {
                    entry: entry::encode(publication, accepted_us),
                    cost: publication.history_cost(),
                    retain,
                    slots,
                }
            })
            .collect();
        Self { events, once }
    }

    /// Bytes this group adds to a call, roughly: what bounds the size of one call.
    pub fn bytes(&self) -> usize {
        self.events
            .iter()
            .map(|e| e.entry.len() + e.slots.len() + 32)
            .sum()
    }
}

impl Appender {
    pub fn new(keys: &Keys, config: &RedisConfig) -> Self {
        Self {
            script: Script::new(APPEND),
            keys: keys.clone(),
            maxlen: config.stream_len(),
            max_bytes: config.history_bytes.max(1),
            ttl_ms: config
                .history_ttl
                .map_or(0, |ttl| ttl.as_millis().max(1) as u64),
            retained: config.retained,
        }
    }

    /// A call appending `groups` in order, each all-or-nothing and contiguous; only if `dedup`
    /// (a key and how long it lives, in milliseconds) was not set yet. Its answer, one per
    /// group, is read with [`Appended::from_reply`].
    pub fn invocation(
        &self,
        groups: &[Group],
        dedup: Option<(&str, u64)>,
    ) -> redis::ScriptInvocation<'_> {
        let mut call = self.script.prepare_invoke();
        call.key(&self.keys.stream)
            .key(&self.keys.meta)
            .key(dedup.map_or(self.keys.meta.as_str(), |(key, _)| key))
            .key(&self.keys.retained)
            .key(&self.keys.retained_order)
            .arg(self.maxlen)
            .arg(self.max_bytes)
            .arg(self.ttl_ms)
            .arg(dedup.map_or(0, |(_, ms)| ms.max(1)))
            .arg(self.retained.values.max(1))
            .arg(self.retained.bytes.max(1));
        for group in groups {
            // Without a key the group names the meta hash, which it never reads as one.
            call.key(group.once.as_ref().map_or(&self.keys.meta, |(key, _)| key))
                .arg(group.once.as_ref().map_or(0, |(_, ms)| (*ms).max(1)))
                .arg(group.events.len());
            for event in &group.events {
                call.arg(&event.entry)
                    .arg(event.cost)
                    .arg(event.retain)
                    .arg(&event.slots);
            }
        }
        call
    }
}

/// The retained-value slots of a publication, one per line (as `herald_core::retained` names
/// them).
fn publication_slots(publication: &Publication) -> String {
    let name = publication.event.as_deref();
    if publication.is_broadcast() {
        return slot_field(SlotTarget::Everyone, name);
    }
    let users = publication.users.iter().map(|u| SlotTarget::User(u));
    let topics = publication.topics.iter().map(|t| SlotTarget::Topic(t));
    users
        .chain(topics)
        .map(|target| slot_field(target, name))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What an append did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Appended {
    /// Appended: the new entries' ids.
    New(Vec<String>),
    /// The idempotency key was seen before: the first attempt's ids; nothing appended.
    Repeated(Vec<String>),
    /// The ingress dedup key existed: another node appended the message.
    Duplicate,
}

impl Appended {
    /// Reads the script's answer: per group, a marker (`n`, `r` or `d`), then ids. An answer
    /// with another number of groups than `groups` is an error.
    pub fn from_reply(reply: Vec<Vec<String>>, groups: usize) -> Result<Vec<Self>, String> {
        let answers: Vec<Self> = reply
            .into_iter()
            .map(|mut group| {
                if group.is_empty() {
                    return Err("the append script answered nothing".to_owned());
                }
                let marker = group.remove(0);
                match marker.as_str() {
                    "n" => Ok(Self::New(group)),
                    "r" => Ok(Self::Repeated(group)),
                    "d" => Ok(Self::Duplicate),
                    other => Err(format!("the append script answered {other:?}")),
                }
            })
            .collect::<Result<_, _>>()?;
        // A dedup refusal is the only one-element answer to several groups (ingress sends one).
        if answers.len() != groups && answers != [Self::Duplicate] {
            return Err(format!(
                "the append script answered {} groups for {groups}",
                answers.len()
            ));
        }
        Ok(answers)
    }
}
