use serde_json::json;

use crate::support::{self, ADMIN_EMAIL, Client, refresh_token};

#[tokio::test]
async fn registering_returns_the_customer_and_the_same_email_in_any_case_is_taken() {
    for client in support::on_each_backend().await {
        let (status, user) = client.register("Ada@Example.com", "correct horse battery", "Ada Lovelace").await;
        assert_eq!(status, 201, "{user}");
        assert_eq!(user["email"], "Ada@Example.com");
        assert_eq!(user["name"], "Ada Lovelace");
        assert_eq!(user["roles"], json!(["customer"]));
        assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
        assert!(user["created_at"].as_str().unwrap().ends_with('Z'));
        assert!(user.get("password_hash").is_none());

        let (status, problem) = client.register("ada@EXAMPLE.com", "another password", "Other").await;
        assert_eq!(status, 409, "{problem}");
        assert_eq!(problem["status"], 409);
        client.stop().await;
    }
}

#[tokio::test]
async fn registering_with_a_bad_email_short_or_long_password_or_empty_name_is_422_naming_each_field() {
    let client = Client::on_sqlite().await;

    let (status, problem) = client.register("not-an-email", "short", "  ").await;
    assert_eq!(status, 422);
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["email", "password", "name"]);

    let (status, _) = client.register("long@example.com", &"x".repeat(129), "Long").await;
    assert_eq!(status, 422);
    let (status, _) = client.register("exact@example.com", &"x".repeat(128), "Exact").await;
    assert_eq!(status, 201);

    let (status, problem) = client
        .post("/api/auth/register", json!({"email": "a@b.co", "password": "0123456789", "name": "A", "role": "admin"}))
        .await;
    assert_eq!(status, 422, "an unknown field must be refused: {problem}");
    client.stop().await;
}

#[tokio::test]
async fn login_answers_the_same_401_for_an_unknown_email_and_a_wrong_password() {
    let client = Client::on_sqlite().await;
    client.register("bob@example.com", "bobs password", "Bob").await;

    let (status_unknown, unknown) = client.login("nobody@example.com", "bobs password").await;
    let (status_wrong, wrong) = client.login("bob@example.com", "not bobs password").await;
    assert_eq!((status_unknown, status_wrong), (401, 401));
    assert_eq!(unknown["title"], wrong["title"]);
    assert_eq!(unknown["detail"], wrong["detail"]);

    let (status, tokens) = client.login("BOB@example.com", "bobs password").await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    assert!(refresh_token(&tokens).len() >= 43, "256 bits, base64url");
    client.stop().await;
}

#[tokio::test]
async fn me_returns_the_caller_with_a_token_and_401_with_www_authenticate_without_one() {
    let client = Client::on_sqlite().await;
    let token = client.admin_access_token().await;

    let me: serde_json::Value = client.get("/api/auth/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["email"], ADMIN_EMAIL);
    assert_eq!(me["roles"], json!(["customer", "admin"]));

    let response = client.get("/api/auth/me", None).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    client.stop().await;
}

#[tokio::test]
async fn the_access_token_carries_the_claims_and_header_api_md_lists() {
    let client = Client::on_sqlite().await;
    let token = &client.admin_access_token().await;

    let header = jsonwebtoken::decode_header(token).unwrap();
    assert_eq!(header.alg, jsonwebtoken::Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let jwks: serde_json::Value = client.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"][0]["kid"].as_str(), header.kid.as_deref());

    let payload = token.split('.').nth(1).unwrap();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload).unwrap(),
    )
    .unwrap();
    for claim in ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "roles", "email"] {
        assert!(claims.get(claim).is_some(), "{claim} missing in {claims}");
    }
    assert_eq!(claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(), 900);
    client.stop().await;
}
