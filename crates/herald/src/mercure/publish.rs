//! `POST /.well-known/mercure`: a Mercure update, from a form body to a labelled Herald event.
//!
//! Fields (`application/x-www-form-urlencoded`): `topic`, repeatable, the first canonical and
//! the others alternates (0.x); `data`, sent exactly (each line break starts a new `data:` line,
//! empty lines kept); `private`, present or not (its value does not matter); `id`, the
//! publisher's id for the update, used on the wire and for resume, else the hub generates a
//! `urn:uuid:`; `type`, the SSE `event:`; `retry`, the SSE `retry:`. The answer is `200
//! text/plain` with the id.
//!
//! Refused with 400 and a message saying which field is wrong: no topic, a topic with control
//! characters or in the hub's own namespace (`/.well-known/mercure…`), `type=mercure` (the
//! protocol keeps it), a type with a line break or in Herald's reserved `herald.` names, a
//! `retry` that is not digits, an id with a line break or NUL, starting with `#` (the hub's own
//! ids) or equal to `earliest` (the resume keyword). Too large — the body over
//! `--max-body-bytes`, a topic or id over its limit, too many topics — is 413.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use herald_core::labels::{MAX_LABELS, MAX_LABEL_LEN, MAX_WIRE_ID_LEN};
use herald_core::{Batch, Labels, Publication};

use super::claims;
use super::selector::any_matches;
use super::MercureError;
use crate::app::AppState;

/// The fields of one update.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Update {
    pub topics: Vec<String>,
    pub data: String,
    pub private: bool,
    pub id: Option<String>,
    pub event: Option<String>,
    pub retry: Option<u64>,
}

pub async fn publish(
    State(state): State<Arc<AppState>>,
    request: Request,
) -> Result<Response, MercureError> {
    let (parts, body) = request.into_parts();
    let query_token = query_token(parts.uri.query());
    let token = claims::token(&parts.headers, query_token.as_deref())?;
    let Some(token) = token else {
        return Err(MercureError::token_required(
            "publishing needs a token (Authorization: Bearer, cookie mercureAuthorization, \
             or ?authorization=)",
        ));
    };
    let grants = claims::grants(&state.auth, &token).await?;
    if grants.publish.is_empty() {
        return Err(MercureError::insufficient_scope(
            "this token grants no publishing (no mercure.publish claim)",
        ));
    }
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !is_form {
        return Err(MercureError::invalid_request(
            "the body must be a form: Content-Type: application/x-www-form-urlencoded",
        ));
    }
    let body = crate::routes::publish::read_body(&parts.headers, body, state.max_body_bytes)
        .await
        .map_err(|e| match e.status {
            StatusCode::PAYLOAD_TOO_LARGE => MercureError::too_large(e.message),
            _ => MercureError::invalid_request(e.message),
        })?;
    let update = parse(&body)?;
    // Only verified credentials reach the limiter, so strangers cannot fill its table.
    if let Err(retry) = state.limits.publish(&token, 1) {
        metrics::counter!(crate::metrics::PUBLISH_RATE_LIMITED).increment(1);
        return Err(MercureError::too_many(
            format!(
                "this credential is over its publish rate (--publish-rate); retry in {} s",
                retry.seconds()
            ),
            retry.seconds(),
        ));
    }
    if !update
        .topics
        .iter()
        .all(|t| any_matches(&grants.publish, std::slice::from_ref(t)))
    {
        return Err(MercureError::insufficient_scope(
            "this token may not publish to every topic of this update",
        ));
    }
    let id = update.id.clone().unwrap_or_else(urn_uuid);
    let publication = Publication {
        event: update.event,
        data: update.data,
        retry: update.retry,
        labels: Some(Labels {
            names: update.topics,
            private: update.private,
        }),
        wire_id: Some(id.clone()),
        ..Publication::default()
    };
    let batch =
        Batch::one(publication).map_err(|e| MercureError::invalid_request(e.to_string()))?;
    state
        .herald
        .publish(&batch)
        .await
        .map_err(|e| MercureError::unavailable(e.to_string()))?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], id).into_response())
}

/// The token in a query string (`authorization`, or 1.0's `access_token`).
pub(super) fn query_token(query: Option<&str>) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == "authorization" || k == "access_token")
        .map(|(_, v)| v.into_owned())
}

/// Decodes and checks a form body.
pub fn parse(body: &[u8]) -> Result<Update, MercureError> {
    // form_urlencoded would turn invalid UTF-8 into U+FFFD; refuse it instead. The `+` of the
    // form encoding is a space either way, so checking the percent-decoding is enough.
    let valid = std::str::from_utf8(body).is_ok()
        && percent_encoding::percent_decode(body).decode_utf8().is_ok();
    if !valid {
        return Err(MercureError::invalid_request(
            "the form is not valid UTF-8 after percent-decoding",
        ));
    }
    let mut update = Update::default();
    for (key, value) in form_urlencoded::parse(body) {
        match &*key {
            "topic" => {
                if update.topics.len() == MAX_LABELS {
                    return Err(MercureError::too_large(format!(
                        "an update has at most {MAX_LABELS} topics"
                    )));
                }
                update.topics.push(check_topic(&value)?);
            }
            "data" => update.data = value.into_owned(),
            "private" => update.private = true,
            "id" => update.id = Some(check_id(&value)?),
            "type" => update.event = Some(check_type(&value)?),
            "retry" => {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(MercureError::invalid_request(
                        "retry must be a number of milliseconds (digits only)",
                    ));
                }
                update.retry =
                    Some(value.parse().map_err(|_| {
                        MercureError::invalid_request("retry is too large a number")
                    })?);
            }
            _ => {}
        }
    }
    if update.topics.is_empty() {
        return Err(MercureError::invalid_request(
            "an update needs at least one topic field",
        ));
    }
    Ok(update)
}

