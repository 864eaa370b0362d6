//! A real product-service, with a real auth-service for admin tokens.

use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, real_dependency, unique_name};
use product_service::Settings;
use serde_json::{Value, json};
use test_support::Auth;
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

/// SQLite always; FerretDB too when the real stack is configured.
pub fn backends(dir: &std::path::Path) -> Vec<Url> {
    let mut urls = vec![format!("sqlite://{}/products.db", dir.display()).parse().unwrap()];
    if let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") {
        urls.push(mongo_url(&base));
    }
    urls
}

pub struct Catalog {
    pub service: Running,
    pub auth: Auth,
    pub http: reqwest::Client,
    pub admin: String,
    pub customer: String,
    /// What order-service would present: a service token from auth-service.
    pub service_token: String,
}

impl Catalog {
    pub async fn start(database_url: Url) -> Self {
        let auth = Auth::start().await;
        let admin = auth.admin_token().await;
        let (_, customer) = auth.customer("shopper@example.com", "shopper-password", "Shopper").await;
        let service_token = auth.service_token().await;
        let settings = settings(database_url, auth.jwks_url());
        let service = Running::spawn(move |l, s| product_service::run(settings, l, s)).await;
        service.ready().await;
        Self { service, auth, http: reqwest::Client::new(), admin, customer, service_token }
    }

    pub async fn create(&self, body: Value) -> reqwest::Response {
        self.http.post(self.service.url("/api/products")).bearer_auth(&self.admin).json(&body).send().await.unwrap()
    }

    pub async fn list(&self, query: &str) -> Value {
        let response = self.http.get(self.service.url(&format!("/api/products{query}"))).send().await.unwrap();
        assert_eq!(response.status(), 200, "{query}");
        response.json().await.unwrap()
    }

    /// `GET /internal/products?skus=...` with `token` (none: anonymous).
    pub async fn lookup_as(&self, token: Option<&str>, skus: &str) -> reqwest::Response {
        let mut request = self.http.get(self.service.url(&format!("/internal/products?skus={skus}")));
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

pub fn product(sku: &str, name: &str, category: &str, amount: i64) -> Value {
    json!({"sku": sku, "name": name, "description": format!("{name} description"), "category": category,
           "price": {"amount": amount, "currency": "USD"}})
}
