//! A look inside a running hub, for the developer console and debugging.
//!
//! Who is connected (the busiest users and topics) and what was published recently. Taking a
//! snapshot walks every stream once under the registry's read lock, which publishing shares,
//! so it is cheap enough for a console that refreshes every second, but not for a hot path.

use std::collections::HashMap;
use std::sync::Arc;

use crate::event::HubEvent;
use crate::history::After;
use crate::hub::{Hub, HubStats};
use crate::id::EventId;

/// What [`Hub::snapshot`] sees.
#[derive(Debug, Clone)]
pub struct HubSnapshot {
    pub stats: HubStats,
    /// The users with the most open streams, busiest first: (user, streams).
    pub top_users: Vec<(String, usize)>,
    /// The topics and patterns with the most subscribed streams: (pattern, streams).
    pub top_topics: Vec<(String, usize)>,
    /// Anonymous streams (no user).
    pub anonymous: usize,
}

impl Hub {
    /// Counts plus the `top` busiest users and topics.
    pub fn snapshot(&self, top: usize) -> HubSnapshot {
        let stats = self.stats();
        let mut users: HashMap<&str, usize> = HashMap::new();
        let mut topics: HashMap<&str, usize> = HashMap::new();
        let mut anonymous = 0;
        let registry = self.registry.read();
        for conn in registry.all() {
            match &conn.user {
                Some(user) => *users.entry(user).or_default() += 1,
                None => anonymous += 1,
            }
            for pattern in conn.patterns.iter() {
                *topics.entry(pattern.as_str()).or_default() += 1;
            }
        }
        HubSnapshot {
            stats,
            top_users: busiest(users, top),
            top_topics: busiest(topics, top),
            anonymous,
        }
    }

    /// Up to `limit` of the newest retained events after `after` (all retained ones when
    /// `None`), oldest first. An `after` the history no longer holds gives the newest `limit`.
    pub fn recent_events(&self, after: Option<EventId>, limit: usize) -> Vec<Arc<HubEvent>> {
        let history = self.history.lock();
        let from = after.unwrap_or_else(|| history.floor());
        let events: Vec<Arc<HubEvent>> = match history.after(from) {
            After::Events(events) => events.cloned().collect(),
            After::TooOld => match history.after(history.floor()) {
                After::Events(events) => events.cloned().collect(),
                _ => Vec::new(),
            },
            After::Unknown => Vec::new(),
        };
        let skip = events.len().saturating_sub(limit);
        events.into_iter().skip(skip).collect()
    }
}

fn busiest(counts: HashMap<&str, usize>, top: usize) -> Vec<(String, usize)> {
    let mut list: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(name, n)| (name.to_owned(), n))
        .collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    list.truncate(top);
    list
}
