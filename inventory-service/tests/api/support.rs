//! A real inventory-service, with a real auth-service for admin tokens.

use std::time::Duration;

use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use inventory_service::Settings;
use serde_json::{Value, json};
use test_support::{Auth, Callers, Database, bearer, ready, send};
use url::Url;

pub struct Inventory {
    pub service: Running,
    pub auth: Auth,
    pub http: reqwest::Client,
    pub admin_token: String,
    pub customer_token: String,
    /// What order-service would present: a service token from auth-service.
    pub service_token: String,
    _database: Database,
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
pub async fn backends() -> Vec<Database> {
    let mut backends = vec![Database::sqlite("inventory.db")];
    if let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") {
        backends.push(Database::at(fresh_mysql_database(&base).await));
    }
    backends
}

impl Inventory {
    /// inventory-service on `backend`, with `stock` of each sku set.
    pub async fn start(database: Database, stock: &[(&str, i64)]) -> Self {
        let auth = Auth::start().await;
        let Callers { admin: admin_token, customer: customer_token, service: service_token } =
            auth.callers("customer@example.com").await;
        let settings = settings(database.url.clone(), auth.jwks_url());
        let service = ready(Running::spawn(move |l, s| inventory_service::run(settings, l, s)).await).await;
        let http = reqwest::Client::new();
        let inventory = Self { service, auth, http, admin_token, customer_token, service_token, _database: database };
        for (sku, available) in stock {
            assert_eq!(inventory.set_stock(sku, *available).await.status(), 200, "{sku}");
        }
        inventory
    }

    /// inventory-service on each backend, with `stock` of each sku set.
    pub async fn on_each_backend(stock: &[(&str, i64)]) -> Vec<Self> {
        let mut started = Vec::new();
        for backend in backends().await {
            started.push(Self::start(backend, stock).await);
        }
        started
    }

    /// inventory-service on SQLite, with `stock` of each sku set.
    pub async fn on_sqlite(stock: &[(&str, i64)]) -> Self {
        Self::start(Database::sqlite("inventory.db"), stock).await
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
        test_support::stock(&self.http, &self.service.url(""), sku).await
    }

    /// A reservation as order-service makes it.
    pub async fn reserve(&self, order_id: &str, lines: &[(&str, i64)]) -> (u16, Value) {
        self.reserve_as(Some(&self.service_token), order_id, lines).await
    }

    /// Reserves `lines` for a new order, as order-service does; the order's id.
    pub async fn reserved(&self, lines: &[(&str, i64)]) -> String {
        let order = order_id();
        let (status, body) = self.reserve(&order, lines).await;
        assert_eq!(status, 201, "{body}");
        order
    }

    /// A reservation with `token` (none: anonymous).
    pub async fn reserve_as(&self, token: Option<&str>, order_id: &str, lines: &[(&str, i64)]) -> (u16, Value) {
        let lines: Vec<Value> = lines.iter().map(|(sku, q)| json!({"sku": sku, "quantity": q})).collect();
        let request = self.http.post(self.service.url("/internal/reservations"));
        send(bearer(request, token).json(&json!({"order_id": order_id, "lines": lines}))).await
    }

    /// A release as order-service makes it.
    pub async fn release(&self, order_id: &str) -> u16 {
        self.release_as(Some(&self.service_token), order_id).await.status().as_u16()
    }

    /// A release with `token` (none: anonymous).
    pub async fn release_as(&self, token: Option<&str>, order_id: &str) -> reqwest::Response {
        let request = self.http.delete(self.service.url(&format!("/internal/reservations/{order_id}")));
        bearer(request, token).send().await.unwrap()
    }

    pub async fn stop(self) {
        self.service.stop().await.unwrap();
        self.auth.stop().await;
    }
}

pub fn order_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
