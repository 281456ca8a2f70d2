//! Retained values: the latest event per target and event name, so that a page that opens shows
//! the current counter, score or state at once instead of after the next change.
//!
//! A publication with `retain: Keep` becomes the retained value of each of its *slots*: one per
//! target (each user, each topic, or everyone for a broadcast) and its event name. A new stream
//! that opens without a resume point first receives the retained values of its user, of every
//! topic its subscriptions match (patterns included) and of everyone, each event once, in id
//! order ([`Retained::for_stream`]); a resuming stream gets its replay instead. `retain: Clear`
//! forgets the slots (such an event reaches no stream).
//!
//! The store is bounded in values and bytes; past either bound the oldest values (by id, then by
//! slot name) leave first. The Redis broker keeps the same store in Redis with the same rule, so
//! every node, and a node that starts later, holds the same values ([`slot_field`] names a slot
//! the same way in both).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use crate::event::HubEvent;
use crate::id::EventId;
use crate::publication::Retain;
use crate::topic::{Pattern, Segment};

/// How many retained values, and bytes of them, a hub keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetainedLimits {
    pub values: usize,
    pub bytes: usize,
}

/// Most retained values one new stream receives (a `**` subscription on a big store would
/// otherwise receive the whole store).
pub const MAX_PER_STREAM: usize = 10_000;

/// The event name of an unnamed event's slot.
const UNNAMED: &str = "message";

