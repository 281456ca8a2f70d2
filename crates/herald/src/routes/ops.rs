//! `/healthz`, `/readyz`, `/metrics`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;

use crate::app::AppState;

/// The process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The broker is reachable and the hub is not shutting down. With `--jwks-url`, `jwks` tells
/// how the keys are (a failing refresh keeps the last good keys, so the hub stays ready).
pub async fn readyz(State(state): State<Arc<AppState>>) -> Response {
    let (status, mut body) = if state.herald.is_ready() {
        (StatusCode::OK, serde_json::json!({ "status": "ready" }))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "not_ready" }),
        )
    };
    if let Some(jwks) = state.auth.jwks() {
        body["jwks"] = jwks.status();
    }
    (status, Json(body)).into_response()
}

/// Prometheus text format.
pub async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    let body = state
        .metrics
        .as_ref()
        .map(|handle| handle.render())
        .unwrap_or_default();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}
