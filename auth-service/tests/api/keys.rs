use auth_service::keys;

use crate::support::{self, ADMIN_EMAIL, ADMIN_PASSWORD, Client};

async fn token_from(settings: auth_service::Settings) -> (String, common::test_util::Running) {
    let service = support::start(settings).await;
    let (_, tokens) = Client::new(&service).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (tokens["access_token"].as_str().unwrap().to_owned(), service)
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_verify_until_the_old_key_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let old_key = keys_dir.join("old.pem");
    let new_key = keys_dir.join("new.pem");
    std::fs::write(&old_key, keys::generate_pem().unwrap()).unwrap();
    std::fs::write(&new_key, keys::generate_pem().unwrap()).unwrap();
    let url = support::sqlite_url(dir.path());

    // Before the rotation: the old key signs.
    let mut before = support::settings(url.clone(), &keys_dir);
    before.keys.signing_key_file = old_key.clone();
    let (old_token, service) = token_from(before).await;
    service.stop().await.unwrap();

    // Rotated: the new key signs, the old one is still published.
    let mut rotated = support::settings(url.clone(), &keys_dir);
    rotated.keys.signing_key_file = new_key.clone();
    rotated.keys.previous_key_files = vec![old_key.clone()];
    let (new_token, service) = token_from(rotated).await;
    let client = Client::new(&service);
    let jwks: serde_json::Value = client.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(client.get("/api/auth/me", Some(&old_token)).await.status(), 200);
    assert_eq!(client.get("/api/auth/me", Some(&new_token)).await.status(), 200);
    service.stop().await.unwrap();

    // The old key removed: its tokens are refused.
    let mut removed = support::settings(url, &keys_dir);
    removed.keys.signing_key_file = new_key;
    let service = support::start(removed).await;
    let client = Client::new(&service);
    let response = client.get("/api/auth/me", Some(&old_token)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(client.get("/api/auth/me", Some(&new_token)).await.status(), 200);
    service.stop().await.unwrap();
}
