//! The HTTP application: shared state and the router.

use std::sync::Arc;

use axum::http::Uri;
use axum::http::{header, HeaderName, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, MethodRouter};
use axum::Router;
use herald_core::Herald;
use metrics_exporter_prometheus::PrometheusHandle;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::auth::Auth;
use crate::error::ApiError;
use crate::request_rules::RequestRules;
use crate::routes;

/// The address a request's connection comes from, put in the extensions of `GET` requests by
/// the server (the stream handlers use it for per-IP limits; other requests skip the
/// extension map's allocation).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub std::net::IpAddr);

/// What every handler shares.
pub struct AppState {
    pub herald: Herald,
    pub auth: Auth,
    /// The session hook (`--auth-url`): authorises subscribe requests that carry no token.
    pub session_hook: Option<crate::session_hook::SessionHook>,
    pub max_body_bytes: usize,
    /// How long an `Idempotency-Key` is remembered (`--idempotency-window`).
    pub idempotency_window: std::time::Duration,
    /// Serve the developer console (`/console`).
    pub console: bool,
    /// Per-IP connection and per-credential publish rates.
    pub limits: Arc<crate::limits::Limits>,
    /// Typed events (`--schema`): publishes are checked against these.
    pub schemas: Option<crate::schema::EventSchemas>,
    /// Renders `/metrics`; `None` when no recorder was installed (embedded use, tests).
    pub metrics: Option<PrometheusHandle>,
    /// Mercure mode (`--mercure`): `/.well-known/mercure` and `GET /`.
    pub mercure: bool,
    /// Mercure's active subscriptions (`--mercure-subscriptions`): events and the API.
    pub mercure_subscriptions: Option<Arc<crate::mercure::subscriptions::Subscriptions>>,
}

