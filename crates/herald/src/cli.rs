//! Command-line interface: `herald serve | token | publish | subscribe | bench`.
//!
//! Every `serve` flag can also come from an environment variable `HERALD_<FLAG>` and from the TOML
//! file given with `--config` (keys are the flag names, e.g. `jwt-secret = "..."`). Precedence:
//! flag > environment > file > built-in default. Repeatable flags take comma-separated lists
//! from the environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand};

pub use crate::commands::publish::PublishArgs;
pub use crate::commands::subscribe::SubscribeArgs;
pub use crate::commands::typegen::TypegenArgs;

#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "A real-time event hub over Server-Sent Events."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the hub.
    #[command(
        after_help = "Example (development, everything generated):\n  herald serve\n\n\
Example (production):\n  herald serve --listen 0.0.0.0:8080 --jwt-secret \"$SECRET\" --publish-key \"$KEY\" \\\n    --cors-origin https://app.example.com"
    )]
    Serve(Box<ServeArgs>),
    /// Mint a JWT for development: a subscriber token (--sub) and/or a publisher token (--publish).
    #[command(
        after_help = "Examples:\n  herald token --secret \"$SECRET\" --sub user_123 --topics 'orders/*' --ttl 1h\n  \
herald token --secret \"$SECRET\" --publish 'orders/**' --publish @users"
    )]
    Token(TokenArgs),
    /// Publish events to a running hub: one from flags, or many as JSON lines on stdin.
    #[command(
        after_help = "Examples:\n  herald publish --url http://127.0.0.1:8080 --key \"$KEY\" --user user_123 \\\n    \
--event payment_completed --data '{\"amount\":5000}'\n  \
herald publish --key \"$KEY\" --topic orders/42 --event order_update --data '{\"status\":\"shipped\"}'\n  \
herald publish --key \"$KEY\" --data '\"hello, everyone\"'\n  \
printf '%s\\n' '{\"user\":\"u1\",\"event\":\"e\",\"data\":1}' '{\"data\":2}' | herald publish --key \"$KEY\" --batch\n\n\
Prints the id of each published event. Exit status 2 with the hub's reason on any error."
    )]
    Publish(PublishArgs),
    /// Tail a stream: print events as they arrive (reconnects and resumes by itself).
    #[command(
        after_help = "Examples:\n  herald subscribe --url http://127.0.0.1:8080 --token \"$TOKEN\"\n  \
herald subscribe --token \"$TOKEN\" --topic 'orders/*' --last-event-id 1732460000123-0\n  \
herald subscribe --token \"$TOKEN\" --json | jq .data\n\n\
Mint a development token with: herald token --secret \"$SECRET\" --sub user_123 --topics 'orders/*'\n\
Exit status 2 with the hub's reason when it refuses the stream (401, 403) or cannot be reached."
    )]
    Subscribe(SubscribeArgs),
    /// Print TypeScript types for the events of a --schema file (for @herald/client).
    #[command(
        after_help = "Example:\n  herald typegen --schema events.schema.json > src/herald-events.ts\n\n\
Then: createClient<Events>({ url, getToken }) with `import type { Events } from './herald-events'`."
    )]
    Typegen(TypegenArgs),
    /// Load-test a hub (or a peer server): streams, publishers, latency, memory.
    Bench(Box<herald_bench::BenchArgs>),
}

