//! The broker: where events get their ids and from where they reach every node's hub.
//!
//! A broker accepts validated batches, assigns each event an id in one global order, stores it in
//! history and delivers it to the hub of every node by calling [`Hub::dispatch`](crate::Hub::dispatch)
//! in id order.
//! The in-memory broker does all of that in-process; the Redis broker does it across nodes. The
//! hub does not know which one it is running on.
//!
//! This module is what a broker implementation needs (the trait, the routed form of an event,
//! and the embedded broker as an example); an application embedding the hub needs none of it.

pub use crate::event::{Frame, HubEvent, Targets};
pub use crate::memory::MemoryBroker;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::announce::PresenceBook;
use crate::id::EventId;
use crate::idempotency::{IdempotencyKey, Published};
use crate::presence::{PresenceAnswer, PresenceQuery};
use crate::publication::Batch;

/// The broker could not do what was asked; the caller should answer 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Accepts a batch: either every event gets an id (returned in order) and will be
    /// delivered, or none does. With `once`, a key already seen within its window answers the
    /// first attempt's ids and publishes nothing, checked atomically with the publish.
    async fn publish(
        &self,
        batch: &Batch,
        once: Option<&IdempotencyKey>,
    ) -> Result<Published, BrokerError>;

    /// Up to `limit` events with ids in `(after, upto]`, oldest first, from history older than
    /// the hub's own window; `None` if the broker no longer keeps (or never kept) what follows
    /// `after`, or `after` is further back than resume may reach (the client then gets
    /// `herald.missed`). A replay asks page by page, each page starting after the last event of
    /// the one before, as the client takes them.
    async fn history(
        &self,
        after: EventId,
        upto: EventId,
        limit: usize,
    ) -> Result<Option<Vec<Arc<HubEvent>>>, BrokerError>;

    /// Presence across every node: `local` is this node's answer; a broker that spans nodes
    /// adds the others'. The embedded broker has nothing to add.
    async fn presence(
        &self,
        query: &PresenceQuery,
        local: PresenceAnswer,
    ) -> Result<PresenceAnswer, BrokerError> {
        let _ = query;
        Ok(local)
    }

    /// The cluster's view of which node has streams of which user, for online/offline
    /// announcements ([`crate::announce`]) with this offline delay; `None` (the default) for a
    /// single node, which then keeps its own.
    fn presence_book(&self, offline_delay: Duration) -> Option<Arc<dyn PresenceBook>> {
        let _ = offline_delay;
        None
    }

    /// Can the broker accept and deliver events right now? Drives `/readyz`.
    fn is_ready(&self) -> bool;

    /// Waits until this node's hub has dispatched every event up to `id`, if `id` is an event
    /// the broker has assigned.
    ///
    /// A client may resume on a node with an id it got from another node a moment ago, before
    /// this node's hub has received that event; registering it right away would answer
    /// `herald.missed` (`unknown_id`) for an id that is perfectly valid. Brokers that deliver
    /// asynchronously wait here (bounded); an id the broker never assigned returns at once and
    /// the hub treats it as unknown. The in-process broker dispatches before `publish` returns,
    /// so the default has nothing to wait for.
    async fn catch_up_to(&self, _id: EventId) -> Result<(), BrokerError> {
        Ok(())
    }

    /// The id of the newest event in the broker's history whose wire id (a labelled event's
    /// publisher-chosen id, [`crate::labels`]) is `wire_id`, looked for within the history
    /// bounds; `None` if there is none. The hub asks when its own window does not hold it: a
    /// node that started late, or has not dispatched the event yet. The in-process broker
    /// keeps no history beyond the hub's window.
    async fn find_wire_id(&self, _wire_id: &str) -> Result<Option<EventId>, BrokerError> {
        Ok(None)
    }
}
