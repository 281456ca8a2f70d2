//! Authentication and authorisation: JWTs for subscribers and publishers, publish keys.
//!
//! * Subscribers present a JWT (HS256 with `--jwt-secret`, RS256/ES256 with `--jwt-public-key`,
//!   RS256/ES256/EdDSA keys chosen by `kid` from `--jwks-url`; only the configured algorithms are
//!   accepted, and `alg: none` never is). With `--jwt-audience`/`--jwt-issuer`, `aud`/`iss` must
//!   match (a token without them is refused); without, they are ignored. `sub` is the user, `exp` is mandatory,
//!   `topics` lists the patterns the holder may subscribe to. Topics matching a `--public-topic`
//!   pattern are open to every stream, including anonymous ones.
//! * Publishers present a publish key (compared in constant time over SHA-256 digests, so neither
//!   content nor length leaks) or a JWT whose `publish` claim lists topic patterns; the reserved
//!   entries `@users` and `@broadcast` additionally allow publishing to users and to everyone.
//!
//! Tokens are secrets: nothing here logs them, and error messages never echo them.
//!
//! The file is a little over 500 lines because it is one decision read top to bottom: which
//! key may verify a token, which claims it must carry, what it grants. Split, a reviewer would
//! have to assemble that decision from several files; the JWKS fetching lives in `jwks.rs`.

use std::path::Path;
use std::sync::Arc;

use axum::http::{header, HeaderMap};
use herald_core::{validate_user, Pattern};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::jwks::Jwks;

/// Claim entry allowing a publisher token to send to any user.
pub const GRANT_USERS: &str = "@users";
/// Claim entry allowing a publisher token to broadcast.
pub const GRANT_BROADCAST: &str = "@broadcast";

/// The claims Herald reads. Unknown claims are ignored.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Claims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    pub exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topics: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<Vec<String>>,
}

/// Who opened a stream.
#[derive(Debug, Clone)]
pub enum Subscriber {
    User {
        id: String,
        topics: Vec<Pattern>,
        /// Unix seconds when the stream must end (a token's `exp`, a session's `expiresIn`).
        expires_at: Option<u64>,
    },
    /// No user: broadcasts, public topics and the `topics` a session hook granted.
    Anonymous {
        topics: Vec<Pattern>,
        expires_at: Option<u64>,
    },
}

impl Subscriber {
    /// An anonymous stream with no grants of its own (`--allow-anonymous`).
    pub fn anonymous() -> Self {
        Self::Anonymous {
            topics: Vec::new(),
            expires_at: None,
        }
    }
}

/// What a publisher may do.
#[derive(Debug, Clone)]
pub enum Publisher {
    /// A publish key: anything.
    Key,
    /// A publisher token: what its `publish` claim grants.
    Token(PublishGrant),
}

#[derive(Debug, Clone, Default)]
pub struct PublishGrant {
    pub users: bool,
    pub broadcast: bool,
    pub topics: Vec<Pattern>,
}

impl PublishGrant {
    /// Checks one publication's targets against the grant.
    pub fn allows(&self, users: &[String], topics: &[String]) -> Result<(), String> {
        if users.is_empty() && topics.is_empty() && !self.broadcast {
            return Err(format!(
                "this token may not broadcast (its publish claim lacks \"{GRANT_BROADCAST}\")"
            ));
        }
        if !users.is_empty() && !self.users {
            return Err(format!(
                "this token may not publish to users (its publish claim lacks \"{GRANT_USERS}\")"
            ));
        }
        for topic in topics {
            if !self.topics.iter().any(|p| p.matches(topic)) {
                return Err(format!("this token may not publish to topic {topic:?}"));
            }
        }
        Ok(())
    }
}

pub struct Auth {
    hs256: Option<DecodingKey>,
    public_key: Option<(DecodingKey, Algorithm)>,
    publish_keys: Vec<[u8; 32]>,
    public_topics: Vec<Pattern>,
    allow_anonymous: bool,
    jwks: Option<Arc<Jwks>>,
    audience: Option<String>,
    issuer: Option<String>,
}

