//! `POST /publish`: authenticate the publisher, decode and authorise the batch, publish it.

use std::fmt::Write;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use herald_core::{EventId, PublishError};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::AppState;
use crate::auth::Publisher;
use crate::error::ApiError;
use crate::publish_body;
use crate::routes::events::bearer;

/// Publishes refused by `--publish-rate`.
pub const PUBLISH_RATE_LIMITED: &str = "herald_publish_rate_limited_total";

pub async fn publish(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let credential = bearer(headers)?;
    let publisher = state.auth.publisher(credential)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let decoded = publish_body::decode(&body).map_err(ApiError::bad_request)?;
    // Only authenticated credentials reach the limiter, so strangers cannot fill its table.
    let credential = credential.unwrap_or_default();
    if let Err(retry) = state.limits.publish(credential, decoded.publications.len()) {
        metrics::counter!(PUBLISH_RATE_LIMITED).increment(1);
        return Err(ApiError::too_many(format!(
            "this credential is over its publish rate (--publish-rate); retry in {} s",
            retry.seconds()
        ))
        .retry_after(retry.seconds()));
    }
    if let Some(schemas) = &state.schemas {
        schemas.check_body(&body).map_err(ApiError::bad_request)?;
    }

    if let Publisher::Token(grant) = &publisher {
        for (index, p) in decoded.publications.iter().enumerate() {
            grant.allows(&p.users, &p.topics).map_err(|message| {
                ApiError::forbidden(if decoded.batch {
                    format!("item {index}: {message}")
                } else {
                    message
                })
            })?;
        }
    }

    let ids = state
        .herald
        .publish(&decoded.publications)
        .await
        .map_err(|error| match error {
            PublishError::Broker(e) => ApiError::unavailable(e.to_string()),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(answer(&ids, decoded.batch))
}

/// `{"id":"…"}` for a single event, `{"ids":["…",…]}` for a batch. Ids are digits and a dash,
/// so they need no escaping; writing them directly skips building a JSON tree per publish.
fn answer(ids: &[EventId], batch: bool) -> Response {
    let json = match (batch, ids) {
        (false, [id]) => format!(r#"{{"id":"{id}"}}"#),
        (false, _) => r#"{"id":null}"#.to_owned(),
        (true, ids) => {
            let mut json = String::with_capacity(16 + ids.len() * 24);
            json.push_str(r#"{"ids":["#);
            for (n, id) in ids.iter().enumerate() {
                if n > 0 {
                    json.push(',');
                }
                let _ = write!(json, "\"{id}\"");
            }
            json.push_str("]}");
            json
        }
    };
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

/// Reads the whole body, refusing (413) anything over `limit` bytes without buffering it.
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<bytes::Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::payload_too_large(limit));
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.downcast_ref::<LengthLimitError>().is_some() => {
            Err(ApiError::payload_too_large(limit))
        }
        Err(_) => Err(ApiError::bad_request("could not read the request body")),
    }
}
