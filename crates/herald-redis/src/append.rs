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
use herald_core::{EventId, Publication, Retain};
use redis::Script;

use crate::config::RedisConfig;
use crate::entry;
use crate::keys::Keys;

const APPEND: &str = r"
local stream, meta, dedup, retained, order, costs = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6]
local maxlen, max_bytes = ARGV[1], tonumber(ARGV[2])
local ttl_ms, dedup_ms = tonumber(ARGV[3]), tonumber(ARGV[4])
local retained_values, retained_max_bytes = tonumber(ARGV[5]), tonumber(ARGV[6])
if dedup_ms > 0 and not redis.call('SET', dedup, '1', 'NX', 'PX', dedup_ms) then
  return {{'d'}}
end
local seq = tonumber(redis.call('HGET', meta, 'seq') or '0')
local total = tonumber(redis.call('HGET', meta, 'bytes') or '0')
-- One group per publish request: its idempotency key is KEYS[6 + g]; its arguments are the
-- key's lifetime, its event count, their total cost, their JSON one per line, and how many of
-- them set or clear retained values, five arguments each.
local answers, fresh, lines, count, cost, i = {}, {}, {}, 0, 0, 7
-- A key repeated within this call is answered the first group's ids, as if it were set.
local claimed, repeats = {}, {}
for g = 1, #KEYS - 6 do
  local once_ms = tonumber(ARGV[i])
  local prior = once_ms > 0 and redis.call('GET', KEYS[6 + g])
  local retains = tonumber(ARGV[i + 4])
  if once_ms > 0 and not prior and claimed[KEYS[6 + g]] then
    repeats[#repeats + 1] = {g = g, of = claimed[KEYS[6 + g]]}
  elseif prior then
    local answer = {'r'}
    for token in string.gmatch(prior, '[^ ]+') do answer[#answer + 1] = token end
    answers[g] = answer
  else
    fresh[#fresh + 1] = {g = g, first = count, count = tonumber(ARGV[i + 1]), at = i}
    if once_ms > 0 then claimed[KEYS[6 + g]] = g end
    count = count + tonumber(ARGV[i + 1])
    cost = cost + tonumber(ARGV[i + 2])
    lines[#lines + 1] = ARGV[i + 3]
  end
  i = i + 5 + 5 * retains
end
if count > 0 then
  -- The entry's id is its last event's: the events are numbered up to it within one
  -- millisecond, after the newest id the stream ever generated.
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local function after(last)
    local ms, sq = string.match(last or '0-0', '^(%d+)-(%d+)$')
    ms, sq = tonumber(ms or '0'), tonumber(sq or '0')
    if now_ms > ms then return now_ms, 0 end
    if sq + count >= 9007199254740992 then return ms + 1, 0 end
    return ms, sq + 1
  end
  local ms, first = after(redis.call('HGET', meta, 'last'))
  local fields = {'n', string.format('%d', seq + count), 'c', string.format('%d', total + cost)}
  local field = count == 1 and 'event' or 'events'
  local function append()
    return redis.pcall('XADD', stream, 'MAXLEN', '~', maxlen,
      string.format('%d-%d', ms, first + count - 1), field, table.concat(lines, '\n'),
      fields[1], fields[2], fields[3], fields[4])
  end
  local added = append()
  if type(added) == 'table' and added.err then
    -- Someone else appended (an older Herald): go on after the stream's own newest id.
    local info = redis.call('XINFO', 'STREAM', stream)
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then ms, first = after(info[j + 1]) end
    end
    added = append()
    if type(added) == 'table' and added.err then return redis.error_reply(added.err) end
  end
  redis.call('HSET', meta, 'last', added)
  local rbytes = tonumber(redis.call('HGET', meta, 'retained_bytes') or '0')
  local function forget(slot)
    local old = redis.call('HGET', retained, slot)
    if old then
      rbytes = rbytes - tonumber(string.match(old, '^[^\n]*\n([0-9]+)\n'))
      redis.call('HDEL', retained, slot)
      redis.call('ZREM', order, slot)
    end
  end
  for _, group in ipairs(fresh) do
    local start = first + group.first
    local ids = string.format('%d-%d', ms, start)
    if group.count > 1 then ids = ids .. '+' .. group.count end
    if tonumber(ARGV[group.at]) > 0 then
      redis.call('SET', KEYS[6 + group.g], ids, 'PX', tonumber(ARGV[group.at]))
    end
    answers[group.g] = {'n', ids}
    local r = group.at + 5
    for _ = 1, tonumber(ARGV[group.at + 4]) do
      local offset, event_cost, mode = tonumber(ARGV[r]), tonumber(ARGV[r + 1]), ARGV[r + 2]
      local id = string.format('%d-%d', ms, start + offset)
      local event_seq = seq + group.first + offset + 1
      for slot in string.gmatch(ARGV[r + 3], '[^\n]+') do
        forget(slot)
        if mode == 'k' then
          local slot_cost = event_cost + 3 * #slot + 160
          redis.call('HSET', retained, slot, id .. '\n' .. slot_cost .. '\n' .. ARGV[r + 4])
          redis.call('ZADD', order, event_seq, slot)
          rbytes = rbytes + slot_cost
        end
      end
      r = r + 5
    end
  end
  for _, repeat_of in ipairs(repeats) do
    answers[repeat_of.g] = {'r', answers[repeat_of.of][2]}
  end
  while redis.call('ZCARD', order) > 1 and
      (redis.call('ZCARD', order) > retained_values or rbytes > retained_max_bytes) do
    forget(redis.call('ZRANGE', order, 0, 0)[1])
  end
  seq, total = seq + count, total + cost
  redis.call('HSET', meta, 'seq', fields[2], 'bytes', fields[4],
    'retained_bytes', string.format('%d', rbytes))
  -- The byte bound: `costs` scores each entry with its running total, so the first entry to
  -- keep is one lookup away. Only a known entry at or below the floor makes trimming safe.
  redis.call('ZADD', costs, fields[4], added)
  local floor = string.format('%d', total - max_bytes)
  if total > max_bytes and #redis.call('ZRANGEBYSCORE', costs, '-inf', floor, 'LIMIT', 0, 1) > 0 then
    local keep = redis.call('ZRANGEBYSCORE', costs, '(' .. floor, '+inf', 'LIMIT', 0, 1)[1]
    redis.call('XTRIM', stream, 'MINID', keep)
    redis.call('ZREMRANGEBYSCORE', costs, '-inf', floor)
  end
  local indexed = redis.call('ZCARD', costs)
  if indexed > tonumber(maxlen) + 64 then
    -- Entries MAXLEN trimmed: forgetting the oldest scores only ever trims less.
    redis.call('ZPOPMIN', costs, indexed - tonumber(maxlen))
  end
  if ttl_ms > 0 then
    local oldest_ms = now_ms - ttl_ms
    if oldest_ms > 0 then
      redis.call('XTRIM', stream, 'MINID', string.format('%d', oldest_ms))
      for _ = 1, 64 do
        local head = redis.call('ZRANGE', costs, 0, 0)[1]
        if not head or tonumber(string.match(head, '^(%d+)')) >= oldest_ms then break end
        redis.call('ZREM', costs, head)
      end
    end
  end
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
    /// The events' JSON, one per line ([`entry::encode_into`]).
    lines: Vec<u8>,
    count: usize,
    cost: usize,
    /// The events that set or clear retained values.
    retains: Vec<RetainChange>,
    once: Option<(String, u64)>,
}

/// An event of a group that keeps or clears retained values: the script stores its JSON by
/// its id in each of its slots.
struct RetainChange {
    offset: usize,
    cost: usize,
    /// `"k"` (keep as the retained value) or `"c"` (clear it).
    mode: &'static str,
    slots: String,
    entry: String,
}

impl Group {
    /// `batch`, each event accepted at `accepted_us`, once per idempotency key `once`.
    pub fn new(batch: &[Publication], accepted_us: u64, once: Option<(String, u64)>) -> Self {
        let mut lines = Vec::with_capacity(batch.len() * 128);
        let mut retains = Vec::new();
        let mut cost = 0;
        for (offset, publication) in batch.iter().enumerate() {
            if offset > 0 {
                lines.push(b'\n');
            }
            let start = lines.len();
            entry::encode_into(&mut lines, publication, accepted_us);
            let event_cost = publication.history_cost();
            cost += event_cost;
            let mode = match publication.retain {
                Retain::No => continue,
                Retain::Keep => "k",
                Retain::Clear => "c",
            };
            retains.push(RetainChange {
                offset,
                cost: event_cost,
                mode,
                slots: publication_slots(publication),
                entry: String::from_utf8_lossy(&lines[start..]).into_owned(),
            });
        }
        Self {
            lines,
            count: batch.len(),
            cost,
            retains,
            once,
        }
    }

    /// Bytes this group adds to a call, roughly: what bounds the size of one call.
    pub fn bytes(&self) -> usize {
        let retains: usize = self
            .retains
            .iter()
            .map(|r| r.entry.len() + r.slots.len() + 32)
            .sum();
        self.lines.len() + retains + 32
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
            .key(&self.keys.costs)
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
                .arg(group.count)
                .arg(group.cost)
                .arg(&group.lines[..])
                .arg(group.retains.len());
            for change in &group.retains {
                call.arg(change.offset)
                    .arg(change.cost)
                    .arg(change.mode)
                    .arg(&change.slots)
                    .arg(&change.entry);
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
    /// Appended: the new events' ids.
    New(Vec<EventId>),
    /// The idempotency key was seen before: the first attempt's ids; nothing appended.
    Repeated(Vec<EventId>),
    /// The ingress dedup key existed: another node appended the message.
    Duplicate,
}

impl Appended {
    /// Reads the script's answer: per group, a marker (`n`, `r` or `d`), then ids. An answer
    /// with another number of groups than `groups` is an error.
    pub fn from_reply(reply: Vec<Vec<String>>, groups: usize) -> Result<Vec<Self>, String> {
        let answers: Vec<Self> = reply
            .into_iter()
            .map(|group| {
                let mut parts = group.iter();
                match parts.next().map(String::as_str) {
                    Some("n") => Ok(Self::New(ids(parts)?)),
                    Some("r") => Ok(Self::Repeated(ids(parts)?)),
                    Some("d") => Ok(Self::Duplicate),
                    Some(other) => Err(format!("the append script answered {other:?}")),
                    None => Err("the append script answered nothing".to_owned()),
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

/// Event ids from the script's tokens: `ms-seq`, or `ms-seq+k` for `k` consecutive ones (the
/// events of one entry share a millisecond; Herald before one entry per call wrote each id).
fn ids<'a>(tokens: impl Iterator<Item = &'a String>) -> Result<Vec<EventId>, String> {
    let mut ids = Vec::new();
    for token in tokens {
        let bad = || format!("the append script answered a bad id {token:?}");
        let (first, count) = match token.split_once('+') {
            Some((first, count)) => (first, count.parse::<u64>().map_err(|_| bad())?),
            None => (token.as_str(), 1),
        };
        let first: EventId = first.parse().map_err(|_| bad())?;
        if count == 0 || first.seq.checked_add(count - 1).is_none() {
            return Err(bad());
        }
        ids.extend((0..count).map(|i| EventId::new(first.ms, first.seq + i)));
    }
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_tokens_expand_to_consecutive_ids() {
        let tokens = ["5-3+3".to_owned(), "6-0".to_owned()];
        assert_eq!(
            ids(tokens.iter()).unwrap(),
            [
                EventId::new(5, 3),
                EventId::new(5, 4),
                EventId::new(5, 5),
                EventId::new(6, 0)
            ]
        );
        for bad in ["5-3+0", "5-3+x", "x", "5-18446744073709551615+2"] {
            assert!(ids([bad.to_owned()].iter()).is_err(), "{bad}");
        }
    }
}
