//! [`Herald`]: the library's front door. A hub plus a broker, with the seed's verbs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_core::{Herald, HubConfig, SubscribeRequest};
//! let herald = Herald::in_memory(HubConfig::default());
//! // In a request handler: stream events to the signed-in user.
//! let stream = herald
//!     .subscribe(SubscribeRequest { user: Some("user_123".into()), ..Default::default() })
//!     .await?;
//! // Anywhere else: send to that user, or to everyone.
//! herald.send_to_user("user_123", "payment_completed", &serde_json::json!({"amount": 5000})).await?;
//! herald.broadcast("maintenance", &"at 22:00 UTC").await?;
//! # drop(stream); Ok(()) }
//! ```

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use tokio::sync::mpsc;

use crate::announce::{Announcement, Announcer, LocalBook};
use crate::broker::{Broker, BrokerError};
use crate::conn::EventStream;
use crate::hub::{Hub, HubConfig, SubscribeError, SubscribeRequest};
use crate::id::EventId;
use crate::idempotency::{IdempotencyKey, Published};
use crate::memory::MemoryBroker;
use crate::metrics as m;
use crate::presence::{PresenceAnswer, PresenceQuery};
use crate::publication::{Batch, Publication, PublicationError};

/// Why a publish failed.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The event is invalid; nothing was published.
    #[error(transparent)]
    Invalid(#[from] PublicationError),
    #[error("data could not be serialised as JSON: {0}")]
    Serialize(#[from] serde_json::Error),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A running hub and its broker. Cheap to clone; all clones share the same hub.
#[derive(Clone)]
pub struct Herald {
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
}

impl Herald {
    /// A single-node hub on the embedded broker. Must be called inside a Tokio runtime (it
    /// starts the maintenance tick that drives heartbeats and token expiry).
    pub fn in_memory(config: HubConfig) -> Self {
        let hub = Hub::new(config);
        let broker = Arc::new(MemoryBroker::new(hub.clone()));
        Self::with_broker(hub, broker)
    }

    /// A hub fed by `broker` (which must dispatch into `hub`). Starts the maintenance tick.
    pub fn with_broker(hub: Arc<Hub>, broker: Arc<dyn Broker>) -> Self {
        hub.spawn_maintenance();
        Self { hub, broker }
    }

    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The event whose wire id (a labelled event's publisher-chosen id) is `wire_id`: the
    /// newest in the hub's window, else in the broker's history, which holds what this node has
    /// not dispatched yet or saw before it started.
    pub async fn find_wire_id(&self, wire_id: &str) -> Result<Option<EventId>, BrokerError> {
        match self.hub.find_wire_id(wire_id) {
            Some(id) => Ok(Some(id)),
            None => self.broker.find_wire_id(wire_id).await,
        }
    }

    pub fn is_ready(&self) -> bool {
        self.broker.is_ready() && !self.hub.is_shutting_down()
    }

    /// Publishes a batch (validated when it was made); all or nothing.
    pub async fn publish(&self, batch: &Batch) -> Result<Vec<EventId>, BrokerError> {
        Ok(self.publish_once(batch, None).await?.ids)
    }

    /// [`Herald::publish`], once per idempotency key: a key seen within its window answers the
    /// first attempt's ids and publishes nothing ([`crate::idempotency`]).
    pub async fn publish_once(
        &self,
        batch: &Batch,
        key: Option<&IdempotencyKey>,
    ) -> Result<Published, BrokerError> {
        let published = self.broker.publish(batch, key).await?;
        if !published.repeated {
            m::per_event()
                .published
                .increment(published.ids.len() as u64);
        }
        Ok(published)
    }

    async fn publish_one(&self, publication: Publication) -> Result<EventId, PublishError> {
        let ids = self.publish(&Batch::one(publication)?).await?;
        ids.into_iter()
            .next()
            .ok_or_else(|| BrokerError("broker returned no id".into()).into())
    }

    /// Sends `data` (as JSON) to every stream of `user`.
    pub async fn send_to_user<T: Serialize + ?Sized>(
        &self,
        user: &str,
        event: &str,
        data: &T,
    ) -> Result<EventId, PublishError> {
        let data = serde_json::to_string(data)?;
        self.publish_one(Publication::to_user(user, event, data))
            .await
    }

    /// Sends `data` (as JSON) to every subscriber of `topic`.
    pub async fn send_to_topic<T: Serialize + ?Sized>(
        &self,
        topic: &str,
        event: &str,
        data: &T,
    ) -> Result<EventId, PublishError> {
        let data = serde_json::to_string(data)?;
        self.publish_one(Publication::to_topic(topic, event, data))
            .await
    }

    /// Sends `data` (as JSON) to every stream.
    pub async fn broadcast<T: Serialize + ?Sized>(
        &self,
        event: &str,
        data: &T,
    ) -> Result<EventId, PublishError> {
        let data = serde_json::to_string(data)?;
        self.publish_one(Publication::broadcast(event, data)).await
    }

    /// Opens a stream: replay from `last_event_id` (or `herald.missed`), then live events.
    pub async fn subscribe(
        &self,
        request: SubscribeRequest,
    ) -> Result<EventStream, SubscribeError> {
        if let Some(id) = request
            .last_event_id
            .as_deref()
            .and_then(|text| text.parse::<EventId>().ok())
        {
            if id > self.hub.last_event_id() {
                self.broker
                    .catch_up_to(id)
                    .await
                    .map_err(|error| SubscribeError::Broker(error.0))?;
            }
        }
        self.hub.register(&request, Some(self.broker.clone()))
    }

    /// Who is connected: a user's streams, or a topic's subscribers, on every node.
    pub async fn presence(&self, query: &PresenceQuery) -> Result<PresenceAnswer, BrokerError> {
        let local = self.hub.presence(query);
        self.broker.presence(query, local).await
    }

    /// Starts announcing users going online and offline ([`crate::announce`]), cluster-wide
    /// when the broker spans nodes. Call once; the announcements arrive on the returned queue.
    pub fn announce(&self, offline_delay: Duration) -> mpsc::Receiver<Announcement> {
        let book = self
            .broker
            .presence_book(offline_delay)
            .unwrap_or_else(|| Arc::new(LocalBook::new(offline_delay)));
        Announcer::spawn(&self.hub, book, offline_delay)
    }

    /// Ends every stream (after a jittered reconnect hint) and refuses new ones.
    pub fn shutdown(&self) {
        self.hub.shutdown();
    }
}
