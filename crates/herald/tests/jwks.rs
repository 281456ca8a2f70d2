//! `--jwks-url`, `--jwt-audience`, `--jwt-issuer`: a real `herald serve` verifying tokens with
//! the keys a stub identity provider serves as a JWKS, chosen by `kid`.
//!
//! The tokens are signed with the private keys in `tests/fixtures/jwt` (made with openssl, for
//! these tests only); the stub serves their public halves.

mod common;

use std::sync::{Arc, Mutex};

use base64::Engine;
use common::stub::{Answer, Stub};
use common::*;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const AUDIENCE: &str = "herald-test";
const ISSUER: &str = "https://idp.example.test/";

/// A private key from the fixtures, with the algorithm and `kid` it signs with.
#[derive(Clone)]
struct Signer {
    key: EncodingKey,
    alg: Algorithm,
    kid: String,
}

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/fixtures/jwt/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn signer(file: &str, alg: Algorithm, kid: &str) -> Signer {
    let pem = fixture(file);
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        Algorithm::ES256 => EncodingKey::from_ec_pem(&pem),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(&pem),
        _ => unreachable!(),
    }
    .expect("fixture key");
    Signer {
        key,
        alg,
        kid: kid.to_owned(),
    }
}

fn rsa1() -> Signer {
    signer("rsa1.pem", Algorithm::RS256, "rsa-1")
}
fn rsa2() -> Signer {
    signer("rsa2.pem", Algorithm::RS256, "rsa-2")
}
fn ec1() -> Signer {
    signer("ec1.pem", Algorithm::ES256, "ec-1")
}
fn ed1() -> Signer {
    signer("ed1.pem", Algorithm::EdDSA, "ed-1")
}

impl Signer {
    /// The public half as a JWK.
    fn jwk(&self) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.key, self.alg).expect("jwk");
        jwk.common.key_id = Some(self.kid.clone());
        serde_json::to_value(jwk).unwrap()
    }

    fn sign(&self, claims: &Value) -> String {
        let header = Header {
            kid: Some(self.kid.clone()),
            ..Header::new(self.alg)
        };
        jsonwebtoken::encode(&header, claims, &self.key).expect("sign")
    }

    /// The same key under another `kid`.
    fn named(&self, kid: &str) -> Signer {
        Signer {
            kid: kid.to_owned(),
            ..self.clone()
        }
    }
}

/// Claims the test hub accepts: audience and issuer right, valid for an hour.
fn claims(sub: &str) -> Value {
    json!({"sub": sub, "exp": now() + 3600, "aud": AUDIENCE, "iss": ISSUER})
}

/// A stub identity provider serving `keys` (changeable while it runs) at `/jwks`.
struct Provider {
    stub: Stub,
    keys: Arc<Mutex<Vec<Value>>>,
    failing: Arc<Mutex<bool>>,
}

impl Provider {
    fn start(signers: &[&Signer]) -> Provider {
        let keys = Arc::new(Mutex::new(
            signers.iter().map(|s| s.jwk()).collect::<Vec<_>>(),
        ));
        let failing = Arc::new(Mutex::new(false));
        let (served, fail) = (keys.clone(), failing.clone());
        let stub = Stub::start(move |request| {
            if *fail.lock().unwrap() {
                return Answer::status(500);
            }
            assert_eq!(request.method, "GET");
            Answer::json(200, json!({ "keys": served.lock().unwrap().clone() }))
        });
        Provider {
            stub,
            keys,
            failing,
        }
    }

    fn url(&self) -> String {
        self.stub.url("/jwks")
    }

    fn add(&self, signer: &Signer) {
        self.keys.lock().unwrap().push(signer.jwk());
    }

    fn remove(&self, kid: &str) {
        self.keys.lock().unwrap().retain(|k| k["kid"] != kid);
    }

    /// Waits until the hub has fetched the set twice more from now: the second of those
    /// fetches began after the first was answered and installed (refreshes run one at a
    /// time), so it saw whatever the set is now, and once a third has begun, the hub holds
    /// its result.
    async fn wait_for_refreshes(&self) {
        let now = self.stub.count();
        self.stub.wait_for_count(now + 3).await;
    }
}

