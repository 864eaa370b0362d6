//! A real inventory-service, with a real auth-service for admin tokens.

use std::time::Duration;

use common::auth::{ClientCredentials, Expectations, VerifierSettings};
use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use inventory_service::Settings;
use serde_json::{Value, json};
use url::Url;

pub struct Inventory {
    pub service: Running,
    pub auth: Running,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub customer_token: String,
    /// What order-service would present: a service token from auth-service.
    pub service_token: String,
    _dir: tempfile::TempDir,
}

/// A service token from auth-service at `auth`, bought with `secret`.
pub async fn service_token(http: &reqwest::Client, auth: &Running, secret: &str) -> String {
    let response = http
        .post(auth.url("/internal/token"))
        .basic_auth("order-service", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

pub fn settings(database_url: Url, jwks: Url) -> Settings {
    Settings {
        server: ServerSettings::for_tests(),
        database_url,
        pool: PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(10) },
        verifier: VerifierSettings {
            jwks_url: jwks,
            expectations: Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() },
            min_refresh: Duration::from_secs(30),
        },
    }
}

/// SQLite always; MariaDB too when the real stack is configured.
pub async fn backends(dir: &std::path::Path) -> Vec<Url> {
    let mut urls = vec![format!("sqlite://{}/inventory.db", dir.display()).parse().unwrap()];
    if let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") {
        urls.push(fresh_mysql_database(&base).await);
    }
    urls
}

impl Inventory {
    pub async fn start(database_url: Url) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let secret = uuid::Uuid::new_v4().simple().to_string();
        let auth_settings = auth_service::Settings {
            server: ServerSettings::for_tests(),
            database_url: format!("sqlite://{}/auth.db", dir.path().display()).parse().unwrap(),
            pool: PoolSettings::default(),
            admin: Some(auth_service::settings::AdminSettings {
                email: "admin@example.com".into(),
                password: "admin-password-1".to_owned().into(),
            }),
            keys: auth_service::keys::KeySettings {
                signing_key_file: dir.path().join("key.pem"),
                previous_key_files: vec![],
                generate_missing: true,
            },
            expectations: Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() },
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(3600),
            refresh_family_lifetime: Duration::from_secs(24 * 3600),
            service_tokens: auth_service::clients::ServiceTokenSettings {
                client: Some(ClientCredentials::new("order-service", &secret).unwrap()),
                ttl: Duration::from_secs(300),
            },
        };
        let auth = Running::spawn(move |l, s| auth_service::run(auth_settings, l, s)).await;
        auth.ready().await;
        let http = reqwest::Client::new();
        let token = |email: &str, password: &str, register: bool| {
            let (http, auth_url) = (http.clone(), auth.url(""));
            let (email, password) = (email.to_owned(), password.to_owned());
            async move {
                if register {
                    http.post(format!("{auth_url}/api/auth/register"))
                        .json(&json!({"email": email, "password": password, "name": "Customer"}))
                        .send()
                        .await
                        .unwrap();
                }
                let body: Value = http
                    .post(format!("{auth_url}/api/auth/login"))
                    .json(&json!({"email": email, "password": password}))
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                body["access_token"].as_str().unwrap().to_owned()
            }
        };
        let admin_token = token("admin@example.com", "admin-password-1", false).await;
        let customer_token = token("customer@example.com", "customer-password", true).await;
        let service_token = service_token(&http, &auth, &secret).await;
        let settings = settings(database_url, auth.url("/.well-known/jwks.json").parse().unwrap());
        let service = Running::spawn(move |l, s| inventory_service::run(settings, l, s)).await;
        service.ready().await;
        Self { service, auth, http, admin_token, customer_token, service_token, _dir: dir }
    }

    pub async fn set_stock(&self, sku: &str, available: i64) -> reqwest::Response {
        self.http
            .put(self.service.url(&format!("/api/inventory/{sku}")))
            .bearer_auth(&self.admin_token)
            .json(&json!({"available": available}))
            .send()
            .await
            .unwrap()
    }

    /// `(available, reserved)` of `sku`.
    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        let body: Value = self
            .http
            .get(self.service.url(&format!("/api/inventory/{sku}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["available"].as_i64().unwrap(), body["reserved"].as_i64().unwrap())
    }

    /// A reservation as order-service makes it.
    pub async fn reserve(&self, order_id: &str, lines: &[(&str, i64)]) -> (u16, Value) {
        self.reserve_as(Some(&self.service_token), order_id, lines).await
    }

    /// A reservation with `token` (none: anonymous).
    pub async fn reserve_as(&self, token: Option<&str>, order_id: &str, lines: &[(&str, i64)]) -> (u16, Value) {
        let lines: Vec<Value> = lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect();
        let mut request = self
            .http
            .post(self.service.url("/internal/reservations"))
            .json(&json!({"order_id": order_id, "lines": lines}));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A release as order-service makes it.
    pub async fn release(&self, order_id: &str) -> u16 {
        self.release_as(Some(&self.service_token), order_id).await.status().as_u16()
    }

    /// A release with `token` (none: anonymous).
    pub async fn release_as(&self, token: Option<&str>, order_id: &str) -> reqwest::Response {
        let mut request = self.http.delete(self.service.url(&format!("/internal/reservations/{order_id}")));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn stop(self) {
        self.service.stop().await.unwrap();
        self.auth.stop().await.unwrap();
    }
}

pub fn order_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
