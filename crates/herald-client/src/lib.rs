//! A Rust client for Herald.
//!
//! - [`subscribe`] opens a stream that survives the network: it reconnects with exponential
//!   backoff and full jitter, honours the hub's `retry:` hint, resumes with `Last-Event-ID` so
//!   nothing is lost, and yields events as a [`futures_util::Stream`]. Event data can be
//!   deserialised with serde ([`Event::json`]).
//! - [`Publisher`] sends events from Rust services over the HTTP API: to a user, a topic,
//!   everyone, or a batch.
//!
//! ```no_run
//! # async fn demo() -> Result<(), herald_client::ClientError> {
//! use futures_util::StreamExt;
//! use herald_client::{subscribe, Publisher, SubscribeOptions};
//!
//! let mut events = subscribe(SubscribeOptions::new("http://127.0.0.1:8080").token("<jwt>"))?;
//! let publisher = Publisher::new("http://127.0.0.1:8080", "<publish key>")?;
//! publisher.send_to_user("user_123", "payment_completed", &serde_json::json!({"amount": 5000})).await?;
//! while let Some(event) = events.next().await {
//!     let event = event?;
//!     println!("{} {}: {}", event.id, event.event, event.data);
//! }
//! # Ok(()) }
//! ```

mod error;
mod publisher;
mod subscriber;

pub use error::ClientError;
pub use herald_core::backoff::Backoff;
pub use publisher::{PublishItem, Publisher, Retain};
pub use subscriber::{subscribe, Event, EventStream, SubscribeOptions, MISSED_EVENT};
