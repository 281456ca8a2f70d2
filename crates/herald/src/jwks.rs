//! `--jwks-url`: public keys from an identity provider's JWKS, chosen by a token's `kid`.
//!
//! The set is fetched once at startup (a set that cannot be fetched, or holds no usable key, is
//! a startup error), again every `--jwks-refresh`, and on demand when a token names a `kid` the
//! cached set does not have, at most once per [`ON_DEMAND_EVERY`] however many such tokens
//! arrive (so a flood of made-up `kid`s costs the provider one request per 10 s). A refresh that
//! fails keeps the last good keys; the failure shows in `/readyz` ([`Jwks::status`]) and in
//! the metrics until a refresh succeeds again.
//!
//! Usable keys: RSA (RS256/384/512, PS256/384/512), EC P-256 (ES256) and P-384 (ES384), and OKP
//! Ed25519 (EdDSA). A key's `alg`, when the set gives one, is the only algorithm it verifies;
//! keys for encryption (`use: enc`), symmetric keys (`kty: oct`) and anything else are skipped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method};
use http_body_util::Full;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};
use parking_lot::{Mutex, RwLock};
use tokio::time::Instant;

use crate::metrics as m;
use crate::outbound::{self, HttpClient};

/// Fetches caused by unknown `kid`s happen at most this often.
pub const ON_DEMAND_EVERY: Duration = Duration::from_secs(10);
/// Bound on one fetch: connecting, sending and reading the whole set.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS accepted, in bytes.
pub const MAX_BYTES: usize = 1 << 20;
/// Most keys kept from one set.
pub const MAX_KEYS: usize = 100;

/// One usable key and the algorithms it verifies.
pub struct Key {
    pub key: DecodingKey,
    pub algorithms: &'static [Algorithm],
}

impl Key {
    pub fn accepts(&self, alg: Algorithm) -> bool {
        self.algorithms.contains(&alg)
    }
}

/// The keys of one fetched set.
#[derive(Default)]
pub struct KeySet {
    by_kid: HashMap<String, Arc<Key>>,
    /// Keys the set gives without a `kid` (used only by tokens without one).
    unnamed: Vec<Arc<Key>>,
}

impl KeySet {
    pub fn len(&self) -> usize {
        self.by_kid.len() + self.unnamed.len()
    }

    /// Parses a JWKS document, keeping the usable keys and skipping the rest.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        #[derive(serde::Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(body)
            .map_err(|e| format!("not a JWKS (a JSON object with a \"keys\" array): {e}"))?;
        let mut set = KeySet::default();
        let mut skipped = 0usize;
        for value in document.keys {
            if set.len() >= MAX_KEYS {
                skipped += 1;
                continue;
            }
            let Some(jwk) = serde_json::from_value::<Jwk>(value).ok() else {
                skipped += 1;
                continue;
            };
            let Some(key) = usable(&jwk) else {
                skipped += 1;
                continue;
            };
            match jwk.common.key_id {
                Some(kid) => {
                    set.by_kid.insert(kid, Arc::new(key));
                }
                None => set.unnamed.push(Arc::new(key)),
            }
        }
        if skipped > 0 {
            tracing::debug!(
                skipped,
                "JWKS keys skipped (not signature keys Herald can use)"
            );
        }
        if set.len() == 0 {
            return Err(
                "the JWKS holds no usable signature key (RSA, EC P-256/P-384 or Ed25519)".into(),
            );
        }
        Ok(set)
    }

    pub fn get(&self, kid: &str) -> Option<Arc<Key>> {
        self.by_kid.get(kid).cloned()
    }

    /// For a token without `kid`: the one key of the set that verifies `alg`, if exactly one
    /// does.
    pub fn only_key_for(&self, alg: Algorithm) -> Option<Arc<Key>> {
        let mut fitting = self
            .by_kid
            .values()
            .chain(&self.unnamed)
            .filter(|k| k.accepts(alg));
        let first = fitting.next()?;
        fitting.next().is_none().then(|| first.clone())
    }
}

const RSA: &[Algorithm] = &[
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
];

