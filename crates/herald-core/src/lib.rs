//! Herald's hub as a library.
//!
//! The data path, top to bottom:
//!
//! 1. [`Herald::publish`] validates a batch of [`Publication`]s and hands it to the [`Broker`].
//! 2. The broker assigns ids ([`EventId`]), keeps history, and calls [`Hub::dispatch`] on every
//!    node in id order ([`MemoryBroker`] in-process; the Redis broker across nodes).
//! 3. The hub encodes each event once ([`HubEvent`]), records it in its history window and routes
//!    it by user, topic and pattern to each stream's bounded queue.
//! 4. Each [`EventStream`] is an HTTP body: it drains its queue into one chunk per write.
//!
//! Embedding in an axum app takes a `Herald`, a handler that returns
//! `Body::new(herald.subscribe(..).await?)`, and `herald.send_to_user(..)` wherever events happen;
//! see `examples/embed-axum`.

mod broker;
mod conn;
mod event;
mod herald;
mod history;
mod hub;
mod id;
mod inspect;
mod memory;
pub mod metrics;
mod progress;
mod publication;
mod registry;
pub mod topic;

pub use broker::{Broker, BrokerError};
pub use conn::{CloseReason, DirectWrite, EventStream, QueueLimits};
pub use event::{Frame, HubEvent, Targets};
pub use herald::{Herald, PublishError};
pub use hub::{Hub, HubConfig, HubStats, SubscribeError, SubscribeRequest, MISSED_EVENT};
pub use id::{unix_ms, unix_us, EventId, InvalidEventId};
pub use inspect::HubSnapshot;
pub use memory::MemoryBroker;
pub use progress::{JobProgress, JobStatus, Progress, PROGRESS_EVENT};
pub use publication::{
    compact_json, json_payload, validate_user, Publication, PublicationError, MAX_USER_LEN,
    RESERVED_EVENT_PREFIX,
};
pub use topic::{validate_topic, Pattern, TopicError};
