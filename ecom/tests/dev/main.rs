//! `ecom dev`: the whole platform in one process.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod durability;
mod faults;
mod jaeger;
mod logs;
mod metrics;
#[path = "../platform/mod.rs"]
mod platform;
mod real_stack;
mod traces;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::settings::Env;
use ecom::dev::{self, Ports};
use tokio_util::sync::CancellationToken;

/// Tests on the real stack share its one Kafka broker, and some of them stop it.
static BROKER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Stops the stack's Kafka; starts it again when dropped, also after a failed assertion.
/// Both block: call them from `spawn_blocking`.
struct BrokerStopped;

fn stack(command: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/stack.sh");
    let status = Command::new("bash").args([script, command, "kafka"]).stdout(Stdio::null()).status().unwrap();
    assert!(status.success(), "scripts/stack.sh {command} kafka failed");
}

impl BrokerStopped {
    fn new() -> Self {
        stack("down");
        Self
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        stack("up");
    }
}

const ANY_PORT: Ports =
    Ports { gateway: 0, auth: 0, product: 0, order: 0, inventory: 0, notification: 0, gateway_metrics: 0 };

async fn start(data_dir: &std::path::Path, env: &Env) -> (dev::Platform, CancellationToken) {
    let shutdown = CancellationToken::new();
    let platform = dev::start(env, data_dir, [127, 0, 0, 1], ANY_PORT, shutdown.clone()).await.unwrap();
    dev::wait_ready(&platform.listeners, Duration::from_secs(20)).await.unwrap();
    (platform, shutdown)
}

async fn admin_exists(data_dir: &std::path::Path, email: &str, password: &str) -> bool {
    let dir = data_dir.canonicalize().unwrap();
    let settings = auth_service::Settings::from_env(&Env::from_pairs([
        ("DATABASE_URL", format!("sqlite://{}", dir.join("auth.db").display())),
        ("ECOM_JWT_SIGNING_KEY_FILE", dir.join("keys/jwt-signing-key.pem").display().to_string()),
        ("ECOM_SERVICE_CLIENT_SECRET", test_support::random_secret()),
    ]))
    .unwrap();
    let state = auth_service::AppState::connect(&settings).await.unwrap();
    let Some(user) = state.store.fetch_user_by_email(email).await.unwrap() else { return false };
    auth_service::password::verify(password.to_owned().into(), user.password_hash).await.unwrap()
}

#[tokio::test]
async fn all_six_services_become_ready_and_a_restart_on_the_same_dir_keeps_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([("ECOM_ADMIN_EMAIL", "boss@example.com"), ("ECOM_ADMIN_PASSWORD", "dev-password-123")]);

    let (platform, shutdown) = start(dir.path(), &env).await;
    assert_eq!(platform.listeners.len(), 6);
    assert!(!platform.admin.generated);
    shutdown.cancel();
    platform.wait().await.unwrap();
    for file in ["auth.db", "products.db", "inventory.db", "orders.db", "notifications.db", "keys/jwt-signing-key.pem"]
    {
        assert!(dir.path().join(file).exists(), "{file} missing");
    }
    assert!(dir.path().join("mail").is_dir());

    let (platform, shutdown) = start(dir.path(), &Env::default()).await;
    assert!(platform.admin.generated, "without ECOM_ADMIN_PASSWORD a password is generated");
    assert_eq!(platform.admin.password.len(), 20);
    let generated = platform.admin.password.clone();
    shutdown.cancel();
    platform.wait().await.unwrap();
    // The first run's admin is still there, next to the second run's.
    assert!(admin_exists(dir.path(), "boss@example.com", "dev-password-123").await);
    assert!(admin_exists(dir.path(), "admin@ecom.local", &generated).await);
}

