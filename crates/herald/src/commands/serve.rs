//! `herald serve`: resolve configuration, build the hub and the HTTP app, run until a signal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use herald_core::{Herald, StreamEnd, StreamEndHook};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::app::{self, AppState};
use crate::auth::Auth;
use crate::commands::token;
use crate::jwks::Jwks;
use crate::limits::Limits;
use crate::mercure::subscriptions::Subscriptions;
use crate::outbound::HttpClient;
use crate::schema::EventSchemas;
use crate::session_hook::SessionHook;
use crate::settings::Settings;
use crate::webhooks::Webhooks;
use crate::{server, tls};

/// Latency buckets (seconds): from 100 µs to 5 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Session hook latency buckets (seconds): from 1 ms to 10 s.
const HOOK_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The user the development token is minted for.
const DEV_USER: &str = "dev-user";

pub async fn run(mut config: Settings) -> Result<(), String> {
    let dev_mode = config.dev_mode();
    let console = config.console();
    if dev_mode {
        config.jwt_secret = Some(random_secret());
        config.publish_key = vec![format!("hk_{}", random_secret())];
    }
    let metrics = install_metrics()?;
    let jwks = start_jwks(&config).await?;
    let session_hook = session_hook(&config)?;
    crate::metrics::describe_auth(jwks.is_some(), session_hook.is_some());
    let auth = Auth::new(
        config.jwt_secret.as_deref(),
        config.jwt_public_key.as_deref(),
        &config.publish_key,
        &config.public_topic,
        config.allow_anonymous,
    )
    .map_err(|e| e.to_string())?
    .with_jwks(jwks)
    .with_claim_rules(config.jwt_audience.clone(), config.jwt_issuer.clone());

    let mut hub = config.hub();
    let mercure_subscriptions =
        (config.mercure && config.mercure_subscriptions).then(Subscriptions::new);
    hub.on_stream_end = Some(on_stream_end(mercure_subscriptions.clone()));
    let herald = match config.redis() {
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
    if let Some(subscriptions) = &mercure_subscriptions {
        subscriptions.attach(herald.clone());
    }
    start_webhooks(&config, &herald)?;
    let limits = Arc::new(
        Limits::new(
            config.max_connect_rate_per_ip(),
            config.max_connections_per_ip,
            config.publish_rate(),
        )
        .with_resume_rate(Some(config.resume_rate)),
    );
    let state = Arc::new(AppState {
        herald: herald.clone(),
        auth,
        session_hook,
        max_body_bytes: config.max_body_bytes.as_usize(),
        idempotency_window: config.idempotency_window(),
        console,
        limits: limits.clone(),
        schemas: load_schemas(&config)?,
        metrics: Some(metrics),
        mercure: config.mercure,
        mercure_subscriptions,
    });
    let router = app::router(state, &config.cors_origin);

    let listener = server::listen(config.listen)
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("cannot read the listening address: {e}"))?;
    let tls = match &config.tls() {
        Some(files) => Some(tls::acceptor(&files.cert, &files.key)?),
        None => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    println!("herald listening on {scheme}://{addr}");
    if dev_mode {
        print_dev_banner(addr, &config)?;
    }
    let settings = config.server();
    server::serve(
        listener,
        router,
        herald,
        tls,
        limits,
        settings,
        server::signal(),
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

/// With `--webhook-url`: announces users going online and offline to every URL.
fn start_webhooks(config: &Settings, herald: &Herald) -> Result<(), String> {
    let Some((urls, secret)) = config.webhooks().map_err(|e| e.to_string())? else {
        return Ok(());
    };
    let client = HttpClient::new(4)?;
    tracing::info!(
        urls = urls.len(),
        offline_delay_ms = config.offline_delay().as_millis() as u64,
        "online/offline webhooks on"
    );
    let webhooks = Webhooks::new(urls, secret, client);
    tokio::spawn(webhooks.run(herald.announce(config.offline_delay())));
    Ok(())
}

/// With `--jwks-url`: the keys, fetched now (a failure stops the start) and refreshed in the
/// background.
async fn start_jwks(config: &Settings) -> Result<Option<Arc<Jwks>>, String> {
    let Some(url) = config.jwks_url().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    let jwks = Jwks::start(url, HttpClient::new(2)?).await?;
    jwks.spawn_refresh(config.jwks_refresh.0);
    Ok(Some(jwks))
}

/// With `--auth-url`: the session hook.
fn session_hook(config: &Settings) -> Result<Option<SessionHook>, String> {
    let Some(url) = config.auth_url().map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    tracing::info!(
        url = %crate::jwks::redacted(&url),
        timeout_ms = config.auth_timeout.0.as_millis() as u64,
        "session hook on: streams without a token are authorised by the app"
    );
    SessionHook::new(url, config.auth_timeout.0, config.auth_max_concurrent).map(Some)
}

/// One log line per stream that ends, the counterpart of `routes::events`' "stream opened";
/// and the end of its Mercure subscriptions, when they are tracked.
fn on_stream_end(subscriptions: Option<Arc<Subscriptions>>) -> StreamEndHook {
    StreamEndHook(Arc::new(move |end: &StreamEnd<'_>| {
        if let Some(subscriptions) = &subscriptions {
            subscriptions.ended(end.id);
        }
        tracing::info!(
            stream = end.id,
            user = %end.user.unwrap_or("-"),
            duration_ms = end.duration.as_millis() as u64,
            reason = %end.reason.as_str(),
            "stream closed"
        );
    }))
}

fn load_schemas(config: &Settings) -> Result<Option<EventSchemas>, String> {
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
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(crate::metrics::AUTH_HOOK_DURATION.to_owned()),
                HOOK_BUCKETS,
            )
        })
        .and_then(|b| b.install_recorder())
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    herald_core::metrics::describe();
    crate::metrics::describe();
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
fn print_dev_banner(addr: SocketAddr, config: &Settings) -> Result<(), String> {
    let secret = config.jwt_secret.as_deref().unwrap_or_default();
    let key = config
        .publish_key
        .first()
        .map(String::as_str)
        .unwrap_or_default();
    let claims = token::claims(
        Some(DEV_USER.to_owned()),
        vec!["**".to_owned()],
        Vec::new(),
        Duration::from_secs(24 * 3600),
    );
    let dev_token = token::mint(
        secret,
        &claims,
        config.jwt_audience.as_deref(),
        config.jwt_issuer.as_deref(),
        None,
    )
    .map_err(|e| e.to_string())?;
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
