//! Metrics of the server itself, next to the hub's (`herald_core::metrics`) and the Redis
//! broker's (`herald_redis::metrics`): the limits that refuse clients, and accept failures.

/// Connections (and HTTP/2 event streams) refused by `--max-connect-rate-per-ip` or
/// `--max-connections-per-ip`.
pub const CONNECTIONS_RATE_LIMITED: &str = "herald_connections_rate_limited_total";
/// Publishes refused by `--publish-rate`.
pub const PUBLISH_RATE_LIMITED: &str = "herald_publish_rate_limited_total";
/// Publishes answered from an earlier one with the same `Idempotency-Key` (nothing published).
pub const PUBLISH_REPEATED: &str = "herald_publish_repeated_total";
/// Resumes refused by `--resume-rate`.
pub const RESUMES_RATE_LIMITED: &str = "herald_resumes_rate_limited_total";
/// Webhook deliveries, by outcome (`delivered`, `failed` after retrying for the bound).
pub const WEBHOOK_DELIVERIES: &str = "herald_webhook_deliveries_total";
/// Webhook attempts that failed and were retried.
pub const WEBHOOK_RETRIES: &str = "herald_webhook_retries_total";
/// Session hook (`--auth-url`) calls, by outcome: `allowed` (a 200 answer), `unauthorized`
/// (401), `forbidden` (403), `failed` (another status or a malformed answer), `timeout`,
/// `unreachable`, `overloaded` (refused at once by `--auth-max-concurrent`).
pub const AUTH_HOOK_CALLS: &str = "herald_auth_hook_calls_total";
/// How long session hook calls took, in seconds (a histogram).
pub const AUTH_HOOK_DURATION: &str = "herald_auth_hook_duration_seconds";
/// JWKS (`--jwks-url`) fetches, by outcome (`ok`, `failed`).
pub const JWKS_REFRESHES: &str = "herald_jwks_refreshes_total";
/// Usable keys in the cached JWKS.
pub const JWKS_KEYS: &str = "herald_jwks_keys";
/// 1 while the last JWKS fetch failed (the last good keys are in use), else 0.
pub const JWKS_FAILING: &str = "herald_jwks_refresh_failing";
/// `accept` failures (out of file descriptors and the like).
pub const ACCEPT_ERRORS: &str = "herald_accept_errors_total";

/// Creates the series of the optional features in use at zero.
pub fn describe_auth(jwks: bool, hook: bool) {
    if jwks {
        for outcome in ["ok", "failed"] {
            metrics::counter!(JWKS_REFRESHES, "outcome" => outcome).increment(0);
        }
        metrics::gauge!(JWKS_FAILING).set(0.0);
    }
    if hook {
        for outcome in crate::session_hook::outcomes() {
            metrics::counter!(AUTH_HOOK_CALLS, "outcome" => outcome).increment(0);
        }
    }
}

/// Creates every series at zero and registers help texts. Call once after installing a recorder.
pub fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    for counter in [
        CONNECTIONS_RATE_LIMITED,
        PUBLISH_RATE_LIMITED,
        PUBLISH_REPEATED,
        RESUMES_RATE_LIMITED,
        ACCEPT_ERRORS,
        WEBHOOK_RETRIES,
    ] {
        metrics::counter!(counter).increment(0);
    }
    for outcome in ["delivered", "failed"] {
        metrics::counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(0);
    }
    describe_counter!(
        AUTH_HOOK_CALLS,
        Unit::Count,
        "Session hook (--auth-url) calls, by outcome: allowed, unauthorized (401), forbidden (403), failed (other status or malformed answer), timeout, unreachable, overloaded (over --auth-max-concurrent)."
    );
    describe_histogram!(
        AUTH_HOOK_DURATION,
        Unit::Seconds,
        "Duration of session hook (--auth-url) calls."
    );
    describe_counter!(
        JWKS_REFRESHES,
        Unit::Count,
        "JWKS (--jwks-url) fetches, by outcome: ok or failed (the last good keys stay in use)."
    );
    describe_gauge!(JWKS_KEYS, Unit::Count, "Usable keys in the cached JWKS.");
    describe_gauge!(
        JWKS_FAILING,
        "1 while the last JWKS fetch failed (the last good keys are in use), else 0."
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        Unit::Count,
        "Online/offline webhook calls, by outcome: delivered (a 2xx answer) or failed (no 2xx within the retry bound)."
    );
    describe_counter!(
        WEBHOOK_RETRIES,
        Unit::Count,
        "Webhook attempts that failed and were tried again."
    );
    describe_counter!(
        CONNECTIONS_RATE_LIMITED,
        Unit::Count,
        "Connections and HTTP/2 event streams refused by --max-connect-rate-per-ip or --max-connections-per-ip."
    );
    describe_counter!(
        PUBLISH_RATE_LIMITED,
        Unit::Count,
        "Publishes refused by --publish-rate."
    );
    describe_counter!(
        PUBLISH_REPEATED,
        Unit::Count,
        "Publishes answered with the ids of an earlier one with the same Idempotency-Key (nothing published again)."
    );
    describe_counter!(
        RESUMES_RATE_LIMITED,
        Unit::Count,
        "Resumes (streams opened with Last-Event-ID) refused by --resume-rate."
    );
    describe_counter!(
        ACCEPT_ERRORS,
        Unit::Count,
        "Failed accept calls (out of file descriptors and the like); logged at most once a second."
    );
}