/// A hub with the JWKS, audience and issuer (and the usual secret and publish key).
fn hub(provider: &Provider, extra: &[&str]) -> Server {
    let url = provider.url();
    let mut args = vec![
        "--jwks-url",
        &url,
        "--jwt-audience",
        AUDIENCE,
        "--jwt-issuer",
        ISSUER,
    ];
    args.extend_from_slice(extra);
    Server::start(&args)
}

/// The status and error message of a stream opened with `token`.
async fn subscribe_status(addr: &str, token: &str) -> (u16, String) {
    open_status(
        addr,
        Open {
            token: Some(token),
            ..Default::default()
        },
    )
    .await
}

/// The status of a stream opened so, and the error body when it was refused.
async fn open_status(addr: &str, how: Open<'_>) -> (u16, String) {
    let mut sse = Sse::open(addr, how).await;
    let status = sse.status;
    if status == 200 {
        return (status, String::new());
    }
    sse.until_end().await;
    (status, sse.raw_text())
}

#[tokio::test]
async fn rs256_es256_and_eddsa_tokens_are_verified_by_kid() {
    let (rsa, ec, ed) = (rsa1(), ec1(), ed1());
    let provider = Provider::start(&[&rsa, &ec, &ed]);
    let hub = hub(&provider, &[]);
    for (signer, user) in [(&rsa, "rsa-user"), (&ec, "ec-user"), (&ed, "ed-user")] {
        let mut sse = Sse::ok(&hub.addr, &signer.sign(&claims(user))).await;
        publish(
            &hub.addr,
            json!({"user": user, "event": "hello", "data": user}),
        )
        .await;
        let event = sse.next_event().await;
        assert_eq!(
            (event.event_type.as_str(), event.data.as_str()),
            ("hello", user),
            "{:?}",
            signer.alg
        );
    }
    // Publisher tokens are verified the same way.
    let mut publisher = claims("backend");
    publisher["publish"] = json!(["@users"]);
    let reply = publish_raw(
        &hub.addr,
        Some(&ec.sign(&publisher)),
        json!({"user": "u1", "event": "e", "data": 1}).to_string(),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(provider.stub.count(), 1, "known kids need no fetch");
    let ready = get(&hub.addr, "/readyz").await;
    assert_eq!(ready.status, 200);
    assert_eq!(ready.json()["jwks"]["keys"], 3, "{}", ready.body);
    assert_eq!(ready.json()["jwks"]["stale"], false);
}

#[tokio::test]
async fn keys_outside_the_jwks_and_wrong_claims_are_refused() {
    let (rsa, ec) = (rsa1(), ec1());
    let provider = Provider::start(&[&rsa, &ec]);
    let hub = hub(&provider, &[]);
    let stranger = signer("rsa3.pem", Algorithm::RS256, "rsa-1");
    let mut no_aud = claims("u1");
    no_aud.as_object_mut().unwrap().remove("aud");
    let mut no_iss = claims("u1");
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut wrong_aud = claims("u1");
    wrong_aud["aud"] = json!("someone-else");
    let mut wrong_iss = claims("u1");
    wrong_iss["iss"] = json!("https://evil.example.test/");
    let mut expired = claims("u1");
    expired["exp"] = json!(now() - 10);
    let b64 = |v: &Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    let unsigned = format!(
        "{}.{}.",
        b64(&json!({"alg": "none", "typ": "JWT", "kid": "rsa-1"})),
        b64(&claims("u1"))
    );
    // RS256 in the header with the kid of the EC key: the algorithm does not fit the key.
    let mismatched = {
        let (header, rest) = ec
            .sign(&claims("u1"))
            .split_once('.')
            .map(|(h, r)| (h.to_owned(), r.to_owned()))
            .unwrap();
        let mut header: Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(header)
                .unwrap(),
        )
        .unwrap();
        header["alg"] = json!("RS256");
        format!("{}.{rest}", b64(&header))
    };
    let cases = [
        (
            "a key outside the JWKS under a known kid",
            stranger.sign(&claims("u1")),
            "signature",
        ),
        (
            "a key outside the JWKS under an unknown kid",
            stranger.named("rsa-9").sign(&claims("u1")),
            "kid",
        ),
        ("no aud", rsa.sign(&no_aud), "aud"),
        ("a wrong aud", rsa.sign(&wrong_aud), "aud"),
        ("no iss", rsa.sign(&no_iss), "iss"),
        ("a wrong iss", rsa.sign(&wrong_iss), "iss"),
        ("expired", ec.sign(&expired), "expired"),
        ("alg none with a known kid", unsigned, "none"),
        (
            "an algorithm that does not fit the key",
            mismatched,
            "RS256",
        ),
        (
            "an HS256 token without aud and iss",
            token("u1", &[]),
            "claim",
        ),
    ];
    for (what, token, says) in cases {
        let (status, body) = subscribe_status(&hub.addr, &token).await;
        assert_eq!(status, 401, "{what}: {body}");
        assert!(
            body.contains(says),
            "{what}: {body} should mention {says:?}"
        );
        let reply = publish_raw(&hub.addr, Some(&token), json!({"data": 1}).to_string()).await;
        assert_eq!(reply.status, 401, "publishing with {what}: {}", reply.body);
    }
}

