//! A real inventory-service, with a real auth-service for admin tokens.

use std::time::Duration;

use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use inventory_service::Settings;
use serde_json::{Value, json};
use test_support::Auth;
use url::Url;

pub struct Inventory {
    pub service: Running,
    pub auth: Auth,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub customer_token: String,
    /// What order-service would present: a service token from auth-service.
    pub service_token: String,
}

pub fn settings(database_url: Url, jwks: Url) -> Settings {
    Settings {
        server: ServerSettings::for_tests(),
        database_url: database_url.into(),
        pool: PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(10) },
        verifier: test_support::verifier(jwks),
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
        let auth = Auth::start().await;
        let admin_token = auth.admin_token().await;
        let (_, customer_token) = auth.customer("customer@example.com", "customer-password", "Customer").await;
        let service_token = auth.service_token().await;
        let settings = settings(database_url, auth.jwks_url());
        let service = Running::spawn(move |l, s| inventory_service::run(settings, l, s)).await;
        service.ready().await;
        Self { service, auth, http: reqwest::Client::new(), admin_token, customer_token, service_token }
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
        self.auth.stop().await;
    }
}

pub fn order_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
