//! A real product-service, with a real auth-service for admin tokens.

use std::time::Duration;

use common::auth::{ClientCredentials, Expectations, VerifierSettings};
use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, real_dependency, unique_name};
use product_service::Settings;
use serde_json::{Value, json};
use url::Url;

pub fn settings(database_url: Url, jwks: Url) -> Settings {
    Settings {
        server: ServerSettings::for_tests(),
        database_url,
        pool: PoolSettings::default(),
        verifier: VerifierSettings {
            jwks_url: jwks,
            expectations: Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() },
            min_refresh: Duration::from_secs(30),
        },
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
    pub auth: Running,
    pub http: reqwest::Client,
    pub admin: String,
    pub customer: String,
    /// What order-service would present: a service token from auth-service.
    pub service_token: String,
    _dir: tempfile::TempDir,
}

impl Catalog {
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
        let login = |email: &'static str, password: &'static str| {
            let request =
                http.post(auth.url("/api/auth/login")).json(&json!({"email": email, "password": password})).send();
            async move {
                let body: Value = request.await.unwrap().json().await.unwrap();
                body["access_token"].as_str().unwrap().to_owned()
            }
        };
        http.post(auth.url("/api/auth/register"))
            .json(&json!({"email": "shopper@example.com", "password": "shopper-password", "name": "Shopper"}))
            .send()
            .await
            .unwrap();
        let admin = login("admin@example.com", "admin-password-1").await;
        let customer = login("shopper@example.com", "shopper-password").await;
        let token: Value = http
            .post(auth.url("/internal/token"))
            .basic_auth("order-service", Some(&secret))
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let service_token = token["access_token"].as_str().unwrap().to_owned();
        let settings = settings(database_url, auth.url("/.well-known/jwks.json").parse().unwrap());
        let service = Running::spawn(move |l, s| product_service::run(settings, l, s)).await;
        service.ready().await;
        Self { service, auth, http, admin, customer, service_token, _dir: dir }
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
        self.auth.stop().await.unwrap();
    }
}

pub fn product(sku: &str, name: &str, category: &str, amount: i64) -> Value {
    json!({"sku": sku, "name": name, "description": format!("{name} description"), "category": category,
           "price": {"amount": amount, "currency": "USD"}})
}
