//! Herald's Redis broker: any number of `herald serve` nodes behave as one hub.
//!
//! Redis is the only shared component; nodes never talk to each other. The design, in one
//! paragraph (docs/SCALING.md has the long form):
//!
//! * **One ordered sequence.** Publishing is `XADD` to one Redis Stream ([`keys`]). Redis assigns
//!   each entry an id `<ms>-<seq>` that increases strictly across the whole cluster; Herald uses
//!   it unchanged as the event id, so a `Last-Event-ID` means the same on every node.
//! * **Fan-out by reading, not by Pub/Sub.** Every node runs one [`reader`] that follows the
//!   stream with `XREAD BLOCK` from the last id it dispatched and feeds its hub in stream order.
//!   After a dropped connection it simply reads on from that id: catch-up is the normal path,
//!   not a special one, so nothing accepted is lost or delivered twice.
//! * **Shared history.** The stream is trimmed to `MAXLEN ~ N`; resume points older than a
//!   node's in-memory window are served with `XRANGE` ([`broker`]). When entries a node still
//!   needed were trimmed, its streams get the reserved `herald.missed` event (`stream_info.rs`).
//! * **Seed ingress.** Services that `PUBLISH user:events '{"userId":..}'` keep working: every
//!   node subscribes and turns each message into an `XADD`, guarded so exactly one node appends
//!   it ([`ingress`]).

mod backoff;
pub mod broker;
pub mod config;
mod entry;
pub mod ingress;
pub mod keys;
pub mod metrics;
pub mod reader;
mod seed_message;
mod shared_connection;
mod start;
mod stream_info;

pub use broker::RedisBroker;
pub use config::RedisConfig;
pub use start::{describe_url, start, StartError};
