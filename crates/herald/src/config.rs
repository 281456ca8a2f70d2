//! Resolving `herald serve`'s configuration: flag > environment > `--config` file > default.
//!
//! Clap already merges flags and environment variables; this module lays the TOML file under
//! them, applies defaults, and rejects what cannot work (with a message saying why).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use herald_redis::RedisConfig;
use serde::Deserialize;

use crate::cli::ServeArgs;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_PUBLIC_TOPIC: &str = "public/**";

/// The TOML file: the same names as the flags.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct FileConfig {
    listen: Option<SocketAddr>,
    jwt_secret: Option<String>,
    jwt_public_key: Option<PathBuf>,
    publish_key: Option<Vec<String>>,
    allow_anonymous: Option<bool>,
    public_topic: Option<Vec<String>>,
    heartbeat: Option<u64>,
    history: Option<usize>,
    retry_ms: Option<u64>,
    redis: Option<String>,
    redis_prefix: Option<String>,
    redis_channel: Option<String>,
    redis_connect_timeout_ms: Option<u64>,
    redis_command_timeout_ms: Option<u64>,
    redis_backoff_max_ms: Option<u64>,
    cors_origin: Option<Vec<String>>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    max_connections: Option<usize>,
    max_connections_per_user: Option<usize>,
    max_stream_lifetime: Option<String>,
    write_timeout: Option<String>,
    workers: Option<usize>,
    max_connect_rate_per_ip: Option<u32>,
    publish_rate: Option<u32>,
    max_body_bytes: Option<usize>,
    schema: Option<PathBuf>,
    schema_strict: Option<bool>,
    console: Option<bool>,
}

/// Everything `serve` needs, resolved.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<PathBuf>,
    pub publish_keys: Vec<String>,
    pub allow_anonymous: bool,
    pub public_topics: Vec<String>,
    pub heartbeat: Duration,
    pub history: usize,
    pub retry_ms: u64,
    /// Multi-node mode: the Redis broker's settings (`None` = the embedded broker).
    pub redis: Option<RedisConfig>,
    pub cors_origins: Vec<String>,
    pub max_connections: Option<usize>,
    pub max_connections_per_user: Option<usize>,
    /// Streams are recycled after (90-100% of) this long.
    pub max_stream_lifetime: Option<Duration>,
    /// A stream whose client takes no bytes for this long is closed.
    pub write_timeout: Duration,
    /// Runtime worker threads (None = one per CPU core).
    pub workers: Option<usize>,
    /// New connections per second from one IP address (None = unlimited).
    pub max_connect_rate_per_ip: Option<u32>,
    /// Events per second per publish key or publisher token (None = unlimited).
    pub publish_rate: Option<u32>,
    pub max_body_bytes: usize,
    /// No key material was configured: secrets are generated and printed (development only).
    pub dev_mode: bool,
    /// Serve the developer console: `--console`, on by default in development mode.
    pub console: bool,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with this certificate and key.
    pub tls: Option<TlsFiles>,
    /// Typed events: JSON Schemas per event name that published data must match.
    pub schema: Option<PathBuf>,
    /// With a schema, refuse events it does not list.
    pub schema_strict: bool,
}

/// `--tls-cert` and `--tls-key`: PEM files.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("{0} is not supported yet in this version of Herald ({1}); remove it to run")]
    Unsupported(&'static str, &'static str),
    #[error("--tls-cert and --tls-key must be given together")]
    TlsPair,
    #[error("invalid {0}: {1}")]
    Invalid(&'static str, String),
    #[error("--heartbeat must be at least 1 second")]
    Heartbeat,
    #[error("--cors-origin {0:?}: give exact origins like https://app.example.com; a wildcard cannot be combined with credentials")]
    CorsOrigin(String),
    #[error("--max-body-bytes must be at least 1")]
    BodyLimit,
}

fn pick<T>(flag_or_env: Option<T>, file: Option<T>) -> Option<T> {
    flag_or_env.or(file)
}

