//! Presence: how many streams a user has open, and who is subscribed to a topic, right now.
//!
//! A node answers from its registry ([`Hub::presence`]): no bookkeeping on the hot path, the
//! registry already knows. A broker that spans nodes adds the other nodes' answers
//! ([`crate::broker::Broker::presence`]); the Redis broker asks every live node at query time.

use std::collections::BTreeSet;

use crate::hub::Hub;

/// Most users listed in a topic's answer.
pub const MAX_USERS: usize = 1000;

/// What is asked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceQuery {
    /// The streams of one user.
    User(String),
    /// The streams subscribed to a topic (by an exact subscription or a matching pattern),
    /// and their users.
    Topic(String),
}

/// The answer, from one node or summed over a cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceAnswer {
    pub streams: usize,
    /// For a topic: its users (at most [`MAX_USERS`], sorted); empty for a user.
    pub users: BTreeSet<String>,
}

impl PresenceAnswer {
    /// Adds another node's answer.
    pub fn add(&mut self, other: PresenceAnswer) {
        self.streams += other.streams;
        for user in other.users {
            if self.users.len() >= MAX_USERS {
                break;
            }
            self.users.insert(user);
        }
    }
}

impl Hub {
    /// This node's answer.
    pub fn presence(&self, query: &PresenceQuery) -> PresenceAnswer {
        let registry = self.registry.read();
        match query {
            PresenceQuery::User(user) => PresenceAnswer {
                streams: registry.streams_of(user),
                users: BTreeSet::new(),
            },
            PresenceQuery::Topic(topic) => {
                let mut answer = PresenceAnswer::default();
                registry.for_each_subscriber(topic, |conn| {
                    answer.streams += 1;
                    if let Some(user) = &conn.user {
                        if answer.users.len() < MAX_USERS {
                            answer.users.insert(user.to_string());
                        }
                    }
                });
                answer
            }
        }
    }
}
