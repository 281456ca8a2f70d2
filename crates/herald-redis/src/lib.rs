//! Herald's Redis broker: any number of `herald serve` nodes behave as one hub.
//!
//! Redis is the only shared component; nodes never talk to each other. The design, in one
//! paragraph (docs/SCALING.md has the long form):
//!
//! * **One ordered sequence.** Publishing appends to one Redis Stream ([`keys`]) with one Lua
//!   script (`append.rs`), one entry per call however many events it carries. The script numbers
//!   the events `<ms>-<seq>` after the newest id the stream ever generated, strictly increasing
//!   across the whole cluster, and the entry's id is its last event's; Herald uses them as event
//!   ids, so a `Last-Event-ID` means the same on every node. Each entry also carries the
//!   sequence number and the running total of event costs up to its last event, which make
//!   trimming visible and history bounds cluster-wide.
//! * **Fan-out by reading, not by Pub/Sub.** Every node runs one [`reader`] that follows the
//!   stream with `XREAD BLOCK` from the last id it dispatched and feeds its hub in stream order.
//!   After a dropped connection it simply reads on from that id: catch-up is the normal path,
//!   not a special one, so nothing accepted is lost or delivered twice.
//! * **Shared history.** The stream is trimmed to the history bounds (count, bytes, age); resume
//!   points older than a node's in-memory window are served page by page, each entry read
//!   about once however many events it holds (`history.rs`). When entries a node still needed were trimmed, its streams get the reserved
//!   `herald.missed` event ([`reader`]).
//! * **Seed ingress.** Services that `PUBLISH user:events '{"userId":..}'` keep working: every
//!   node subscribes and appends each message, guarded so exactly one node does ([`ingress`]).
//! * **Any shape of Redis.** One server, a primary found through Sentinel, or a Redis Cluster:
//!   every key shares one hash tag, so on a cluster everything lives in one slot, and the
//!   connection type hides which shape it is (`endpoint.rs`, `connection.rs`).

mod append;
pub mod broker;
pub mod config;
mod connection;
mod endpoint;
mod entry;
mod history;
pub mod ingress;
pub mod keys;
pub mod metrics;
mod online;
mod presence;
mod publish_queue;
pub mod reader;
pub mod seed_message;
mod shared_connection;
mod start;
mod stream_info;

pub use broker::RedisBroker;
pub use config::RedisConfig;
pub use start::{describe_url, start, StartError};
