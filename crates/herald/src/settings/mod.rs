//! `herald serve`'s settings, each declared exactly once: a field of [`Settings`].
//!
//! One declaration gives a setting everything it has: the field's doc comment is its `--help`
//! text, its `#[arg]` its default, the flag is the field name with dashes (`--max-body-bytes`),
//! the environment variable is `HERALD_` and the name in capitals (`HERALD_MAX_BODY_BYTES`,
//! added to every flag by [`serve_command`]), and the key in the `--config` TOML file is the
//! flag's name (`max-body-bytes = "2MiB"`). Precedence is flag > environment > file > default
//! ([`layers`]). Adding a setting is adding a field here, and reading it where it is used.
//!
//! Cross-field rules (a TLS key needs a certificate, a heartbeat of at least a second...) are
//! checked once, in [`Settings::validate`], and the parts of the program that need settings get
//! them through the conversions at the end of this file ([`Settings::hub`],
//! [`Settings::redis`]), so defaults shared with the libraries come from the libraries.
//!
//! The file is as long as the list of settings (a little over 500 lines): keeping every
//! declaration in one struct is the point, so it grows by a few lines per setting.

mod layers;
pub mod units;

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use herald_core::{defaults, HubConfig};
use herald_redis::config as redis_defaults;
use herald_redis::RedisConfig;
use serde::{Deserialize, Serialize};

pub use layers::{serve_command, ConfigError};
use units::{ByteSize, Duration};

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_TOPIC: &str = "public/**";

