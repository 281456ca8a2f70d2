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
}