#[tokio::test]
async fn a_generated_admin_password_is_kept_in_the_data_dir_and_works_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (platform, shutdown) = start(dir.path(), &Env::default()).await;
    assert!(platform.admin.generated);
    let password = platform.admin.password.clone();
    let file = platform.admin.password_file.clone().unwrap();
    shutdown.cancel();
    platform.wait().await.unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    let (platform, shutdown) = start(dir.path(), &Env::default()).await;
    assert!(!platform.admin.generated, "the second start reads the kept password");
    assert_eq!(platform.admin.password, password);
    let login = ::reqwest::Client::new()
        .post(format!("http://{}/api/auth/login", platform.gateway))
        .json(&serde_json::json!({"email": "admin@ecom.local", "password": password}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    shutdown.cancel();
    platform.wait().await.unwrap();
}

#[tokio::test]
async fn the_demo_catalog_loads_through_the_gateway_with_its_stock_and_loading_it_again_changes_nothing() {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let (platform, shutdown) = start(dir.path(), &Env::default()).await;
    let catalog = ecom::demo::products().unwrap();
    let (email, password) = (&platform.admin.email, &platform.admin.password);
    let http = ::reqwest::Client::new();

    // A load cut short: the first product exists, without its stock.
    let login = http
        .post(format!("http://{}/api/auth/login", platform.gateway))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap();
    let token = login.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    let created = http
        .post(format!("http://{}/api/products", platform.gateway))
        .bearer_auth(&token)
        .json(&catalog[0].body)
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201);

    let loaded = ecom::demo::load(platform.gateway, email, password).await.unwrap();
    assert_eq!(loaded, ecom::demo::Loaded { created: catalog.len() - 1, existing: 1 });
    let get = |path: String| {
        let request = http.get(format!("http://{}{path}", platform.gateway));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let listed = get("/api/products?per_page=100".to_owned()).await;
    assert_eq!(listed["total"], catalog.len());
    for product in &catalog {
        let level = get(format!("/api/inventory/{}", product.sku)).await;
        assert_eq!(level["available"], product.stock, "{}", product.sku);
    }

    let again = ecom::demo::load(platform.gateway, email, password).await.unwrap();
    assert_eq!(again, ecom::demo::Loaded { created: 0, existing: catalog.len() });
    assert_eq!(get("/api/products".to_owned()).await["total"], catalog.len());
    shutdown.cancel();
    platform.wait().await.unwrap();
}

#[tokio::test]
async fn the_platform_listens_on_the_address_it_is_given() {
    let dir = tempfile::tempdir().unwrap();
    let shutdown = CancellationToken::new();
    let host = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let platform = dev::start(&Env::default(), dir.path(), host, ANY_PORT, shutdown.clone()).await.unwrap();
    dev::wait_ready(&platform.listeners, Duration::from_secs(20)).await.unwrap();
    assert!(platform.listeners.iter().all(|(_, addr)| addr.ip() == host), "{:?}", platform.listeners);
    assert_eq!(platform.gateway_metrics.ip(), host);
    shutdown.cancel();
    platform.wait().await.unwrap();
}

/// A child process killed when dropped, so a failed assertion leaves no platform
/// running (holding the test runner's stderr open).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn the_binary_prints_the_gateway_and_the_generated_admin_password_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_ecom"))
        .args(["dev", "--any-ports", "--data-dir"])
        .arg(dir.path())
        .env_remove("ECOM_ADMIN_PASSWORD")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let mut banner = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains("Ctrl-C stops it");
        banner.push(line);
        if done {
            break;
        }
    }
    // Keep reading so the platform never writes into a closed pipe.
    let drain = std::thread::spawn(move || lines.map_while(Result::ok).count());
    let banner = banner.join("\n");
    assert!(banner.contains("ecom is ready in"), "{banner}");
    assert!(banner.contains("admin password"), "{banner}");
    let kept = std::fs::read_to_string(dir.path().join("admin-password")).unwrap();
    let kept = kept.lines().next().unwrap();
    assert!(banner.contains(&format!("admin password {kept}  (generated, kept in")), "{banner}");
    let products = ecom::demo::products().unwrap().len();
    assert!(banner.contains(&format!("demo catalog   {products} products with stock")), "{banner}");

    let listeners = listener_urls(banner.lines());
    let names: Vec<&str> = listeners.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["gateway", "auth-service", "product-service", "order-service", "inventory-service", "notification-service"],
        "{banner}"
    );
    for (name, url) in &listeners {
        let status = reqwest::blocking_get(url);
        assert_eq!(status, 200, "{name} at {url} not ready");
    }

    let killed = Command::new("kill").args(["-TERM", &child.0.id().to_string()]).status().unwrap();
    assert!(killed.success());
    let status = child.0.wait().unwrap();
    assert!(status.success(), "ecom exited with {status}");
    drain.join().unwrap();
}

