//! The four services an order needs, each real, each on its own port.

use std::time::Duration;

use common::auth::ClientCredentials;
use common::bus::{BusConfig, InProcessBus};
use common::client::ClientConfig;
use common::db::PoolSettings;
use common::settings::{Env, ServerSettings};
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use order_service::domain::{Currency, Money, Order, OrderId, OrderLine, Status, UserId};
use serde_json::{Value, json};
use test_support::{Auth, SERVICE_CLIENT, send, sqlite_url};
use url::Url;

pub struct Shop {
    pub auth: Auth,
    pub products: Running,
    pub product_settings: product_service::Settings,
    pub inventory: Running,
    pub inventory_settings: inventory_service::Settings,
    pub orders: Running,
    pub order_settings: order_service::Settings,
    pub http: reqwest::Client,
    pub admin: String,
    _dir: tempfile::TempDir,
}

/// Where one shop's order- and inventory-service keep their data; the folder also
/// holds product-service's SQLite catalog.
pub struct Databases {
    orders: Url,
    inventory: Url,
    dir: tempfile::TempDir,
}

impl Databases {
    pub fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (orders, inventory) = (sqlite_url(dir.path(), "orders.db"), sqlite_url(dir.path(), "inventory.db"));
        Self { orders, inventory, dir }
    }

    /// The name of the backend, for messages.
    pub fn backend(&self) -> String {
        self.orders.scheme().to_owned()
    }
}

/// Which SQL backends to run on: SQLite always, MariaDB when the stack is up.
pub async fn sql_backends() -> Vec<Databases> {
    let mut backends = vec![Databases::sqlite()];
    if let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") {
        let (orders, inventory) = (fresh_mysql_database(&base).await, fresh_mysql_database(&base).await);
        backends.push(Databases { orders, inventory, dir: tempfile::tempdir().unwrap() });
    }
    backends
}

impl Shop {
    /// A shop on SQLite with the default client settings.
    pub async fn on_sqlite() -> Self {
        Self::start(Databases::sqlite(), &[]).await
    }

    /// A shop on `databases`, its client settings changed by `client_env`.
    pub async fn start(databases: Databases, client_env: &[(&str, &str)]) -> Self {
        let auth = Auth::start().await;
        let auth_url = auth.url("").parse().unwrap();
        Self::with_auth(databases, client_env, auth, auth_url).await
    }

    /// A shop whose services trust `auth`; order-service asks for its service token at
    /// `auth_url` (auth's own, or a way to it the test watches).
    pub async fn with_auth(databases: Databases, client_env: &[(&str, &str)], auth: Auth, auth_url: Url) -> Self {
        let Databases { orders: orders_db, inventory: inventory_db, dir } = databases;
        let service_client = ClientCredentials::new(SERVICE_CLIENT, &auth.service_secret).unwrap();

        let product_settings = product_service::Settings {
            server: ServerSettings::for_tests(),
            database_url: sqlite_url(dir.path(), "products.db").into(),
            pool: PoolSettings::default(),
            verifier: auth.verifier(),
        };
        let settings = product_settings.clone();
        let products = Running::spawn(move |l, s| product_service::run(settings, l, s)).await;
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
            auth_url: auth_url.into(),
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
            product_settings,
            inventory,
            inventory_settings,
            orders,
            order_settings,
            http: reqwest::Client::new(),
            admin,
            _dir: dir,
        }
    }

    /// A shop on `databases` with the default client settings, selling `products`.
    pub async fn with_products(databases: Databases, products: &[(&str, i64, &str, i64)]) -> Self {
        Self::start(databases, &[]).await.selling(products).await
    }

    /// The shop with each `(sku, amount, currency, stock)` on sale.
    pub async fn selling(self, products: &[(&str, i64, &str, i64)]) -> Self {
        for (sku, amount, currency, stock) in products {
            self.product(sku, *amount, currency, *stock).await;
        }
        self
    }

    /// order-service's state on the shop's database, for what a test plays by hand.
    pub async fn state(&self) -> order_service::AppState {
        order_service::AppState::connect(&self.order_settings).await.unwrap()
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

    /// `sku` in the catalog at `amount` minor units of `currency`, with `stock` units.
    pub async fn product(&self, sku: &str, amount: i64, currency: &str, stock: i64) {
        let product =
            json!({"sku": sku, "name": format!("{sku} name"), "price": {"amount": amount, "currency": currency}});
        let (status, body) =
            send(self.http.post(self.products.url("/api/products")).bearer_auth(&self.admin).json(&product)).await;
        assert_eq!(status, 201, "{body}");
        let stocked =
            self.http.put(self.inventory.url(&format!("/api/inventory/{sku}"))).json(&json!({"available": stock}));
        let (status, body) = send(stocked.bearer_auth(&self.admin)).await;
        assert_eq!(status, 200, "{body}");
    }

    pub async fn stock(&self, sku: &str) -> (i64, i64) {
        test_support::stock(&self.http, &self.inventory.url(""), sku).await
    }

    pub async fn place(&self, token: &str, lines: Value, key: Option<&str>) -> (u16, Value) {
        let mut request =
            self.http.post(self.orders.url("/api/orders")).bearer_auth(token).json(&json!({"lines": lines}));
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        send(request).await
    }

    /// Places an order of `lines` that must be confirmed; the order.
    pub async fn placed(&self, token: &str, lines: Value) -> Value {
        let (status, order) = self.place(token, lines, None).await;
        assert_eq!(status, 201, "{order}");
        order
    }

    pub async fn get(&self, token: &str, path: &str) -> (u16, Value) {
        send(self.http.get(self.orders.url(path)).bearer_auth(token)).await
    }

    pub async fn cancel(&self, token: &str, id: &str) -> (u16, Value) {
        send(self.http.post(self.orders.url(&format!("/api/orders/{id}/cancel"))).bearer_auth(token)).await
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
        let state = self.state().await;
        let count = common::on_pool!(&state.store.pool, pool => {
            let (n,): (i64,) = sqlx::query_as(sql).bind(value).fetch_one(pool).await.unwrap();
            n
        });
        state.store.pool.close().await;
        count
    }
}

/// An order a placement left PENDING: `quantity` units of `sku` at `unit_price` minor
/// units of `currency`, as a crash between reserving and confirming leaves it.
pub fn pending_order(
    id: impl Into<OrderId>,
    user_id: impl Into<UserId>,
    (sku, quantity): (&str, i64),
    (unit_price, currency): (i64, &str),
) -> Order {
    let now = chrono::Utc::now();
    let currency = Currency::parse(currency).unwrap();
    Order {
        id: id.into(),
        user_id: user_id.into(),
        status: Status::Pending,
        lines: vec![OrderLine {
            sku: sku.parse().unwrap(),
            name: format!("{sku} name"),
            quantity,
            unit_price: Money::new(unit_price, currency.clone()),
        }],
        total: Money::new(unit_price * quantity, currency),
        created_at: now,
        updated_at: now,
        customer_email: "x@example.com".parse().unwrap(),
        customer_name: "X".into(),
        version: 1,
    }
}
