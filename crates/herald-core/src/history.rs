//! The hub's bounded log of recent events, for resume.
//!
//! Ids in the log increase strictly. `floor` is the id just before the oldest retained event:
//! a client whose `Last-Event-ID` is at or after the floor can be replayed exactly; one before it
//! missed events that were evicted.
//!
//! Three bounds, and an event leaves as soon as any of them is exceeded: a number of events, a
//! number of bytes (what each event costs in memory, [`HubEvent::cost`]: its frame, its targets
//! and their bookkeeping) and an age. The newest event always stays, so the memory held never
//! exceeds the byte bound by more than that one event.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::HubEvent;
use crate::id::EventId;

/// How much history to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryBounds {
    pub events: usize,
    pub bytes: usize,
    /// Events whose id is older than this (milliseconds) leave; `None`: no age bound.
    pub ttl_ms: Option<u64>,
}

pub(crate) struct History {
    events: VecDeque<Arc<HubEvent>>,
    bounds: HistoryBounds,
    /// Sum of the retained events' costs.
    bytes: usize,
    floor: EventId,
    last: EventId,
}

/// What the log can say about "everything after id X".
pub(crate) enum After<'a> {
    /// These are all the events after X (possibly none).
    Events(std::collections::vec_deque::Iter<'a, Arc<HubEvent>>),
    /// X is older than the floor: events after it were evicted.
    TooOld,
    /// X is newer than anything seen, or in range but never assigned.
    Unknown,
}

impl History {
    /// An empty log whose sequence starts at `start` (ids before it are unknown to this log).
    pub fn new(bounds: HistoryBounds, start: EventId) -> Self {
        Self {
            events: VecDeque::with_capacity(bounds.events.min(4096)),
            bounds,
            bytes: 0,
            floor: start,
            last: start,
        }
    }

    /// Appends `event` (dispatched at `now_ms`) and evicts what the bounds no longer allow.
    pub fn push(&mut self, event: Arc<HubEvent>, now_ms: u64) {
        self.last = event.id;
        if self.bounds.events == 0 || self.bounds.bytes == 0 {
            self.floor = event.id;
            return;
        }
        self.bytes += event.cost;
        self.events.push_back(event);
        while self.events.len() > self.bounds.events
            || (self.bytes > self.bounds.bytes && self.events.len() > 1)
        {
            self.evict_oldest();
        }
        self.expire(now_ms);
    }

    /// Evicts events older than the age bound.
    pub fn expire(&mut self, now_ms: u64) {
        let Some(ttl) = self.bounds.ttl_ms else {
            return;
        };
        let oldest_allowed = now_ms.saturating_sub(ttl);
        while self
            .events
            .front()
            .is_some_and(|e| e.id.ms < oldest_allowed)
        {
            self.evict_oldest();
        }
    }

    fn evict_oldest(&mut self) {
        if let Some(evicted) = self.events.pop_front() {
            self.bytes -= evicted.cost;
            self.floor = evicted.id;
        }
    }

    /// Bytes held by retained events.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Retained events.
    pub fn len(&self) -> usize {
        self.events.len()
    }

    /// Forgets every event and starts the sequence again after `start`: the events between the
    /// last one seen and `start` are lost, so resume points before `start` are too old.
    pub fn restart(&mut self, start: EventId) {
        self.events.clear();
        self.bytes = 0;
        self.floor = start;
        self.last = start;
    }

    /// The id of the newest event seen (or the start id).
    pub fn last(&self) -> EventId {
        self.last
    }

    pub fn floor(&self) -> EventId {
        self.floor
    }

    /// The hub id of the newest event in the window whose wire id is `wire_id`.
    pub fn find_wire_id(&self, wire_id: &str) -> Option<EventId> {
        self.events
            .iter()
            .rev()
            .find(|e| e.wire_id.as_deref() == Some(wire_id))
            .map(|e| e.id)
    }

