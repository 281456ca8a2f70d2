//! Publishing from Rust services over the hub's HTTP API (`POST /publish`).
//!
//! The same shapes as the seed's `sendToUser` / `broadcast`, plus topics and batches. A batch is
//! one request and one broker round trip, which is how a service should send many events.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::{Deserialize, Serialize};

use crate::error::ClientError;

/// One event to publish. With no `users` and no `topics` it is a broadcast.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishItem {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub data: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<u64>,
    /// Makes the event its targets' retained value (or clears it): what a page that opens
    /// shows at once.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "retain_field"
    )]
    pub retain: Option<Retain>,
}

/// What a publish does to its targets' retained values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retain {
    /// The event becomes the retained value (`"retain": true`).
    Keep,
    /// The retained value is forgotten, and the event reaches no stream (`"retain": "clear"`).
    Clear,
}

/// `"retain"` as the hub writes it: `true`, `"clear"`, or absent (`false` reads as absent).
mod retain_field {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::Retain;

    pub fn serialize<S: Serializer>(retain: &Option<Retain>, s: S) -> Result<S::Ok, S::Error> {
        match retain {
            Some(Retain::Keep) => s.serialize_bool(true),
            Some(Retain::Clear) => s.serialize_str("clear"),
            None => s.serialize_bool(false),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Retain>, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Bool(true) => Ok(Some(Retain::Keep)),
            serde_json::Value::Bool(false) => Ok(None),
            serde_json::Value::String(s) if s == "clear" => Ok(Some(Retain::Clear)),
            _ => Err(serde::de::Error::custom(
                r#"retain must be true, false or "clear""#,
            )),
        }
    }
}

impl PublishItem {
    /// An event for every stream.
    pub fn broadcast(event: impl Into<String>, data: serde_json::Value) -> Self {
        Self {
            event: Some(event.into()),
            data,
            user: None,
            users: None,
            topic: None,
            topics: None,
            retry: None,
            retain: None,
        }
    }

    /// The same event, kept as its targets' retained value.
    pub fn retained(mut self) -> Self {
        self.retain = Some(Retain::Keep);
        self
    }

    /// An event for all of one user's streams.
    pub fn to_user(
        user: impl Into<String>,
        event: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            user: Some(user.into()),
            ..Self::broadcast(event, data)
        }
    }

    /// An event for the subscribers of one topic.
    pub fn to_topic(
        topic: impl Into<String>,
        event: impl Into<String>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            topic: Some(topic.into()),
            ..Self::broadcast(event, data)
        }
    }
}

/// Sends events to a hub. Cheap to clone; clones share one connection pool.
#[derive(Clone)]
pub struct Publisher {
    url: String,
    authorization: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a secret: never printed.
        f.debug_struct("Publisher")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct OneId {
    id: String,
}

#[derive(Deserialize)]
struct ManyIds {
    ids: Vec<String>,
}

impl Publisher {
    /// `base_url` is the hub's (`http://host:8080`); `key` a publish key or publisher token.
    pub fn new(base_url: &str, key: &str) -> Result<Self, ClientError> {
        let url = format!("{}/publish", base_url.trim_end_matches('/'));
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| ClientError::InvalidUrl {
                    url: base_url.into(),
                    reason: e.to_string(),
                })?;
        if uri.scheme_str() != Some("http") {
            return Err(ClientError::InvalidUrl {
                url: base_url.into(),
                reason:
                    "the URL must start with http:// (https is not supported by this client yet)"
                        .into(),
            });
        }
        let client = Client::builder(TokioExecutor::new()).build_http();
        Ok(Self {
            url,
            authorization: format!("Bearer {key}"),
            client,
        })
    }

    /// The seed's `sendToUser`: returns the event's id.
    pub async fn send_to_user(
        &self,
        user: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<String, ClientError> {
        self.publish(&PublishItem::to_user(user, event, to_value(data)?))
            .await
    }

    /// Publishes to one topic's subscribers.
    pub async fn to_topic(
        &self,
        topic: &str,
        event: &str,
        data: &impl Serialize,
    ) -> Result<String, ClientError> {
        self.publish(&PublishItem::to_topic(topic, event, to_value(data)?))
            .await
    }

    /// The seed's `broadcast`: every stream.
    pub async fn broadcast(
        &self,
        event: &str,
        data: &impl Serialize,
    ) -> Result<String, ClientError> {
        self.publish(&PublishItem::broadcast(event, to_value(data)?))
            .await
    }

    /// Publishes one event; returns its id.
    pub async fn publish(&self, item: &PublishItem) -> Result<String, ClientError> {
        self.publish_idempotent(item, None).await
    }

    /// Publishes one event, once per `idempotency_key` (sent as `Idempotency-Key`): a retry
    /// with the same key (after a timeout, say) gets the first attempt's id back, and the hub
    /// delivers the event once.
    pub async fn publish_idempotent(
        &self,
        item: &PublishItem,
        idempotency_key: Option<&str>,
    ) -> Result<String, ClientError> {
        let body = serde_json::to_vec(item).map_err(encode_error)?;
        let answer: OneId = decode(&self.send(body.into(), idempotency_key).await?)?;
        Ok(answer.id)
    }

    /// Publishes a batch in one request: all are accepted or none. Returns the ids in order.
    pub async fn publish_batch(&self, items: &[PublishItem]) -> Result<Vec<String>, ClientError> {
        self.publish_batch_idempotent(items, None).await
    }

    /// [`Publisher::publish_batch`], once per `idempotency_key`.
    pub async fn publish_batch_idempotent(
        &self,
        items: &[PublishItem],
        idempotency_key: Option<&str>,
    ) -> Result<Vec<String>, ClientError> {
        let body = serde_json::to_vec(items).map_err(encode_error)?;
        let answer: ManyIds = decode(&self.send(body.into(), idempotency_key).await?)?;
        Ok(answer.ids)
    }

    /// Sends a body as is (a JSON object or array) and returns the hub's JSON answer.
    pub async fn publish_raw(&self, body: Bytes) -> Result<Bytes, ClientError> {
        self.send(body, None).await
    }

    async fn send(&self, body: Bytes, idempotency_key: Option<&str>) -> Result<Bytes, ClientError> {
        let mut request = http::Request::post(&self.url)
            .header(http::header::AUTHORIZATION, &self.authorization)
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(key) = idempotency_key {
            request = request.header("idempotency-key", key);
        }
        let request = request
            .body(Full::new(body))
            .map_err(|e| ClientError::InvalidUrl {
                url: self.url.clone(),
                reason: format!(
                    "cannot build the request (is the key valid in an HTTP header?): {e}"
                ),
            })?;
        let response =
            self.client
                .request(request)
                .await
                .map_err(|e| ClientError::Unreachable {
                    url: self.url.clone(),
                    reason: crate::error::error_chain(&e),
                })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| ClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?
            .to_bytes();
        if status.is_success() {
            Ok(body)
        } else {
            Err(ClientError::from_response(status.as_u16(), &body))
        }
    }
}

fn to_value(data: &impl Serialize) -> Result<serde_json::Value, ClientError> {
    serde_json::to_value(data).map_err(encode_error)
}

fn encode_error(e: serde_json::Error) -> ClientError {
    ClientError::Decode {
        what: "event data",
        reason: e.to_string(),
    }
}

fn decode<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::Decode {
        what: "the hub's answer",
        reason: e.to_string(),
    })
}
