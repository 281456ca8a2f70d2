//! `POST /publish`: authenticate the publisher, decode and authorise the batch, publish it.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderName};
use axum::response::Response;
use herald_core::idempotency::{IdempotencyKey, MAX_KEY_LEN};
use herald_core::EventId;
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::app::AppState;
use crate::auth::bearer;
use crate::auth::Publisher;
use crate::error::ApiError;
use crate::metrics::{PUBLISH_RATE_LIMITED, PUBLISH_REPEATED};
use crate::publish_body;

pub async fn publish(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let headers = &parts.headers;
    let credential = bearer(headers)?;
    let publisher = state.auth.publisher(credential).await?;
    let once = idempotency_key(headers)?;
    let body = read_body(headers, body, state.max_body_bytes).await?;
    let decoded =
        publish_body::decode(&body, state.schemas.as_ref()).map_err(ApiError::bad_request)?;
    // Only authenticated credentials reach the limiter, so strangers cannot fill its table.
    let credential = credential.unwrap_or_default();
    if let Err(retry) = state.limits.publish(credential, decoded.batch.len()) {
        metrics::counter!(PUBLISH_RATE_LIMITED).increment(1);
        return Err(ApiError::too_many(format!(
            "this credential is over its publish rate (--publish-rate); retry in {} s",
            retry.seconds()
        ))
        .retry_after(retry.seconds()));
    }
    if let Publisher::Token(grant) = &publisher {
        for (index, p) in decoded.batch.iter().enumerate() {
            grant.allows(&p.users, &p.topics).map_err(|message| {
                ApiError::forbidden(if decoded.is_array {
                    format!("item {index}: {message}")
                } else {
                    message
                })
            })?;
        }
    }

    let once = once.map(|key| IdempotencyKey::new(credential, key, state.idempotency_window));
    let published = state
        .herald
        .publish_once(&decoded.batch, once.as_ref())
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    let mut response = answer(&published.ids, decoded.is_array);
    if published.repeated {
        metrics::counter!(PUBLISH_REPEATED).increment(1);
        response
            .headers_mut()
            .insert(IDEMPOTENT_REPLAYED, http::HeaderValue::from_static("true"));
    }
    Ok(response)
}

/// The request header that makes a publish idempotent. A constant: looking a header up by a
/// `&str` parses the name on every request.
pub const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The response header on a publish answered from an earlier one with the same key.
pub const IDEMPOTENT_REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The `Idempotency-Key` header: 1 to 128 visible ASCII characters.
fn idempotency_key(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(IDEMPOTENCY_KEY) else {
        return Ok(None);
    };
    let key = value
        .to_str()
        .ok()
        .filter(|k| {
            !k.is_empty() && k.len() <= MAX_KEY_LEN && k.bytes().all(|b| b.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Idempotency-Key must be 1 to {MAX_KEY_LEN} visible ASCII characters"
            ))
        })?;
    Ok(Some(key))
}

/// `{"id":"…"}` for a single event, `{"ids":["…",…]}` for a batch. Ids are digits and a dash,
/// so they need no escaping; writing them directly skips building a JSON tree per publish.
fn answer(ids: &[EventId], batch: bool) -> Response {
    // `IdText` rather than `format!`: the formatting machinery was a third of the answer's cost.
    let json = match (batch, ids) {
        (false, [id]) => {
            let id = id.text();
            let mut json = String::with_capacity(12 + id.len());
            json.push_str(r#"{"id":""#);
            json.push_str(&id);
            json.push_str(r#""}"#);
            json
        }
        (false, _) => r#"{"id":null}"#.to_owned(),
        (true, ids) => {
            let mut json = String::with_capacity(16 + ids.len() * 24);
            json.push_str(r#"{"ids":["#);
            for (n, id) in ids.iter().enumerate() {
                if n > 0 {
                    json.push(',');
                }
                json.push('"');
                json.push_str(&id.text());
                json.push('"');
            }
            json.push_str("]}");
            json
        }
    };
    let mut response = Response::new(Body::from(json));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// Reads the whole body, refusing (413) anything over `limit` bytes without buffering it.
pub(crate) async fn read_body(
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