/// The key and the algorithms it may verify, or `None` for a key Herald does not use.
fn usable(jwk: &Jwk) -> Option<Key> {
    if matches!(
        jwk.common.public_key_use,
        Some(PublicKeyUse::Encryption | PublicKeyUse::Other(_))
    ) {
        return None;
    }
    let family: &'static [Algorithm] = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => RSA,
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P256 => {
            &[Algorithm::ES256]
        }
        AlgorithmParameters::EllipticCurve(p) if p.curve == EllipticCurve::P384 => {
            &[Algorithm::ES384]
        }
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => {
            &[Algorithm::EdDSA]
        }
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => family,
        Some(alg) => {
            let alg = single(alg)?;
            let index = family.iter().position(|a| *a == alg)?;
            &family[index..=index]
        }
    };
    let key = DecodingKey::from_jwk(jwk).ok()?;
    Some(Key { key, algorithms })
}

fn single(alg: KeyAlgorithm) -> Option<Algorithm> {
    Some(match alg {
        KeyAlgorithm::RS256 => Algorithm::RS256,
        KeyAlgorithm::RS384 => Algorithm::RS384,
        KeyAlgorithm::RS512 => Algorithm::RS512,
        KeyAlgorithm::PS256 => Algorithm::PS256,
        KeyAlgorithm::PS384 => Algorithm::PS384,
        KeyAlgorithm::PS512 => Algorithm::PS512,
        KeyAlgorithm::ES256 => Algorithm::ES256,
        KeyAlgorithm::ES384 => Algorithm::ES384,
        KeyAlgorithm::EdDSA => Algorithm::EdDSA,
        _ => return None,
    })
}

/// How the last fetches went, for `/readyz`.
#[derive(Default, Clone)]
struct Health {
    /// Unix ms of the last successful fetch.
    last_success_ms: u64,
    /// The last fetch's error, while no fetch has succeeded since.
    error: Option<String>,
}

/// The cached set, its refreshes and their health.
pub struct Jwks {
    url: http::Uri,
    client: HttpClient,
    keys: RwLock<Arc<KeySet>>,
    health: Mutex<Health>,
    /// Held while an on-demand fetch runs; holds when the last one started.
    on_demand: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    /// Fetches the set once: an error here is a startup error.
    pub async fn start(url: http::Uri, client: HttpClient) -> Result<Arc<Self>, String> {
        let shown = redacted(&url);
        let keys = fetch(&client, &url)
            .await
            .map_err(|e| format!("--jwks-url {shown}: {e}"))?;
        let count = keys.len();
        let jwks = Arc::new(Self {
            url,
            client,
            keys: RwLock::new(Arc::new(keys)),
            health: Mutex::new(Health::default()),
            on_demand: tokio::sync::Mutex::new(None),
        });
        jwks.succeeded(count);
        tracing::info!(url = %shown, keys = count, "JWKS loaded");
        Ok(jwks)
    }

    /// Refreshes every `every` until the process ends.
    pub fn spawn_refresh(self: &Arc<Self>, every: Duration) {
        let jwks = Arc::downgrade(self);
        tokio::spawn(async move {
            let start = Instant::now() + every;
            let mut interval = tokio::time::interval_at(start, every);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                interval.tick().await;
                let Some(jwks) = jwks.upgrade() else { return };
                jwks.refresh("periodic").await;
            }
        });
    }

    pub fn current(&self) -> Arc<KeySet> {
        self.keys.read().clone()
    }

    /// The key named `kid`: from the cache, else from a fresh fetch when none was made on
    /// demand within [`ON_DEMAND_EVERY`].
    pub async fn find(&self, kid: &str) -> Option<Arc<Key>> {
        if let Some(key) = self.current().get(kid) {
            return Some(key);
        }
        // One on-demand fetch at a time; whoever waited for it looks again first.
        let mut last = self.on_demand.lock().await;
        if let Some(key) = self.current().get(kid) {
            return Some(key);
        }
        if last.is_some_and(|at| at.elapsed() < ON_DEMAND_EVERY) {
            return None;
        }
        *last = Some(Instant::now());
        self.refresh("unknown kid").await;
        self.current().get(kid)
    }

    async fn refresh(&self, why: &'static str) {
        match fetch(&self.client, &self.url).await {
            Ok(keys) => {
                let count = keys.len();
                *self.keys.write() = Arc::new(keys);
                self.succeeded(count);
                tracing::debug!(keys = count, why, "JWKS refreshed");
            }
            Err(error) => {
                metrics::counter!(m::JWKS_REFRESHES, "outcome" => "failed").increment(1);
                metrics::gauge!(m::JWKS_FAILING).set(1.0);
                tracing::warn!(url = %redacted(&self.url), why, %error,
                    "JWKS refresh failed; keeping the last good keys");
                self.health.lock().error = Some(error);
            }
        }
    }

    fn succeeded(&self, keys: usize) {
        metrics::counter!(m::JWKS_REFRESHES, "outcome" => "ok").increment(1);
        metrics::gauge!(m::JWKS_FAILING).set(0.0);
        metrics::gauge!(m::JWKS_KEYS).set(keys as f64);
        let mut health = self.health.lock();
        health.last_success_ms = herald_core::unix_ms();
        health.error = None;
    }

    /// `/readyz` detail: keys held, when they were fetched, the last refresh's error.
    pub fn status(&self) -> serde_json::Value {
        let health = self.health.lock().clone();
        serde_json::json!({
            "keys": self.current().len(),
            "lastRefresh": health.last_success_ms,
            "stale": health.error.is_some(),
            "error": health.error,
        })
    }
}