/// Configuration errors (bad key files and the like), reported at startup.
#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("cannot read JWT public key {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is neither an RSA nor an EC (P-256) public key in PEM form")]
    BadKey { path: String },
    #[error("invalid --public-topic pattern: {0}")]
    PublicTopic(herald_core::TopicError),
}

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl Auth {
    pub fn new(
        jwt_secret: Option<&str>,
        jwt_public_key: Option<&Path>,
        publish_keys: &[String],
        public_topics: &[String],
        allow_anonymous: bool,
    ) -> Result<Self, AuthSetupError> {
        let public_key = match jwt_public_key {
            None => None,
            Some(path) => Some(load_public_key(path)?),
        };
        let public_topics = public_topics
            .iter()
            .map(|p| Pattern::parse(p).map_err(AuthSetupError::PublicTopic))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            hs256: jwt_secret.map(|s| DecodingKey::from_secret(s.as_bytes())),
            public_key,
            publish_keys: publish_keys.iter().map(|k| digest(k)).collect(),
            public_topics,
            allow_anonymous,
            jwks: None,
            audience: None,
            issuer: None,
        })
    }

    /// Also verify tokens with the keys of this JWKS (`--jwks-url`), chosen by `kid`.
    pub fn with_jwks(mut self, jwks: Option<Arc<Jwks>>) -> Self {
        self.jwks = jwks;
        self
    }

    /// `--jwt-audience`, `--jwt-issuer`: when given, every token must carry a matching claim.
    pub fn with_claim_rules(mut self, audience: Option<String>, issuer: Option<String>) -> Self {
        self.audience = audience.filter(|a| !a.is_empty());
        self.issuer = issuer.filter(|i| !i.is_empty());
        self
    }

    /// The JWKS, for `/readyz`.
    pub fn jwks(&self) -> Option<&Arc<Jwks>> {
        self.jwks.as_ref()
    }

    /// The key that verifies a token with this header: HS256 with the secret; a `kid` found in
    /// the JWKS (fetched again, rate-limited, when unknown) with that key, if its type and
    /// `alg` fit; else the `--jwt-public-key` when its algorithm is the token's.
    async fn key_for(&self, header: &jsonwebtoken::Header) -> Result<KeyRef<'_>, ApiError> {
        let alg = header.alg;
        if alg == Algorithm::HS256 {
            return self
                .hs256
                .as_ref()
                .map(KeyRef::Static)
                .ok_or_else(|| not_accepted(alg));
        }
        let static_key = self
            .public_key
            .as_ref()
            .filter(|(_, configured)| *configured == alg)
            .map(|(key, _)| KeyRef::Static(key));
        let Some(jwks) = &self.jwks else {
            return static_key.ok_or_else(|| not_accepted(alg));
        };
        match header.kid.as_deref() {
            Some(kid) => {
                // A kid the cached set lacks goes to the static key first, if it fits, so such
                // tokens cause no fetches (and [`Auth::verify`] asks the JWKS after all if the
                // static key does not verify the token).
                let cached = jwks.current().get(kid);
                match (cached, static_key) {
                    (Some(key), _) => jwk_for(key, alg),
                    (None, Some(key)) => Ok(key),
                    (None, None) => self.jwks_key(kid, alg).await,
                }
            }
            None => match static_key {
                Some(key) => Ok(key),
                None => jwks
                    .current()
                    .only_key_for(alg)
                    .map(KeyRef::Jwk)
                    .ok_or_else(|| {
                        ApiError::unauthorized(
                            "token header has no kid, so no JWKS key can be chosen for it",
                        )
                    }),
            },
        }
    }

    /// The JWKS key named `kid`, fetching the set again (rate-limited) when it is unknown.
    async fn jwks_key(&self, kid: &str, alg: Algorithm) -> Result<KeyRef<'_>, ApiError> {
        let found = match &self.jwks {
            Some(jwks) => jwks.find(kid).await,
            None => None,
        };
        let key = found.ok_or_else(|| {
            ApiError::unauthorized("token kid names no key of the JWKS (nor of a configured key)")
        })?;
        jwk_for(key, alg)
    }

    /// Verifies a JWT's signature, algorithm, expiry, not-before time and, when configured,
    /// audience and issuer.
    pub async fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        self.verify_as::<Claims>(token, true)
            .await
            .map(|(claims, _)| claims)
    }

    /// [`Auth::verify`] for any claims type, with `exp` required or (Mercure) optional but
    /// enforced when present. Also returns the token's header (Mercure checks its `typ`).
    pub async fn verify_as<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        exp_required: bool,
    ) -> Result<(T, jsonwebtoken::Header), ApiError> {
        let raw = raw_header(token);
        if raw.as_ref().is_some_and(|h| h.contains_key("crit")) {
            // RFC 7515 §4.1.11: extensions listed in `crit` must be understood; Herald
            // understands none, so such a token cannot be accepted.
            return Err(ApiError::unauthorized(
                "token header lists critical extensions (crit) this hub does not understand",
            ));
        }
        if let Some(alg) = raw
            .as_ref()
            .and_then(|h| h.get("alg"))
            .and_then(|a| a.as_str())
        {
            if alg.eq_ignore_ascii_case("none") {
                return Err(ApiError::unauthorized(
                    "unsigned tokens (alg: none) are never accepted",
                ));
            }
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthorized("malformed token"))?;
        let key = self.key_for(&header).await?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_nbf = true;
        let mut required = if exp_required { vec!["exp"] } else { vec![] };
        match &self.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            None => validation.validate_aud = false,
        }
        if let Some(issuer) = &self.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);
        let mut decoded = jsonwebtoken::decode::<T>(token, key.key(), &validation);
        if let (Err(error), KeyRef::Static(_), Some(_), Some(kid)) =
            (&decoded, &key, &self.jwks, header.kid.as_deref())
        {
            // A static key tried for a kid the JWKS did not hold yet: the key may be new there.
            if *error.kind() == ErrorKind::InvalidSignature && header.alg != Algorithm::HS256 {
                if let Ok(key) = self.jwks_key(kid, header.alg).await {
                    decoded = jsonwebtoken::decode::<T>(token, key.key(), &validation);
                }
            }
        }
        decoded
            .map(|data| (data.claims, data.header))
            .map_err(|error| {
                ApiError::unauthorized(match error.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::ImmatureSignature => "token is not valid yet (nbf is in the future)",
                    ErrorKind::InvalidSignature => "token signature is invalid",
                    ErrorKind::MissingRequiredClaim(claim) => match claim.as_str() {
                        "aud" => "token has no aud claim (this hub requires --jwt-audience)",
                        "iss" => "token has no iss claim (this hub requires --jwt-issuer)",
                        _ => "token has no exp claim",
                    },
                    ErrorKind::InvalidAudience => "token aud is not this hub's --jwt-audience",
                    ErrorKind::InvalidIssuer => "token iss is not this hub's --jwt-issuer",
                    ErrorKind::InvalidAlgorithm => "token algorithm does not fit its key",
                    ErrorKind::Json(_) => "token claims are malformed",
                    _ => "invalid token",
                })
            })
    }

    /// Is `credential` one of the `--publish-key`s? Compared in constant time.
    pub fn is_publish_key(&self, credential: &str) -> bool {
        let presented = digest(credential);
        // Compare against every key without stopping early, so timing says nothing either.
        let mut matched = subtle::Choice::from(0);
        for key in &self.publish_keys {
            matched |= key.ct_eq(&presented);
        }
        bool::from(matched)
    }

    /// `--allow-anonymous`.
    pub fn allows_anonymous(&self) -> bool {
        self.allow_anonymous
    }

    /// Authenticates a subscriber. No token is fine only with `--allow-anonymous`.
    pub async fn subscriber(&self, token: Option<&str>) -> Result<Subscriber, ApiError> {
        let Some(token) = token else {
            return if self.allow_anonymous {
                Ok(Subscriber::anonymous())
            } else {
                Err(ApiError::unauthorized(
                    "a token is required (Authorization: Bearer, cookie herald_token, or ?access_token=)",
                ))
            };
        };
        let claims = self.verify(token).await?;
        let id = claims.sub.ok_or_else(|| {
            ApiError::unauthorized("token has no sub claim (a subscriber token names its user)")
        })?;
        validate_user(&id).map_err(|e| ApiError::unauthorized(format!("token sub: {e}")))?;
        let topics = parse_claim_patterns(claims.topics.unwrap_or_default(), "topics")?;
        Ok(Subscriber::User {
            id,
            topics,
            expires_at: Some(claims.exp),
        })
    }

    /// Checks that the subscriber may subscribe to every requested pattern.
    pub fn authorize_topics(
        &self,
        who: &Subscriber,
        requested: &[Pattern],
    ) -> Result<(), ApiError> {
        let granted: &[Pattern] = match who {
            Subscriber::User { topics, .. } | Subscriber::Anonymous { topics, .. } => topics,
        };
        for pattern in requested {
            let allowed = granted
                .iter()
                .chain(&self.public_topics)
                .any(|grant| grant.covers(pattern));
            if !allowed {
                return Err(ApiError::forbidden(format!(
                    "not allowed to subscribe to topic {:?}",
                    pattern.as_str()
                )));
            }
        }
        Ok(())
    }

    /// Authenticates a publisher from its bearer credential.
    pub async fn publisher(&self, bearer: Option<&str>) -> Result<Publisher, ApiError> {
        let bearer = bearer.ok_or_else(|| {
            ApiError::unauthorized(
                "publishing needs Authorization: Bearer <publish key or publisher token>",
            )
        })?;
        if self.is_publish_key(bearer) {
            return Ok(Publisher::Key);
        }
        let claims = self.verify(bearer).await.map_err(|e| {
            // A JWT hears why it was refused (expired, wrong audience...); anything else is
            // only "not a key", which says nothing about the keys.
            if jsonwebtoken::decode_header(bearer).is_ok() {
                ApiError::unauthorized(format!(
                    "invalid publish key or publisher token: {}",
                    e.message
                ))
            } else {
                ApiError::unauthorized("invalid publish key or publisher token")
            }
        })?;
        let Some(entries) = claims.publish else {
            return Err(ApiError::forbidden(
                "this token has no publish claim, so it may not publish",
            ));
        };
        let mut grant = PublishGrant::default();
        let mut topics = Vec::new();
        for entry in entries {
            match entry.as_str() {
                GRANT_USERS => grant.users = true,
                GRANT_BROADCAST => grant.broadcast = true,
                _ => topics.push(entry),
            }
        }
        grant.topics = parse_claim_patterns(topics, "publish")?;
        Ok(Publisher::Token(grant))
    }
}

