//! What can go wrong talking to a hub.

/// An error from the client. Subscriptions end after yielding one of these; transient network
/// trouble is retried (and logged with `tracing`) instead.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    #[error("cannot reach the hub at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The hub refused the request; `message` is its explanation.
    #[error("hub answered {status}: {message}")]
    Status { status: u16, message: String },
    /// `204 No Content` on subscribe: the server asks the client not to reconnect.
    #[error("the hub asked this client to stop (204 No Content)")]
    Stopped,
    #[error("could not decode {what}: {reason}")]
    Decode { what: &'static str, reason: String },
}

impl ClientError {
    /// The hub's message from a JSON error body (`{"error","message"}`), or the raw text.
    pub(crate) fn from_response(status: u16, body: &[u8]) -> Self {
        let message = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned());
        Self::Status { status, message }
    }
}

/// An error with its sources, which is where hyper puts the useful part ("connection refused").
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
