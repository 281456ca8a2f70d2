//! Online/offline webhooks: `--webhook-url` (repeatable), `--webhook-secret`, `--offline-delay`.
//!
//! The hub decides when a user goes online or offline, once per cluster
//! (`herald_core::announce`); this module tells the application, at every URL:
//! `POST <url>` with the JSON body `{"type": "user.online" | "user.offline", "user": "<id>",
//! "at": <unix ms>}` and the header `Herald-Signature: sha256=<hex HMAC-SHA256(secret, body)>`,
//! so the receiver can check the call came from its hub (compare in constant time).
//!
//! A delivery succeeds on any 2xx answer. Anything else (no connection, no answer within
//! [`ATTEMPT_TIMEOUT`], another status) is retried with backoff (full jitter, from 1 s up to
//! 30 s between attempts) for [`RETRY_FOR`] after the first attempt, then given up, logged and
//! counted. Everything is bounded and nothing waits on it: announcements wait in the hub's
//! queue (`herald_core::announce::QUEUE`, dropped beyond it), at most [`IN_FLIGHT`] of them
//! are being delivered at once, and an answer's body is read to at most [`ANSWER_BYTES`].
//! Deliveries of different announcements may overlap and arrive out of order: `at` orders
//! them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use herald_core::announce::Announcement;
use herald_core::backoff::Backoff;
use hmac::{Hmac, Mac};
use http::{header, Method};
use http_body_util::Full;
use sha2::Sha256;
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

use crate::metrics as m;
use crate::outbound::{self, HttpClient};

/// Bound on one attempt: connecting, sending and reading the answer.
pub const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// A delivery is retried for this long after its first attempt.
pub const RETRY_FOR: Duration = Duration::from_secs(120);
/// Announcements being delivered at once, at most.
pub const IN_FLIGHT: usize = 64;
/// The most of an answer's body that is read (and thrown away).
pub const ANSWER_BYTES: usize = 64 * 1024;

const BACKOFF: Backoff = Backoff {
    base: Duration::from_secs(1),
    cap: Duration::from_secs(30),
};

/// Where and how announcements are sent.
#[derive(Clone)]
pub struct Webhooks {
    urls: Arc<[http::Uri]>,
    secret: Arc<[u8]>,
    client: HttpClient,
}

impl Webhooks {
    pub fn new(urls: Vec<http::Uri>, secret: &str, client: HttpClient) -> Self {
        Self {
            urls: urls.into(),
            secret: secret.as_bytes().into(),
            client,
        }
    }

    /// Delivers every announcement from `announcements`, until the queue closes (the hub is
    /// gone).
    pub async fn run(self, mut announcements: mpsc::Receiver<Announcement>) {
        let slots = Arc::new(Semaphore::new(IN_FLIGHT));
        while let Some(announcement) = announcements.recv().await {
            let Ok(slot) = slots.clone().acquire_owned().await else {
                return;
            };
            let webhooks = self.clone();
            tokio::spawn(async move {
                let body = Bytes::from(serde_json::to_vec(&announcement).unwrap_or_default());
                let signature = sign(&webhooks.secret, &body);
                let deliveries = webhooks
                    .urls
                    .iter()
                    .map(|url| webhooks.deliver(url, &announcement, body.clone(), &signature));
                futures_util::future::join_all(deliveries).await;
                drop(slot);
            });
        }
    }

    /// One announcement to one URL, retried until [`RETRY_FOR`] has passed.
    async fn deliver(
        &self,
        url: &http::Uri,
        announcement: &Announcement,
        body: Bytes,
        signature: &str,
    ) {
        let give_up_at = Instant::now() + RETRY_FOR;
        let kind = announcement.transition.as_str();
        let mut attempt = 0u32;
        loop {
            let error = match self.attempt(url, body.clone(), signature).await {
                Ok(()) => {
                    metrics::counter!(m::WEBHOOK_DELIVERIES, "outcome" => "delivered").increment(1);
                    tracing::debug!(url = %redacted(url), kind, "webhook delivered");
                    return;
                }
                Err(error) => error,
            };
            let delay = BACKOFF.delay(attempt);
            attempt = attempt.saturating_add(1);
            if Instant::now() + delay >= give_up_at {
                metrics::counter!(m::WEBHOOK_DELIVERIES, "outcome" => "failed").increment(1);
                tracing::warn!(url = %redacted(url), kind, attempts = attempt, %error,
                    "webhook not delivered; giving up");
                return;
            }
            metrics::counter!(m::WEBHOOK_RETRIES).increment(1);
            tracing::debug!(url = %redacted(url), kind, %error, ?delay, "webhook failed; retrying");
            tokio::time::sleep(delay).await;
        }
    }

    async fn attempt(&self, url: &http::Uri, body: Bytes, signature: &str) -> Result<(), String> {
        let request = outbound::request(Method::POST, url)
            .header(header::CONTENT_TYPE, "application/json")
            .header("herald-signature", signature)
            .body(Full::new(body))
            .map_err(|e| e.to_string())?;
        let answer = self
            .client
            .send(request, Instant::now() + ATTEMPT_TIMEOUT, ANSWER_BYTES)
            .await
            .map_err(|e| e.to_string())?;
        if answer.status.is_success() {
            return Ok(());
        }
        // The start of the answer, for the log: what the receiver said was wrong.
        let said: String = String::from_utf8_lossy(&answer.body)
            .chars()
            .take(120)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Err(format!("answered {}: {}", answer.status, said.trim()))
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut text = String::with_capacity(7 + 64);
    text.push_str("sha256=");
    for byte in digest {
        text.push_str(&format!("{byte:02x}"));
    }
    text
}

/// A URL for the log: scheme, host and path, without credentials or query (which may hold a
/// secret).
fn redacted(url: &http::Uri) -> String {
    format!(
        "{}://{}{}",
        url.scheme_str().unwrap_or("http"),
        url.host().unwrap_or(""),
        url.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            sign(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn logged_urls_keep_no_credentials_or_query() {
        let url: http::Uri = "https://hooks.example.com/herald?token=s3cret"
            .parse()
            .unwrap();
        assert_eq!(redacted(&url), "https://hooks.example.com/herald");
    }
}
