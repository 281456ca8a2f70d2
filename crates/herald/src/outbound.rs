//! The hub's own HTTP requests: fetching a JWKS (`--jwks-url`), asking the app's session hook
//! (`--auth-url`) and delivering webhooks (`--webhook-url`).
//!
//! All talk to servers the operator chose, over the network, on a client's behalf, so every
//! request here is bounded: one deadline for connecting, sending and reading the whole answer,
//! and a cap on the answer's size. Identity providers serve their keys over HTTPS, so the client
//! speaks TLS (rustls with ring, as the server side does), trusting the system's certificate
//! store (`SSL_CERT_FILE`/`SSL_CERT_DIR` override it, as for OpenSSL) plus Mozilla's roots
//! (webpki-roots), so it works in a container without a CA bundle too. Connections are pooled
//! (hyper-util's client): a hook called for every new stream reuses its connections.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs.
#[derive(Clone)]
pub struct HttpClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

/// A request of the hub's own (a JWKS fetch, a webhook) to `url`, saying it comes from Herald.
/// (The session hook passes on the browser's `User-Agent` instead.)
pub fn request(method: Method, url: &http::Uri) -> http::request::Builder {
    Request::builder().method(method).uri(url.clone()).header(
        header::USER_AGENT,
        concat!("herald/", env!("CARGO_PKG_VERSION")),
    )
}

/// A complete answer: status and body (at most the caller's byte limit).
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

/// Why a request got no complete answer.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("no complete answer within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Connect(String),
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
    #[error("reading the answer failed: {0}")]
    Body(String),
}

impl HttpClient {
    /// `max_idle_per_host`: connections kept open for reuse to one server.
    pub fn new(max_idle_per_host: usize) -> Result<Self, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        // The system store is optional (a minimal container has none); what it has is added.
        let native = rustls_native_certs::load_native_certs();
        let (added, _ignored) = roots.add_parsable_certificates(native.certs);
        tracing::debug!(system_roots = added, "outbound TLS roots loaded");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("outbound TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(max_idle_per_host)
            .build(connector);
        Ok(Self { client })
    }

    /// Sends `request` and reads the whole answer, all before `deadline`; an answer body over
    /// `max_bytes` is an error (and is not read further).
    pub async fn send(
        &self,
        request: Request<Full<Bytes>>,
        deadline: Instant,
        max_bytes: usize,
    ) -> Result<Answer, FetchError> {
        let budget = deadline.saturating_duration_since(Instant::now());
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|e| FetchError::Connect(describe(&e)))?;
            let status = response.status();
            let body = Limited::new(response.into_body(), max_bytes)
                .collect()
                .await
                .map_err(|e| {
                    if e.is::<http_body_util::LengthLimitError>() {
                        FetchError::TooLarge(max_bytes)
                    } else {
                        FetchError::Body(e.to_string())
                    }
                })?
                .to_bytes();
            Ok(Answer { status, body })
        };
        tokio::time::timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(FetchError::Timeout(budget)))
    }
}

/// A client error with its causes ("client error (Connect): tcp connect error: Connection
/// refused"), which hyper's `Display` alone leaves out.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let shown = cause.to_string();
        if !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        source = cause.source();
    }
    text
}
