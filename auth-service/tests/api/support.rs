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
    static SECRET: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string());
    &SECRET
}

pub fn sqlite_url(dir: &Path) -> Url {
    test_support::sqlite_url(dir, "auth.db")
}

/// Which database backends this run exercises: SQLite always, MariaDB when the stack is up.
pub async fn backends(dir: &Path) -> Vec<Url> {
    let mut urls = vec![sqlite_url(dir)];
    if let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") {
        urls.push(fresh_mysql_database(&base).await);
    }
    urls
}

pub use test_support::start_auth as start;

pub struct Client {
    pub base: String,
    pub http: reqwest::Client,
}

impl Client {
    pub fn new(running: &Running) -> Self {
        Self { base: running.url(""), http: reqwest::Client::new() }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn register(&self, email: &str, password: &str, name: &str) -> (u16, Value) {
        self.post("/api/auth/register", json!({"email": email, "password": password, "name": name})).await
    }

    pub async fn login(&self, email: &str, password: &str) -> (u16, Value) {
        self.post("/api/auth/login", json!({"email": email, "password": password})).await
    }
}

/// One signing key for every test of this binary that does not care which.
pub fn shared_key_dir() -> &'static Path {
    static DIR: std::sync::LazyLock<tempfile::TempDir> = std::sync::LazyLock::new(|| tempfile::tempdir().unwrap());
    DIR.path()
}
