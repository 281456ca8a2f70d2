//! `herald token`: mint an HS256 JWT for development.

use std::time::Duration;

use jsonwebtoken::{EncodingKey, Header};

use crate::auth::Claims;
use crate::cli::TokenArgs;

/// Signs `claims` with HS256.
pub fn mint_hs256(secret: &str, claims: &Claims) -> Result<String, jsonwebtoken::errors::Error> {
    jsonwebtoken::encode(
        &Header::default(),
        claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// Signs `claims` with HS256, adding `aud` and `iss` claims and a `kid` header when given.
pub fn mint(
    secret: &str,
    claims: &Claims,
    aud: Option<&str>,
    iss: Option<&str>,
    kid: Option<String>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let mut claims = serde_json::to_value(claims)?;
    if let Some(aud) = aud {
        claims["aud"] = aud.into();
    }
    if let Some(iss) = iss {
        claims["iss"] = iss.into();
    }
    let header = Header {
        kid,
        ..Header::default()
    };
    jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
}

/// Claims expiring `ttl` from now.
pub fn claims(
    sub: Option<String>,
    topics: Vec<String>,
    publish: Vec<String>,
    ttl: Duration,
) -> Claims {
    let exp = herald_core::unix_ms() / 1000 + ttl.as_secs();
    Claims {
        sub,
        exp,
        topics: (!topics.is_empty()).then_some(topics),
        publish: (!publish.is_empty()).then_some(publish),
    }
}

pub fn run(args: TokenArgs) -> Result<(), String> {
    if args.sub.is_none() && args.publish.is_empty() {
        return Err(
            "give --sub USER for a subscriber token and/or --publish PATTERN for a publisher token"
                .into(),
        );
    }
    if !args.topics.is_empty() && args.sub.is_none() {
        return Err("--topics only makes sense with --sub".into());
    }
    for pattern in args
        .topics
        .iter()
        .chain(args.publish.iter().filter(|p| !p.starts_with('@')))
    {
        herald_core::Pattern::parse(pattern).map_err(|e| format!("{pattern:?}: {e}"))?;
    }
    let claims = claims(args.sub, args.topics, args.publish, args.ttl);
    let token = mint(
        &args.secret,
        &claims,
        args.aud.as_deref(),
        args.iss.as_deref(),
        args.kid,
    )
    .map_err(|e| format!("cannot sign token: {e}"))?;
    println!("{token}");
    Ok(())
}