#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys are flag names: listen = "0.0.0.0:8080").
    #[arg(long, env = "HERALD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "HERALD_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// HS256 secret for subscriber and publisher JWTs. Random if no key is configured (dev mode).
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with an RSA (RS256) or EC P-256 (ES256) public key for JWTs.
    #[arg(long, env = "HERALD_JWT_PUBLIC_KEY")]
    pub jwt_public_key: Option<PathBuf>,
    /// Key accepted as `Authorization: Bearer <key>` on POST /publish (repeatable).
    #[arg(
        long,
        env = "HERALD_PUBLISH_KEY",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub publish_key: Vec<String>,
    /// Admit streams without a token (broadcasts and public topics only).
    #[arg(long, env = "HERALD_ALLOW_ANONYMOUS", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub allow_anonymous: Option<bool>,
    /// Topic pattern open to every stream, anonymous included (repeatable) [default: public/**].
    #[arg(long, env = "HERALD_PUBLIC_TOPIC", value_delimiter = ',')]
    pub public_topic: Vec<String>,
    /// Seconds between heartbeat comments on idle streams [default: 15].
    #[arg(long, env = "HERALD_HEARTBEAT")]
    pub heartbeat: Option<u64>,
    /// Events kept for resume with Last-Event-ID [default: 10000].
    #[arg(long, env = "HERALD_HISTORY")]
    pub history: Option<usize>,
    /// Reconnection delay suggested to clients, in milliseconds [default: 3000].
    #[arg(long, env = "HERALD_RETRY_MS")]
    pub retry_ms: Option<u64>,
    /// Redis URL for multi-node mode: redis://[user:password@]host:port[/db], or rediss:// (TLS).
    #[arg(long, env = "HERALD_REDIS", hide_env_values = true)]
    pub redis: Option<String>,
    /// Prefix of the Redis keys; nodes with the same prefix form one hub [default: herald].
    #[arg(long, env = "HERALD_REDIS_PREFIX")]
    pub redis_prefix: Option<String>,
    /// Redis Pub/Sub channel for seed-format messages; "" turns ingress off [default: user:events].
    #[arg(long, env = "HERALD_REDIS_CHANNEL")]
    pub redis_channel: Option<String>,
    /// Bound on connecting to Redis, in milliseconds [default: 2000].
    #[arg(long, env = "HERALD_REDIS_CONNECT_TIMEOUT_MS")]
    pub redis_connect_timeout_ms: Option<u64>,
    /// Bound on one Redis command, in milliseconds; publishes fail with 503 after it [default: 2000].
    #[arg(long, env = "HERALD_REDIS_COMMAND_TIMEOUT_MS")]
    pub redis_command_timeout_ms: Option<u64>,
    /// Longest delay between Redis reconnect attempts, in milliseconds (exponential backoff
    /// with jitter from 100 ms) [default: 5000].
    #[arg(long, env = "HERALD_REDIS_BACKOFF_MAX_MS")]
    pub redis_backoff_max_ms: Option<u64>,
    /// Origin allowed to call the hub from a browser, with credentials (repeatable).
    #[arg(long, env = "HERALD_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,
    /// TLS certificate chain (PEM, leaf first): serve HTTPS with HTTP/2 and HTTP/1.1 (ALPN).
    #[arg(long, env = "HERALD_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long, env = "HERALD_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Streams allowed on this node; more get 503 [default: unlimited].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Streams allowed per user on this node; more get 429 [default: unlimited].
    #[arg(long, env = "HERALD_MAX_CONNECTIONS_PER_USER")]
    pub max_connections_per_user: Option<usize>,
    /// End each stream after this long (e.g. 1h; each stream gets 90-100% of it at random) with
    /// a reconnect hint; clients resume with Last-Event-ID. Spreads long-lived streams over
    /// nodes after scaling out [default: unlimited].
    #[arg(long, env = "HERALD_MAX_STREAM_LIFETIME", value_parser = humantime::parse_duration)]
    pub max_stream_lifetime: Option<Duration>,
    /// Threads serving connections [default: one per CPU core]. On a machine shared with
    /// other busy processes (a load generator, a database), fewer threads can mean lower tail
    /// latency: see docs/BENCHMARKS.md.
    #[arg(long, env = "HERALD_WORKERS")]
    pub workers: Option<usize>,
    /// Close a stream whose client takes no bytes for this long, e.g. 30s [default: 30s].
    #[arg(long, env = "HERALD_WRITE_TIMEOUT", value_parser = humantime::parse_duration)]
    pub write_timeout: Option<Duration>,
    /// New connections per second accepted from one IP address; beyond it, cleartext
    /// connections get 429 with Retry-After and TLS ones are closed [default: unlimited].
    #[arg(long, env = "HERALD_MAX_CONNECT_RATE_PER_IP")]
    pub max_connect_rate_per_ip: Option<u32>,
    /// Events per second one publish key or publisher token may publish (a batch counts each
    /// event); beyond it, 429 with Retry-After [default: unlimited].
    #[arg(long, env = "HERALD_PUBLISH_RATE")]
    pub publish_rate: Option<u32>,
    /// Largest accepted POST /publish body in bytes [default: 1048576].
    #[arg(long, env = "HERALD_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Typed events: a JSON file {"events": {"<event name>": <JSON Schema>}}; a publish whose
    /// data does not match its event's schema is refused with 400.
    #[arg(long, env = "HERALD_SCHEMA")]
    pub schema: Option<PathBuf>,
    /// With --schema, also refuse events the schema file does not list.
    #[arg(long, env = "HERALD_SCHEMA_STRICT", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub schema_strict: Option<bool>,
    /// Serve the developer console at /console; it asks for a publish key [default: on in
    /// development mode, off otherwise].
    #[arg(long, env = "HERALD_CONSOLE", num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub console: Option<bool>,
}

#[derive(Debug, Args)]
pub struct TokenArgs {
    /// HS256 secret (the hub's --jwt-secret).
    #[arg(long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    pub secret: String,
    /// User id: makes a subscriber token for this user.
    #[arg(long)]
    pub sub: Option<String>,
    /// Topic patterns the subscriber may subscribe to (repeatable or comma-separated).
    #[arg(long, value_delimiter = ',')]
    pub topics: Vec<String>,
    /// What a publisher token may publish to: topic patterns, "@users", "@broadcast" (repeatable).
    #[arg(long, value_delimiter = ',')]
    pub publish: Vec<String>,
    /// Lifetime, e.g. 30m, 1h, 7d.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: std::time::Duration,
}
