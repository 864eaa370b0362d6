use serde_json::json;

use crate::support::{self, Client};

async fn refresh(client: &Client, token: &str) -> (u16, serde_json::Value) {
    client.post("/api/auth/refresh", json!({"refresh_token": token})).await
}

#[tokio::test]
async fn refresh_rotates_the_token_and_presenting_a_spent_one_revokes_the_whole_family() {
    let dir = tempfile::tempdir().unwrap();
    for url in support::backends(dir.path()).await {
        let service = support::start(support::settings(url, support::shared_key_dir())).await;
        let client = Client::new(&service);
        client.register("carol@example.com", "carols password", "Carol").await;
        let (_, first) = client.login("carol@example.com", "carols password").await;
        let first_refresh = first["refresh_token"].as_str().unwrap().to_owned();

        let (status, second) = refresh(&client, &first_refresh).await;
        assert_eq!(status, 200, "{second}");
        let second_refresh = second["refresh_token"].as_str().unwrap().to_owned();
        assert_ne!(first_refresh, second_refresh);
        assert_eq!(client.get("/api/auth/me", second["access_token"].as_str()).await.status(), 200);

        // The first token is spent: presenting it again is reuse.
        let (status, _) = refresh(&client, &first_refresh).await;
        assert_eq!(status, 401);
        // ...which revoked the family, so the live second token is dead too.
        let (status, _) = refresh(&client, &second_refresh).await;
        assert_eq!(status, 401);

        // Another login is a new family and works.
        let (_, other) = client.login("carol@example.com", "carols password").await;
        let (status, _) = refresh(&client, other["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        service.stop().await.unwrap();
    }
}

#[tokio::test]
async fn of_two_concurrent_refreshes_of_one_token_exactly_one_succeeds_and_the_other_is_reuse() {
    let dir = tempfile::tempdir().unwrap();
    for url in support::backends(dir.path()).await {
        let service = support::start(support::settings(url, support::shared_key_dir())).await;
        let client = Client::new(&service);
        client.register("dave@example.com", "daves password", "Dave").await;
        let (_, tokens) = client.login("dave@example.com", "daves password").await;
        let token = tokens["refresh_token"].as_str().unwrap().to_owned();

        let (a, b) = tokio::join!(refresh(&client, &token), refresh(&client, &token));
        let (won, lost) = if a.0 == 200 { (a, b) } else { (b, a) };
        assert_eq!(won.0, 200, "neither concurrent refresh succeeded: {won:?} {lost:?}");
        assert_eq!(lost.0, 401, "{lost:?}");
        assert_eq!(lost.1["detail"], "the refresh token is invalid, expired or revoked", "{lost:?}");
        // The loser counts as reuse, which revokes the family: the winner's token is dead too.
        let (status, _) = refresh(&client, won.1["refresh_token"].as_str().unwrap()).await;
        assert_eq!(status, 401);
        service.stop().await.unwrap();
    }
}

#[tokio::test]
async fn logout_revokes_the_family_and_answers_204_even_for_an_unknown_token() {
    let dir = tempfile::tempdir().unwrap();
    let service = support::start(support::settings(support::sqlite_url(dir.path()), support::shared_key_dir())).await;
    let client = Client::new(&service);
    client.register("erin@example.com", "erins password", "Erin").await;
    let (_, tokens) = client.login("erin@example.com", "erins password").await;
    let (_, rotated) = refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    let live = rotated["refresh_token"].as_str().unwrap();

    let (status, _) = client.post("/api/auth/logout", json!({"refresh_token": live})).await;
    assert_eq!(status, 204);
    let (status, _) = refresh(&client, live).await;
    assert_eq!(status, 401);

    let (status, _) = client.post("/api/auth/logout", json!({"refresh_token": "never-issued"})).await;
    assert_eq!(status, 204);
    service.stop().await.unwrap();
}

#[tokio::test]
async fn garbage_and_expired_refresh_tokens_are_401() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = support::settings(support::sqlite_url(dir.path()), support::shared_key_dir());
    settings.refresh_ttl = std::time::Duration::ZERO;
    let service = support::start(settings).await;
    let client = Client::new(&service);
    client.register("fay@example.com", "fays password", "Fay").await;
    let (_, tokens) = client.login("fay@example.com", "fays password").await;

    let (status, _) = refresh(&client, tokens["refresh_token"].as_str().unwrap()).await;
    assert_eq!(status, 401, "a refresh token past its lifetime");
    let (status, problem) = refresh(&client, "garbage").await;
    assert_eq!(status, 401);
    assert_eq!(problem["status"], 401);
    service.stop().await.unwrap();
}
