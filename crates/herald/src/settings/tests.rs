use std::time::Duration;

use super::*;
use crate::cli::{Cli, Command};

/// A temporary config file, removed when dropped.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "herald-config-{}-{}.toml",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// `herald serve <args>` resolved, as the binary would (the test process has no HERALD_*
/// variables that clap would read: tests that set them run the binary instead).
fn resolve(args: &[&str]) -> Result<Settings, ConfigError> {
    let cli = Cli::try_parse_args(["herald", "serve"].iter().chain(args)).unwrap();
    let Command::Serve(settings) = cli.command else {
        unreachable!()
    };
    settings.resolve()
}

#[test]
fn defaults_without_anything() {
    let config = resolve(&[]).unwrap();
    assert_eq!(config.listen.to_string(), DEFAULT_LISTEN);
    assert_eq!(config.hub().heartbeat, Duration::from_secs(15));
    assert_eq!(config.max_body_bytes.as_usize(), 1 << 20);
    assert_eq!(config.public_topic, vec!["public/**"]);
    assert!(config.dev_mode());
}

#[test]
fn defaults_agree_with_the_libraries() {
    let config = resolve(&[]).unwrap();
    let hub = config.hub();
    let library = HubConfig::default();
    assert_eq!(hub.history, library.history);
    assert_eq!(hub.heartbeat, library.heartbeat);
    assert_eq!(hub.retry_ms, library.retry_ms);
    let redis = resolve(&["--redis", "redis://x"]).unwrap().redis().unwrap();
    let library = RedisConfig::new("redis://x");
    assert_eq!(redis.key_prefix, library.key_prefix);
    assert_eq!(redis.ingress_channel, library.ingress_channel);
    assert_eq!(redis.connect_timeout, library.connect_timeout);
    assert_eq!(redis.command_timeout, library.command_timeout);
    assert_eq!(redis.backoff_max, library.backoff_max);
    assert_eq!(redis.history, library.history);
}

#[test]
fn flag_beats_file_and_file_beats_default() {
    let f = TempFile::new(
        "listen = \"127.0.0.1:9000\"\nheartbeat = 5\nhistory = 7\npublish-key = [\"k1\"]\nworkers = 3\n",
    );
    let config = resolve(&["--config", f.arg(), "--heartbeat", "2"]).unwrap();
    assert_eq!(config.hub().heartbeat, Duration::from_secs(2));
    assert_eq!(config.listen.to_string(), "127.0.0.1:9000");
    assert_eq!(config.history, 7);
    assert_eq!(config.publish_key, vec!["k1"]);
    assert_eq!(config.workers(), Some(3));
    assert!(!config.dev_mode());
}

#[test]
fn file_values_use_the_flags_syntax() {
    let f = TempFile::new(
        "max-body-bytes = \"2MiB\"\nwrite-timeout = \"5s\"\nmax-stream-lifetime = \"1h\"\nallow-anonymous = true\n",
    );
    let config = resolve(&["--config", f.arg()]).unwrap();
    assert_eq!(config.max_body_bytes.as_usize(), 2 << 20);
    assert_eq!(config.server().write_timeout, Duration::from_secs(5));
    assert_eq!(
        config.max_stream_lifetime(),
        Some(Duration::from_secs(3600))
    );
    assert!(config.allow_anonymous);
    let f = TempFile::new("max-body-bytes = 4096\n");
    assert_eq!(
        resolve(&["--config", f.arg()]).unwrap().max_body_bytes.0,
        4096
    );
}

#[test]
fn redis_settings_come_from_flags_and_file() {
    let f = TempFile::new(
        "redis = \"redis://file\"\nredis-channel = \"\"\nredis-command-timeout-ms = 300\nhistory = 50\n",
    );
    let config = resolve(&["--config", f.arg(), "--redis-prefix", "blue"]).unwrap();
    let redis = config.redis().expect("redis mode");
    assert_eq!(redis.url, "redis://file");
    assert_eq!(redis.key_prefix, "blue");
    assert_eq!(redis.ingress_channel, None);
    assert_eq!(redis.command_timeout, Duration::from_millis(300));
    assert_eq!(redis.history, 50);
    let config = resolve(&[]).unwrap();
    assert!(config.redis().is_none());
}