    pub fn after(&self, id: EventId) -> After<'_> {
        if id < self.floor {
            return After::TooOld;
        }
        if id > self.last {
            return After::Unknown;
        }
        if id == self.floor {
            return After::Events(self.events.range(..));
        }
        match self.events.binary_search_by(|e| e.id.cmp(&id)) {
            Ok(index) => After::Events(self.events.range(index + 1..)),
            Err(_) => After::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::Publication;

    fn event(ms: u64) -> Arc<HubEvent> {
        sized(ms, "d")
    }

    fn sized(ms: u64, data: &str) -> Arc<HubEvent> {
        Arc::new(HubEvent::new(
            EventId::new(ms, 0),
            &Publication::broadcast("e", data),
            0,
        ))
    }

    fn count(events: usize) -> HistoryBounds {
        HistoryBounds {
            events,
            bytes: usize::MAX,
            ttl_ms: None,
        }
    }

    fn ids(after: After<'_>) -> Option<Vec<u64>> {
        match after {
            After::Events(it) => Some(it.map(|e| e.id.ms).collect()),
            _ => None,
        }
    }

    #[test]
    fn replays_exactly_what_follows_and_evicts_the_oldest() {
        let mut h = History::new(count(3), EventId::new(10, 0));
        assert_eq!(ids(h.after(EventId::new(10, 0))), Some(vec![]));
        for ms in [11, 12, 13] {
            h.push(event(ms), ms);
        }
        assert_eq!(ids(h.after(EventId::new(10, 0))), Some(vec![11, 12, 13]));
        assert_eq!(ids(h.after(EventId::new(12, 0))), Some(vec![13]));
        assert_eq!(ids(h.after(EventId::new(13, 0))), Some(vec![]));
        h.push(event(14), 14);
        assert_eq!(h.floor(), EventId::new(11, 0));
        assert!(matches!(h.after(EventId::new(10, 0)), After::TooOld));
        assert_eq!(ids(h.after(EventId::new(11, 0))), Some(vec![12, 13, 14]));
        assert!(matches!(h.after(EventId::new(12, 5)), After::Unknown));
        assert!(matches!(h.after(EventId::new(99, 0)), After::Unknown));
    }

    #[test]
    fn restart_makes_older_resume_points_too_old() {
        let mut h = History::new(count(3), EventId::new(10, 0));
        h.push(event(11), 11);
        h.restart(EventId::new(20, 0));
        assert!(matches!(h.after(EventId::new(11, 0)), After::TooOld));
        assert_eq!(ids(h.after(EventId::new(20, 0))), Some(vec![]));
        h.push(event(21), 21);
        assert_eq!(ids(h.after(EventId::new(20, 0))), Some(vec![21]));
    }

    #[test]
    fn zero_capacity_keeps_only_the_position() {
        let mut h = History::new(count(0), EventId::new(1, 0));
        h.push(event(2), 2);
        assert_eq!(h.last(), EventId::new(2, 0));
        assert_eq!(ids(h.after(EventId::new(2, 0))), Some(vec![]));
        assert!(matches!(h.after(EventId::new(1, 0)), After::TooOld));
    }

    #[test]
    fn bytes_bound_keeps_at_most_one_event_over_it() {
        let one = sized(1, &"x".repeat(1000)).cost;
        let mut h = History::new(
            HistoryBounds {
                events: 100,
                bytes: 3 * one,
                ttl_ms: None,
            },
            EventId::new(0, 0),
        );
        for ms in 1..=10 {
            h.push(sized(ms, &"x".repeat(1000)), ms);
            assert!(h.bytes() <= 3 * one);
        }
        assert_eq!(ids(h.after(h.floor())), Some(vec![8, 9, 10]));
        // One event larger than the whole bound stays alone (the newest always stays).
        h.push(sized(11, &"x".repeat(10_000)), 11);
        assert_eq!(ids(h.after(h.floor())), Some(vec![11]));
        assert!(matches!(h.after(EventId::new(10, 0)), After::Events(_)));
        assert!(matches!(h.after(EventId::new(9, 0)), After::TooOld));
    }

    #[test]
    fn age_bound_evicts_old_events_on_push_and_on_expire() {
        let mut h = History::new(
            HistoryBounds {
                events: 100,
                bytes: usize::MAX,
                ttl_ms: Some(1000),
            },
            EventId::new(0, 0),
        );
        h.push(event(1000), 1000);
        h.push(event(1500), 1500);
        h.push(event(2200), 2200);
        assert_eq!(ids(h.after(h.floor())), Some(vec![1500, 2200]));
        h.expire(2600);
        assert_eq!(ids(h.after(h.floor())), Some(vec![2200]));
        h.expire(10_000);
        assert_eq!(ids(h.after(h.floor())), Some(vec![]));
        assert_eq!(h.bytes(), 0);
        assert!(matches!(h.after(EventId::new(1500, 0)), After::TooOld));
    }

    #[test]
    fn targets_count_toward_the_cost() {
        let plain = sized(1, "d").cost;
        let mut many = Publication::broadcast("e", "d");
        many.users = (0..1000).map(|n| format!("user-{n}")).collect();
        let targeted = HubEvent::new(EventId::new(1, 0), &many, 0).cost;
        assert!(targeted > plain + 1000 * 32, "{targeted} vs {plain}");
    }
}