fn pick_list(flag_or_env: Vec<String>, file: Option<Vec<String>>) -> Option<Vec<String>> {
    if flag_or_env.is_empty() {
        file
    } else {
        Some(flag_or_env)
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: shown.clone(),
        source,
    })?;
    toml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: shown,
        source,
    })
}

/// A duration from the config file, written like the flag (`"30s"`, `"1h"`).
fn file_duration(key: &'static str, text: Option<String>) -> Result<Option<Duration>, ConfigError> {
    text.as_deref()
        .map(humantime::parse_duration)
        .transpose()
        .map_err(|e| ConfigError::Invalid(key, e.to_string()))
}

impl ServeConfig {
    pub fn resolve(args: ServeArgs) -> Result<Self, ConfigError> {
        let file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let history = pick(args.history, file.history).unwrap_or(10_000);
        let redis = pick(args.redis, file.redis).map(|url| {
            let mut redis = RedisConfig::new(url);
            redis.history = history;
            if let Some(prefix) = pick(args.redis_prefix, file.redis_prefix) {
                redis.key_prefix = prefix;
            }
            if let Some(channel) = pick(args.redis_channel, file.redis_channel) {
                redis.ingress_channel = (!channel.is_empty()).then_some(channel);
            }
            let ms = Duration::from_millis;
            if let Some(t) = pick(args.redis_connect_timeout_ms, file.redis_connect_timeout_ms) {
                redis.connect_timeout = ms(t.max(1));
            }
            if let Some(t) = pick(args.redis_command_timeout_ms, file.redis_command_timeout_ms) {
                redis.command_timeout = ms(t.max(1));
            }
            if let Some(t) = pick(args.redis_backoff_max_ms, file.redis_backoff_max_ms) {
                redis.backoff_max = ms(t);
            }
            redis
        });
        let tls = match (
            pick(args.tls_cert, file.tls_cert),
            pick(args.tls_key, file.tls_key),
        ) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
            (None, None) => None,
            _ => return Err(ConfigError::TlsPair),
        };

        let file_lifetime = file_duration("max-stream-lifetime", file.max_stream_lifetime)?;
        let max_stream_lifetime =
            pick(args.max_stream_lifetime, file_lifetime).filter(|d| !d.is_zero());
        let file_write_timeout = file_duration("write-timeout", file.write_timeout)?;
        let write_timeout = pick(args.write_timeout, file_write_timeout)
            .filter(|d| !d.is_zero())
            .unwrap_or(crate::limits::DEFAULT_WRITE_TIMEOUT);
        let heartbeat = pick(args.heartbeat, file.heartbeat).unwrap_or(15);
        if heartbeat == 0 {
            return Err(ConfigError::Heartbeat);
        }
        let cors_origins = pick_list(args.cors_origin, file.cors_origin).unwrap_or_default();
        if let Some(bad) = cors_origins
            .iter()
            .find(|o| o.contains('*') || !(o.starts_with("http://") || o.starts_with("https://")))
        {
            return Err(ConfigError::CorsOrigin(bad.clone()));
        }
        let max_body_bytes = pick(args.max_body_bytes, file.max_body_bytes).unwrap_or(1 << 20);
        if max_body_bytes == 0 {
            return Err(ConfigError::BodyLimit);
        }
        let jwt_secret = pick(args.jwt_secret, file.jwt_secret);
        let jwt_public_key = pick(args.jwt_public_key, file.jwt_public_key);
        let publish_keys = pick_list(args.publish_key, file.publish_key).unwrap_or_default();
        let dev_mode = jwt_secret.is_none() && jwt_public_key.is_none() && publish_keys.is_empty();
        let console = pick(args.console, file.console).unwrap_or(dev_mode);