async fn fetch(client: &HttpClient, url: &http::Uri) -> Result<KeySet, String> {
    let request = outbound::request(Method::GET, url)
        .header(header::ACCEPT, "application/json, application/jwk-set+json")
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let answer = client
        .send(request, Instant::now() + FETCH_TIMEOUT, MAX_BYTES)
        .await
        .map_err(|e| format!("cannot fetch the JWKS: {e}"))?;
    if !answer.status.is_success() {
        return Err(format!("fetching the JWKS answered {}", answer.status));
    }
    KeySet::parse(&answer.body)
}

/// A URL for the log and errors: scheme, host, port and path, without credentials or query.
pub fn redacted(url: &http::Uri) -> String {
    let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!(
        "{}://{}{}{}",
        url.scheme_str().unwrap_or("http"),
        url.host().unwrap_or(""),
        port,
        url.path()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usable_keys_are_kept_and_others_skipped() {
        let doc = serde_json::json!({"keys": [
            {"kty": "oct", "kid": "sym", "k": "c2VjcmV0"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "sXch", "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa", "use": "sig", "alg": "RS256", "n": "sXch", "e": "AQAB"},
            {"kty": "EC", "kid": "ec", "crv": "P-256",
             "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
             "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
            {"kty": "OKP", "kid": "ed", "crv": "Ed25519",
             "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
            {"kty": "weird", "kid": "x"},
            "not even an object"
        ]});
        let set = KeySet::parse(doc.to_string().as_bytes()).unwrap();
        assert_eq!(set.len(), 3);
        assert!(set.get("sym").is_none());
        assert!(set.get("enc").is_none());
        let rsa = set.get("rsa").unwrap();
        assert!(rsa.accepts(Algorithm::RS256));
        assert!(
            !rsa.accepts(Algorithm::RS512),
            "the key's alg is the only one"
        );
        assert!(!rsa.accepts(Algorithm::HS256));
        assert!(set.get("ec").unwrap().accepts(Algorithm::ES256));
        assert!(set.get("ed").unwrap().accepts(Algorithm::EdDSA));
        assert!(set.only_key_for(Algorithm::ES256).is_some());
        assert!(set.only_key_for(Algorithm::HS256).is_none());
    }

    #[test]
    fn a_set_without_usable_keys_is_an_error() {
        assert!(KeySet::parse(br#"{"keys": []}"#).is_err());
        assert!(KeySet::parse(br#"{"keys": [{"kty": "oct", "k": "AA"}]}"#).is_err());
        assert!(KeySet::parse(b"[]").is_err());
        assert!(KeySet::parse(b"<html>").is_err());
    }

    #[test]
    fn urls_are_shown_without_credentials_or_query() {
        let url: http::Uri = "https://u:p@idp.example.com:8443/keys?secret=1"
            .parse()
            .unwrap();
        assert_eq!(redacted(&url), "https://idp.example.com:8443/keys");
    }
}
