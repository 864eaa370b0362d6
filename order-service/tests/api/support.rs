//! The four services an order needs, each real, each on its own port.

use std::time::Duration;

use common::auth::ClientCredentials;
use common::bus::{BusConfig, InProcessBus};
use common::client::ClientConfig;
use common::db::PoolSettings;
use common::settings::{Env, ServerSettings};
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use serde_json::{Value, json};
use test_support::{Auth, SERVICE_CLIENT};
use url::Url;

pub struct Shop {
    pub auth: Auth,
    pub products: Running,
    pub inventory: Running,
    pub inventory_settings: inventory_service::Settings,
    pub orders: Running,
    pub order_settings: order_service::Settings,
    pub http: reqwest::Client,
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// Which SQL backends to run on: SQLite always, MariaDB when the stack is up.
pub async fn sql_backends(dir: &std::path::Path) -> Vec<(Url, Url)> {
    let mut backends = vec![(
        format!("sqlite://{}/orders.db", dir.display()).parse().unwrap(),
        format!("sqlite://{}/inventory.db", dir.display()).parse().unwrap(),
    )];
    if let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") {
        backends.push((fresh_mysql_database(&base).await, fresh_mysql_database(&base).await));
    }
    backends
}

impl Shop {
    pub async fn start(orders_db: Url, inventory_db: Url, client_env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth = Auth::start().await;
        let service_client = ClientCredentials::new(SERVICE_CLIENT, &auth.service_secret).unwrap();

        let product_settings = product_service::Settings {
            server: ServerSettings::for_tests(),
            database_url: format!("sqlite://{}/products.db", dir.path().display()).parse().unwrap(),
            pool: PoolSettings::default(),
            verifier: auth.verifier(),
        };
        let products = Running::spawn(move |l, s| product_service::run(product_settings, l, s)).await;
        products.ready().await;

        let inventory_settings = inventory_service::Settings {
            server: ServerSettings::for_tests(),
            database_url: inventory_db.into(),
            pool: PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(10) },
            verifier: auth.verifier(),
        };
        let settings = inventory_settings.clone();
        let inventory = Running::spawn(move |l, s| inventory_service::run(settings, l, s)).await;
        inventory.ready().await;

        let mut env = Env::from_pairs([("ECOM_CLIENT_TIMEOUT_MS", "1000"), ("ECOM_CLIENT_BACKOFF_MS", "10")]);
        for (k, v) in client_env {
            env.set(*k, *v);
        }
        let order_settings = order_service::Settings {
            server: ServerSettings::for_tests(),
            database_url: orders_db.into(),
            pool: PoolSettings { max_connections: 10, acquire_timeout: Duration::from_secs(10) },
            product_url: products.url("").parse().unwrap(),
            inventory_url: inventory.url("").parse().unwrap(),
            auth_url: auth.url("").parse().unwrap(),
            service_client,
            bus: BusConfig::InProcess(InProcessBus::new()),
            orders_topic: common::events::ORDERS_TOPIC.to_owned(),
            verifier: auth.verifier(),
            client: ClientConfig::from_env(&env).unwrap(),
            sweep_interval: Duration::from_secs(3600),
            sweep_pending_after: Duration::ZERO,
        };
        let settings = order_settings.clone();
        let orders = Running::spawn(move |l, s| order_service::run(settings, l, s)).await;
        orders.ready().await;

        let admin = auth.admin_token().await;
        Self {
            auth,
            products,
            inventory,
            inventory_settings,
            orders,
            order_settings,
            http: reqwest::Client::new(),
            admin,
            _dir: dir,
        }
    }

    pub async fn customer(&self, email: &str) -> String {
        self.customer_identity(email).await.0
    }

    /// A new customer's access token and who the services see in it.
    pub async fn customer_identity(&self, email: &str) -> (String, common::auth::Identity) {
        let (user, token) = self.auth.customer(email, "customer-password", "Customer Name").await;
        let who = common::auth::Identity {
            user_id: user["id"].as_str().unwrap().parse().unwrap(),
            email: email.parse().unwrap(),
            name: Some("Customer Name".into()),
            roles: vec!["customer".into()],
        };
        (token, who)
    }

    pub async fn product(&self, sku: &str, amount: i64, currency: &str, stock: i64) {
        let response = self
            .http
            .post(self.products.url("/api/products"))
            .bearer_auth(&self.admin)
            .json(
                &json!({"sku": sku, "name": format!("{sku} name"), "price": {"amount": amount, "currency": currency}}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let response = self
            .http
            .put(self.inventory.url(&format!("/api/inventory/{sku}")))
            .bearer_auth(&self.admin)
            .json(&json!({"available": stock}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        let body: Value = self
            .http
            .get(self.inventory.url(&format!("/api/inventory/{sku}")))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (body["available"].as_i64().unwrap(), body["reserved"].as_i64().unwrap())
    }

    pub async fn place(&self, token: &str, lines: Value, key: Option<&str>) -> (u16, Value) {
        let mut request =
            self.http.post(self.orders.url("/api/orders")).bearer_auth(token).json(&json!({"lines": lines}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        let response = self.http.get(self.orders.url(path)).bearer_auth(token).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn cancel(&self, token: &str, id: &str) -> (u16, Value) {
        let response = self
            .http
            .post(self.orders.url(&format!("/api/orders/{id}/cancel")))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Rows in the outbox of `event_type`.
    pub async fn outbox_count(&self, event_type: &str) -> i64 {
        self.count("SELECT COUNT(*) FROM outbox WHERE event_type = ?", event_type).await
    }

    /// Orders in `status`, straight from the database.
    pub async fn orders_in(&self, status: &str) -> i64 {
        self.count("SELECT COUNT(*) FROM orders WHERE status = ?", status).await
    }

    async fn count(&self, sql: &'static str, value: &str) -> i64 {
        let state = order_service::AppState::connect(&self.order_settings).await.unwrap();
        let count = common::on_pool!(state.store.pool(), pool => {
            let (n,): (i64,) = sqlx::query_as(sql).bind(value).fetch_one(pool).await.unwrap();
            n
        });
        state.store.pool().close().await;
        count
    }
}
