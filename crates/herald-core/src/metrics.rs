//! Metric names, recorded through the `metrics` facade.
//!
//! The library only records; the binary installs a Prometheus exporter. Embedders that install
//! no recorder pay almost nothing (the facade's no-op path).
//!
//! The series recorded for every event are looked up once (`per_event`): finding a series by
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
pub const HISTORY_EVENTS: &str = "herald_history_events";
pub const HISTORY_BYTES: &str = "herald_history_bytes";
pub const RETAINED_VALUES: &str = "herald_retained_values";
pub const RETAINED_BYTES: &str = "herald_retained_bytes";
pub const RETAINED_EVICTED: &str = "herald_retained_evicted_total";
pub const ANNOUNCEMENTS: &str = "herald_announcements_total";
pub const ANNOUNCEMENTS_DROPPED: &str = "herald_announcements_dropped_total";
pub const PRESENCE_CHANGES: &str = "herald_presence_changes_total";

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

/// Counts one resume that could not be served (`herald.missed` sent).
pub(crate) fn replay_missed() {
    metrics::counter!(REPLAY_MISSES).increment(1);
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
        RETAINED_EVICTED,
        ANNOUNCEMENTS_DROPPED,
    ] {
        metrics::counter!(counter).increment(0);
    }
    metrics::gauge!(CONNECTIONS).set(0.0);
    metrics::gauge!(SUBSCRIPTIONS).set(0.0);
    metrics::gauge!(HISTORY_EVENTS).set(0.0);
    metrics::gauge!(HISTORY_BYTES).set(0.0);
    metrics::gauge!(RETAINED_VALUES).set(0.0);
    metrics::gauge!(RETAINED_BYTES).set(0.0);
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_gauge!(CONNECTIONS, "Open subscriber streams.");
    describe_gauge!(SUBSCRIPTIONS, "Topic subscriptions held by open streams.");
    describe_gauge!(HISTORY_EVENTS, "Events this node keeps for resume.");
    describe_gauge!(
        HISTORY_BYTES,
        Unit::Bytes,
        "Bytes held by the events this node keeps for resume (bounded by --history-bytes)."
    );
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
    describe_gauge!(
        RETAINED_VALUES,
        "Retained values this node keeps for new streams."
    );
    describe_gauge!(
        RETAINED_BYTES,
        Unit::Bytes,
        "Bytes of retained values (bounded by --retained-bytes)."
    );
    describe_counter!(
        RETAINED_EVICTED,
        "Retained values dropped because --retained-values or --retained-bytes was reached."
    );
    describe_counter!(
        ANNOUNCEMENTS,
        "Online/offline announcements made by this node (label type: user.online, user.offline)."
    );
    describe_counter!(
        PRESENCE_CHANGES,
        "Users whose first stream on this node opened (change=arrive) or last one closed (change=depart), as told to the presence book for announcements."
    );
    describe_counter!(
        ANNOUNCEMENTS_DROPPED,
        "Announcements dropped because the delivery queue was full."
    );
    describe_counter!(
        STREAMS_REJECTED,
        "Subscriber streams refused by a connection limit."
    );
}