/// A verification key: configured, or from the JWKS.
enum KeyRef<'a> {
    Static(&'a DecodingKey),
    Jwk(Arc<crate::jwks::Key>),
}

impl KeyRef<'_> {
    fn key(&self) -> &DecodingKey {
        match self {
            KeyRef::Static(key) => key,
            KeyRef::Jwk(key) => &key.key,
        }
    }
}

/// A JWKS key, if it verifies `alg`.
fn jwk_for<'a>(key: Arc<crate::jwks::Key>, alg: Algorithm) -> Result<KeyRef<'a>, ApiError> {
    if key.accepts(alg) {
        Ok(KeyRef::Jwk(key))
    } else {
        Err(ApiError::unauthorized(format!(
            "token algorithm {alg:?} does not fit the JWKS key its kid names"
        )))
    }
}

fn not_accepted(alg: Algorithm) -> ApiError {
    ApiError::unauthorized(format!(
        "token algorithm {alg:?} is not accepted by this hub"
    ))
}

/// The token's header as JSON, for what jsonwebtoken's `Header` does not keep (`crit`) or
/// cannot represent (`alg: none`).
fn raw_header(token: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
    use base64::Engine;
    let encoded = token.split('.').next()?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(encoded)
        .ok()?;
    serde_json::from_slice(&json).ok()
}

