//! Tokens that must be refused (RFC 8725): every one is 401 with `WWW-Authenticate: Bearer`.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use crate::support::{ADMIN_EMAIL, ADMIN_PASSWORD, Platform};

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

fn now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
}

fn claims(overrides: Value) -> Value {
    let mut claims = json!({
        "iss": "ecom-auth", "aud": "ecom", "sub": uuid::Uuid::now_v7().to_string(),
        "exp": now() + 600, "iat": now(), "nbf": now(), "jti": "j-1",
        "roles": ["customer", "admin"], "email": "forged@example.com"
    });
    for (key, value) in overrides.as_object().unwrap() {
        claims[key] = value.clone();
    }
    claims
}

/// Signs `claims` with the real signing key under `header`.
fn signed(platform: &Platform, header: Header, claims: &Value) -> String {
    let pem = std::fs::read(&platform.signing_key).unwrap();
    jsonwebtoken::encode(&header, claims, &EncodingKey::from_ed_pem(&pem).unwrap()).unwrap()
}

async fn real_header(platform: &Platform) -> Header {
    let token = platform.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    jsonwebtoken::decode_header(&token).unwrap()
}

async fn assert_refused(platform: &Platform, case: &str, token: &str) {
    let response = platform.me(&format!("Bearer {token}")).await;
    assert_eq!(response.status(), 401, "{case} was not refused");
    assert_eq!(response.headers()["www-authenticate"], "Bearer", "{case}");
    assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
}

#[tokio::test]
async fn a_correctly_signed_token_with_valid_claims_is_accepted_as_the_baseline() {
    let platform = Platform::start(&[]).await;
    let token = platform.login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(platform.me(&format!("Bearer {token}")).await.status(), 200);
}

