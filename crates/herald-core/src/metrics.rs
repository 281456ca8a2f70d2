//! Metric names, recorded through the `metrics` facade.
//!
//! The library only records; the binary installs a Prometheus exporter. Embedders that install
//! no recorder pay almost nothing (the facade's no-op path).
//!
//! The series recorded for every event are looked up once ([`per_event`]): finding a series by
//! name costs more than recording into it, and it happens once per delivery. Install the
//! recorder before the hub handles its first event (or call [`describe`] right after
//! installing it), since the handles are taken from whichever recorder is installed then.

use std::sync::OnceLock;

use metrics::{Counter, Histogram};

pub const CONNECTIONS: &str = "herald_connections";
pub const SUBSCRIPTIONS: &str = "herald_subscriptions";
pub const EVENTS_PUBLISHED: &str = "herald_events_published_total";
pub const EVENTS_DELIVERED: &str = "herald_events_delivered_total";
pub const EVENTS_DROPPED: &str = "herald_events_dropped_total";
pub const REPLAY_HITS: &str = "herald_replay_hits_total";
pub const REPLAY_MISSES: &str = "herald_replay_misses_total";
pub const DELIVERY_LATENCY: &str = "herald_delivery_latency_seconds";
pub const SLOW_CONSUMER_DISCONNECTS: &str = "herald_slow_consumer_disconnects_total";
pub const STREAMS_OPENED: &str = "herald_streams_opened_total";
pub const STREAMS_REJECTED: &str = "herald_streams_rejected_total";

/// Handles for the series recorded per event.
pub(crate) struct PerEvent {
    pub published: Counter,
    pub delivered: Counter,
    pub latency: Histogram,
}

static PER_EVENT: OnceLock<PerEvent> = OnceLock::new();

/// The per-event series of the recorder installed at the first call.
pub(crate) fn per_event() -> &'static PerEvent {
    PER_EVENT.get_or_init(|| PerEvent {
        published: metrics::counter!(EVENTS_PUBLISHED),
        delivered: metrics::counter!(EVENTS_DELIVERED),
        latency: metrics::histogram!(DELIVERY_LATENCY),
    })
}

/// Registers help texts with the installed recorder and creates every series at zero, so
/// dashboards and alerts see them before the first event. Call once after installing it.
pub fn describe() {
    per_event();
    for counter in [
        EVENTS_PUBLISHED,
        EVENTS_DELIVERED,
        EVENTS_DROPPED,
        REPLAY_HITS,
        REPLAY_MISSES,
        SLOW_CONSUMER_DISCONNECTS,
        STREAMS_OPENED,
        STREAMS_REJECTED,
    ] {
        metrics::counter!(counter).increment(0);
    }
    metrics::gauge!(CONNECTIONS).set(0.0);
    metrics::gauge!(SUBSCRIPTIONS).set(0.0);
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open subscriber streams.");
    describe_gauge!(SUBSCRIPTIONS, "Topic subscriptions held by open streams.");
    describe_counter!(EVENTS_PUBLISHED, "Events accepted for publication.");
    describe_counter!(EVENTS_DELIVERED, "Events handed to subscriber sockets.");
    describe_counter!(
        EVENTS_DROPPED,
        "Events discarded because a slow consumer's queue overflowed."
    );
    describe_counter!(REPLAY_HITS, "Resumes served entirely from history.");
    describe_counter!(
        REPLAY_MISSES,
        "Resumes whose Last-Event-ID was too old or unknown (sent herald.missed)."
    );
    describe_histogram!(
        DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from accepting an event to handing it to a subscriber socket."
    );
    describe_counter!(
        SLOW_CONSUMER_DISCONNECTS,
        "Streams closed because they fell behind their queue bound."
    );
    describe_counter!(STREAMS_OPENED, "Subscriber streams opened.");
    describe_counter!(
        STREAMS_REJECTED,
        "Subscriber streams refused by a connection limit."
    );
}
