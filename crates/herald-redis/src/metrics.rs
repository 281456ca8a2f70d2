//! Metrics of the Redis broker, next to the hub's own (`herald_core::metrics`).

pub const INGRESS_MESSAGES: &str = "herald_redis_ingress_messages_total";
pub const RECONNECTS: &str = "herald_redis_reconnects_total";
pub const GAPS: &str = "herald_redis_gaps_total";
pub const MALFORMED_ENTRIES: &str = "herald_redis_malformed_entries_total";
pub const REPLICA_WAITS_FAILED: &str = "herald_redis_replica_waits_failed_total";
pub const PUBLISH_CALLS: &str = "herald_redis_publish_calls_total";
pub const PUBLISH_REQUESTS: &str = "herald_redis_publish_requests_total";

/// Outcomes of one seed-format ingress message (label `outcome`).
pub const INGRESS_PUBLISHED: &str = "published";
pub const INGRESS_DUPLICATE: &str = "duplicate";
pub const INGRESS_MALFORMED: &str = "malformed";
pub const INGRESS_FAILED: &str = "failed";

/// Creates every series at zero and registers help texts. Call once after installing a recorder.
pub fn describe() {
    use metrics::{describe_counter, Unit};
    for outcome in [
        INGRESS_PUBLISHED,
        INGRESS_DUPLICATE,
        INGRESS_MALFORMED,
        INGRESS_FAILED,
    ] {
        metrics::counter!(INGRESS_MESSAGES, "outcome" => outcome).increment(0);
    }
    for counter in [
        RECONNECTS,
        GAPS,
        MALFORMED_ENTRIES,
        REPLICA_WAITS_FAILED,
        PUBLISH_CALLS,
        PUBLISH_REQUESTS,
    ] {
        metrics::counter!(counter).increment(0);
    }
    describe_counter!(
        INGRESS_MESSAGES,
        Unit::Count,
        "Seed-format messages received on the ingress channel, by outcome: published (this node appended it), duplicate (another node did), malformed (logged and dropped), failed (Redis error)."
    );
    describe_counter!(
        RECONNECTS,
        Unit::Count,
        "Times a Redis connection (stream reader or ingress subscription) was re-established."
    );
    describe_counter!(
        GAPS,
        Unit::Count,
        "Times this node fell further behind than the stream's history reaches; its streams got herald.missed."
    );
    describe_counter!(
        MALFORMED_ENTRIES,
        Unit::Count,
        "Stream entries that were not Herald events (skipped)."
    );
    describe_counter!(
        REPLICA_WAITS_FAILED,
        Unit::Count,
        "Publishes answered 503 because fewer replicas than --redis-min-replicas confirmed them in time."
    );
    describe_counter!(
        PUBLISH_CALLS,
        Unit::Count,
        "Calls of the append script sent for publish requests; concurrent requests share calls."
    );
    describe_counter!(
        PUBLISH_REQUESTS,
        Unit::Count,
        "Publish requests sent to Redis; divided by herald_redis_publish_calls_total, the requests per call."
    );
}