/// The listeners the banner of `ecom dev` names: the gateway and each service, with
/// its base URL (the tests run it on ports the system chooses, beside any other).
fn listener_urls<'a>(banner: impl Iterator<Item = &'a str>) -> Vec<(String, String)> {
    banner
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let (name, url) = (words.next()?, words.next()?);
            let listener = name == "gateway" || name.ends_with("-service");
            (listener && url.starts_with("http://")).then(|| (name.to_owned(), url.to_owned()))
        })
        .collect()
}

mod reqwest {
    /// `GET /health/ready` of the listener at `base`, from a plain thread.
    pub fn blocking_get(base: &str) -> u16 {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let response = ::reqwest::get(format!("{base}/health/ready")).await.unwrap();
            response.status().as_u16()
        })
    }
}

#[tokio::test]
async fn a_customer_orders_through_the_gateway_of_the_dev_platform() {
    use serde_json::{Value, json};
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([("ECOM_ADMIN_EMAIL", "boss@example.com"), ("ECOM_ADMIN_PASSWORD", "dev-password-123")]);
    let (platform, shutdown) = start(dir.path(), &env).await;
    let api = |path: &str| format!("http://{}{path}", platform.gateway);
    let http = ::reqwest::Client::new();
    let post = |path: &str, token: Option<&str>, body: Value| {
        test_support::send(test_support::bearer(http.post(api(path)).json(&body), token))
    };

    let (_, tokens) =
        post("/api/auth/login", None, json!({"email": "boss@example.com", "password": "dev-password-123"})).await;
    let admin = tokens["access_token"].as_str().unwrap().to_owned();
    let (status, product) = post(
        "/api/products",
        Some(&admin),
        json!({"sku": "MUG-1", "name": "Mug", "category": "kitchen", "price": {"amount": 1299, "currency": "EUR"}}),
    )
    .await;
    assert_eq!(status, 201, "{product}");
    let stock =
        http.put(api("/api/inventory/MUG-1")).bearer_auth(&admin).json(&json!({"available": 3})).send().await.unwrap();
    assert_eq!(stock.status(), 200);

    let (status, _) = post(
        "/api/auth/register",
        None,
        json!({"email": "ada@example.com", "password": "ada password 1", "name": "Ada"}),
    )
    .await;
    assert_eq!(status, 201);
    let (_, tokens) =
        post("/api/auth/login", None, json!({"email": "ada@example.com", "password": "ada password 1"})).await;
    let ada = tokens["access_token"].as_str().unwrap().to_owned();

    let (status, order) = post("/api/orders", Some(&ada), json!({"lines": [{"sku": "MUG-1", "quantity": 2}]})).await;
    assert_eq!(status, 201, "{order}");
    assert_eq!(order["total"], json!({"amount": 2598, "currency": "EUR"}));
    let (status, problem) = post("/api/orders", Some(&ada), json!({"lines": [{"sku": "MUG-1", "quantity": 2}]})).await;
    assert_eq!(status, 409, "{problem}");

    // The confirmation email lands in DATA_DIR/mail as an .eml file.
    let order_id = order["id"].as_str().unwrap().to_owned();
    let mail_dir = dir.path().join("mail");
    let eml = common::test_util::eventually(std::time::Duration::from_secs(10), || {
        let (mail_dir, order_id) = (mail_dir.clone(), order_id.clone());
        async move {
            std::fs::read_dir(&mail_dir)
                .ok()?
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .find(|text| text.contains(&order_id))
        }
    })
    .await
    .expect("a confirmation .eml for the order");
    assert!(eml.contains("ada@example.com"), "{eml}");

    let listed: Value = http.get(api("/api/orders")).bearer_auth(&ada).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed["total"], 1);
    let id = order["id"].as_str().unwrap();
    let (status, cancelled) = post(&format!("/api/orders/{id}/cancel"), Some(&ada), json!(null)).await;
    assert_eq!(status, 200, "{cancelled}");
    let level: Value = http.get(api("/api/inventory/MUG-1")).send().await.unwrap().json().await.unwrap();
    assert_eq!((level["available"].clone(), level["reserved"].clone()), (json!(3), json!(0)));

    let docs: Value = http.get(api("/api/openapi.json")).send().await.unwrap().json().await.unwrap();
    for path in ["/api/auth/login", "/api/products", "/api/inventory/{sku}", "/api/orders", "/api/orders/{id}/cancel"] {
        assert!(docs["paths"].get(path).is_some(), "{path} missing from the merged document");
    }
    shutdown.cancel();
    platform.wait().await.unwrap();
}