        Ok(Self {
            listen: pick(args.listen, file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("valid default address")),
            jwt_secret,
            jwt_public_key,
            publish_keys,
            allow_anonymous: pick(args.allow_anonymous, file.allow_anonymous).unwrap_or(false),
            public_topics: pick_list(args.public_topic, file.public_topic)
                .unwrap_or_else(|| vec![DEFAULT_PUBLIC_TOPIC.to_owned()]),
            heartbeat: Duration::from_secs(heartbeat),
            history,
            retry_ms: pick(args.retry_ms, file.retry_ms).unwrap_or(3_000),
            redis,
            cors_origins,
            max_connections: pick(args.max_connections, file.max_connections),
            max_connections_per_user: pick(
                args.max_connections_per_user,
                file.max_connections_per_user,
            ),
            max_connect_rate_per_ip: pick(
                args.max_connect_rate_per_ip,
                file.max_connect_rate_per_ip,
            )
            .filter(|n| *n > 0),
            publish_rate: pick(args.publish_rate, file.publish_rate).filter(|n| *n > 0),
            max_body_bytes,
            max_stream_lifetime,
            write_timeout,
            workers: pick(args.workers, file.workers).filter(|n| *n > 0),
            console,
            tls,
            schema: pick(args.schema, file.schema),
            schema_strict: pick(args.schema_strict, file.schema_strict).unwrap_or(false),
            dev_mode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile_path::TempFile {
        tempfile_path::TempFile::new(text)
    }

    /// A tiny temp-file helper (no extra dependency for one test).
    mod tempfile_path {
        pub struct TempFile(pub std::path::PathBuf);
        impl TempFile {
            pub fn new(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "herald-config-{}-{}.toml",
                    std::process::id(),
                    rand::random::<u64>()
                ));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }
        }
        impl Drop for TempFile {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn defaults_without_anything() {
        let config = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
        assert_eq!(config.heartbeat, Duration::from_secs(15));
        assert_eq!(config.max_body_bytes, 1 << 20);
        assert_eq!(config.public_topics, vec!["public/**"]);
        assert!(config.dev_mode);
    }

    #[test]
    fn flag_beats_file_and_file_beats_default() {
        let f = file(
            "listen = \"127.0.0.1:9000\"\nheartbeat = 5\nhistory = 7\npublish-key = [\"k1\"]\nworkers = 3\n",
        );
        let args = ServeArgs {
            config: Some(f.0.clone()),
            heartbeat: Some(2),
            ..ServeArgs::default()
        };
        let config = ServeConfig::resolve(args).unwrap();
        assert_eq!(config.heartbeat, Duration::from_secs(2));
        assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
        assert_eq!(config.history, 7);
        assert_eq!(config.publish_keys, vec!["k1"]);
        assert_eq!(config.workers, Some(3));
        assert!(!config.dev_mode);
    }

    #[test]
    fn redis_settings_come_from_flags_and_file() {
        let f = file("redis = \"redis://file\"\nredis-channel = \"\"\nredis-command-timeout-ms = 300\nhistory = 50\n");
        let config = ServeConfig::resolve(ServeArgs {
            config: Some(f.0.clone()),
            redis_prefix: Some("blue".into()),
            ..Default::default()
        })
        .unwrap();
        let redis = config.redis.expect("redis mode");
        assert_eq!(redis.url, "redis://file");
        assert_eq!(redis.key_prefix, "blue");
        assert_eq!(redis.ingress_channel, None);
        assert_eq!(redis.command_timeout, Duration::from_millis(300));
        assert_eq!(redis.history, 50);
        let config = ServeConfig::resolve(ServeArgs::default()).unwrap();
        assert!(config.redis.is_none());
    }

    #[test]
    fn unknown_file_keys_and_unsupported_flags_are_errors() {
        let f = file("listne = \"127.0.0.1:9000\"\n");
        let err = ServeConfig::resolve(ServeArgs {
            config: Some(f.0.clone()),
            ..Default::default()
        });
        assert!(matches!(err, Err(ConfigError::Parse { .. })));
        let err = ServeConfig::resolve(ServeArgs {
            cors_origin: vec!["*".into()],
            ..Default::default()
        });
        assert!(matches!(err, Err(ConfigError::CorsOrigin(_))));
    }
}
