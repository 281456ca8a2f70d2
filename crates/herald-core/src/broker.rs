//! The broker: where events get their ids and from where they reach every node's hub.
//!
//! A broker accepts validated batches, assigns each event an id in one global order, stores it in
//! history and delivers it to the hub of every node by calling [`Hub::dispatch`] in id order.
//! The in-memory broker does all of that in-process; the Redis broker does it across nodes. The
//! hub does not know which one it is running on.

use std::sync::Arc;

use async_trait::async_trait;

use crate::event::HubEvent;
use crate::id::EventId;
use crate::publication::Publication;

/// The broker could not do what was asked; the caller should answer 503.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker unavailable: {0}")]
pub struct BrokerError(pub String);

#[async_trait]
pub trait Broker: Send + Sync + 'static {
    /// Accepts a batch of validated publications: either every event gets an id (returned in
    /// order) and will be delivered, or none does.
    async fn publish(&self, batch: &[Publication]) -> Result<Vec<EventId>, BrokerError>;

    /// Events with ids in `(after, upto]` from history older than the hub's own window, or
    /// `None` if the broker keeps nothing that old (the client then gets `herald.missed`).
    async fn history(
        &self,
        after: EventId,
        upto: EventId,
    ) -> Result<Option<Vec<Arc<HubEvent>>>, BrokerError>;

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
}
