//! The seed's Express snippet (a streaming route, `sendToUser`, `broadcast`), inside a plain axum
//! app with herald-core. Auth is the host app's: here a stand-in `x-user` header.
//!
//! Run it: `cargo run -p embed-axum`, then
//!   curl -N -H 'x-user: user_123' http://127.0.0.1:3000/api/events
//!   curl -X POST 'http://127.0.0.1:3000/api/pay?user=user_123&amount=5000'
//!   curl -X POST 'http://127.0.0.1:3000/api/announce?text=hello'

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use herald_core::{Herald, HubConfig, SubscribeRequest};
use serde::Deserialize;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let herald = Herald::in_memory(HubConfig::default());
    let app = Router::new()
        .route("/api/events", get(events))
        .route("/api/pay", post(pay))
        .route("/api/announce", post(announce))
        .with_state(herald);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await
}

/// `app.get('/api/events')`: heartbeats, client registry and resume are the hub's job now.
async fn events(State(herald): State<Herald>, headers: HeaderMap) -> Response {
    let Some(user) = headers.get("x-user").and_then(|v| v.to_str().ok()) else {
        return (StatusCode::UNAUTHORIZED, "sign in first").into_response();
    };
    let request = SubscribeRequest {
        user: Some(user.to_owned()),
        last_event_id: headers
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        ..SubscribeRequest::default()
    };
    match herald.subscribe(request).await {
        Ok(stream) => (
            [
                (header::CONTENT_TYPE, "text/event-stream"),
                (header::CACHE_CONTROL, "no-cache"),
                (header::HeaderName::from_static("x-accel-buffering"), "no"),
            ],
            Body::new(stream),
        )
            .into_response(),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, error.to_string()).into_response(),
    }
}

#[derive(Deserialize)]
struct Payment {
    user: String,
    amount: u64,
}

/// An ordinary handler that, as a side effect, tells the user: `sendToUser(...)`.
async fn pay(State(herald): State<Herald>, Query(p): Query<Payment>) -> impl IntoResponse {
    let data = serde_json::json!({ "amount": p.amount });
    match herald
        .send_to_user(&p.user, "payment_completed", &data)
        .await
    {
        Ok(id) => (StatusCode::OK, format!("paid; event {id}")),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()),
    }
}

#[derive(Deserialize)]
struct Announcement {
    text: String,
}

/// `broadcast(...)` to every open stream.
async fn announce(
    State(herald): State<Herald>,
    Query(a): Query<Announcement>,
) -> impl IntoResponse {
    match herald.broadcast("announcement", &a.text).await {
        Ok(id) => (StatusCode::OK, format!("sent; event {id}")),
        Err(error) => (StatusCode::BAD_REQUEST, error.to_string()),
    }
}