#[tokio::test]
async fn a_key_added_to_the_jwks_is_accepted_without_a_restart_and_a_removed_one_refused() {
    let (old, new) = (rsa1(), rsa2());
    let provider = Provider::start(&[&old]);
    let hub = hub(&provider, &["--jwks-refresh", "1s"]);
    assert_eq!(
        subscribe_status(&hub.addr, &old.sign(&claims("u1")))
            .await
            .0,
        200
    );
    // The provider rotates: a new key appears, tokens signed with it arrive at once.
    provider.add(&new);
    let (status, body) = subscribe_status(&hub.addr, &new.sign(&claims("u2"))).await;
    assert_eq!(status, 200, "{body}");
    // The old key leaves the set; once the hub has refreshed, its tokens are refused.
    provider.remove("rsa-1");
    provider.wait_for_refreshes().await;
    let (status, body) = subscribe_status(&hub.addr, &old.sign(&claims("u1"))).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(
        subscribe_status(&hub.addr, &new.sign(&claims("u2")))
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn unknown_kids_cause_at_most_three_fetches() {
    let rsa = rsa1();
    let provider = Provider::start(&[&rsa]);
    let hub = hub(&provider, &[]);
    let addr = hub.addr.clone();
    // Ten at once, then ten one after another.
    let burst = (0..10).map(|i| {
        let (addr, token) = (
            addr.clone(),
            rsa.named(&format!("burst-{i}")).sign(&claims("u1")),
        );
        tokio::spawn(async move { subscribe_status(&addr, &token).await })
    });
    for outcome in futures_util::future::join_all(burst).await {
        assert_eq!(outcome.unwrap().0, 401);
    }
    for i in 0..10 {
        let token = rsa.named(&format!("serial-{i}")).sign(&claims("u1"));
        let (status, body) = subscribe_status(&addr, &token).await;
        assert_eq!(status, 401, "{body}");
        assert!(body.contains("kid"), "{body}");
    }
    let fetches = provider.stub.count();
    assert!(
        fetches <= 3,
        "20 unknown kids caused {fetches} JWKS fetches"
    );
    // The known key still works, without another fetch.
    assert_eq!(
        subscribe_status(&addr, &rsa.sign(&claims("u1"))).await.0,
        200
    );
    assert_eq!(provider.stub.count(), fetches);
}

#[tokio::test]
async fn a_failing_refresh_keeps_the_last_good_keys_and_shows_in_readyz_and_metrics() {
    let rsa = rsa1();
    let provider = Provider::start(&[&rsa]);
    let hub = hub(&provider, &["--jwks-refresh", "1s"]);
    assert_eq!(metric_at(&hub.addr, "herald_jwks_keys").await, 1.0);
    *provider.failing.lock().unwrap() = true;
    provider.wait_for_refreshes().await;
    let ready = get(&hub.addr, "/readyz").await;
    assert_eq!(
        ready.status, 200,
        "the last good keys still verify: {}",
        ready.body
    );
    let jwks = &ready.json()["jwks"];
    assert_eq!(jwks["stale"], true, "{}", ready.body);
    assert!(
        jwks["error"].as_str().unwrap_or_default().contains("500"),
        "{}",
        ready.body
    );
    assert_eq!(
        metric_at(&hub.addr, "herald_jwks_refresh_failing").await,
        1.0
    );
    assert!(metric_at(&hub.addr, "herald_jwks_refreshes_total{outcome=\"failed\"}").await >= 1.0);
    assert_eq!(
        subscribe_status(&hub.addr, &rsa.sign(&claims("u1")))
            .await
            .0,
        200
    );
    // The provider recovers, and so does the status.
    *provider.failing.lock().unwrap() = false;
    provider.wait_for_refreshes().await;
    let ready = get(&hub.addr, "/readyz").await;
    assert_eq!(ready.json()["jwks"]["stale"], false, "{}", ready.body);
    assert_eq!(
        metric_at(&hub.addr, "herald_jwks_refresh_failing").await,
        0.0
    );
}

#[test]
fn an_unreachable_or_useless_jwks_stops_the_start_with_a_clear_message() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/jwks", closed.local_addr().unwrap());
    drop(closed);
    let stderr = serve_refuses(&["--jwks-url", &url]);
    assert!(
        stderr.contains("--jwks-url") && stderr.contains("cannot fetch the JWKS"),
        "{stderr}"
    );
    let useless =
        Stub::start(|_| Answer::json(200, json!({"keys": [{"kty": "oct", "k": "c2VjcmV0"}]})));
    let stderr = serve_refuses(&["--jwks-url", &useless.url("/jwks")]);
    assert!(stderr.contains("no usable signature key"), "{stderr}");
    let missing = Stub::start(|_| Answer::status(404));
    let stderr = serve_refuses(&["--jwks-url", &missing.url("/jwks")]);
    assert!(stderr.contains("404"), "{stderr}");
}

#[tokio::test]
async fn herald_token_mints_audience_issuer_and_kid() {
    let output = herald_command()
        .args([
            "token", "--secret", SECRET, "--sub", "u1", "--topics", "orders/*",
        ])
        .args(["--aud", AUDIENCE, "--iss", ISSUER, "--kid", "dev-1"])
        .output()
        .expect("run herald token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    let header = jsonwebtoken::decode_header(&token).unwrap();
    assert_eq!(header.kid.as_deref(), Some("dev-1"));
    // The claim rules apply to HS256 tokens too: this one passes them.
    let provider = Provider::start(&[&rsa1()]);
    let hub = hub(&provider, &[]);
    let (status, body) = open_status(
        &hub.addr,
        Open {
            token: Some(&token),
            query: "topic=orders/1",
            ..Default::default()
        },
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_jwks_combines_with_a_public_key() {
    let provider = Provider::start(&[&rsa1()]);
    let public_key = format!(
        "{}/tests/fixtures/jwt/rsa3.pub.pem",
        env!("CARGO_MANIFEST_DIR")
    );
    let hub = hub(&provider, &["--jwt-public-key", &public_key]);
    // The configured key verifies its tokens, with or without a kid, and costs no fetch.
    let own = signer("rsa3.pem", Algorithm::RS256, "app-1");
    assert_eq!(
        subscribe_status(&hub.addr, &own.sign(&claims("u1")))
            .await
            .0,
        200
    );
    assert_eq!(provider.stub.count(), 1);
    // A key new in the JWKS, of the same type as the configured key, is still found there.
    let new = rsa2();
    provider.add(&new);
    let (status, body) = subscribe_status(&hub.addr, &new.sign(&claims("u2"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        subscribe_status(&hub.addr, &rsa1().sign(&claims("u3")))
            .await
            .0,
        200
    );
}
