//! History pages: what a node reads from the stream to replay a resume point older than its
//! in-memory window.
//!
//! An entry holds one append call's events, from one to thousands, so a page cannot be a fixed
//! number of entries: 32 entries of 500 events each are 16,000 events for a page of 512, and
//! the next page would read most of them again. The page script walks the stream from `after`
//! and stops once the entries it took hold the events asked for, counting them from the ids
//! alone (an entry's events are numbered up to its id within one millisecond, from 0 in a new
//! one, so `ms-s` after `ms-p` holds `s - p` events and after an earlier millisecond `s + 1`;
//! every entry counts as at least one, so a page is never more entries than events asked for).
//! The page returns every event of the entries it read: at most `limit` events plus the rest
//! of the last entry (one append call, about a MiB at most), and each entry is read from Redis
//! about once however long the replay.
//!
//! The same call reads the stream's totals and `XINFO STREAM`, atomically with the page, so a
//! trimmed range is reported (the client gets `herald.missed`) instead of being replayed with a
//! hole, and the resume point is checked against the history bounds: resume reaches back
//! exactly `--history` events, `--history-bytes` bytes and `--history-ttl`, on every node
//! alike, because the entries carry their sequence number and the running cost total.

use std::sync::Arc;
use std::time::Duration;

use herald_core::broker::{BrokerError, HubEvent};
use herald_core::{unix_ms, EventId};
use redis::streams::StreamRangeReply;
use redis::{Script, Value};

use crate::broker::{unavailable, Horizon};
use crate::entry;
use crate::keys::Keys;
use crate::metrics as m;
use crate::shared_connection::{Request, SharedConnection};
use crate::stream_info::StreamInfo;

/// KEYS: stream, meta. ARGV: after, upto, how many events. Answers `false` if the stream does
/// not exist, else {totals, XINFO STREAM, the `n` and `c` of the entry ending at `after` (if one
/// does), the page}.
const PAGE: &str = r"
local stream, meta = KEYS[1], KEYS[2]
local after, upto, wanted = ARGV[1], ARGV[2], tonumber(ARGV[3])
if redis.call('EXISTS', stream) == 0 then return false end
local totals = redis.call('HMGET', meta, 'seq', 'bytes')
local info = redis.call('XINFO', 'STREAM', stream)
local at = {}
for _, entry in ipairs(redis.call('XRANGE', stream, after, after)) do
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'n' then at[1] = fields[i + 1] elseif fields[i] == 'c' then at[2] = fields[i + 1] end
  end
end
local function split(id)
  local ms, seq = string.match(id, '^(%d+)-(%d+)$')
  return tonumber(ms or '0'), tonumber(seq or '0')
end
local page, counted, reached = {}, 0, false
local prev_ms, prev_seq = split(after)
local from = '(' .. after
while counted < wanted do
  local chunk = redis.call('XRANGE', stream, from, upto, 'COUNT', 32)
  local taken = 0
  for _, entry in ipairs(chunk) do
    page[#page + 1] = entry
    taken = taken + 1
    local ms, seq = split(entry[1])
    local held = ms == prev_ms and seq - prev_seq or seq + 1
    counted = counted + math.max(1, held)
    prev_ms, prev_seq = ms, seq
    if counted >= wanted then break end
  end
  -- Every entry up to `upto` taken: the page reaches it.
  if taken == #chunk and #chunk < 32 then reached = true break end
  from = '(' .. chunk[taken][1]
end
if reached then
  -- An entry ends at its last event: the one after `upto` may begin before it. (Only when
  -- nothing lies between the page and `upto`, or the page would skip it.)
  for _, entry in ipairs(redis.call('XRANGE', stream, '(' .. upto, '+', 'COUNT', 1)) do
    page[#page + 1] = entry
  end
end
return {totals, info, at, page}
";

/// Reads history pages for one broker.
pub(crate) struct HistoryReader {
    script: Script,
    keys: Keys,
    horizon: Horizon,
}

impl HistoryReader {
    pub fn new(keys: &Keys, horizon: Horizon) -> Self {
        Self {
            script: Script::new(PAGE),
            keys: keys.clone(),
            horizon,
        }
    }

    /// About `limit` events with ids in `(after, upto]`, oldest first (the rest of the last
    /// entry read comes too); `None` if what follows `after` is trimmed or beyond the bounds.
    pub async fn page(
        &self,
        conn: &SharedConnection,
        after: EventId,
        upto: EventId,
        limit: usize,
    ) -> Result<Option<Vec<Arc<HubEvent>>>, BrokerError> {
        let mut call = self.script.key(&self.keys.stream);
        call.key(&self.keys.meta)
            .arg(after.to_string())
            .arg(upto.to_string())
            .arg(limit.max(1));
        type Reply = (
            (Option<u64>, Option<u64>),
            Value,
            Vec<u64>,
            StreamRangeReply,
        );
        let result: redis::RedisResult<Option<Reply>> =
            conn.call(Request::Script(&call), Duration::ZERO).await?;
        let (totals, info, at, page) = match result {
            Ok(Some(reply)) => reply,
            Ok(None) => return Ok(None),
            Err(error) => return Err(unavailable(error)),
        };
        let info = StreamInfo::from_reply(&info).map_err(BrokerError)?;
        if !info.retains_everything_after(after) {
            return Ok(None);
        }
        // The sequence number and total of the entry ending at `after`, if `after` ends one.
        let mut anchor = match at[..] {
            [seq, total] => Some((seq, total)),
            _ => None,
        };
        let mut events = Vec::with_capacity(limit.min(page.ids.len() * 4));
        for raw in &page.ids {
            let decoded = match entry::decode(&raw.id, &raw.map) {
                Ok(decoded) => decoded,
                Err(error) => {
                    metrics::counter!(m::MALFORMED_ENTRIES).increment(1);
                    tracing::warn!(%error, id = %raw.id, "skipping a stream entry that is not a Herald event");
                    continue;
                }
            };
            // The first entry may begin at or before `after`, the last may end after `upto`.
            for decoded in decoded
                .into_iter()
                .filter(|e| e.event.id > after && e.event.id <= upto)
            {
                if anchor.is_none() {
                    // `after` is not an entry's end: the first event after it tells where
                    // `after` stands.
                    anchor = decoded.seq.zip(decoded.total).map(|(seq, total)| {
                        (
                            seq.saturating_sub(1),
                            total.saturating_sub(decoded.event.cost as u64),
                        )
                    });
                }
                events.push(Arc::new(decoded.event));
            }
        }
        if !self.within_horizon(after, totals, anchor) {
            return Ok(None);
        }
        Ok(Some(events))
    }

    /// Is `after` within the history bounds, given the stream's totals now and the entry at
    /// `after` (or the first one after it)?
    fn within_horizon(
        &self,
        after: EventId,
        totals: (Option<u64>, Option<u64>),
        anchor: Option<(u64, u64)>,
    ) -> bool {
        if let Some(ttl) = self.horizon.ttl {
            if after.ms + (ttl.as_millis() as u64) < unix_ms() {
                return false;
            }
        }
        let Some((seq_at, total_at)) = anchor else {
            return true;
        };
        let (seq_now, total_now) = totals;
        seq_now.is_none_or(|now| now.saturating_sub(seq_at) <= self.horizon.events)
            && total_now.is_none_or(|now| now.saturating_sub(total_at) <= self.horizon.bytes)
    }
}
