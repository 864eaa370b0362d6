//! A real product-service, with a real auth-service for admin tokens.

use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, real_dependency, unique_name};
use product_service::Settings;
use serde_json::{Value, json};
use test_support::{Auth, Callers, Database, ready};
use url::Url;

pub fn settings(database_url: Url, jwks: Url) -> Settings {
    Settings {
        server: ServerSettings::for_tests(),
        database_url: database_url.into(),
        pool: PoolSettings::default(),
        verifier: test_support::verifier(jwks),
    }
}

pub fn mongo_url(base: &str) -> Url {
    let mut url: Url = base.parse().unwrap();
    url.set_path(&unique_name("products"));
    url
}

/// Settings on `database_url` for a service that never fetches a key set.
pub fn offline_settings(database_url: Url) -> Settings {
    settings(database_url, "http://127.0.0.1:9/".parse().unwrap())
}

/// SQLite always; FerretDB too when the real stack is configured.
pub fn backends() -> Vec<Database> {
    let mut backends = vec![Database::sqlite("products.db")];
    if let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") {
        backends.push(Database::at(mongo_url(&base)));
    }
    backends
}

pub struct Catalog {
    pub service: Running,
    pub auth: Auth,
    pub http: reqwest::Client,
    pub admin: String,
    pub customer: String,
    /// What order-service would present: a service token from auth-service.
    pub service_token: String,
    _database: Database,
}

impl Catalog {
    pub async fn start(database: Database) -> Self {
        let auth = Auth::start().await;
        let Callers { admin, customer, service: service_token } = auth.callers("shopper@example.com").await;
        let settings = settings(database.url.clone(), auth.jwks_url());
        let service = ready(Running::spawn(move |l, s| product_service::run(settings, l, s)).await).await;
        Self { service, auth, http: reqwest::Client::new(), admin, customer, service_token, _database: database }
    }

    /// product-service on each backend.
    pub async fn on_each_backend() -> Vec<Self> {
        let mut started = Vec::new();
        for backend in backends() {
            started.push(Self::start(backend).await);
        }
        started
    }

    pub async fn on_sqlite() -> Self {
        Self::start(Database::sqlite("products.db")).await
    }

    pub async fn create(&self, body: Value) -> reqwest::Response {
        self.http.post(self.service.url("/api/products")).bearer_auth(&self.admin).json(&body).send().await.unwrap()
    }

    /// Replaces the product at `url` with `body`, as the admin.
    pub async fn replace(&self, url: &str, body: Value) -> (u16, Value) {
        test_support::send(self.http.put(url).bearer_auth(&self.admin).json(&body)).await
    }

    pub async fn list(&self, query: &str) -> Value {
        let response = self.http.get(self.service.url(&format!("/api/products{query}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        response.json().await.unwrap()
    }

    /// `GET /internal/products?skus=...` with `token` (none: anonymous).
    pub async fn lookup_as(&self, token: Option<&str>, skus: &str) -> reqwest::Response {
        let request = self.http.get(self.service.url(&format!("/internal/products?skus={skus}")));
        test_support::bearer(request, token).send().await.unwrap()
    }

    pub async fn stop(self) {
        self.service.stop().await.unwrap();
        self.auth.stop().await;
    }
}

pub fn product(sku: &str, name: &str, category: &str, amount: i64) -> Value {
    json!({"sku": sku, "name": name, "description": format!("{name} description"), "category": category,
           "price": {"amount": amount, "currency": "USD"}})
}
