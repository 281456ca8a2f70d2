//! One run's figures, as text for people and JSON for `compare.sh`.

use std::fmt::Write;

use serde::Serialize;

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub target: String,
    pub scenario: String,
    pub streams: usize,
    pub streams_open: u64,
    pub connect_errors: u64,
    pub connects_per_s: f64,
    pub published: u64,
    pub publish_requests: u64,
    pub publish_errors: u64,
    pub published_per_s: f64,
    pub publish_request_p50_us: u64,
    pub publish_request_p99_us: u64,
    pub expected: u64,
    pub delivered: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub deliveries_per_s: f64,
    pub latency_p50_us: u64,
    pub latency_p90_us: u64,
    pub latency_p99_us: u64,
    pub latency_p999_us: u64,
    pub latency_max_us: u64,
    pub rss_idle_bytes: u64,
    pub rss_loaded_bytes: u64,
    pub rss_per_stream_bytes: u64,
    pub server_cpu_percent: f64,
    pub streams_closed_by_server: u64,
    pub errors: Vec<String>,
}

impl Report {
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "{} / {}", self.target, self.scenario);
        if self.streams > 0 {
            let _ = writeln!(
                out,
                "  streams        {} of {} open ({} connect errors), {:.0} connects/s",
                self.streams_open, self.streams, self.connect_errors, self.connects_per_s
            );
        }
        if self.rss_loaded_bytes > 0 {
            let _ = writeln!(
                out,
                "  server memory  {:.1} MiB before, {:.1} MiB with streams: {:.2} KiB per stream",
                mib(self.rss_idle_bytes),
                mib(self.rss_loaded_bytes),
                self.rss_per_stream_bytes as f64 / 1024.0
            );
        }
        if self.published > 0 || self.publish_requests > 0 {
            let _ = writeln!(
                out,
                "  published      {} events in {} requests ({} errors), {:.0} events/s, request p50 {} µs p99 {} µs",
                self.published,
                self.publish_requests,
                self.publish_errors,
                self.published_per_s,
                self.publish_request_p50_us,
                self.publish_request_p99_us
            );
        }
        if self.expected > 0 {
            let _ = writeln!(
                out,
                "  delivered      {} of {} ({} lost, {} duplicated), {:.0} deliveries/s",
                self.delivered, self.expected, self.lost, self.duplicates, self.deliveries_per_s
            );
            let _ = writeln!(
                out,
                "  latency        p50 {} µs, p90 {} µs, p99 {} µs, p99.9 {} µs, max {} µs",
                self.latency_p50_us,
                self.latency_p90_us,
                self.latency_p99_us,
                self.latency_p999_us,
                self.latency_max_us
            );
        }
        if self.server_cpu_percent > 0.0 {
            let _ = writeln!(
                out,
                "  server CPU     {:.0}% of one core",
                self.server_cpu_percent
            );
        }
        if self.streams_closed_by_server > 0 {
            let _ = writeln!(
                out,
                "  closed by server: {} streams",
                self.streams_closed_by_server
            );
        }
        for error in &self.errors {
            let _ = writeln!(out, "  error: {error}");
        }
        out
    }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}
