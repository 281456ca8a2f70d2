//! An event as the hub routes it: id assigned, targets resolved, bytes encoded once.
//!
//! The broker turns a [`Publication`] into a [`HubEvent`] after assigning its id. Encoding happens
//! here, exactly once per event per node; every recipient's queue holds a reference to the same
//! [`Frame`], so a broadcast to 10k streams costs 10k reference-count increments, not 10k encodes.

use std::sync::Arc;

use bytes::Bytes;

use crate::id::EventId;
use crate::labels::Labels;
use crate::publication::{Publication, Retain};
use crate::topic::Pattern;

/// Encoded bytes ready for the socket, plus when the event was accepted (for latency metrics).
#[derive(Debug)]
pub struct Frame {
    pub bytes: Bytes,
    /// Microseconds since the Unix epoch when the event was accepted; `None` for hub-generated
    /// frames (heartbeats, replays) that must not count as deliveries.
    pub published_us: Option<u64>,
}

impl Frame {
    pub fn control(bytes: impl Into<Bytes>) -> Arc<Frame> {
        Arc::new(Frame {
            bytes: bytes.into(),
            published_us: None,
        })
    }
}

/// Who receives an event. Empty users and topics mean broadcast.
#[derive(Debug, Clone, Default)]
pub struct Targets {
    pub users: Box<[Arc<str>]>,
    pub topics: Box<[Box<str>]>,
}

impl Targets {
    pub fn is_broadcast(&self) -> bool {
        self.users.is_empty() && self.topics.is_empty()
    }

    /// Would a stream of `user` subscribed to `patterns` receive an event with these targets?
    pub fn reaches(&self, user: Option<&str>, patterns: &[Pattern]) -> bool {
        if self.is_broadcast() {
            return true;
        }
        if let Some(user) = user {
            if self.users.iter().any(|u| &**u == user) {
                return true;
            }
        }
        self.topics
            .iter()
            .any(|topic| patterns.iter().any(|p| p.matches(topic)))
    }
}

/// An event with its id, ready to route.
#[derive(Debug)]
pub struct HubEvent {
    pub id: EventId,
    pub event: Option<Box<str>>,
    pub targets: Targets,
    pub frame: Arc<Frame>,
    /// What keeping it in history costs, in bytes ([`Publication::history_cost`]).
    pub cost: usize,
    /// What it does to retained values; a `Clear` reaches no stream.
    pub retain: Retain,
    /// A labelled event reaches filtered streams only ([`crate::labels`]). Boxed: most events
    /// have none, and every event in history pays for the field.
    pub labels: Option<Box<Labels>>,
    /// The `id:` on the wire when it is not the hub's (labelled events only).
    pub wire_id: Option<Box<str>>,
}

impl HubEvent {
    /// Does this event go to streams at all (a retained-value clear does not)?
    pub fn is_delivered(&self) -> bool {
        self.retain != Retain::Clear
    }

    /// Builds the routed form of a *validated* publication.
    ///
    /// The publication must have passed [`Publication::validate`]; an event name that would make
    /// the encoder fail is replaced by no name rather than panicking (it cannot happen in practice).
    pub fn new(id: EventId, publication: &Publication, published_us: u64) -> Self {
        let id_text = id.text();
        let mut event = herald_proto::EventRef {
            event: publication.event.as_deref(),
            data: &publication.data,
            id: Some(publication.wire_id.as_deref().unwrap_or(&id_text)),
            retry: publication.retry,
        };
        let mut bytes = Vec::with_capacity(event.size_hint());
        let cost = if event.encode_into(&mut bytes).is_ok() {
            publication.history_cost_of_frame(bytes.len(), id_text.len())
        } else {
            event.event = None;
            let _ = event.encode_into(&mut bytes);
            publication.history_cost()
        };
        Self {
            id,
            cost,
            retain: publication.retain,
            labels: publication.labels.clone().map(Box::new),
            wire_id: publication.wire_id.as_deref().map(Into::into),
            event: publication.event.as_deref().map(Into::into),
            targets: Targets {
                users: publication
                    .users
                    .iter()
                    .map(|u| Arc::from(u.as_str()))
                    .collect(),
                topics: publication
                    .topics
                    .iter()
                    .map(|t| Box::from(t.as_str()))
                    .collect(),
            },
            frame: Arc::new(Frame {
                bytes: Bytes::from(bytes),
                published_us: Some(published_us),
            }),
        }
    }
}
