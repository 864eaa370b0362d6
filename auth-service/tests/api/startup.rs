use auth_service::{AppState, Settings};
use common::test_util::{Running, TcpProxy, fresh_mysql_database, real_dependency};
use secrecy::SecretString;
use url::Url;

use crate::support;

/// Settings whose admin has `admin_password`.
fn settings(database_url: Url, admin_password: &str) -> Settings {
    Settings {
        admin: test_support::admin(support::ADMIN_EMAIL, admin_password),
        ..support::settings(database_url, support::shared_key_dir())
    }
}

async fn start(settings: Settings) -> Running {
    support::start(settings).await
}

/// Starts auth-service with `settings`, seeding its admin, and stops it again.
async fn start_and_stop(settings: Settings) {
    start(settings).await.stop().await.unwrap();
}

/// The admin's stored password hash, read without seeding anything.
async fn stored_admin_hash(database_url: &Url) -> String {
    let settings = Settings { admin: None, ..settings(database_url.clone(), "unused-password") };
    let state = AppState::connect(&settings).await.unwrap();
    let admin = state.store.fetch_user_by_email("admin@example.com").await.unwrap().expect("the admin exists");
    assert_eq!(admin.roles(), ["customer", "admin"]);
    admin.password_hash
}

async fn admin_password_matches(database_url: &Url, password: &str) -> bool {
    let stored = stored_admin_hash(database_url).await;
    auth_service::password::verify(SecretString::from(password.to_owned()), stored).await.unwrap()
}

#[tokio::test]
async fn on_sqlite_the_service_becomes_ready_seeds_the_admin_and_keeps_it_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    for password in ["first-password-1", "second-password-2"] {
        start_and_stop(settings(url.clone(), password)).await;
        assert!(admin_password_matches(&url, password).await, "{password}");
    }
}

#[tokio::test]
async fn on_mariadb_migrations_run_and_the_admin_round_trips() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let url = fresh_mysql_database(&base).await;
    start_and_stop(settings(url.clone(), "mariadb-password-1")).await;
    assert!(admin_password_matches(&url, "mariadb-password-1").await);
}

#[tokio::test]
async fn readiness_turns_503_when_mariadb_is_lost_and_200_when_it_returns() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let mut url = fresh_mysql_database(&base).await;
    let target = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap_or(3306)).parse().unwrap();
    let proxy = TcpProxy::start(target).await;
    url.set_port(Some(proxy.addr.port())).unwrap();
    url.set_host(Some("127.0.0.1")).unwrap();
    let service = start(settings(url, "proxy-password-1")).await;
    let client = reqwest::Client::new();

    proxy.cut();
    let response = client.get(service.url("/health/ready")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().starts_with("not ready: database:"), "{body}");

    proxy.restore();
    service.ready().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_database_at_start_fails_naming_the_variable() {
    let url: Url = "mysql://ecom:secret-pw@127.0.0.1:1/nothing".parse().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = auth_service::run(settings(url, "x-password-1"), listener, Default::default()).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("DATABASE_URL"), "{message}");
    assert!(!message.contains("secret-pw"), "the password leaked: {message}");
}

#[test]
fn the_binary_refuses_a_malformed_database_url_naming_the_variable() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_auth-service"))
        .env("DATABASE_URL", "::not a url::")
        .env("ECOM_BIND_ADDR", "127.0.0.1:0")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
}

/// Settings whose admin has `admin_password` and `known_hash`, said to be its hash.
fn with_known_hash(database_url: &Url, admin_password: &str, known_hash: &str) -> Settings {
    let mut settings = settings(database_url.clone(), admin_password);
    if let Some(admin) = settings.admin.as_mut() {
        admin.password_hash = Some(SecretString::from(known_hash.to_owned()));
    }
    settings
}

#[tokio::test]
async fn a_known_hash_is_stored_for_a_new_admin_and_when_it_is_the_stored_one_no_verify_runs() {
    let dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(dir.path());
    let known = auth_service::password::hash(SecretString::from("known-password-1")).await.unwrap();

    start_and_stop(with_known_hash(&url, "known-password-1", &known)).await;
    assert_eq!(stored_admin_hash(&url).await, known, "the admin was created with the known hash, not a new one");
    assert!(admin_password_matches(&url, "known-password-1").await);
    // Without the known hash the password is verified, and the change applies.
    start_and_stop(settings(url.clone(), "another-password-2")).await;
    assert!(admin_password_matches(&url, "another-password-2").await);

    // A hash asking for more memory than auth-service computes with: verifying it
    // fails, so a start that verifies it fails.
    let unverifiable = known.replace("$m=19456,", "$m=300000,");
    assert_ne!(unverifiable, known, "the hash's memory cost is not the one expected: {known}");
    let other_dir = tempfile::tempdir().unwrap();
    let url = support::sqlite_url(other_dir.path());
    start_and_stop(with_known_hash(&url, "known-password-1", &unverifiable)).await;
    // The stored hash is the known one, so it is taken at its word: no verify, and so
    // no change, even with another password beside it.
    start_and_stop(with_known_hash(&url, "another-password-2", &unverifiable)).await;
    assert_eq!(stored_admin_hash(&url).await, unverifiable);
    // Without the known hash beside it, the verify runs, and fails the start.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let refused = auth_service::run(settings(url, "another-password-2"), listener, Default::default()).await;
    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("memory"), "{message}");
}
