//! The HTTP application: shared state and the router.

use std::sync::Arc;

use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::routing::{get, post};
use axum::Router;
use herald_core::Herald;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::routes;

/// What every handler shares.
pub struct AppState {
    pub herald: Herald,
    pub auth: Auth,
    pub max_body_bytes: usize,
    /// Serve the developer console (`/console`).
    pub console: bool,
    /// Per-IP connection and per-credential publish rates.
    pub limits: Arc<crate::limits::Limits>,
    /// Typed events (`--schema`): publishes are checked against these.
    pub schemas: Option<crate::schema::EventSchemas>,
    /// Renders `/metrics`; `None` when no recorder was installed (embedded use, tests).
    pub metrics: Option<PrometheusHandle>,
}

pub fn router(state: Arc<AppState>, cors_origins: &[String]) -> Router {
    let router = Router::new()
        .route("/events", get(routes::events::subscribe))
        .route("/publish", post(routes::publish::publish))
        .route("/healthz", get(routes::ops::healthz))
        .route("/readyz", get(routes::ops::readyz))
        .route("/metrics", get(routes::ops::metrics))
        .route("/console", get(routes::console::page))
        .route("/console/console.js", get(routes::console::script))
        .route("/console/console.css", get(routes::console::style))
        .route("/console/api/snapshot", get(routes::console::snapshot))
        .fallback(|| async { ApiError::not_found() })
        .with_state(state);
    match cors(cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    }
}

/// CORS for the configured origins, with credentials (cookies, Authorization). Exact origins
/// only: a wildcard cannot be combined with credentials and is refused at startup.
fn cors(origins: &[String]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_credentials(true)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::CACHE_CONTROL,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::RETRY_AFTER, header::CONTENT_TYPE])
            .max_age(std::time::Duration::from_secs(600)),
    )
}