/// Which target a slot belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotTarget<'a> {
    User(&'a str),
    Topic(&'a str),
    Everyone,
}

/// The name of a slot, as the Redis broker stores it: `u:<user>`, `t:<topic>` or `*`, then a
/// unit separator and the event name (neither names nor ids contain control characters).
pub fn slot_field(target: SlotTarget<'_>, event: Option<&str>) -> String {
    let name = event.unwrap_or(UNNAMED);
    match target {
        SlotTarget::User(user) => format!("u:{user}\u{1f}{name}"),
        SlotTarget::Topic(topic) => format!("t:{topic}\u{1f}{name}"),
        SlotTarget::Everyone => format!("*\u{1f}{name}"),
    }
}

/// The slots an event fills (or clears).
pub fn slots_of(event: &HubEvent) -> Vec<String> {
    let name = event.event.as_deref();
    if event.targets.is_broadcast() {
        return vec![slot_field(SlotTarget::Everyone, name)];
    }
    let users = event.targets.users.iter().map(|u| SlotTarget::User(u));
    let topics = event.targets.topics.iter().map(|t| SlotTarget::Topic(t));
    users.chain(topics).map(|t| slot_field(t, name)).collect()
}

/// What one slot costs: the event's cost in history (shared, but counted per slot: a value
/// retained for many targets counts for each), its name (kept three times) and its
/// bookkeeping. The Redis broker's append script computes the same figure.
pub fn slot_cost(field: &str, event_cost: usize) -> usize {
    event_cost + 3 * field.len() + 160
}

#[derive(Default)]
pub(crate) struct Retained {
    limits: Option<RetainedLimits>,
    slots: HashMap<String, (Arc<HubEvent>, usize)>,
    /// Eviction order: oldest event first, then slot name.
    order: BTreeSet<(EventId, String)>,
    /// Slot names by user, by topic (sorted, for pattern prefixes) and for everyone.
    users: HashMap<Box<str>, BTreeSet<String>>,
    topics: BTreeMap<Box<str>, BTreeSet<String>>,
    everyone: BTreeSet<String>,
    bytes: usize,
}

impl Retained {
    pub fn new(limits: RetainedLimits) -> Self {
        Self {
            limits: Some(limits),
            ..Self::default()
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Applies a dispatched event: keeps it in its slots, or clears them. Returns how many
    /// values the bounds evicted.
    pub fn apply(&mut self, event: &Arc<HubEvent>) -> usize {
        match event.retain {
            Retain::No => 0,
            Retain::Clear => {
                for field in slots_of(event) {
                    self.remove(&field);
                }
                0
            }
            Retain::Keep => {
                for field in slots_of(event) {
                    self.insert(field, event.clone());
                }
                self.evict()
            }
        }
    }

    /// Adds a value as it was stored elsewhere (a Redis broker loading the cluster's store).
    pub fn restore(&mut self, field: String, event: Arc<HubEvent>) {
        self.insert(field, event);
        self.evict();
    }

    fn insert(&mut self, field: String, event: Arc<HubEvent>) {
        self.remove(&field);
        let cost = slot_cost(&field, event.cost);
        self.bytes += cost;
        self.order.insert((event.id, field.clone()));
        match target_of(&field) {
            Some(SlotKey::User(user)) => {
                self.users
                    .entry(user.into())
                    .or_default()
                    .insert(field.clone());
            }
            Some(SlotKey::Topic(topic)) => {
                self.topics
                    .entry(topic.into())
                    .or_default()
                    .insert(field.clone());
            }
            Some(SlotKey::Everyone) => {
                self.everyone.insert(field.clone());
            }
            None => {}
        }
        self.slots.insert(field, (event, cost));
    }

    fn remove(&mut self, field: &str) {
        let Some((event, cost)) = self.slots.remove(field) else {
            return;
        };
        self.bytes -= cost;
        self.order.remove(&(event.id, field.to_owned()));
        match target_of(field) {
            Some(SlotKey::User(user)) => remove_from(&mut self.users, user, field),
            Some(SlotKey::Topic(topic)) => {
                if let Some(set) = self.topics.get_mut(topic) {
                    set.remove(field);
                    if set.is_empty() {
                        self.topics.remove(topic);
                    }
                }
            }
            Some(SlotKey::Everyone) => {
                self.everyone.remove(field);
            }
            None => {}
        }
    }

    /// Evicts the oldest values while a bound is exceeded (the newest always stays).
    fn evict(&mut self) -> usize {
        let Some(limits) = self.limits else {
            return 0;
        };
        let mut evicted = 0;
        while (self.slots.len() > limits.values || self.bytes > limits.bytes)
            && self.slots.len() > 1
        {
            let Some((_, field)) = self.order.first().cloned() else {
                break;
            };
            self.remove(&field);
            evicted += 1;
        }
        evicted
    }

    /// The retained values a new stream of `user` subscribed to `patterns` receives: each event
    /// once, in id order, at most [`MAX_PER_STREAM`].
    pub fn for_stream(&self, user: Option<&str>, patterns: &[Pattern]) -> Vec<Arc<HubEvent>> {
        let mut fields: Vec<&String> = Vec::new();
        if let Some(slots) = user.and_then(|u| self.users.get(u)) {
            fields.extend(slots);
        }
        fields.extend(&self.everyone);
        for pattern in patterns {
            if pattern.is_exact() {
                if let Some(slots) = self.topics.get(pattern.as_str()) {
                    fields.extend(slots);
                }
                continue;
            }
            let prefix = literal_prefix(pattern);
            let range = self
                .topics
                .range::<str, _>((Bound::Included(prefix.as_str()), Bound::Unbounded));
            for (topic, slots) in range {
                if !topic.starts_with(prefix.as_str()) || fields.len() > MAX_PER_STREAM * 4 {
                    break;
                }
                if pattern.matches(topic) {
                    fields.extend(slots);
                }
            }
        }
        let mut events: Vec<Arc<HubEvent>> = fields
            .into_iter()
            .filter_map(|field| self.slots.get(field).map(|(event, _)| event.clone()))
            .collect();
        events.sort_unstable_by_key(|e| e.id);
        events.dedup_by_key(|e| e.id);
        events.truncate(MAX_PER_STREAM);
        events
    }
}

enum SlotKey<'a> {
    User(&'a str),
    Topic(&'a str),
    Everyone,
}

fn target_of(field: &str) -> Option<SlotKey<'_>> {
    let (target, _) = field.split_once('\u{1f}')?;
    if target == "*" {
        return Some(SlotKey::Everyone);
    }
    match target.split_once(':')? {
        ("u", user) => Some(SlotKey::User(user)),
        ("t", topic) => Some(SlotKey::Topic(topic)),
        _ => None,
    }
}

fn remove_from(map: &mut HashMap<Box<str>, BTreeSet<String>>, key: &str, field: &str) {
    if let Some(set) = map.get_mut(key) {
        set.remove(field);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

/// The topics a pattern can match all start with this (its literal segments before the first
/// wildcard, each followed by `/`).
fn literal_prefix(pattern: &Pattern) -> String {
    let mut prefix = String::new();
    for segment in pattern.segments() {
        match segment {
            Segment::Literal(literal) => {
                prefix.push_str(literal);
                prefix.push('/');
            }
            Segment::Star | Segment::Globstar => break,
        }
    }
    prefix
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publication::Publication;

    fn event(ms: u64, publication: Publication) -> Arc<HubEvent> {
        let mut publication = publication;
        if publication.retain == Retain::No {
            publication.retain = Retain::Keep;
        }
        Arc::new(HubEvent::new(EventId::new(ms, 0), &publication, 0))
    }

    fn ids(events: &[Arc<HubEvent>]) -> Vec<u64> {
        events.iter().map(|e| e.id.ms).collect()
    }

    fn patterns(list: &[&str]) -> Vec<Pattern> {
        list.iter().map(|p| Pattern::parse(p).unwrap()).collect()
    }

    fn big() -> RetainedLimits {
        RetainedLimits {
            values: 1000,
            bytes: 1 << 20,
        }
    }

    #[test]
    fn the_latest_value_per_target_and_name_reaches_new_streams_in_id_order() {
        let mut store = Retained::new(big());
        store.apply(&event(1, Publication::to_topic("scores/1", "score", "1-0")));
        store.apply(&event(2, Publication::to_user("alice", "unread", "3")));
        store.apply(&event(3, Publication::to_topic("scores/1", "score", "2-0")));
        store.apply(&event(4, Publication::to_topic("scores/2", "score", "0-0")));
        store.apply(&event(5, Publication::broadcast("banner", "hello")));
        store.apply(&event(6, Publication::to_topic("news", "headline", "x")));
        assert_eq!(
            ids(&store.for_stream(Some("alice"), &patterns(&["scores/*"]))),
            vec![2, 3, 4, 5]
        );
        assert_eq!(
            ids(&store.for_stream(None, &patterns(&["scores/2"]))),
            vec![4, 5]
        );
        assert_eq!(
            ids(&store.for_stream(None, &patterns(&["**"]))),
            vec![3, 4, 5, 6]
        );
        assert_eq!(ids(&store.for_stream(Some("bob"), &[])), vec![5]);
    }

    #[test]
    fn an_event_in_several_slots_is_sent_once_and_a_clear_forgets() {
        let mut store = Retained::new(big());
        let mut both = Publication::to_user("alice", "state", "s");
        both.topics = vec!["room/1".into()];
        store.apply(&event(1, both));
        assert_eq!(
            ids(&store.for_stream(Some("alice"), &patterns(&["room/1"]))),
            vec![1]
        );
        let mut clear = Publication::to_topic("room/1", "state", "");
        clear.retain = Retain::Clear;
        store.apply(&event(2, clear));
        assert_eq!(
            ids(&store.for_stream(None, &patterns(&["room/1"]))),
            Vec::<u64>::new()
        );
        assert_eq!(ids(&store.for_stream(Some("alice"), &[])), vec![1]);
        assert_eq!(store.len(), 1);
    }

    #[test]
    fn the_oldest_values_leave_when_a_bound_is_exceeded() {
        let mut store = Retained::new(RetainedLimits {
            values: 3,
            bytes: usize::MAX,
        });
        for ms in 1..=5 {
            store.apply(&event(
                ms,
                Publication::to_topic(format!("t/{ms}"), "v", "x"),
            ));
        }
        assert_eq!(
            ids(&store.for_stream(None, &patterns(&["t/*"]))),
            vec![3, 4, 5]
        );
        let one = slot_cost(
            "t:t/1\u{1f}v",
            event(1, Publication::to_topic("t/1", "v", "x")).cost,
        );
        let mut small = Retained::new(RetainedLimits {
            values: 100,
            bytes: 2 * one,
        });
        for ms in 1..=5 {
            small.apply(&event(
                ms,
                Publication::to_topic(format!("t/{ms}"), "v", "x"),
            ));
            assert!(small.bytes() <= 2 * one);
        }
        assert_eq!(small.len(), 2);
    }
}
