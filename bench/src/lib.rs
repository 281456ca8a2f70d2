//! `herald bench`: a load generator for Herald and the peers it is compared with.
//!
//! One run = one scenario against one server: open N SSE streams over raw HTTP/1.1 (plain or
//! TLS), publish at a
//! pace, count what arrives (latency from a timestamp inside each event, lost and duplicated
//! events), and sample the server's RSS and CPU from `/proc`. `bench/compare.sh` runs every
//! scenario against Herald and each peer in one go and prints the ratios.

mod marker;
mod multiplexed;
mod publisher;
mod report;
mod scenario;
mod stats;
mod stream;
mod target;
mod transport;

pub use report::Report;
pub use target::Kind;

use std::time::Duration;

use clap::{Args, ValueEnum};

/// The scenarios of `docs/BENCHMARKS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// Open streams and hold them: memory per stream.
    Idle,
    /// Broadcast to every stream, closed loop: the saturation delivery rate.
    Broadcast,
    /// Events to one user each at `--rate`: latency percentiles.
    PerUser,
    /// Publish API throughput (no streams): single events, or `--batch` per request.
    Publish,
    /// Large events (`--size`, default 64 KiB) broadcast to every stream.
    Large,
    /// Every stream drops and reconnects at once with Last-Event-ID.
    Reconnect,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:\n  \
    herald bench --target herald --url 127.0.0.1:8080 --jwt-secret S --publish-key K --scenario per-user --streams 10000 --rate 2000\n  \
    herald bench --target rawsse --url 127.0.0.1:9103 --scenario broadcast --streams 10000 --pid $(pgrep rawsse)\n\n\
    bench/compare.sh runs every scenario against Herald and every peer.")]
pub struct BenchArgs {
    /// Which server is listening at --url.
    #[arg(long, value_enum, default_value = "herald")]
    pub target: Kind,
    /// host:port of the server.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub url: String,
    /// host:port to publish to, if not --url: another node of the same Herald cluster, to
    /// measure cross-node delivery (streams on --url, events published here).
    #[arg(long)]
    pub publish_url: Option<String>,
    #[arg(long, value_enum, default_value = "per-user")]
    pub scenario: Scenario,
    /// SSE streams to hold (one per user).
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,
    /// Events per second (per-user), or broadcasts per second when not closed-loop.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// How long to publish.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub duration: Duration,
    /// Event size in bytes (the marker padded with `x`).
    #[arg(long)]
    pub size: Option<usize>,
    /// Events per publish request (Herald only).
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// Mark every published event `"retain": true` (Herald only): the retained-values path.
    #[arg(long)]
    pub retain: bool,
    /// Send every publish request with a fresh `Idempotency-Key` (Herald only): the cost of
    /// checking and remembering keys.
    #[arg(long)]
    pub idempotency_keys: bool,
    /// Publish at most this many events (broadcasts, in broadcast runs); with `--listen-only`,
    /// how many broadcasts to wait for.
    #[arg(long)]
    pub events: Option<u64>,
    /// Publish nothing: hold the streams and count the `--events` broadcasts another generator
    /// publishes (load generators that share one broadcast, several processes each under the
    /// descriptor limit). Prints `streams open: N` on stderr once its streams are open.
    #[arg(long, requires = "events")]
    pub listen_only: bool,
    /// Broadcasts in flight in closed-loop runs: 4 measures the saturation rate; 1 measures
    /// how long one broadcast takes to reach every stream.
    #[arg(long, default_value_t = 4)]
    pub window: u64,
    /// Concurrent publisher connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Server process id, for memory and CPU from /proc; repeat it for a server of several
    /// processes (nginx's workers): CPU is summed, and memory is the sum of their proportional
    /// set sizes, so pages they share count once.
    #[arg(long)]
    pub pid: Vec<u32>,
    /// Herald's --jwt-secret (to mint subscriber tokens).
    #[arg(long, env = "HERALD_JWT_SECRET", default_value = "")]
    pub jwt_secret: String,
    /// Herald's --publish-key.
    #[arg(long, env = "HERALD_PUBLISH_KEY", default_value = "")]
    pub publish_key: String,
    /// Connect over TLS (HTTP/1.1), trusting the PEM certificate or CA in this file.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Open streams over HTTP/2, this many per connection (TLS with ALPN `h2` when `--tls-ca`
    /// is given, else cleartext HTTP/2 with prior knowledge). 0: HTTP/1.1, one connection per
    /// stream. Publishers always use HTTP/1.1.
    #[arg(long, default_value_t = 0)]
    pub http2_streams: usize,
    /// The name the server's certificate must carry (TLS only).
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,
    /// Streams and events are for users named this and a number: load generators that share
    /// a hub (several processes, each under the descriptor limit) each take their own.
    #[arg(long, default_value = "u")]
    pub user_prefix: String,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(text.len()),
    );
    let value: f64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (try 10s, 500ms, 2m)"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => return Err(format!("unknown unit in {text:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(seconds))
}

/// Runs one scenario and prints its report.
pub async fn run(args: BenchArgs) -> Result<Report, String> {
    let report = scenario::run(&args).await?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).map_err(|e| e.to_string())?
        );
    } else {
        print!("{}", report.to_text());
    }
    Ok(report)
}
