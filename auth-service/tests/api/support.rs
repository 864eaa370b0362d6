//! Starting a real auth-service for a test.

use std::path::Path;
use std::time::Duration;

use auth_service::Settings;
use common::db::PoolSettings;
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use serde_json::{Value, json};
use url::Url;

pub const ADMIN_EMAIL: &str = "Admin@Example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// auth-service as the shared fixture starts it, with an admin address in mixed case
/// and service tokens for [`SERVICE_CLIENT`].
pub fn settings(database_url: Url, key_dir: &Path) -> Settings {
    Settings {
        pool: PoolSettings { max_connections: 4, acquire_timeout: Duration::from_secs(2) },
        admin: test_support::admin(ADMIN_EMAIL, ADMIN_PASSWORD),
        service_tokens: test_support::service_tokens(service_secret()),
        ..test_support::auth_settings_at(database_url, key_dir)
    }
}

pub use test_support::SERVICE_CLIENT;

/// The service client's secret: random, made once per test binary.
pub fn service_secret() -> &'static str {
    static SECRET: std::sync::LazyLock<String> = std::sync::LazyLock::new(test_support::random_secret);
    &SECRET
}

pub fn sqlite_url(dir: &Path) -> Url {
    test_support::sqlite_url(dir, "auth.db")
}

/// The fixture's settings on one database backend; a SQLite database lives in a
/// folder this keeps.
pub struct Backend {
    pub settings: Settings,
    dir: Option<tempfile::TempDir>,
}

impl Backend {
    /// A SQLite database of its own, with the shared key.
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { settings: settings(sqlite_url(dir.path()), shared_key_dir()), dir: Some(dir) }
    }
}

/// Each database backend this run exercises: SQLite always, MariaDB when the stack is up.
pub async fn backends() -> Vec<Backend> {
    let mut backends = vec![Backend::sqlite()];
    if let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") {
        let url = fresh_mysql_database(&base).await;
        backends.push(Backend { settings: settings(url, shared_key_dir()), dir: None });
    }
    backends
}

/// An auth-service started on each database backend, and a client of it.
pub async fn on_each_backend() -> Vec<Client> {
    let mut clients = Vec::new();
    for backend in backends().await {
        clients.push(Client::start_on(backend).await);
    }
    clients
}

pub use test_support::start_auth as start;

/// A client of an auth-service; of the one it started, if [`Client::start`] made it.
pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
    started: Option<(Running, Option<tempfile::TempDir>)>,
}

impl Client {
    pub fn new(running: &Running) -> Self {
        Self { base: running.url(""), http: reqwest::Client::new(), started: None }
    }

    /// Starts auth-service with `settings`; a client of it.
    pub async fn start(settings: Settings) -> Self {
        Self::start_on(Backend { settings, dir: None }).await
    }

    /// Starts auth-service on `backend`; a client of it.
    pub async fn start_on(backend: Backend) -> Self {
        let running = start(backend.settings).await;
        let client = Self::new(&running);
        Self { started: Some((running, backend.dir)), ..client }
    }

    /// Starts auth-service on a SQLite database of its own, with the shared key.
    pub async fn on_sqlite() -> Self {
        Self::start_on(Backend::sqlite()).await
    }

    /// Stops the service [`Client::start`] or [`Client::on_sqlite`] started.
    pub async fn stop(self) {
        let (running, _dir) = self.started.expect("a service this client started");
        running.stop().await.unwrap();
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        test_support::send(self.http.post(format!("{}{path}", self.base)).json(&body)).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        test_support::bearer(self.http.get(format!("{}{path}", self.base)), token).send().await.unwrap()
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> (u16, Value) {
        self.post("/api/auth/register", json!({"email": email, "password": password, "name": name})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post("/api/auth/login", json!({"email": email, "password": password})).await
    }

    /// Registers a customer `email` with `password` and logs in; the tokens.
    pub async fn signed_up(&self, email: &str, password: &str) -> Value {
        let (status, user) = self.register(email, password, "Customer").await;
        assert_eq!(status, 201, "{user}");
        let (status, tokens) = self.login(email, password).await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    /// The access token of a login as the fixture's admin.
    pub async fn admin_access_token(&self) -> String {
        test_support::login(&self.http, &self.base, ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Logs in as `email` and refreshes that new session once; the refreshed tokens.
    pub async fn refreshed_login(&self, email: &str, password: &str) -> Value {
        let (status, tokens) = self.login(email, password).await;
        assert_eq!(status, 200, "{tokens}");
        let (status, refreshed) = self.refresh(refresh_token(&tokens)).await;
        assert_eq!(status, 200, "{refreshed}");
        refreshed
    }

    /// Trades the refresh token `token` for new tokens.
    pub async fn refresh(&self, token: &str) -> (u16, Value) {
        self.post("/api/auth/refresh", json!({"refresh_token": token})).await
    }
}

/// The refresh token among `tokens`.
pub fn refresh_token(tokens: &Value) -> &str {
    tokens["refresh_token"].as_str().unwrap()
}

/// One signing key for every test of this binary that does not care which.
pub fn shared_key_dir() -> &'static Path {
    static DIR: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());
    DIR.path()
}