/// The credential in `Authorization: Bearer <credential>`, if the header is present.
pub fn bearer(headers: &HeaderMap) -> Result<Option<&str>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthorized("Authorization header is not valid text"))?;
    match value.split_once(' ') {
        Some((scheme, credential))
            if scheme.eq_ignore_ascii_case("bearer") && !credential.trim().is_empty() =>
        {
            Ok(Some(credential.trim()))
        }
        _ => Err(ApiError::unauthorized(
            "Authorization must be \"Bearer <token>\"",
        )),
    }
}

fn parse_claim_patterns(entries: Vec<String>, claim: &str) -> Result<Vec<Pattern>, ApiError> {
    entries
        .iter()
        .map(|p| {
            Pattern::parse(p)
                .map_err(|e| ApiError::unauthorized(format!("token {claim} claim: {e}")))
        })
        .collect()
}

fn load_public_key(path: &Path) -> Result<(DecodingKey, Algorithm), AuthSetupError> {
    let shown = path.display().to_string();
    let pem = std::fs::read(path).map_err(|source| AuthSetupError::Read {
        path: shown.clone(),
        source,
    })?;
    if let Ok(key) = DecodingKey::from_rsa_pem(&pem) {
        return Ok((key, Algorithm::RS256));
    }
    if let Ok(key) = DecodingKey::from_ec_pem(&pem) {
        return Ok((key, Algorithm::ES256));
    }
    Err(AuthSetupError::BadKey { path: shown })
}
