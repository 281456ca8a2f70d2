//! `herald serve`: resolve configuration, build the hub and the HTTP app, run until a signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use herald_core::{Herald, HubConfig};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

use crate::app::{self, AppState};
use crate::auth::Auth;
use crate::commands::token;
use crate::config::ServeConfig;
use crate::limits::Limits;
use crate::schema::EventSchemas;
use crate::{server, tls};

/// Latency buckets (seconds): from 100 µs to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The user the development token is minted for.
const DEV_USER: &str = "dev-user";

pub async fn run(mut config: ServeConfig) -> Result<(), String> {
    if config.dev_mode {
        config.jwt_secret = Some(random_secret());
        config.publish_keys = vec![format!("hk_{}", random_secret())];
    }
    let metrics = install_metrics()?;
    let auth = Auth::new(
        config.jwt_secret.as_deref(),
        config.jwt_public_key.as_deref(),
        &config.publish_keys,
        &config.public_topics,
        config.allow_anonymous,
    )
    .map_err(|e| e.to_string())?;

    let mut hub = HubConfig {
        history: config.history,
        heartbeat: config.heartbeat,
        retry_ms: config.retry_ms,
        max_connections: config.max_connections,
        max_connections_per_user: config.max_connections_per_user,
        max_stream_lifetime: config.max_stream_lifetime,
        ..HubConfig::default()
    };
    hub.queue = HubConfig::default().queue;
    let herald = match config.redis.clone() {
        Some(redis) => {
            herald_redis::metrics::describe();
            let redis_at = herald_redis::describe_url(&redis);
            tracing::info!(redis = %redis_at, "multi-node mode: events go through Redis");
            herald_redis::start(redis, hub)
                .await
                .map_err(|e| e.to_string())?
        }
        None => Herald::in_memory(hub),
    };
    let mut limits = Limits::new(config.max_connect_rate_per_ip, config.publish_rate);
    limits.write_timeout = config.write_timeout;
    let limits = Arc::new(limits);
    let state = Arc::new(AppState {
        herald: herald.clone(),
        auth,
        max_body_bytes: config.max_body_bytes,
        console: config.console,
        limits: limits.clone(),
        schemas: load_schemas(&config)?,
        metrics: Some(metrics),
    });
    let router = app::router(state, &config.cors_origins);

    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let tls = match &config.tls {
        Some(files) => Some(tls::acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("herald listening on {scheme}://{addr}");
    if config.dev_mode {
        print_dev_banner(addr, &config)?;
    }
    server::serve(listener, router, herald, tls, limits, server::signal()).await;
    tracing::info!("stopped");
    Ok(())
}

fn load_schemas(config: &ServeConfig) -> Result<Option<EventSchemas>, String> {
    let Some(path) = &config.schema else {
        return Ok(None);
    };
    let schemas = EventSchemas::load(path, config.schema_strict)?;
    tracing::info!(
        events = schemas.len(),
        strict = config.schema_strict,
        "typed events: publishes are checked against {}",
        path.display()
    );
    Ok(Some(schemas))
}

fn random_secret() -> String {
    let bytes: [u8; 24] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn install_metrics() -> Result<PrometheusHandle, String> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(herald_core::metrics::DELIVERY_LATENCY.to_owned()),
            LATENCY_BUCKETS,
        )
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    herald_core::metrics::describe();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_secs(5));
        loop {
            interval.tick().await;
            upkeep.run_upkeep();
        }
    });
    Ok(handle)
}

/// Development mode: print the generated secrets and commands that work when pasted.
fn print_dev_banner(addr: SocketAddr, config: &ServeConfig) -> Result<(), String> {
    let secret = config.jwt_secret.as_deref().unwrap_or_default();
    let key = config
        .publish_keys
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let claims = token::claims(
        Some(DEV_USER.to_owned()),
        vec!["**".to_owned()],
        Vec::new(),
        Duration::from_secs(24 * 3600),
    );
    let dev_token = token::mint_hs256(secret, &claims).map_err(|e| e.to_string())?;
    println!(
        "\n\
Development mode: no --jwt-secret, --jwt-public-key or --publish-key was given, so these were
generated for this run only. Do not use them in production.

  JWT secret:   {secret}
  publish key:  {key}
  dev token:    {dev_token}
                (user \"{DEV_USER}\", may subscribe to any topic, valid 24h)

Subscribe (in one terminal):
  curl -N -H 'Authorization: Bearer {dev_token}' 'http://{addr}/events'

Publish (in another):
  curl -X POST 'http://{addr}/publish' -H 'Authorization: Bearer {key}' -H 'Content-Type: application/json' \\
    -d '{{\"user\":\"{DEV_USER}\",\"event\":\"notification\",\"data\":{{\"message\":\"Hello from Herald\"}}}}'

Developer console (live connections, events, a publish form):
  http://{addr}/console#key={key}

More tokens:
  herald token --secret '{secret}' --sub user_123 --topics 'orders/*'
"
    );
    Ok(())
}