fn check_topic(topic: &str) -> Result<String, MercureError> {
    if topic.is_empty() {
        return Err(MercureError::invalid_request("a topic must not be empty"));
    }
    if topic.len() > MAX_LABEL_LEN {
        return Err(MercureError::too_large(format!(
            "a topic is at most {MAX_LABEL_LEN} bytes"
        )));
    }
    if topic.chars().any(char::is_control) {
        return Err(MercureError::invalid_request(
            "a topic must not contain control characters",
        ));
    }
    if is_reserved(topic) {
        return Err(MercureError::invalid_request(format!(
            "topic {topic:?} is in the hub's own namespace ({})",
            super::PATH
        )));
    }
    Ok(topic.to_owned())
}

/// Is the topic's path the hub's own (`/.well-known/mercure` or under it), whatever its scheme
/// and authority?
fn is_reserved(topic: &str) -> bool {
    let path = match topic.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
        None => topic,
    };
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path == super::PATH
        || path
            .strip_prefix(super::PATH)
            .is_some_and(|rest| rest.starts_with('/'))
}

fn check_id(id: &str) -> Result<String, MercureError> {
    if id.len() > MAX_WIRE_ID_LEN {
        return Err(MercureError::too_large(format!(
            "an id is at most {MAX_WIRE_ID_LEN} bytes"
        )));
    }
    if id.starts_with('#') {
        return Err(MercureError::invalid_request(
            "an id must not start with '#' (reserved for the hub's own ids)",
        ));
    }
    if id == "earliest" {
        return Err(MercureError::invalid_request(
            "an id must not be \"earliest\" (the resume keyword)",
        ));
    }
    if id.is_empty() || herald_proto::validate_id(id).is_err() {
        return Err(MercureError::invalid_request(
            "an id must be non-empty, without CR, LF or NUL",
        ));
    }
    Ok(id.to_owned())
}

fn check_type(event: &str) -> Result<String, MercureError> {
    if event == "mercure" {
        return Err(MercureError::invalid_request(
            "type \"mercure\" is reserved by the protocol",
        ));
    }
    if event.starts_with(herald_core::RESERVED_EVENT_PREFIX) {
        return Err(MercureError::invalid_request(format!(
            "type {event:?} is reserved (names starting with \"{}\" belong to the hub)",
            herald_core::RESERVED_EVENT_PREFIX
        )));
    }
    if herald_proto::validate_event_name(event).is_err() || event.len() > 256 {
        return Err(MercureError::invalid_request(
            "type must be 1 to 256 bytes without CR, LF or NUL",
        ));
    }
    Ok(event.to_owned())
}

/// A random (version 4) UUID as a URN.
pub(crate) fn urn_uuid() -> String {
    let bits: u128 = rand::random();
    let bits = (bits & !(0xf000u128 << 64)) | (0x4000u128 << 64);
    let bits = (bits & !(0xc000u128 << 48)) | (0x8000u128 << 48);
    let hex = format!("{bits:032x}");
    format!(
        "urn:uuid:{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(body: &str) -> MercureError {
        parse(body.as_bytes()).unwrap_err()
    }

    #[test]
    fn every_field_is_read() {
        let update =
            parse(b"topic=a&topic=b&data=l1%0A%0Al3&private=on&id=x1&type=t&retry=10").unwrap();
        assert_eq!(update.topics, ["a", "b"]);
        assert_eq!(update.data, "l1\n\nl3");
        assert!(update.private);
        assert_eq!(update.id.as_deref(), Some("x1"));
        assert_eq!(update.event.as_deref(), Some("t"));
        assert_eq!(update.retry, Some(10));
        assert!(parse(b"topic=a&private=").unwrap().private);
        assert!(!parse(b"topic=a").unwrap().private);
    }

    #[test]
    fn bad_fields_are_400_and_oversized_ones_413() {
        let bad = StatusCode::BAD_REQUEST;
        assert_eq!(err("data=x").status, bad);
        assert_eq!(err("topic=a&retry=1s").status, bad);
        assert_eq!(err("topic=a&retry=").status, bad);
        assert_eq!(err("topic=a&id=%23frag").status, bad);
        assert_eq!(err("topic=a&id=earliest").status, bad);
        assert_eq!(err("topic=a&id=a%0Ab").status, bad);
        assert_eq!(err("topic=a&type=mercure").status, bad);
        assert_eq!(err("topic=a&type=a%0Db").status, bad);
        assert_eq!(err("topic=a%00").status, bad);
        assert_eq!(err("topic=a&data=%FF").status, bad);
        assert_eq!(err("topic=/.well-known/mercure").status, bad);
        assert_eq!(
            err("topic=https://hub.example/.well-known/mercure/subscriptions/x").status,
            bad
        );
        assert!(parse(b"topic=https://example.com/.well-known/mercurex").is_ok());
        let long = format!("topic={}", "x".repeat(MAX_LABEL_LEN + 1));
        assert_eq!(err(&long).status, StatusCode::PAYLOAD_TOO_LARGE);
        let many = "topic=a&".repeat(MAX_LABELS + 1);
        assert_eq!(err(&many).status, StatusCode::PAYLOAD_TOO_LARGE);
    }

    #[test]
    fn generated_ids_are_version_4_uuids() {
        let id = urn_uuid();
        let uuid = id.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid.len(), 36);
        assert_eq!(&uuid[14..15], "4");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(urn_uuid(), id);
    }
}
