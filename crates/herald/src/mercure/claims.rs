//! Mercure credentials: where the token is, and what its claims grant.
//!
//! The token comes from `Authorization: Bearer`, else a cookie (`mercureAuthorization`, 0.x, or
//! `mercureAccessToken`, 1.0), else the query (`authorization`, 0.x, or `access_token`, 1.0). It
//! is verified by the hub's own [`Auth`] (the same keys as Herald's tokens: `--jwt-secret`,
//! `--jwt-public-key`, `--jwks-url`, audience and issuer rules), except that `exp` is optional,
//! as in Mercure, and enforced when present. Two claim shapes grant rights, and a token may
//! carry both:
//!
//! * 0.x: `"mercure": {"publish": [selectors], "subscribe": [selectors]}`, each selector `*`,
//!   an exact topic or a URI template;
//! * 1.0: `"authorization_details": [{"type": "mercure", "actions": ["publish", "subscribe"],
//!   "topics": [{"match": "…", "matchType": "Exact" | "URLPattern"}]}]`, in a token whose header
//!   says `typ: at+jwt` (RFC 9068). A malformed entry refuses the whole token: acting on the
//!   rest would change what the token grants.
//!
//! A `--publish-key` presented as a bearer credential may publish anything, as on
//! `POST /publish`.

use axum::http::{header, HeaderMap};
use serde::Deserialize;

use super::selector::{any_matches, Selector};
use super::MercureError;
use crate::auth::Auth;

/// Most selectors a token may grant, over all its claims.
const MAX_GRANTED: usize = 256;

/// What a credential allows.
#[derive(Debug, Default)]
pub struct Grants {
    pub publish: Vec<Selector>,
    pub subscribe: Vec<Selector>,
    /// Unix seconds when the token expires, if it says.
    pub expires_at: Option<u64>,
    /// The token's `sub`: the subscriber's identifier in subscription events.
    pub subject: Option<String>,
    /// What the token attaches to its subscriptions (shown in subscription events and the API).
    pub payloads: Payloads,
}

/// A token's subscription payloads: 1.0's per `subscribe` detail, 0.x's one `mercure.payload`.
#[derive(Debug, Clone, Default)]
pub struct Payloads {
    /// `(topics, payload)` of each `subscribe` detail carrying one, in token order.
    details: Vec<(Vec<Selector>, serde_json::Value)>,
    legacy: Option<serde_json::Value>,
}

impl Payloads {
    /// The payload of the subscription made with the selector `matcher`: the first detail whose
    /// topics match that selector's text as if it were a topic, else the 0.x claim's.
    pub fn for_subscription(&self, matcher: &str) -> Option<serde_json::Value> {
        let matcher = [matcher.to_owned()];
        self.details
            .iter()
            .find(|(topics, _)| any_matches(topics, &matcher))
            .map(|(_, payload)| payload.clone())
            .or_else(|| self.legacy.clone())
    }
}

#[derive(Deserialize)]
struct TokenClaims {
    #[serde(default)]
    exp: Option<u64>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    mercure: Option<LegacyClaim>,
    #[serde(default)]
    authorization_details: Option<Vec<serde_json::Value>>,
}

