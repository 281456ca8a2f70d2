//! Authentication and authorisation: JWTs for subscribers and publishers, publish keys.
//!
//! * Subscribers present a JWT (HS256 with `--jwt-secret`, RS256/ES256 with `--jwt-public-key`;
//!   only the configured algorithms are accepted). `sub` is the user, `exp` is mandatory,
//!   `topics` lists the patterns the holder may subscribe to. Topics matching a `--public-topic`
//!   pattern are open to every stream, including anonymous ones.
//! * Publishers present a publish key (compared in constant time over SHA-256 digests, so neither
//!   content nor length leaks) or a JWT whose `publish` claim lists topic patterns; the reserved
//!   entries `@users` and `@broadcast` additionally allow publishing to users and to everyone.
//!
//! Tokens are secrets: nothing here logs them, and error messages never echo them.

use std::path::Path;

use herald_core::{validate_user, Pattern};
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

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
        expires_at: u64,
    },
    Anonymous,
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
        })
    }

    /// Verifies a JWT's signature, algorithm and expiry.
    pub fn verify(&self, token: &str) -> Result<Claims, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthorized("malformed token"))?;
        let key = match (header.alg, &self.hs256, &self.public_key) {
            (Algorithm::HS256, Some(key), _) => key,
            (alg, _, Some((key, configured))) if alg == *configured => key,
            (alg, _, _) => {
                return Err(ApiError::unauthorized(format!(
                    "token algorithm {alg:?} is not accepted by this hub"
                )))
            }
        };
        let mut validation = Validation::new(header.alg);
        validation.leeway = 0;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp"]);
        jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|error| {
                ApiError::unauthorized(match error.kind() {
                    ErrorKind::ExpiredSignature => "token expired",
                    ErrorKind::InvalidSignature => "token signature is invalid",
                    ErrorKind::MissingRequiredClaim(_) => "token has no exp claim",
                    ErrorKind::Json(_) => "token claims are malformed",
                    _ => "invalid token",
                })
            })
    }

    /// Authenticates a subscriber. No token is fine only with `--allow-anonymous`.
    pub fn subscriber(&self, token: Option<&str>) -> Result<Subscriber, ApiError> {
        let Some(token) = token else {
            return if self.allow_anonymous {
                Ok(Subscriber::Anonymous)
            } else {
                Err(ApiError::unauthorized(
                    "a token is required (Authorization: Bearer, cookie herald_token, or ?access_token=)",
                ))
            };
        };
        let claims = self.verify(token)?;
        let id = claims.sub.ok_or_else(|| {
            ApiError::unauthorized("token has no sub claim (a subscriber token names its user)")
        })?;
        validate_user(&id).map_err(|e| ApiError::unauthorized(format!("token sub: {e}")))?;
        let topics = parse_claim_patterns(claims.topics.unwrap_or_default(), "topics")?;
        Ok(Subscriber::User {
            id,
            topics,
            expires_at: claims.exp,
        })
    }

    /// Checks that the subscriber may subscribe to every requested pattern.
    pub fn authorize_topics(
        &self,
        who: &Subscriber,
        requested: &[Pattern],
    ) -> Result<(), ApiError> {
        let granted: &[Pattern] = match who {
            Subscriber::User { topics, .. } => topics,
            Subscriber::Anonymous => &[],
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
    pub fn publisher(&self, bearer: Option<&str>) -> Result<Publisher, ApiError> {
        let bearer = bearer.ok_or_else(|| {
            ApiError::unauthorized(
                "publishing needs Authorization: Bearer <publish key or publisher token>",
            )
        })?;
        let presented = digest(bearer);
        // Compare against every key without stopping early, so timing says nothing either.
        let mut matched = subtle::Choice::from(0);
        for key in &self.publish_keys {
            matched |= key.ct_eq(&presented);
        }
        if bool::from(matched) {
            return Ok(Publisher::Key);
        }
        let claims = self
            .verify(bearer)
            .map_err(|_| ApiError::unauthorized("invalid publish key or publisher token"))?;
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