/// Every route the hub serves: method, path, handler. `docs/openapi.yaml` describes each (a test
/// below checks it).
type Route = (Method, &'static str, fn() -> MethodRouter<Arc<AppState>>);

const ROUTES: &[Route] = &[
    (Method::GET, "/events", || get(routes::events::subscribe)),
    (Method::POST, "/publish", || post(routes::publish::publish)),
    (Method::GET, "/presence", || get(routes::presence::presence)),
    (Method::GET, "/healthz", || get(routes::ops::healthz)),
    (Method::GET, "/readyz", || get(routes::ops::readyz)),
    (Method::GET, "/metrics", || get(routes::ops::metrics)),
    (Method::GET, "/console", || get(routes::console::page)),
    (Method::GET, "/console/console.js", || {
        get(routes::console::script)
    }),
    (Method::GET, "/console/console.css", || {
        get(routes::console::style)
    }),
    (Method::GET, "/console/api/snapshot", || {
        get(routes::console::snapshot)
    }),
];

/// The routes of Mercure mode (`--mercure`), served only then.
const MERCURE_ROUTES: &[Route] = &[
    (Method::GET, crate::mercure::PATH, || {
        get(crate::mercure::subscribe::subscribe).post(crate::mercure::publish::publish)
    }),
    (Method::POST, crate::mercure::PATH, || {
        get(crate::mercure::subscribe::subscribe).post(crate::mercure::publish::publish)
    }),
    (Method::GET, "/", || get(crate::mercure::home)),
    (Method::GET, crate::mercure::subscriptions::PATH, || {
        get(crate::mercure::subscriptions::api)
    }),
    // Segments: 0.x `{topic}[/{subscriber}]`, 1.0 `{matchType}/{match}[/{subscriber}]`.
    (
        Method::GET,
        "/.well-known/mercure/subscriptions/{selector}",
        || get(crate::mercure::subscriptions::api),
    ),
    (
        Method::GET,
        "/.well-known/mercure/subscriptions/{selector}/{key}",
        || get(crate::mercure::subscriptions::api),
    ),
    (
        Method::GET,
        "/.well-known/mercure/subscriptions/{selector}/{key}/{subscriber}",
        || get(crate::mercure::subscriptions::api),
    ),
];

/// The whole application as one service: the router, with the rules every request meets
/// around it ([`RequestRules`], outermost, so they hold for every route and fallback).
pub type App = RequestRules<Router>;

pub fn router(state: Arc<AppState>, cors_origins: &[String]) -> App {
    let mercure = state.mercure;
    let mercure_routes: &[Route] = if mercure { MERCURE_ROUTES } else { &[] };
    // A path with several methods has one entry per method, each giving the whole router.
    let mut router = Router::new();
    let mut seen: Vec<&str> = Vec::new();
    for (_, path, handler) in ROUTES.iter().chain(mercure_routes) {
        if !seen.contains(path) {
            seen.push(path);
            router = router.route(path, handler());
        }
    }
    let router = router
        .method_not_allowed_fallback(method_not_allowed)
        .fallback(|| async { ApiError::not_found() })
        .with_state(state);
    let router = if mercure {
        router.layer(axum::middleware::map_response(crate::mercure::discovery))
    } else {
        router
    };
    RequestRules::new(match cors(cors_origins) {
        Some(layer) => router.layer(layer),
        None => router,
    })
}

/// 405 in the JSON error shape, with `Allow` listing the path's methods.
async fn method_not_allowed(uri: Uri) -> Response {
    let allowed: Vec<&str> = ROUTES
        .iter()
        .chain(MERCURE_ROUTES)
        .filter(|(_, path, _)| *path == uri.path())
        .map(|(method, _, _)| method.as_str())
        .collect();
    let mut response = ApiError::method_not_allowed(format!(
        "{} does not take this method (it takes {})",
        uri.path(),
        allowed.join(", ")
    ))
    .into_response();
    if let Ok(allow) = HeaderValue::from_str(&allowed.join(", ")) {
        response.headers_mut().insert(header::ALLOW, allow);
    }
    response
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
                routes::publish::IDEMPOTENCY_KEY,
            ])
            .expose_headers([
                header::RETRY_AFTER,
                header::CONTENT_TYPE,
                routes::publish::IDEMPOTENT_REPLAYED,
                HeaderName::from_static("last-event-id"),
                HeaderName::from_static("mercure-last-event-id"),
                header::LINK,
            ])
            .max_age(std::time::Duration::from_secs(600)),
    )
}

#[cfg(test)]
mod tests {
    use super::ROUTES;

    /// `(method, path)` of every operation in docs/openapi.yaml: its `paths:` section, where
    /// paths are keys at two spaces and methods at four.
    fn documented() -> Vec<(String, String)> {
        let doc = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/openapi.yaml"
        ))
        .expect("docs/openapi.yaml");
        let paths = doc.split("\npaths:\n").nth(1).expect("a paths section");
        let mut operations = Vec::new();
        let mut path = None;
        for line in paths.lines() {
            if !line.starts_with(' ') && !line.is_empty() {
                break;
            }
            if let Some(p) = line.strip_prefix("  /").and_then(|l| l.strip_suffix(':')) {
                path = Some(format!("/{p}"));
            } else if let (Some(path), Some(method)) = (
                &path,
                line.strip_prefix("    ").and_then(|l| l.strip_suffix(':')),
            ) {
                if ["get", "post", "put", "delete", "patch", "options", "head"].contains(&method) {
                    operations.push((method.to_uppercase(), path.clone()));
                }
            }
        }
        operations
    }

    #[test]
    fn every_route_is_in_the_openapi_document_and_nothing_else() {
        let documented = documented();
        let served: Vec<(String, String)> = ROUTES
            .iter()
            .chain(super::MERCURE_ROUTES)
            .map(|(method, path, _)| (method.to_string(), (*path).to_owned()))
            .collect();
        for route in &served {
            assert!(
                documented.contains(route),
                "{route:?} is not in docs/openapi.yaml"
            );
        }
        for operation in &documented {
            assert!(
                served.contains(operation),
                "{operation:?} is documented but not served"
            );
        }
    }
}
