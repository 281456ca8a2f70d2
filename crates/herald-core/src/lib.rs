//! Herald's hub as a library.
//!
//! The data path, top to bottom:
//!
//! 1. [`Herald::publish`] validates a batch of [`Publication`]s and hands it to the
//!    [`broker::Broker`].
//! 2. The broker assigns ids ([`EventId`]), keeps history, and calls [`Hub::dispatch`] on every
//!    node in id order ([`broker::MemoryBroker`] in-process; the Redis broker across nodes).
//! 3. The hub encodes each event once ([`broker::HubEvent`]), records it in its history window
//!    and routes it by user, topic and pattern to each stream's bounded queue.
//! 4. Each [`EventStream`] is written to its client: as an HTTP body by hyper (or any server),
//!    or on a plain HTTP/1.1 socket by [`serve_socket`], which also takes direct writes from
//!    publishers (the `conn` module has the whole story).
//!
//! Embedding in an axum app takes a `Herald`, a handler that returns
//! `Body::new(herald.subscribe(..).await?)`, and `herald.send_to_user(..)` wherever events happen;
//! see `examples/embed-axum`. Implementing a broker takes [`broker`].

pub mod announce;
pub mod backoff;
pub mod broker;
mod conn;
pub mod defaults;
mod event;
mod herald;
mod history;
mod hub;
mod id;
pub mod idempotency;
mod inspect;
pub mod labels;
mod memory;
pub mod metrics;
pub mod presence;
mod progress;
mod publication;
mod registry;
pub mod retained;
pub mod topic;

pub use conn::{
    serve_socket, CloseReason, DirectWrite, EventStream, QueueLimits, SocketSettings, SocketWriter,
    StreamEnd, StreamEndHook, StreamSocket,
};
pub use herald::{Herald, PublishError};
pub use hub::{Hub, HubConfig, HubStats, SubscribeError, SubscribeRequest, MISSED_EVENT};
pub use id::{unix_ms, unix_us, EventId, InvalidEventId};
pub use inspect::HubSnapshot;
pub use labels::{LabelError, Labels, StreamFilter};
pub use progress::{JobProgress, JobStatus, Progress, PROGRESS_EVENT};
pub use publication::{
    compact_json, json_payload, too_deep_json, validate_user, Batch, InvalidItem, Publication,
    PublicationError, Retain, MAX_JSON_DEPTH, MAX_USER_LEN, RESERVED_EVENT_PREFIX,
};
pub use topic::{validate_topic, Pattern, TopicError};