/// Everything `herald serve` can be told. See the module docs for how a field becomes a flag,
/// an environment variable and a file key.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    /// TOML configuration file (keys are flag names: listen = "0.0.0.0:8080").
    #[arg(long)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address to listen on (":0" picks a free port; the actual address is printed).
    #[arg(long, default_value = DEFAULT_LISTEN)]
    pub listen: SocketAddr,
    /// HS256 secret for subscriber and publisher JWTs. Random if no key is configured (dev mode).
    #[arg(long, hide_env_values = true)]
    pub jwt_secret: Option<String>,
    /// PEM file with an RSA (RS256) or EC P-256 (ES256) public key for JWTs.
    #[arg(long)]
    pub jwt_public_key: Option<PathBuf>,
    /// JWKS URL of an identity provider: RS256/ES256/EdDSA JWTs are verified with its keys,
    /// chosen by the token's kid (refetched on an unknown kid, at most once per 10 s). Combines
    /// with --jwt-secret and --jwt-public-key. See docs/AUTH.md.
    #[arg(long)]
    pub jwks_url: Option<String>,
    /// How often the --jwks-url keys are fetched again, e.g. 5m or 1h.
    #[arg(long, default_value = "5m")]
    pub jwks_refresh: Duration,
    /// Every JWT must carry this aud claim (one missing or different is refused with 401)
    /// [default: aud is not checked].
    #[arg(long)]
    pub jwt_audience: Option<String>,
    /// Every JWT must carry this iss claim (one missing or different is refused with 401)
    /// [default: iss is not checked].
    #[arg(long)]
    pub jwt_issuer: Option<String>,
    /// Session hook: a subscribe request without a token is authorised by POSTing its cookies
    /// and topics to this URL of the app. See docs/API.md, "Session hook".
    #[arg(long)]
    pub auth_url: Option<String>,
    /// The session hook must answer within this; else the subscriber gets 503 with
    /// Retry-After.
    #[arg(long, default_value = "2s")]
    pub auth_timeout: Duration,
    /// Session hook calls in flight at once; more subscribe requests get 503 with Retry-After.
    #[arg(long, default_value_t = 256)]
    pub auth_max_concurrent: usize,
    /// Key accepted as `Authorization: Bearer <key>` on POST /publish (repeatable).
    #[arg(long, value_delimiter = ',', hide_env_values = true)]
    #[serde(default)]
    pub publish_key: Vec<String>,
    /// Admit streams without a token (broadcasts and public topics only).
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub allow_anonymous: bool,
    /// Topic pattern open to every stream, anonymous included (repeatable).
    #[arg(long, value_delimiter = ',', default_value = DEFAULT_PUBLIC_TOPIC)]
    #[serde(default)]
    pub public_topic: Vec<String>,
    /// Seconds between heartbeat comments on idle streams.
    #[arg(long, default_value_t = defaults::HEARTBEAT_SECS)]
    pub heartbeat: u64,
    /// Events kept for resume with Last-Event-ID.
    #[arg(long, default_value_t = defaults::HISTORY)]
    pub history: usize,
    /// Bytes of events kept for resume (each event counted with its targets and overhead);
    /// plain bytes or with a KiB/MiB/GiB suffix.
    #[arg(long, default_value = "64MiB")]
    pub history_bytes: ByteSize,
    /// Events older than this leave history, e.g. 10m or 1h [default: unlimited].
    #[arg(long)]
    pub history_ttl: Option<Duration>,
    /// Retained values kept (the latest event per target and event name, published with
    /// "retain": true), cluster-wide on Redis; the oldest leave first.
    #[arg(long, default_value_t = defaults::RETAINED_VALUES)]
    pub retained_values: usize,
    /// Bytes of retained values kept (each counted per target); the oldest leave first.
    #[arg(long, default_value_t = ByteSize(defaults::RETAINED_BYTES))]
    pub retained_bytes: ByteSize,
    /// Reconnection delay suggested to clients, in milliseconds.
    #[arg(long, default_value_t = defaults::RETRY_MS)]
    pub retry_ms: u64,
    /// Redis URL for multi-node mode: redis://[user:password@]host:port[/db], or rediss:// (TLS).
    #[arg(long, hide_env_values = true)]
    pub redis: Option<String>,
    /// A Sentinel to ask where the Redis primary is (repeatable; with --redis-master, instead
    /// of --redis). The primary uses the first sentinel URL's password, database and TLS.
    #[arg(long, value_delimiter = ',', hide_env_values = true)]
    #[serde(default)]
    pub redis_sentinel: Vec<String>,
    /// The primary's name in Sentinel (`sentinel monitor <name> …`).
    #[arg(long)]
    pub redis_master: Option<String>,
    /// A seed node of a Redis Cluster (repeatable; instead of --redis): the rest of the cluster
    /// is learned from it, and MOVED and ASK redirections are followed.
    #[arg(long, value_delimiter = ',', hide_env_values = true)]
    #[serde(default)]
    pub redis_cluster: Vec<String>,
    /// Prefix of the Redis keys; nodes with the same prefix form one hub.
    #[arg(long, default_value = redis_defaults::DEFAULT_KEY_PREFIX)]
    pub redis_prefix: String,
    /// Redis Pub/Sub channel for seed-format messages; "" turns ingress off.
    #[arg(long, default_value = redis_defaults::DEFAULT_INGRESS_CHANNEL)]
    pub redis_channel: String,
    /// Bound on connecting to Redis, in milliseconds.
    #[arg(long, default_value_t = redis_defaults::DEFAULT_CONNECT_TIMEOUT_MS)]
    pub redis_connect_timeout_ms: u64,
    /// Bound on one Redis command, in milliseconds; publishes fail with 503 after it.
    #[arg(long, default_value_t = redis_defaults::DEFAULT_COMMAND_TIMEOUT_MS)]
    pub redis_command_timeout_ms: u64,
    /// Acknowledge a publish only once Redis's WAIT confirms this many replicas hold it, so a
    /// failover loses no acknowledged event; else 503 within the command timeout.
    #[arg(long, default_value_t = 0)]
    pub redis_min_replicas: u32,
    /// Longest delay between Redis reconnect attempts, in milliseconds (exponential backoff
    /// with jitter from 100 ms).
    #[arg(long, default_value_t = redis_defaults::DEFAULT_BACKOFF_MAX_MS)]
    pub redis_backoff_max_ms: u64,
    /// Origin allowed to call the hub from a browser, with credentials (repeatable).
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub cors_origin: Vec<String>,
    /// TLS certificate chain (PEM, leaf first): serve HTTPS with HTTP/2 and HTTP/1.1 (ALPN).
    #[arg(long)]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1) for --tls-cert.
    #[arg(long)]
    pub tls_key: Option<PathBuf>,
    /// Streams allowed on this node; more get 503 [default: unlimited].
    #[arg(long)]
    pub max_connections: Option<usize>,
    /// Streams allowed per user on this node; more get 429 [default: unlimited].
    #[arg(long)]
    pub max_connections_per_user: Option<usize>,
    /// End each stream after this long (e.g. 1h; each stream gets 90-100% of it at random) with
    /// a reconnect hint; clients resume with Last-Event-ID. Spreads long-lived streams over
    /// nodes after scaling out [default: unlimited].
    #[arg(long)]
    pub max_stream_lifetime: Option<Duration>,
    /// Threads serving connections [default: one per CPU core]. On a machine shared with
    /// other busy processes (a load generator, a database), fewer threads can mean lower tail
    /// latency: see docs/BENCHMARKS.md.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Close a stream whose client takes no bytes for this long.
    #[arg(long, default_value = "30s")]
    pub write_timeout: Duration,
    /// A connection must send its complete request head within this (else 408 and close).
    #[arg(long, default_value = "10s")]
    pub header_timeout: Duration,
    /// Close a keep-alive connection that is not a stream after this long with no request.
    #[arg(long, default_value = "60s")]
    pub idle_timeout: Duration,
    /// Connections open at once from one IP address (HTTP/2 event streams count as
    /// connections); beyond it, 429 with Retry-After [default: unlimited].
    #[arg(long)]
    pub max_connections_per_ip: Option<usize>,
    /// Concurrent streams one HTTP/2 connection may open (nginx's default).
    #[arg(long, default_value_t = 128)]
    pub http2_max_streams: u32,
    /// New connections per second accepted from one IP address; beyond it, cleartext
    /// connections get 429 with Retry-After and TLS ones are closed [default: unlimited].
    #[arg(long)]
    pub max_connect_rate_per_ip: Option<u32>,
    /// How long an Idempotency-Key on POST /publish is remembered (per credential,
    /// cluster-wide on Redis): a repeat within it answers the same ids and publishes nothing.
    #[arg(long, default_value = "5m")]
    pub idempotency_window: Duration,
    /// URL that gets a signed POST when a user goes online or offline (repeatable; needs
    /// --webhook-secret). See docs/API.md, "Online/offline webhooks".
    #[arg(long, value_delimiter = ',')]
    #[serde(default)]
    pub webhook_url: Vec<String>,
    /// Key of the webhooks' signature header (Herald-Signature: sha256=<HMAC-SHA256>).
    #[arg(long, hide_env_values = true)]
    pub webhook_secret: Option<String>,
    /// A user is announced offline when their last stream closed this long ago and none
    /// opened since (a reload is not a departure).
    #[arg(long, default_value = "5s")]
    pub offline_delay: Duration,
    /// Resumes (streams opened with a Last-Event-ID) per second one user may make, or one IP
    /// address for anonymous streams, in bursts of that size; beyond it, 429 with Retry-After;
    /// 0 = unlimited.
    #[arg(long, default_value_t = 10)]
    pub resume_rate: u32,
    /// Events per second one publish key or publisher token may publish (a batch counts each
    /// event); beyond it, 429 with Retry-After [default: unlimited].
    #[arg(long)]
    pub publish_rate: Option<u32>,
    /// Largest accepted POST /publish body, in bytes (or with a KiB/MiB suffix).
    #[arg(long, default_value_t = ByteSize(defaults::MAX_BODY_BYTES as u64))]
    pub max_body_bytes: ByteSize,
    /// Typed events: a JSON file {"events": {"<event name>": <JSON Schema>}}; a publish whose
    /// data does not match its event's schema is refused with 400.
    #[arg(long)]
    pub schema: Option<PathBuf>,
    /// With --schema, also refuse events the schema file does not list.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub schema_strict: bool,
    /// Serve the developer console at /console; it asks for a publish key [default: on in
    /// development mode, off otherwise].
    #[arg(long, num_args = 0..=1, default_missing_value = "true",
          value_parser = BoolishValueParser::new())]
    pub console: Option<bool>,
    /// Also speak the Mercure protocol at /.well-known/mercure (publish, subscribe, private
    /// updates; tokens signed with the JWT keys above). See docs/API.md, "Mercure mode".
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub mercure: bool,
    /// With --mercure: track active subscriptions, publishing a private update when a
    /// subscription starts or ends and answering /.well-known/mercure/subscriptions (JSON-LD).
    /// See docs/MERCURE.md.
    #[arg(long, action = ArgAction::Set, num_args = 0..=1, default_value = "false",
          default_missing_value = "true", value_parser = BoolishValueParser::new())]
    pub mercure_subscriptions: bool,
    /// The settings given as flags or environment variables (see [`layers`]).
    #[arg(skip)]
    #[serde(skip)]
    pub(crate) given: layers::Given,
}

