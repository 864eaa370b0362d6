//! What an anonymous or ordinary client can send, and what it gets: never a 500,
//! never someone else's privileges, never a session that outlives its rules.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auth_service::{AppState, Settings};
use serde_json::{Value, json};
use url::Url;

use crate::support::{self, Client, refresh_token};

fn with_admin(settings: Settings, email: &str, password: &str) -> Settings {
    Settings { admin: test_support::admin(email, password), ..settings }
}

/// Runs `sql` with `bind` against the service's database, as an operator would.
async fn execute(settings: &Settings, sql: &'static str, bind: chrono::DateTime<chrono::Utc>) {
    let state = AppState::connect(&Settings { admin: None, ..settings.clone() }).await.unwrap();
    common::on_pool!(&state.store.pool, pool => {
        sqlx::query(sql).bind(bind).execute(pool).await.unwrap();
    });
    state.store.pool.close().await;
}

fn fields(problem: &Value) -> Vec<&str> {
    problem["errors"].as_array().map(|e| e.iter().filter_map(|e| e["field"].as_str()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn an_email_that_grows_past_the_column_when_lowercased_is_422_not_500() {
    for client in support::on_each_backend().await {
        // 240 characters as sent; 480 once lowercased (`İ` becomes `i` + a combining dot).
        let email = format!("{}@example.com", "İ".repeat(240));
        let (status, problem) = client.register(&email, "correct horse battery", "Dotted").await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(fields(&problem), ["email"]);
        let (status, problem) = client.login(&email, "correct horse battery").await;
        assert_eq!(status, 422, "{problem}");
        client.stop().await;
    }
}

#[tokio::test]
async fn only_a_bare_address_is_an_email() {
    let client = Client::on_sqlite().await;
    for email in
        ["<eve@example.com>", "\"eve\"@example.com", "eve(x)@example.com", "eve@[127.0.0.1]", "eve..x@example.com"]
    {
        let (status, problem) = client.register(email, "correct horse battery", "Eve").await;
        assert_eq!(status, 422, "{email}: {problem}");
        assert_eq!(fields(&problem), ["email"]);
    }
    client.stop().await;
}

#[tokio::test]
async fn a_name_with_a_line_break_or_control_character_is_422() {
    let client = Client::on_sqlite().await;
    for (i, name) in
        ["Eve\r\nBcc: x@example.com", "Eve\nBcc", "Eve\u{0}", "Eve\u{1b}[31m", "Eve\u{2028}Bcc"].iter().enumerate()
    {
        let (status, problem) = client.register(&format!("eve{i}@example.com"), "correct horse battery", name).await;
        assert_eq!(status, 422, "{name:?}: {problem}");
        assert_eq!(fields(&problem), ["name"]);
    }
    let (status, user) = client.register("eve@example.com", "correct horse battery", "  Eve Écrivain ").await;
    assert_eq!(status, 201, "{user}");
    assert_eq!(user["name"], "Eve Écrivain");
    client.stop().await;
}

#[tokio::test]
async fn a_megabyte_password_at_login_is_422_without_waiting_for_a_hash() {
    let client = Arc::new(Client::on_sqlite().await);
    client.register("gil@example.com", "gils password", "Gil").await;

    // Far more wrong logins than hashes may run at once: whatever needs a hash queues.
    const QUEUED: usize = 48;
    let done = Arc::new(AtomicUsize::new(0));
    let queue: Vec<_> = (0..QUEUED)
        .map(|_| {
            let (client, done) = (client.clone(), done.clone());
            tokio::spawn(async move {
                let (status, _) = client.login("gil@example.com", "not gils password").await;
                done.fetch_add(1, Ordering::SeqCst);
                status
            })
        })
        .collect();

    let (status, problem) = client.login("gil@example.com", &"x".repeat(1_000_000)).await;
    let finished_meanwhile = done.load(Ordering::SeqCst);
    assert_eq!(status, 422, "{problem}");
    assert_eq!(fields(&problem), ["password"]);
    assert!(finished_meanwhile < QUEUED, "the long password waited behind every queued hash");

    let (status, problem) = client.login(&format!("{}@example.com", "x".repeat(300)), "gils password").await;
    assert_eq!(status, 422, "{problem}");
    assert_eq!(fields(&problem), ["email"]);
    for login in queue {
        assert_eq!(login.await.unwrap(), 401);
    }
    Arc::into_inner(client).expect("every queued login is done").stop().await;
}

#[tokio::test]
async fn token_responses_may_not_be_cached() {
    let client = Client::on_sqlite().await;
    let post = |path: &str, body: Value| client.http.post(format!("{}{path}", client.base)).json(&body).send();

    let login = post("/api/auth/login", json!({"email": support::ADMIN_EMAIL, "password": support::ADMIN_PASSWORD}))
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.headers()["cache-control"], "no-store");
    assert_eq!(login.headers()["pragma"], "no-cache");
    let tokens: Value = login.json().await.unwrap();

    let refreshed = post("/api/auth/refresh", json!({"refresh_token": tokens["refresh_token"]})).await.unwrap();
    assert_eq!(refreshed.status(), 200);
    assert_eq!(refreshed.headers()["cache-control"], "no-store");
    assert_eq!(refreshed.headers()["pragma"], "no-cache");
    client.stop().await;
}

#[tokio::test]
async fn an_admin_email_that_names_an_existing_customer_fails_the_start_and_promotes_no_one() {
    for backend in support::backends().await {
        let plain = Settings { admin: None, ..backend.settings.clone() };
        let client = Client::start(plain.clone()).await;
        let (status, _) = client.register("Boss@Example.com", "squatters password", "Not the boss").await;
        assert_eq!(status, 201);
        let (_, squatter) = client.login("boss@example.com", "squatters password").await;
        client.stop().await;

        let takeover = with_admin(plain.clone(), "boss@example.com", "the-real-admin-password");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let start = auth_service::run(takeover, listener, Default::default());
        let err = tokio::time::timeout(std::time::Duration::from_secs(60), start)
            .await
            .expect("the service started with a customer's address as its admin")
            .unwrap_err();
        let message = format!("{err:#}");
        assert!(message.contains("ECOM_ADMIN_EMAIL"), "{message}");
        assert!(message.contains("not an admin"), "{message}");

        let client = Client::start(plain).await;
        let (status, tokens) = client.refresh(refresh_token(&squatter)).await;
        assert_eq!(status, 200, "{tokens}");
        let me: Value = client.get("/api/auth/me", tokens["access_token"].as_str()).await.json().await.unwrap();
        assert_eq!(me["roles"], json!(["customer"]));
        let (status, _) = client.login("boss@example.com", "the-real-admin-password").await;
        assert_eq!(status, 401);
        client.stop().await;
    }
}

#[tokio::test]
async fn a_password_change_revokes_the_accounts_refresh_tokens() {
    for backend in support::backends().await {
        let base = backend.settings.clone();
        let first = with_admin(base.clone(), support::ADMIN_EMAIL, "first-admin-password");
        let client = Client::start(first.clone()).await;
        let rotated = client.refreshed_login(support::ADMIN_EMAIL, "first-admin-password").await;
        client.stop().await;

        // The same password again changes nothing, and keeps the session.
        let client = Client::start(first).await;
        let (status, kept) = client.refresh(refresh_token(&rotated)).await;
        assert_eq!(status, 200, "{kept}");
        client.stop().await;

        let client = Client::start(with_admin(base, support::ADMIN_EMAIL, "second-admin-password")).await;
        let (status, _) = client.refresh(refresh_token(&kept)).await;
        assert_eq!(status, 401, "a session from before the password change lives on");
        client.refreshed_login(support::ADMIN_EMAIL, "second-admin-password").await;
        client.stop().await;
    }
}

#[tokio::test]
async fn a_refresh_family_past_its_absolute_lifetime_is_refused_however_recently_it_rotated() {
    for backend in support::backends().await {
        let settings = backend.settings.clone();
        assert!(settings.refresh_ttl < settings.refresh_family_lifetime);
        let client = Client::start_on(backend).await;
        let tokens = client.signed_up("hal@example.com", "hals password").await;
        let (status, rotated) = client.refresh(refresh_token(&tokens)).await;
        assert_eq!(status, 200);

        // The login was longer ago than a family may live; the last rotation was just now.
        let lifetime = chrono::TimeDelta::from_std(settings.refresh_family_lifetime).unwrap();
        let login_time = chrono::Utc::now() - lifetime - chrono::TimeDelta::minutes(1);
        execute(&settings, "UPDATE refresh_tokens SET family_started_at = ?", login_time).await;

        let (status, problem) = client.refresh(refresh_token(&rotated)).await;
        assert_eq!(status, 401, "{problem}");
        // A new login starts a new family.
        client.refreshed_login("hal@example.com", "hals password").await;
        client.stop().await;
    }
}

#[tokio::test]
async fn four_concurrent_refreshes_of_one_token_on_sqlite_give_one_200_and_401s_never_a_500() {
    let client = Client::on_sqlite().await;
    client.signed_up("ivy@example.com", "ivys password").await;
    for trial in 0..12 {
        let (_, tokens) = client.login("ivy@example.com", "ivys password").await;
        let token = refresh_token(&tokens);
        let (a, b, c, d) =
            tokio::join!(client.refresh(token), client.refresh(token), client.refresh(token), client.refresh(token));
        let mut statuses = [a.0, b.0, c.0, d.0];
        statuses.sort_unstable();
        assert_eq!(statuses, [200, 401, 401, 401], "trial {trial}: {a:?} {b:?} {c:?} {d:?}");
    }
    client.stop().await;
}

#[test]
fn settings_debug_output_holds_no_password() {
    let url: Url = "mysql://ecom:hunter2-db-secret@db.internal:3306/auth".parse().unwrap();
    let settings =
        with_admin(support::settings(url, std::path::Path::new("/keys")), "admin@example.com", "hunter2-admin-secret");
    let printed = format!("{settings:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(printed.contains("db.internal"), "the rest of the URL still helps: {printed}");
}

#[test]
fn the_configured_admin_must_be_a_valid_account() {
    let env = |email: &str, password: &str| {
        common::settings::Env::from_pairs([("ECOM_ADMIN_EMAIL", email), ("ECOM_ADMIN_PASSWORD", password)])
    };
    let err = Settings::from_env(&env("Boss <boss@example.com>", "long-enough-password")).unwrap_err();
    assert_eq!(err.var, "ECOM_ADMIN_EMAIL");
    let err = Settings::from_env(&env("boss@example.com", "short")).unwrap_err();
    assert_eq!(err.var, "ECOM_ADMIN_PASSWORD");
}

#[tokio::test]
async fn the_openapi_document_states_the_input_rules_and_every_refusal_with_its_problem_body() {
    let client = Client::on_sqlite().await;
    let doc: Value = client.get("/openapi.json", None).await.json().await.unwrap();
    let schemas = &doc["components"]["schemas"];

    let register = &schemas["RegisterRequest"]["properties"];
    assert_eq!(register["email"]["format"], "email", "{register}");
    assert_eq!(register["email"]["maxLength"], 254);
    assert_eq!(register["name"]["maxLength"], 200);
    assert!(register["name"]["pattern"].is_string());
    let login = &schemas["LoginRequest"]["properties"];
    assert_eq!(login["password"]["maxLength"], 128);
    assert!(schemas["Problem"]["properties"]["type"].is_object(), "{}", schemas["Problem"]);

    for (path, statuses) in [
        ("/api/auth/register", &["201", "400", "409", "413", "415", "422", "503"][..]),
        ("/api/auth/login", &["200", "400", "401", "413", "415", "422", "503"][..]),
        ("/api/auth/refresh", &["200", "400", "401", "413", "415", "422", "503"][..]),
    ] {
        let responses = &doc["paths"][path]["post"]["responses"];
        for status in statuses {
            let response = &responses[*status];
            assert!(response.is_object(), "{path} does not document {status}: {responses}");
            if status.starts_with('4') || status.starts_with('5') {
                let schema = &response["content"]["application/problem+json"]["schema"]["$ref"];
                assert_eq!(schema, "#/components/schemas/Problem", "{path} {status}: {response}");
            }
        }
    }
    client.stop().await;
}
