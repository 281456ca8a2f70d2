//! `GET /presence?user=U` and `GET /presence?topic=T`: who is connected, on every node.
//!
//! Authorised like publishing (presence says who is online, which is as sensitive as being
//! able to reach them): a publish key, or a publisher token whose claim covers the target
//! (`@users` for a user, a pattern covering the topic).

use std::sync::Arc;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::Json;
use herald_core::presence::PresenceQuery;
use herald_core::{validate_topic, validate_user};
use serde_json::{json, Value};

use crate::app::AppState;
use crate::auth::{bearer, Publisher};
use crate::error::ApiError;

pub async fn presence(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let publisher = state.auth.publisher(bearer(&headers)?).await?;
    let query = parse(query.as_deref().unwrap_or_default())?;
    if let Publisher::Token(grant) = &publisher {
        let (users, topics) = match &query {
            PresenceQuery::User(user) => (vec![user.clone()], vec![]),
            PresenceQuery::Topic(topic) => (vec![], vec![topic.clone()]),
        };
        grant.allows(&users, &topics).map_err(ApiError::forbidden)?;
    }
    let answer = state
        .herald
        .presence(&query)
        .await
        .map_err(|e| ApiError::unavailable(e.to_string()))?;
    Ok(Json(match query {
        PresenceQuery::User(user) => json!({"user": user, "streams": answer.streams}),
        PresenceQuery::Topic(topic) => {
            json!({"topic": topic, "streams": answer.streams, "users": answer.users})
        }
    }))
}

/// Exactly one of `user` and `topic`, valid.
fn parse(query: &str) -> Result<PresenceQuery, ApiError> {
    let mut found = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let asked = match &*key {
            "user" => {
                validate_user(&value).map_err(|e| ApiError::bad_request(format!("user: {e}")))?;
                PresenceQuery::User(value.into_owned())
            }
            "topic" => {
                validate_topic(&value).map_err(|e| ApiError::bad_request(format!("topic: {e}")))?;
                PresenceQuery::Topic(value.into_owned())
            }
            _ => continue,
        };
        if found.replace(asked).is_some() {
            return Err(ApiError::bad_request(
                "give one user or one topic, not several",
            ));
        }
    }
    found.ok_or_else(|| ApiError::bad_request("give ?user=<id> or ?topic=<topic>"))
}
