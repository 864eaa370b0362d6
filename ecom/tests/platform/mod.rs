//! One fixture for the suites that run the six services on real backends. A test gives
//! each service its backend variables (database, bus, mail); the fixture wires the rest
//! as a deployment does (the signing key, the admin and the service secret as mounted
//! secret files, the JWKS and upstream URLs) and runs every service in this process or
//! each as its own `ecom serve` process.

#![allow(dead_code, reason = "each suite that includes this module uses a part of it")]

use std::path::Path;

use common::settings::Env;
use common::test_util::{ChildService, Running, unique_name};
use serde_json::{Value, json};

/// The admin auth-service seeds.
pub const ADMIN: (&str, &str) = ("admin@example.com", "admin-password-1");

/// Variables, in the order they are given (a later one wins).
pub type Pairs = Vec<(&'static str, String)>;

/// Each service's own backend variables.
#[derive(Debug, Default)]
pub struct Backends {
    pub auth: Pairs,
    pub product: Pairs,
    pub inventory: Pairs,
    pub order: Pairs,
    pub notification: Pairs,
}

/// Where the services run.
#[derive(Debug)]
pub enum Host {
    /// In this test's process, sharing its tracer.
    InProcess,
    /// Each its own `ecom serve` process, as in Kubernetes, with these variables added
    /// to every one; their logs go to the fixture's directory.
    Processes(Pairs),
}

/// One running service.
#[derive(Debug)]
pub enum Service {
    InProcess(Running),
    Process(Box<ChildService>),
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        match self {
            Self::InProcess(running) => running.url(path),
            Self::Process(child) => child.url(path),
        }
    }

    async fn ready(&self) {
        // A process is ready when it has started.
        if let Self::InProcess(running) = self {
            running.ready().await;
        }
    }
}

/// The six services, ready, with the admin logged in at the gateway.
#[derive(Debug)]
pub struct Platform {
    pub gateway: Service,
    pub notification: Service,
    pub order: Service,
    pub inventory: Service,
    pub product: Service,
    pub auth: Service,
    pub http: reqwest::Client,
    /// The admin's access token.
    pub admin: String,
    /// The signing key, the secret files and the processes' logs.
    _dir: tempfile::TempDir,
}

impl Platform {
    pub async fn start(backends: Backends, host: Host) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let launcher = Launcher { host, dir: dir.path() };
        let secret = ("ECOM_SERVICE_CLIENT_SECRET_FILE", secret_file(dir.path(), &test_support::random_secret()));
        let Backends { mut auth, mut product, mut inventory, mut order, notification } = backends;
        auth.extend([
            ("ECOM_ADMIN_EMAIL", ADMIN.0.to_owned()),
            ("ECOM_ADMIN_PASSWORD_FILE", secret_file(dir.path(), ADMIN.1)),
            ("ECOM_JWT_SIGNING_KEY_FILE", dir.path().join("jwt-signing-key.pem").display().to_string()),
            ("ECOM_JWT_GENERATE_KEY", "true".to_owned()),
            secret.clone(),
        ]);
        let auth = launcher.start("auth-service", auth).await;
        auth.ready().await;
        let jwks = ("ECOM_JWKS_URL", auth.url("/.well-known/jwks.json"));
        product.push(jwks.clone());
        inventory.push(jwks.clone());
        let (product, inventory, notification) = tokio::join!(
            launcher.start("product-service", product),
            launcher.start("inventory-service", inventory),
            launcher.start("notification-service", notification),
        );
        order.extend([
            ("ECOM_PRODUCT_URL", product.url("")),
            ("ECOM_INVENTORY_URL", inventory.url("")),
            ("ECOM_AUTH_URL", auth.url("")),
            secret,
            jwks,
        ]);
        let order = launcher.start("order-service", order).await;
        let gateway = vec![
            ("ECOM_AUTH_URL", auth.url("")),
            ("ECOM_PRODUCT_URL", product.url("")),
            ("ECOM_ORDER_URL", order.url("")),
            ("ECOM_INVENTORY_URL", inventory.url("")),
        ];
        let gateway = launcher.start("api-gateway", gateway).await;
        for service in [&product, &inventory, &order, &notification, &gateway] {
            service.ready().await;
        }
        let http = reqwest::Client::new();
        let admin = test_support::login(&http, &gateway.url(""), ADMIN.0, ADMIN.1).await;
        Self { gateway, notification, order, inventory, product, auth, http, admin, _dir: dir }
    }

    /// `method path` at the gateway with `token`: the status and the JSON body.
    pub async fn call(&self, method: reqwest::Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self.http.request(method, self.gateway.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        test_support::send(request).await
    }

    /// A product at `amount` euro cents with `stock` units, created by the admin.
    pub async fn product(&self, sku: &str, amount: i64, stock: i64) {
        let product = json!({"sku": sku, "name": format!("{sku} mug"), "price": {"amount": amount, "currency": "EUR"}});
        let (status, body) = self.call(reqwest::Method::POST, "/api/products", &self.admin, Some(product)).await;
        assert_eq!(status, 201, "{body}");
        let path = format!("/api/inventory/{sku}");
        let (status, body) =
            self.call(reqwest::Method::PUT, &path, &self.admin, Some(json!({"available": stock}))).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A new customer's (email, access token).
    pub async fn customer(&self, name: &str) -> (String, String) {
        let email = format!("{}@example.com", unique_name("customer"));
        let gateway = self.gateway.url("");
        test_support::register(&self.http, &gateway, &email, "customer-password", name).await;
        let token = test_support::login(&self.http, &gateway, &email, "customer-password").await;
        (email, token)
    }
}

/// A file holding `value`, as a mounted secret.
pub fn secret_file(dir: &Path, value: &str) -> String {
    let path = dir.join(unique_name("secret"));
    std::fs::write(&path, format!("{value}\n")).unwrap();
    path.display().to_string()
}

struct Launcher<'a> {
    host: Host,
    dir: &'a Path,
}

impl Launcher<'_> {
    async fn start(&self, service: &str, pairs: Pairs) -> Service {
        match &self.host {
            Host::InProcess => Service::InProcess(spawn(service, Env::from_pairs(pairs)).await),
            Host::Processes(shared) => {
                let mut env = pairs;
                env.extend(shared.iter().cloned());
                let log = self.dir.join(format!("{service}.log"));
                let ecom = env!("CARGO_BIN_EXE_ecom");
                let child = ChildService::start_with_args(ecom, &["serve", service], &env, &log).await;
                Service::Process(Box::new(child))
            }
        }
    }
}

/// Runs `service` in this process, its settings read from `env` as its `main` reads them.
async fn spawn(service: &str, env: Env) -> Running {
    macro_rules! run {
        ($krate:ident) => {{
            let settings = $krate::Settings::from_env(&env).unwrap();
            Running::spawn(move |listener, shutdown| $krate::run(settings, listener, shutdown)).await
        }};
    }
    match service {
        "auth-service" => run!(auth_service),
        "product-service" => run!(product_service),
        "inventory-service" => run!(inventory_service),
        "order-service" => run!(order_service),
        "notification-service" => run!(notification_service),
        "api-gateway" => run!(api_gateway),
        other => panic!("no service {other}"),
    }
}