#[test]
fn sentinel_settings_need_a_primary_name_and_exclude_a_redis_url() {
    let config = resolve(&[
        "--redis-sentinel",
        "redis://s1:26379,redis://s2:26379",
        "--redis-master",
        "main",
        "--redis-min-replicas",
        "1",
    ])
    .unwrap();
    let redis = config.redis().expect("redis mode");
    assert_eq!(redis.sentinels, ["redis://s1:26379", "redis://s2:26379"]);
    assert_eq!(redis.sentinel_master.as_deref(), Some("main"));
    assert_eq!(redis.min_replicas, 1);
    for args in [
        &["--redis-sentinel", "redis://s1"][..],
        &["--redis-master", "main"][..],
        &[
            "--redis",
            "redis://r",
            "--redis-sentinel",
            "redis://s1",
            "--redis-master",
            "m",
        ][..],
    ] {
        let error = resolve(args).unwrap_err().to_string();
        assert!(error.contains("--redis"), "{args:?}: {error}");
    }
}

#[test]
fn cluster_seeds_are_repeatable_and_exclude_the_other_ways_to_reach_redis() {
    let config = resolve(&[
        "--redis-cluster",
        "redis://c1:7000,redis://c2:7000",
        "--redis-cluster",
        "redis://c3:7000",
    ])
    .unwrap();
    let redis = config.redis().expect("redis mode");
    assert_eq!(
        redis.cluster,
        ["redis://c1:7000", "redis://c2:7000", "redis://c3:7000"]
    );
    assert!(redis.sentinel_master.is_none());
    for args in [
        &["--redis-cluster", "redis://c1", "--redis", "redis://r"][..],
        &[
            "--redis-cluster",
            "redis://c1",
            "--redis-sentinel",
            "redis://s1",
            "--redis-master",
            "m",
        ][..],
    ] {
        let error = resolve(args).unwrap_err().to_string();
        assert!(error.contains("--redis-cluster"), "{args:?}: {error}");
    }
}

#[test]
fn unknown_file_keys_and_unsupported_flags_are_errors() {
    let f = TempFile::new("listne = \"127.0.0.1:9000\"\n");
    let err = resolve(&["--config", f.arg()]);
    assert!(matches!(err, Err(ConfigError::Parse { .. })));
    assert!(err.unwrap_err().to_string().contains("listne"));
    let f = TempFile::new("config = \"other.toml\"\n");
    assert!(matches!(
        resolve(&["--config", f.arg()]),
        Err(ConfigError::Parse { .. })
    ));
    let f = TempFile::new("heartbeat = \"often\"\n");
    let err = resolve(&["--config", f.arg()]).unwrap_err().to_string();
    assert!(
        err.contains("heartbeat") || err.contains("integer"),
        "{err}"
    );
    let err = resolve(&["--cors-origin", "*"]);
    assert!(matches!(err, Err(ConfigError::CorsOrigin(_))));
}

#[test]
fn every_flag_has_an_environment_variable_and_help() {
    let command = crate::cli::command();
    let serve = command
        .get_subcommands()
        .find(|c| c.get_name() == "serve")
        .unwrap();
    for arg in serve.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" {
            continue;
        }
        let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
        assert_eq!(env, Some(format!("HERALD_{}", id.to_ascii_uppercase())));
        assert!(arg.get_help().is_some(), "--{id} has no help");
    }
}

#[test]
fn auth_integration_settings() {
    let config = resolve(&[]).unwrap();
    assert_eq!(config.jwks_url().unwrap(), None);
    assert_eq!(config.jwks_refresh.0, Duration::from_secs(300));
    assert_eq!(config.auth_timeout.0, Duration::from_secs(2));
    assert_eq!(config.auth_max_concurrent, 256);
    assert_eq!(config.jwt_audience, None);
    let f = TempFile::new(
        "jwks-url = \"https://idp.example.com/.well-known/jwks.json\"\njwks-refresh = \"1h\"\njwt-audience = \"herald\"\nauth-timeout = \"500ms\"\n",
    );
    let config = resolve(&[
        "--config",
        f.arg(),
        "--auth-url",
        "http://app:3000/herald/auth",
    ])
    .unwrap();
    assert_eq!(
        config.jwks_url().unwrap().unwrap().host(),
        Some("idp.example.com")
    );
    assert_eq!(config.jwks_refresh.0, Duration::from_secs(3600));
    assert_eq!(config.jwt_audience.as_deref(), Some("herald"));
    assert_eq!(config.auth_timeout.0, Duration::from_millis(500));
    assert_eq!(config.auth_url().unwrap().unwrap().path(), "/herald/auth");
    assert!(!config.dev_mode(), "a JWKS is key material");
    for bad in [
        &["--jwks-url", "idp.example.com/keys"][..],
        &["--auth-url", "ftp://app/auth"],
        &["--jwks-refresh", "0s", "--jwks-url", "http://idp/keys"],
        &["--auth-timeout", "0s"],
        &["--auth-max-concurrent", "0"],
    ] {
        assert!(
            matches!(resolve(bad), Err(ConfigError::Invalid(..))),
            "{bad:?} was accepted"
        );
    }
}
