//! `POST /internal/token`: the client-credentials grant that gives order-service its
//! service token.

use std::time::Duration;

use common::auth::{Expectations, SERVICE_AUDIENCE, Verifier};
use common::test_util::Running;
use serde_json::Value;

use crate::support::{self, ADMIN_EMAIL, ADMIN_PASSWORD, Client, SERVICE_CLIENT, service_secret};

async fn start() -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let service = support::start(support::settings(support::sqlite_url(dir.path()), dir.path())).await;
    (service, dir)
}

/// Asks for a token with `form` as the body and, if given, Basic credentials.
async fn token_request(service: &Running, basic: Basic<'_>, form: &[(&str, &str)]) -> reqwest::Response {
    let mut request = reqwest::Client::new().post(service.url("/internal/token")).form(form);
    if let Some((id, secret)) = basic {
        request = request.basic_auth(id, Some(secret));
    }
    request.send().await.unwrap()
}

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

/// Basic credentials of a token request, if any.
type Basic<'a> = Option<(&'a str, &'a str)>;
/// The form fields of a token request.
type Form<'a> = Vec<(&'a str, &'a str)>;

fn verifier(service: &Running) -> Verifier {
    let expectations = Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() };
    Verifier::remote_lazy(service.url("/.well-known/jwks.json").parse().unwrap(), expectations, Duration::ZERO).unwrap()
}

#[tokio::test]
async fn the_service_client_gets_a_short_lived_token_that_verifies_only_as_a_service() {
    let (service, _dir) = start().await;
    let response = token_request(&service, Some((SERVICE_CLIENT, service_secret())), &[GRANT]).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    assert_eq!(response.headers()["pragma"], "no-cache");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("refresh_token").is_none(), "{body}");
    let token = body["access_token"].as_str().unwrap();

    let verifier = verifier(&service);
    let caller = verifier.verify_service(token).await.unwrap();
    assert_eq!(caller.client_id, SERVICE_CLIENT);
    assert!(verifier.verify(token).await.is_err(), "a service token passed as a user's");

    let payload: Value = {
        use base64::Engine as _;
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    };
    assert_eq!(payload["aud"], SERVICE_AUDIENCE);
    assert_eq!(payload["roles"], serde_json::json!(["service"]));
    assert_eq!(payload["exp"].as_u64().unwrap() - payload["iat"].as_u64().unwrap(), 300);

    // Nor does auth-service itself take it for a user.
    let me = Client::new(&service).get("/api/auth/me", Some(token)).await;
    assert_eq!(me.status(), 401);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_wrong_secret_an_unknown_client_or_no_credentials_get_no_token() {
    let (service, _dir) = start().await;
    let wrong = format!("{}0", &service_secret()[1..]);
    let attempts: [(&str, Basic, Form); 5] = [
        ("wrong secret", Some((SERVICE_CLIENT, wrong.as_str())), vec![GRANT]),
        ("unknown client", Some(("inventory-service", service_secret())), vec![GRANT]),
        ("empty secret", Some((SERVICE_CLIENT, "")), vec![GRANT]),
        ("no credentials", None, vec![GRANT]),
        (
            "wrong secret in the form",
            None,
            vec![GRANT, ("client_id", SERVICE_CLIENT), ("client_secret", wrong.as_str())],
        ),
    ];
    for (case, basic, form) in attempts {
        let response = token_request(&service, basic, &form).await;
        assert_eq!(response.status(), 401, "{case}");
        assert_eq!(response.headers()["www-authenticate"], "Basic realm=\"ecom-internal\"", "{case}");
        assert_eq!(response.headers()["content-type"], "application/problem+json", "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], "invalid_client", "{case}");
        assert!(body.get("access_token").is_none(), "{case}: {body}");
    }

    // The right secret in the form works as well as in the header.
    let form = [GRANT, ("client_id", SERVICE_CLIENT), ("client_secret", service_secret())];
    assert_eq!(token_request(&service, None, &form).await.status(), 200);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn malformed_token_requests_are_refused_with_their_oauth_error_code() {
    let (service, _dir) = start().await;
    let basic = Some((SERVICE_CLIENT, service_secret()));
    let cases: [(&str, Basic, Form, u16, &str); 4] = [
        ("no grant type", basic, vec![], 400, "invalid_request"),
        ("a user's grant", basic, vec![("grant_type", "password")], 400, "unsupported_grant_type"),
        ("grant type twice", basic, vec![GRANT, GRANT], 400, "invalid_request"),
        (
            "two ways to authenticate",
            basic,
            vec![GRANT, ("client_id", SERVICE_CLIENT), ("client_secret", service_secret())],
            400,
            "invalid_request",
        ),
    ];
    for (case, basic, form, status, error) in cases {
        let response = token_request(&service, basic, &form).await;
        assert_eq!(response.status(), status, "{case}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"], error, "{case}: {body}");
    }

    let json = reqwest::Client::new()
        .post(service.url("/internal/token"))
        .basic_auth(SERVICE_CLIENT, Some(service_secret()))
        .json(&serde_json::json!({"grant_type": "client_credentials"}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 415);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn a_user_cannot_trade_a_login_for_a_service_token() {
    let (service, _dir) = start().await;
    let (_, tokens) = Client::new(&service).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let admin_token = tokens["access_token"].as_str().unwrap();
    let response = reqwest::Client::new()
        .post(service.url("/internal/token"))
        .bearer_auth(admin_token)
        .form(&[GRANT])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let by_password = token_request(&service, Some((ADMIN_EMAIL, ADMIN_PASSWORD)), &[GRANT]).await;
    assert_eq!(by_password.status(), 401);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_grant_is_described_in_the_internal_document_and_kept_out_of_the_public_one() {
    let (service, _dir) = start().await;
    let client = Client::new(&service);
    let internal: Value = client.get("/internal/openapi.json", None).await.json().await.unwrap();
    let grant = &internal["paths"]["/internal/token"]["post"];
    for status in ["200", "400", "401", "415"] {
        assert!(grant["responses"].get(status).is_some(), "{status} is not documented");
    }
    assert!(internal["components"]["securitySchemes"].get("client_credentials").is_some());
    let public: Value = client.get("/openapi.json", None).await.json().await.unwrap();
    let paths = public["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/internal")), "{:?}", paths.keys());
    service.stop().await.unwrap();
}
