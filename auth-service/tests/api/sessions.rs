use serde_json::json;

use crate::support::{self, Client, refresh_token};

#[tokio::test]
async fn refresh_rotates_the_token_and_presenting_a_spent_one_revokes_the_whole_family() {
    for client in support::on_each_backend().await {
        let first = client.signed_up("carol@example.com", "carols password").await;
        let first_refresh = refresh_token(&first).to_owned();

        let (status, second) = client.refresh(&first_refresh).await;
        assert_eq!(status, 200, "{second}");
        let second_refresh = refresh_token(&second).to_owned();
        assert_ne!(first_refresh, second_refresh);
        assert_eq!(client.get("/api/auth/me", second["access_token"].as_str()).await.status(), 200);

        // The first token is spent: presenting it again is reuse.
        let (status, _) = client.refresh(&first_refresh).await;
        assert_eq!(status, 401);
        // ...which revoked the family, so the live second token is dead too.
        let (status, _) = client.refresh(&second_refresh).await;
        assert_eq!(status, 401);

        // Another login is a new family and works.
        client.refreshed_login("carol@example.com", "carols password").await;
        client.stop().await;
    }
}

#[tokio::test]
async fn of_two_concurrent_refreshes_of_one_token_exactly_one_succeeds_and_the_other_is_reuse() {
    for client in support::on_each_backend().await {
        let token = refresh_token(&client.signed_up("dave@example.com", "daves password").await).to_owned();

        let (a, b) = tokio::join!(client.refresh(&token), client.refresh(&token));
        let (won, lost) = if a.0 == 200 { (a, b) } else { (b, a) };
        assert_eq!(won.0, 200, "neither concurrent refresh succeeded: {won:?} {lost:?}");
        assert_eq!(lost.0, 401, "{lost:?}");
        assert_eq!(lost.1["detail"], "the refresh token is invalid, expired or revoked", "{lost:?}");
        // The loser counts as reuse, which revokes the family: the winner's token is dead too.
        let (status, _) = client.refresh(refresh_token(&won.1)).await;
        assert_eq!(status, 401);
        client.stop().await;
    }
}

#[tokio::test]
async fn logout_revokes_the_family_and_answers_204_even_for_an_unknown_token() {
    let client = Client::on_sqlite().await;
    let tokens = client.signed_up("erin@example.com", "erins password").await;
    let (_, rotated) = client.refresh(refresh_token(&tokens)).await;
    let live = refresh_token(&rotated);

    let (status, _) = client.post("/api/auth/logout", json!({"refresh_token": live})).await;
    assert_eq!(status, 204);
    let (status, _) = client.refresh(live).await;
    assert_eq!(status, 401);

    let (status, _) = client.post("/api/auth/logout", json!({"refresh_token": "never-issued"})).await;
    assert_eq!(status, 204);
    client.stop().await;
}

#[tokio::test]
async fn garbage_and_expired_refresh_tokens_are_401() {
    let mut backend = support::Backend::sqlite();
    backend.settings.refresh_ttl = std::time::Duration::ZERO;
    let client = Client::start_on(backend).await;
    let tokens = client.signed_up("fay@example.com", "fays password").await;

    let (status, _) = client.refresh(refresh_token(&tokens)).await;
    assert_eq!(status, 401, "a refresh token past its lifetime");
    let (status, problem) = client.refresh("garbage").await;
    assert_eq!(status, 401);
    assert_eq!(problem["status"], 401);
    client.stop().await;
}
