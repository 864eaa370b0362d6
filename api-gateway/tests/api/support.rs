//! A real auth-service and a gateway in front of it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use api_gateway::Settings;
use auth_service::keys::KeySettings;
use auth_service::settings::AdminSettings;
use common::auth::Expectations;
use common::settings::{Env, ServerSettings};
use common::test_util::Running;
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "root-password-1";

pub struct Platform {
    pub gateway: Running,
    /// The gateway's operations listener (`/metrics`).
    pub ops: SocketAddr,
    pub auth: Running,
    pub auth_settings: auth_service::Settings,
    pub signing_key: PathBuf,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

pub fn auth_settings(dir: &std::path::Path) -> auth_service::Settings {
    auth_service::Settings {
        server: ServerSettings::for_tests(),
        database_url: format!("sqlite://{}/auth.db", dir.display()).parse().unwrap(),
        pool: Default::default(),
        admin: Some(AdminSettings { email: ADMIN_EMAIL.into(), password: ADMIN_PASSWORD.to_owned().into() }),
        keys: KeySettings {
            signing_key_file: dir.join("signing.pem"),
            previous_key_files: vec![],
            generate_missing: true,
        },
        expectations: Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() },
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        refresh_family_lifetime: Duration::from_secs(24 * 3600),
        service_tokens: auth_service::clients::ServiceTokenSettings::disabled(),
    }
}

/// Gateway settings for an auth-service at `auth`; other upstreams point at a closed port.
pub fn gateway_settings(auth: SocketAddr, extra: &[(&str, &str)]) -> Settings {
    let mut env = Env::from_pairs([
        ("ECOM_AUTH_URL", format!("http://{auth}")),
        ("ECOM_PRODUCT_URL", "http://127.0.0.1:9".to_owned()),
        ("ECOM_ORDER_URL", "http://127.0.0.1:9".to_owned()),
        ("ECOM_INVENTORY_URL", "http://127.0.0.1:9".to_owned()),
        ("ECOM_RATE_LIMIT_PER_SECOND", "10000".to_owned()),
        ("ECOM_RATE_LIMIT_AUTH_PER_MINUTE", "10000".to_owned()),
        ("ECOM_UPSTREAM_TIMEOUT_MS", "500".to_owned()),
    ]);
    for (key, value) in extra {
        env.set(*key, *value);
    }
    let settings = Settings::from_env(&env).unwrap();
    // The connection limits come from `extra`; the rest of the server settings are the tests'.
    Settings { server: ServerSettings { limits: settings.server.limits, ..ServerSettings::for_tests() }, ..settings }
}

impl Platform {
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth_settings = auth_settings(dir.path());
        let settings = auth_settings.clone();
        let auth = Running::spawn(move |l, s| auth_service::run(settings, l, s)).await;
        auth.ready().await;
        let settings = gateway_settings(auth.addr, extra);
        let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops_addr = ops.local_addr().unwrap();
        let gateway = Running::spawn(move |l, s| api_gateway::run_with_ops(settings, l, Some(ops), s)).await;
        gateway.ready().await;
        let signing_key = dir.path().join("signing.pem");
        Self { gateway, ops: ops_addr, auth, auth_settings, signing_key, http: reqwest::Client::new(), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        let response = self.post("/api/auth/login", json!({"email": email, "password": password}), None).await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    pub async fn customer_token(&self) -> String {
        let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
        let response = self
            .post("/api/auth/register", json!({"email": email, "password": "customer password", "name": "C"}), None)
            .await;
        assert_eq!(response.status(), 201);
        self.login(&email, "customer password").await
    }

    pub async fn me(&self, authorization: &str) -> reqwest::Response {
        self.http.get(self.url("/api/auth/me")).header("authorization", authorization).send().await.unwrap()
    }
}
