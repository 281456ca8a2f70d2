//! The hub's bounded log of recent events, for resume.
//!
//! Ids in the log increase strictly. `floor` is the id just before the oldest retained event:
//! a client whose `Last-Event-ID` is at or after the floor can be replayed exactly; one before it
//! missed events that were evicted.

use std::collections::VecDeque;
use std::sync::Arc;

use crate::event::HubEvent;
use crate::id::EventId;

pub(crate) struct History {
    events: VecDeque<Arc<HubEvent>>,
    capacity: usize,
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
    pub fn new(capacity: usize, start: EventId) -> Self {
        Self {
            events: VecDeque::with_capacity(capacity.min(4096)),
            capacity,
            floor: start,
            last: start,
        }
    }

    pub fn push(&mut self, event: Arc<HubEvent>) {
        self.last = event.id;
        if self.capacity == 0 {
            self.floor = event.id;
            return;
        }
        if self.events.len() == self.capacity {
            if let Some(evicted) = self.events.pop_front() {
                self.floor = evicted.id;
            }
        }
        self.events.push_back(event);
    }

    /// Forgets every event and starts the sequence again after `start`: the events between the
    /// last one seen and `start` are lost, so resume points before `start` are too old.
    pub fn restart(&mut self, start: EventId) {
        self.events.clear();
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
        Arc::new(HubEvent::new(
            EventId::new(ms, 0),
            &Publication::broadcast("e", "d"),
            0,
        ))
    }

    fn ids(after: After<'_>) -> Option<Vec<u64>> {
        match after {
            After::Events(it) => Some(it.map(|e| e.id.ms).collect()),
            _ => None,
        }
    }

    #[test]
    fn replays_exactly_what_follows_and_evicts_the_oldest() {
        let mut h = History::new(3, EventId::new(10, 0));
        assert_eq!(ids(h.after(EventId::new(10, 0))), Some(vec![]));
        for ms in [11, 12, 13] {
            h.push(event(ms));
        }
        assert_eq!(ids(h.after(EventId::new(10, 0))), Some(vec![11, 12, 13]));
        assert_eq!(ids(h.after(EventId::new(12, 0))), Some(vec![13]));
        assert_eq!(ids(h.after(EventId::new(13, 0))), Some(vec![]));
        h.push(event(14));
        assert_eq!(h.floor(), EventId::new(11, 0));
        assert!(matches!(h.after(EventId::new(10, 0)), After::TooOld));
        assert_eq!(ids(h.after(EventId::new(11, 0))), Some(vec![12, 13, 14]));
        assert!(matches!(h.after(EventId::new(12, 5)), After::Unknown));
        assert!(matches!(h.after(EventId::new(99, 0)), After::Unknown));
    }

    #[test]
    fn restart_makes_older_resume_points_too_old() {
        let mut h = History::new(3, EventId::new(10, 0));
        h.push(event(11));
        h.restart(EventId::new(20, 0));
        assert!(matches!(h.after(EventId::new(11, 0)), After::TooOld));
        assert_eq!(ids(h.after(EventId::new(20, 0))), Some(vec![]));
        h.push(event(21));
        assert_eq!(ids(h.after(EventId::new(20, 0))), Some(vec![21]));
    }

    #[test]
    fn zero_capacity_keeps_only_the_position() {
        let mut h = History::new(0, EventId::new(1, 0));
        h.push(event(2));
        assert_eq!(h.last(), EventId::new(2, 0));
        assert_eq!(ids(h.after(EventId::new(2, 0))), Some(vec![]));
        assert!(matches!(h.after(EventId::new(1, 0)), After::TooOld));
    }
}