/// `--tls-cert` and `--tls-key`: PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Settings {
    /// Rejects combinations that cannot work, with a message saying why. Runs once, after the
    /// layers are merged ([`layers`]).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.heartbeat == 0 {
            return Err(ConfigError::Heartbeat);
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(ConfigError::TlsPair);
        }
        if let Some(bad) = self
            .cors_origin
            .iter()
            .find(|o| o.contains('*') || !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::CorsOrigin(bad.clone()));
        }
        if self.max_connections_per_ip == Some(0) {
            return Err(ConfigError::Invalid(
                "--max-connections-per-ip",
                "must be at least 1",
            ));
        }
        if self.max_body_bytes.0 == 0 {
            return Err(ConfigError::BodyLimit);
        }
        match (self.redis_sentinel.is_empty(), self.redis_master.is_some()) {
            (false, false) => {
                return Err(ConfigError::Invalid(
                    "--redis-sentinel",
                    "needs --redis-master, the name Sentinel monitors the primary by",
                ))
            }
            (true, true) => {
                return Err(ConfigError::Invalid(
                    "--redis-master",
                    "needs at least one --redis-sentinel to ask",
                ))
            }
            (false, true) if self.redis.is_some() => {
                return Err(ConfigError::Invalid(
                    "--redis",
                    "and --redis-sentinel are exclusive: give the sentinels, or the primary",
                ))
            }
            _ => {}
        }
        if !self.redis_cluster.is_empty() && (self.redis.is_some() || self.redis_master.is_some()) {
            return Err(ConfigError::Invalid(
                "--redis-cluster",
                "excludes --redis and --redis-sentinel: give one way to reach Redis",
            ));
        }
        self.webhooks()?;
        self.jwks_url()?;
        self.auth_url()?;
        if self.jwks_refresh.0 < std::time::Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "--jwks-refresh",
                "must be at least 1s",
            ));
        }
        if self.auth_timeout.0.is_zero() {
            return Err(ConfigError::Invalid(
                "--auth-timeout",
                "must be more than 0",
            ));
        }
        if self.auth_max_concurrent == 0 {
            return Err(ConfigError::Invalid(
                "--auth-max-concurrent",
                "must be at least 1",
            ));
        }
        Ok(())
    }

    /// `--jwks-url`, checked.
    pub fn jwks_url(&self) -> Result<Option<http::Uri>, ConfigError> {
        absolute_url(self.jwks_url.as_deref(), "--jwks-url")
    }

    /// `--auth-url`, checked.
    pub fn auth_url(&self) -> Result<Option<http::Uri>, ConfigError> {
        absolute_url(self.auth_url.as_deref(), "--auth-url")
    }

    /// No key material was configured: secrets are generated and printed (development only).
    pub fn dev_mode(&self) -> bool {
        self.jwt_secret.is_none()
            && self.jwt_public_key.is_none()
            && self.jwks_url.is_none()
            && self.publish_key.is_empty()
    }

    /// Serve the developer console: `--console`, on by default in development mode.
    pub fn console(&self) -> bool {
        self.console.unwrap_or_else(|| self.dev_mode())
    }

    pub fn tls(&self) -> Option<TlsFiles> {
        Some(TlsFiles {
            cert: self.tls_cert.clone()?,
            key: self.tls_key.clone()?,
        })
    }

    /// A zero means "no limit" for the optional limits and durations.
    pub fn max_stream_lifetime(&self) -> Option<std::time::Duration> {
        self.max_stream_lifetime
            .map(|d| d.0)
            .filter(|d| !d.is_zero())
    }

    pub fn idempotency_window(&self) -> std::time::Duration {
        Some(self.idempotency_window.0)
            .filter(|d| !d.is_zero())
            .unwrap_or(std::time::Duration::from_secs(300))
    }

    /// The webhooks' URLs and secret, if any URL is set.
    pub fn webhooks(&self) -> Result<Option<(Vec<http::Uri>, &str)>, ConfigError> {
        if self.webhook_url.is_empty() {
            return Ok(None);
        }
        let secret = self
            .webhook_secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or(ConfigError::Invalid(
                "--webhook-url",
                "needs --webhook-secret (the key receivers check each call's signature with)",
            ))?;
        let urls = self
            .webhook_url
            .iter()
            .map(|url| {
                absolute_url(Some(url), "--webhook-url")?.ok_or(ConfigError::Invalid(
                    "--webhook-url",
                    "must be an absolute http:// or https:// URL",
                ))
            })
            .collect::<Result<_, _>>()?;
        Ok(Some((urls, secret)))
    }

    /// The offline delay, at least a millisecond.
    pub fn offline_delay(&self) -> std::time::Duration {
        self.offline_delay
            .0
            .max(std::time::Duration::from_millis(1))
    }

    /// The server's part.
    pub fn server(&self) -> crate::server::ServerSettings {
        let nonzero = |d: Duration, fallback: u64| {
            Some(d.0)
                .filter(|d| !d.is_zero())
                .unwrap_or(std::time::Duration::from_secs(fallback))
        };
        crate::server::ServerSettings {
            header_timeout: nonzero(self.header_timeout, 10),
            idle_timeout: nonzero(self.idle_timeout, 60),
            write_timeout: nonzero(self.write_timeout, 30),
            http2_max_streams: self.http2_max_streams.max(1),
        }
    }

    pub fn workers(&self) -> Option<usize> {
        self.workers.filter(|n| *n > 0)
    }

    pub fn max_connect_rate_per_ip(&self) -> Option<u32> {
        self.max_connect_rate_per_ip.filter(|n| *n > 0)
    }

    pub fn publish_rate(&self) -> Option<u32> {
        self.publish_rate.filter(|n| *n > 0)
    }

    pub fn history_ttl(&self) -> Option<std::time::Duration> {
        self.history_ttl.map(|d| d.0).filter(|d| !d.is_zero())
    }

    fn retained(&self) -> herald_core::retained::RetainedLimits {
        herald_core::retained::RetainedLimits {
            values: self.retained_values.max(1),
            bytes: self.retained_bytes.as_usize().max(1),
        }
    }

    /// The hub's part.
    pub fn hub(&self) -> HubConfig {
        let library = HubConfig::default();
        HubConfig {
            history: self.history,
            history_bytes: self.history_bytes.as_usize(),
            history_ttl: self.history_ttl(),
            retained: self.retained(),
            // A stream's queue must hold the largest event (data of only line breaks encodes
            // to about 7 times its size), with room for a few more behind it.
            queue: herald_core::QueueLimits {
                max_bytes: library
                    .queue
                    .max_bytes
                    .max(self.max_body_bytes.as_usize().saturating_mul(8)),
                ..library.queue
            },
            heartbeat: std::time::Duration::from_secs(self.heartbeat),
            retry_ms: self.retry_ms,
            max_connections: self.max_connections,
            max_connections_per_user: self.max_connections_per_user,
            max_stream_lifetime: self.max_stream_lifetime(),
            ..library
        }
    }

    /// The Redis broker's part, in multi-node mode (`--redis`).
    pub fn redis(&self) -> Option<RedisConfig> {
        let ms = std::time::Duration::from_millis;
        let mut redis = match (&self.redis, &self.redis_master) {
            (Some(url), _) => RedisConfig::new(url.clone()),
            (None, Some(master)) => {
                let mut redis = RedisConfig::new(self.redis_sentinel.first()?.clone());
                redis.sentinels = self.redis_sentinel.clone();
                redis.sentinel_master = Some(master.clone());
                redis
            }
            (None, None) => {
                let mut redis = RedisConfig::new(self.redis_cluster.first()?.clone());
                redis.cluster = self.redis_cluster.clone();
                redis
            }
        };
        redis.history = self.history;
        redis.history_bytes = self.history_bytes.0;
        redis.history_ttl = self.history_ttl();
        redis.max_message_bytes = self.max_body_bytes.as_usize();
        redis.retained = self.retained();
        redis.key_prefix = self.redis_prefix.clone();
        redis.ingress_channel = Some(self.redis_channel.clone()).filter(|c| !c.is_empty());
        redis.connect_timeout = ms(self.redis_connect_timeout_ms.max(1));
        redis.command_timeout = ms(self.redis_command_timeout_ms.max(1));
        redis.min_replicas = self.redis_min_replicas;
        redis.backoff_max = ms(self.redis_backoff_max_ms);
        Some(redis)
    }
}

/// An absolute `http://` or `https://` URL, if given.
fn absolute_url(url: Option<&str>, flag: &'static str) -> Result<Option<http::Uri>, ConfigError> {
    let Some(url) = url.filter(|u| !u.is_empty()) else {
        return Ok(None);
    };
    url.parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("http" | "https")) && u.host().is_some())
        .map(Some)
        .ok_or(ConfigError::Invalid(
            flag,
            "must be an absolute http:// or https:// URL",
        ))
}

#[cfg(test)]
mod tests;