#[tokio::test]
async fn alg_none_in_any_case_is_refused() {
    let platform = Platform::start(&[]).await;
    let header = real_header(&platform).await;
    let body = b64(&claims(json!({})));
    for alg in ["none", "None", "NONE", "nOnE"] {
        let head = b64(&json!({"alg": alg, "typ": "at+jwt", "kid": header.kid}));
        assert_refused(&platform, &format!("alg {alg}"), &format!("{head}.{body}.")).await;
    }
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    let platform = Platform::start(&[]).await;
    let header = real_header(&platform).await;
    let jwks: Value =
        platform.http.get(platform.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let public_x = jwks["keys"][0]["x"].as_str().unwrap();
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = header.kid.clone();
    hs.typ = Some("at+jwt".into());
    for secret in [public_x.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(public_x).unwrap()] {
        let token = jsonwebtoken::encode(&hs, &claims(json!({})), &EncodingKey::from_secret(&secret)).unwrap();
        assert_refused(&platform, "HS256 with the public key", &token).await;
    }
}

#[tokio::test]
async fn expired_not_yet_valid_wrong_issuer_and_wrong_audience_are_refused() {
    let platform = Platform::start(&[]).await;
    let header = real_header(&platform).await;
    let cases = [
        ("expired", json!({"exp": now() - 120, "iat": now() - 1000, "nbf": now() - 1000})),
        ("nbf in the future", json!({"nbf": now() + 600})),
        ("wrong iss", json!({"iss": "someone-else"})),
        ("wrong aud", json!({"aud": "another-api"})),
        ("no exp", json!({"exp": null})),
    ];
    for (case, overrides) in cases {
        let mut claims = claims(overrides);
        if claims["exp"].is_null() {
            claims.as_object_mut().unwrap().remove("exp");
        }
        assert_refused(&platform, case, &signed(&platform, header.clone(), &claims)).await;
    }
}

#[tokio::test]
async fn unknown_kid_and_kid_carrying_a_path_or_sql_are_refused() {
    let platform = Platform::start(&[]).await;
    let header = real_header(&platform).await;
    for kid in ["unknown-key", "../../../../etc/passwd", "' OR '1'='1", "/dev/null"] {
        let mut forged = header.clone();
        forged.kid = Some(kid.to_owned());
        assert_refused(&platform, &format!("kid {kid}"), &signed(&platform, forged, &claims(json!({})))).await;
    }
}

#[tokio::test]
async fn jku_and_x5u_headers_are_ignored_and_never_fetched() {
    let platform = Platform::start(&[]).await;
    let header = real_header(&platform).await;
    // A listener that records whether anyone connects to it.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let trap_url = format!("http://{}/jwks.json", trap.local_addr().unwrap());
    let attacker = auth_service::keys::generate_pem().unwrap();
    let head = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker", "jku": trap_url, "x5u": trap_url});
    let mut forged: Header = serde_json::from_value(head).unwrap();
    forged.kid = Some("attacker".into());
    let token =
        jsonwebtoken::encode(&forged, &claims(json!({})), &EncodingKey::from_ed_pem(attacker.as_bytes()).unwrap())
            .unwrap();
    assert_refused(&platform, "jku/x5u with an attacker key", &token).await;

    // The same headers on a token signed with the real key change nothing either.
    let mut real = header.clone();
    real.jku = Some(trap_url.clone());
    real.x5u = Some(trap_url);
    let token = signed(&platform, real, &claims(json!({})));
    assert_eq!(
        platform.me(&format!("Bearer {token}")).await.status(),
        404,
        "valid signature: the forged user does not exist"
    );

    let accepted = tokio::time::timeout(std::time::Duration::from_millis(200), trap.accept()).await;
    assert!(accepted.is_err(), "the gateway or auth-service fetched a jku/x5u URL");
}

#[tokio::test]
async fn tampered_claims_oversized_tokens_garbage_and_wrong_typ_are_refused() {
    let platform = Platform::start(&[]).await;
    let customer = platform.customer_token().await;
    let parts: Vec<&str> = customer.split('.').collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    payload["roles"] = json!(["customer", "admin"]);
    let tampered = format!("{}.{}.{}", parts[0], b64(&payload), parts[2]);
    assert_refused(&platform, "tampered roles", &tampered).await;

    let oversized = format!("{}.{}.{}", parts[0], "A".repeat(10 * 1024), parts[2]);
    assert_refused(&platform, "oversized", &oversized).await;
    for garbage in ["garbage", "a.b.c", "....", "eyJhbGciOiJFZERTQSJ9"] {
        assert_refused(&platform, garbage, garbage).await;
    }

    let mut header = jsonwebtoken::decode_header(&customer).unwrap();
    header.typ = Some("JWT".into());
    assert_refused(&platform, "typ JWT", &signed(&platform, header, &claims(json!({})))).await;

    for scheme in ["Basic dXNlcjpwYXNz", "Bearer", "Token abc"] {
        let response = platform.me(scheme).await;
        assert_eq!(response.status(), 401, "{scheme}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
}

#[tokio::test]
async fn a_token_accepted_once_is_still_refused_with_an_altered_signature() {
    let platform = Platform::start(&[]).await;
    let customer = platform.customer_token().await;
    assert_eq!(platform.me(&format!("Bearer {customer}")).await.status(), 200);

    let (signed_part, signature) = customer.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
    bytes[0] ^= 1;
    let altered = format!("{signed_part}.{}", URL_SAFE_NO_PAD.encode(bytes));
    // Twice: a refused token is never remembered as if it had been verified.
    assert_refused(&platform, "altered signature", &altered).await;
    assert_refused(&platform, "altered signature, again", &altered).await;
    assert_eq!(platform.me(&format!("Bearer {customer}")).await.status(), 200);
}

#[tokio::test]
async fn a_token_accepted_while_valid_is_refused_once_it_has_expired() {
    let platform = Platform::start(&[]).await;
    let header = real_header(&platform).await;
    let exp = now() + 1;
    let token = signed(&platform, header, &claims(json!({"exp": exp})));
    assert_eq!(
        platform.me(&format!("Bearer {token}")).await.status(),
        404,
        "valid signature: the forged user does not exist"
    );

    // Past `exp` and the clock-skew leeway.
    while now() <= exp + common::auth::LEEWAY_SECS {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_refused(&platform, "expired after it was accepted", &token).await;
}