#[derive(Deserialize)]
struct LegacyClaim {
    #[serde(default)]
    publish: Option<Vec<String>>,
    #[serde(default)]
    subscribe: Option<Vec<String>>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Detail {
    #[serde(rename = "type")]
    kind: String,
    actions: Vec<String>,
    topics: Vec<TopicMatcher>,
    #[serde(default)]
    payload: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TopicMatcher {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    match_type: Option<String>,
}

/// The token a request presents, by the precedence above.
pub fn token(headers: &HeaderMap, query: Option<&str>) -> Result<Option<String>, MercureError> {
    if let Some(value) = headers.get(header::AUTHORIZATION) {
        let value = value.to_str().map_err(|_| {
            MercureError::invalid_request("the Authorization header is not valid text")
        })?;
        return match value.split_once(' ') {
            Some((scheme, token))
                if scheme.eq_ignore_ascii_case("bearer") && !token.trim().is_empty() =>
            {
                Ok(Some(token.trim().to_owned()))
            }
            _ => Err(MercureError::invalid_request(
                "Authorization must be \"Bearer <token>\"",
            )),
        };
    }
    for cookies in headers.get_all(header::COOKIE) {
        let Ok(cookies) = cookies.to_str() else {
            continue;
        };
        for pair in cookies.split(';') {
            if let Some((name, value)) = pair.trim().split_once('=') {
                if matches!(name, "mercureAuthorization" | "mercureAccessToken")
                    && !value.is_empty()
                {
                    return Ok(Some(value.to_owned()));
                }
            }
        }
    }
    Ok(query.filter(|t| !t.is_empty()).map(str::to_owned))
}

/// Verifies `token` and reads what it grants.
pub async fn grants(auth: &Auth, token: &str) -> Result<Grants, MercureError> {
    if auth.is_publish_key(token) {
        return Ok(Grants {
            publish: vec![Selector::Any],
            ..Grants::default()
        });
    }
    let (claims, header) = auth
        .verify_as::<TokenClaims>(token, false)
        .await
        .map_err(|e| MercureError::invalid_token(e.message))?;
    let mut grants = Grants {
        expires_at: claims.exp,
        subject: claims.sub.filter(|sub| !sub.is_empty()),
        ..Grants::default()
    };
    if let Some(legacy) = claims.mercure {
        grants.payloads.legacy = legacy.payload;
        for (list, into) in [
            (legacy.publish, &mut grants.publish),
            (legacy.subscribe, &mut grants.subscribe),
        ] {
            for source in list.unwrap_or_default() {
                into.push(
                    Selector::topic(&source).map_err(|e| {
                        MercureError::invalid_token(format!("the mercure claim: {e}"))
                    })?,
                );
            }
        }
    }
    if let Some(details) = claims.authorization_details {
        let typ = header.typ.as_deref().unwrap_or_default();
        if !typ.eq_ignore_ascii_case("at+jwt") {
            return Err(MercureError::invalid_token(
                "a token with authorization_details must say typ: at+jwt in its header",
            ));
        }
        for detail in details {
            read_detail(detail, &mut grants)?;
        }
    }
    if grants.publish.len() + grants.subscribe.len() > MAX_GRANTED {
        return Err(MercureError::invalid_token(format!(
            "a token may grant at most {MAX_GRANTED} topic selectors"
        )));
    }
    Ok(grants)
}

/// One `authorization_details` entry; entries of other types are someone else's business.
fn read_detail(value: serde_json::Value, grants: &mut Grants) -> Result<(), MercureError> {
    if value.get("type").and_then(|t| t.as_str()) != Some("mercure") {
        return Ok(());
    }
    let bad = |why: String| MercureError::invalid_token(format!("authorization_details: {why}"));
    let detail: Detail = serde_json::from_value(value).map_err(|e| bad(e.to_string()))?;
    debug_assert_eq!(detail.kind, "mercure");
    if detail.actions.is_empty() || detail.topics.is_empty() {
        return Err(bad("actions and topics must not be empty".into()));
    }
    let mut selectors = Vec::with_capacity(detail.topics.len());
    for topic in &detail.topics {
        let selector = match topic.match_type.as_deref() {
            None | Some("Exact") => Selector::exact(&topic.pattern),
            Some("URLPattern") => Selector::url_pattern(&topic.pattern),
            Some(other) => Err(format!("unknown matchType {other:?}")),
        };
        selectors.push(selector.map_err(bad)?);
    }
    for action in &detail.actions {
        match action.as_str() {
            "publish" => grants.publish.extend(selectors.iter().cloned()),
            "subscribe" => {
                grants.subscribe.extend(selectors.iter().cloned());
                if let Some(payload) = &detail.payload {
                    grants
                        .payloads
                        .details
                        .push((selectors.clone(), payload.clone()));
                }
            }
            other => return Err(bad(format!("unknown action {other:?}"))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    const SECRET: &str = "claims-test-secret";

    fn auth() -> Auth {
        Auth::new(Some(SECRET), None, &["a-key".to_owned()], &[], false).unwrap()
    }

    fn sign(typ: Option<&str>, claims: serde_json::Value) -> String {
        let mut header = Header::new(Algorithm::HS256);
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    #[test]
    fn the_header_wins_then_the_cookie_then_the_query() {
        let mut headers = HeaderMap::new();
        assert_eq!(token(&headers, Some("q")).unwrap().as_deref(), Some("q"));
        assert_eq!(token(&headers, Some("")).unwrap(), None);
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("other=1; mercureAccessToken=c"),
        );
        assert_eq!(token(&headers, Some("q")).unwrap().as_deref(), Some("c"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer h"));
        assert_eq!(token(&headers, Some("q")).unwrap().as_deref(), Some("h"));
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic x"));
        assert_eq!(token(&headers, None).unwrap_err().code, "invalid_request");
    }

    #[tokio::test]
    async fn both_claim_shapes_grant_and_bad_details_refuse_the_token() {
        let auth = auth();
        let legacy = sign(
            None,
            json!({"mercure": {"publish": ["a"], "subscribe": ["b/{id}", "*"]}}),
        );
        let granted = grants(&auth, &legacy).await.unwrap();
        assert_eq!((granted.publish.len(), granted.subscribe.len()), (1, 2));
        assert_eq!(granted.expires_at, None);

        let detail = |topics: serde_json::Value, actions: serde_json::Value| {
            json!({"exp": 4_000_000_000u64, "authorization_details": [
                {"type": "other", "whatever": true},
                {"type": "mercure", "actions": actions, "topics": topics},
            ]})
        };
        let good = sign(
            Some("at+jwt"),
            detail(
                json!([{"match": "https://e.x/:id", "matchType": "URLPattern"}, {"match": "x"}]),
                json!(["subscribe"]),
            ),
        );
        let granted = grants(&auth, &good).await.unwrap();
        assert!(granted.publish.is_empty());
        assert!(granted.subscribe[0].matches("https://e.x/7"));
        assert_eq!(granted.expires_at, Some(4_000_000_000));

        for bad in [
            detail(
                json!([{"match": "x", "matchType": "Regex"}]),
                json!(["subscribe"]),
            ),
            detail(json!([{"match": "x"}]), json!(["delete"])),
            detail(json!([]), json!(["publish"])),
            detail(json!(["x"]), json!(["publish"])),
        ] {
            let token = sign(Some("at+jwt"), bad);
            assert_eq!(
                grants(&auth, &token).await.unwrap_err().code,
                "invalid_token"
            );
        }
        let untyped = sign(None, detail(json!([{"match": "x"}]), json!(["publish"])));
        assert_eq!(
            grants(&auth, &untyped).await.unwrap_err().code,
            "invalid_token"
        );

        let key = grants(&auth, "a-key").await.unwrap();
        assert!(key.publish[0].matches("anything"));
        assert!(grants(&auth, "b-key").await.is_err());
    }
}
