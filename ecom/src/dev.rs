//! `ecom dev`: the six services in one process, each on its own listener and
//! talking HTTP to the others, on the embedded backends.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use common::bus::{BusConfig, InProcessBus};
use common::settings::Env;
use common::telemetry::{self, LogFormat, TelemetrySettings};
use rand::distr::{Alphanumeric, SampleString};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Where each service listens.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub gateway: u16,
    pub auth: u16,
    pub product: u16,
    pub order: u16,
    pub inventory: u16,
    pub notification: u16,
    /// The gateway's operations listener (`/metrics`, `/health/*`).
    pub gateway_ops: u16,
}

impl Ports {
    /// API.md's default ports, and the gateway's operations port of the deployments.
    pub const DEFAULT: Self = Self {
        gateway: api_gateway::DEFAULT_PORT,
        gateway_ops: api_gateway::DEFAULT_OPS_PORT,
        auth: auth_service::DEFAULT_PORT,
        product: product_service::DEFAULT_PORT,
        order: order_service::DEFAULT_PORT,
        inventory: inventory_service::DEFAULT_PORT,
        notification: notification_service::DEFAULT_PORT,
    };

    /// Every listener on a port the system chooses.
    pub const ANY: Self =
        Self { gateway: 0, gateway_ops: 0, auth: 0, product: 0, order: 0, inventory: 0, notification: 0 };
}

/// The admin account dev mode makes sure exists.
#[derive(Debug, Clone)]
pub struct Admin {
    pub email: String,
    pub password: String,
    /// Whether the password was generated (and so must be printed).
    pub generated: bool,
}

/// A running dev platform.
#[derive(Debug)]
pub struct Platform {
    pub listeners: Vec<(&'static str, SocketAddr)>,
    pub gateway: SocketAddr,
    /// Where the gateway serves `/metrics` (never on its public listener).
    pub gateway_ops: SocketAddr,
    pub admin: Admin,
    /// The in-process bus between order- and notification-service.
    pub bus: InProcessBus,
    tasks: JoinSet<(&'static str, anyhow::Result<()>)>,
}

impl Platform {
    /// Waits until every service has stopped; the first failure is returned.
    pub async fn wait(mut self) -> anyhow::Result<()> {
        let mut first_error = None;
        while let Some(joined) = self.tasks.join_next().await {
            match joined {
                Ok((_, Ok(()))) => {}
                Ok((service, Err(err))) => {
                    tracing::error!(service, error = format!("{err:#}"), "service failed");
                    first_error.get_or_insert(err.context(service));
                }
                Err(err) => {
                    first_error.get_or_insert(anyhow::anyhow!("a service task panicked: {err}"));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// Binds every listener, then starts the six services on `data_dir`.
///
/// `env` supplies any setting the services read (rate limits, log level, admin);
/// dev mode overrides only the addresses, databases, bus and mail.
pub async fn start(
    env: &Env,
    data_dir: &Path,
    host: [u8; 4],
    ports: Ports,
    shutdown: CancellationToken,
) -> anyhow::Result<Platform> {
    std::fs::create_dir_all(data_dir.join("mail"))
        .with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    let data_dir = data_dir.canonicalize().context("--data-dir")?;
    let bind = |port: u16| async move {
        let addr = SocketAddr::from((host, port));
        TcpListener::bind(addr).await.with_context(|| format!("cannot listen on {addr}: is another instance running?"))
    };
    let listeners = [
        ("api-gateway", bind(ports.gateway).await?),
        ("auth-service", bind(ports.auth).await?),
        ("product-service", bind(ports.product).await?),
        ("order-service", bind(ports.order).await?),
        ("inventory-service", bind(ports.inventory).await?),
        ("notification-service", bind(ports.notification).await?),
    ];
    let gateway_ops_l = bind(ports.gateway_ops).await?;
    let gateway_ops = gateway_ops_l.local_addr()?;
    let addrs: Vec<(&'static str, SocketAddr)> =
        listeners.iter().map(|(name, l)| Ok((*name, l.local_addr()?))).collect::<std::io::Result<_>>()?;
    let url_of = |name: &str| {
        let addr =
            addrs.iter().find(|(n, _)| *n == name).map(|(_, a)| *a).unwrap_or_else(|| SocketAddr::from((host, 0)));
        format!("http://{addr}")
    };
    let sqlite = |file: &str| format!("sqlite://{}", data_dir.join(file).display());

    let admin = match (env.raw("ECOM_ADMIN_EMAIL"), env.raw("ECOM_ADMIN_PASSWORD")) {
        (email, Some(password)) => Admin {
            email: email.unwrap_or("admin@ecom.local").to_owned(),
            password: password.to_owned(),
            generated: false,
        },
        (email, None) => Admin {
            email: email.unwrap_or("admin@ecom.local").to_owned(),
            password: Alphanumeric.sample_string(&mut rand::rng(), 20),
            generated: true,
        },
    };

    // order-service's client secret towards auth-service: new at every start, held
    // only in this process (the tokens it buys live minutes; nothing needs it later).
    let service_secret = Alphanumeric.sample_string(&mut rand::rng(), 48);
    let service_client =
        [("ECOM_SERVICE_CLIENT_SECRET", service_secret), ("ECOM_SERVICE_CLIENT_SECRET_FILE", String::new())];

    let jwks_url = format!("{}/.well-known/jwks.json", url_of("auth-service"));
    let service_env = |pairs: &[(&str, String)]| {
        let mut env = env.clone();
        env.set("ECOM_JWKS_URL", jwks_url.clone());
        for (key, value) in pairs {
            env.set(*key, value.clone());
        }
        env
    };
    let bus = InProcessBus::new();
    let [(_, gateway_l), (_, auth_l), (_, product_l), (_, order_l), (_, inventory_l), (_, notification_l)] = listeners;

    let auth = auth_service::Settings::from_env(&service_env(&[
        ("DATABASE_URL", sqlite("auth.db")),
        ("ECOM_ADMIN_EMAIL", admin.email.clone()),
        ("ECOM_ADMIN_PASSWORD", admin.password.clone()),
        ("ECOM_JWT_SIGNING_KEY_FILE", data_dir.join("keys").join("jwt-signing-key.pem").display().to_string()),
        ("ECOM_JWT_GENERATE_KEY", "true".to_owned()),
        service_client[0].clone(),
        service_client[1].clone(),
    ]))?;
    let product = product_service::Settings::from_env(&service_env(&[("DATABASE_URL", sqlite("products.db"))]))?;
    let inventory = inventory_service::Settings::from_env(&service_env(&[("DATABASE_URL", sqlite("inventory.db"))]))?;
    let mut order = order_service::Settings::from_env(&service_env(&[
        ("DATABASE_URL", sqlite("orders.db")),
        ("ECOM_PRODUCT_URL", url_of("product-service")),
        ("ECOM_INVENTORY_URL", url_of("inventory-service")),
        ("ECOM_AUTH_URL", url_of("auth-service")),
        service_client[0].clone(),
        service_client[1].clone(),
    ]))?;
    order.bus = BusConfig::InProcess(bus.clone());
    let mut notification = notification_service::Settings::from_env(&service_env(&[
        ("DATABASE_URL", sqlite("notifications.db")),
        ("ECOM_MAIL_DIR", data_dir.join("mail").display().to_string()),
    ]))?;
    notification.bus = BusConfig::InProcess(bus.clone());
    let gateway = api_gateway::Settings::from_env(&service_env(&[
        ("ECOM_AUTH_URL", url_of("auth-service")),
        ("ECOM_PRODUCT_URL", url_of("product-service")),
        ("ECOM_ORDER_URL", url_of("order-service")),
        ("ECOM_INVENTORY_URL", url_of("inventory-service")),
    ]))?;

    let mut tasks = JoinSet::new();
    let token = || shutdown.clone();
    tasks.spawn(named("auth-service", auth_service::run(auth, auth_l, token())));
    tasks.spawn(named("product-service", product_service::run(product, product_l, token())));
    tasks.spawn(named("inventory-service", inventory_service::run(inventory, inventory_l, token())));
    tasks.spawn(named("order-service", order_service::run(order, order_l, token())));
    tasks.spawn(named("notification-service", notification_service::run(notification, notification_l, token())));
    tasks.spawn(named("api-gateway", api_gateway::run_with_ops(gateway, gateway_l, Some(gateway_ops_l), token())));

    let gateway = addrs[0].1;
    Ok(Platform { listeners: addrs, gateway, gateway_ops, admin, bus, tasks })
}

async fn named(
    service: &'static str,
    run: impl Future<Output = anyhow::Result<()>>,
) -> (&'static str, anyhow::Result<()>) {
    (service, run.await)
}

/// Polls every service's `/health/ready` until all answer 200 or `deadline` passes.
pub async fn wait_ready(listeners: &[(&'static str, SocketAddr)], deadline: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let until = Instant::now() + deadline;
    for (service, addr) in listeners {
        let url = format!("http://{addr}/health/ready");
        loop {
            match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => break,
                result => {
                    if Instant::now() >= until {
                        let why = match result {
                            Ok(response) => {
                                format!("answered {}: {}", response.status(), response.text().await.unwrap_or_default())
                            }
                            Err(err) => err.to_string(),
                        };
                        anyhow::bail!("{service} on {addr} is not ready after {deadline:?}: {why}");
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    }
    Ok(())
}

/// `ecom dev`: runs until Ctrl-C or SIGTERM.
pub async fn main(data_dir: PathBuf, any_ports: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    common::install_crypto_provider();
    let env = Env::from_process();
    let mut telemetry_settings = TelemetrySettings::from_env(&env, "ecom")?;
    if env.raw("ECOM_LOG_FORMAT").is_none() {
        telemetry_settings.log_format = LogFormat::Pretty;
    }
    let guard = telemetry::init(&telemetry_settings)?;
    let shutdown = common::shutdown::on_signal();
    let ports = if any_ports { Ports::ANY } else { Ports::DEFAULT };
    let result = async {
        let platform = start(&env, &data_dir, [127, 0, 0, 1], ports, shutdown.clone()).await?;
        let ready = tokio::select! {
            ready = wait_ready(&platform.listeners, Duration::from_secs(30)) => ready,
            () = shutdown.cancelled() => Ok(()),
        };
        if let Err(err) = ready {
            shutdown.cancel();
            let _ = platform.wait().await;
            return Err(err);
        }
        print_banner(&platform, &data_dir, started.elapsed());
        platform.wait().await
    }
    .await;
    guard.shutdown();
    result
}

fn print_banner(platform: &Platform, data_dir: &Path, elapsed: Duration) {
    println!();
    println!("  ecom is ready in {} ms", elapsed.as_millis());
    println!();
    println!("  gateway        http://{}", platform.gateway);
    println!("  API docs       http://{}/api/docs", platform.gateway);
    println!("  gateway ops    http://{}/metrics", platform.gateway_ops);
    for (service, addr) in &platform.listeners[1..] {
        println!("  {service:<20} http://{addr}");
    }
    println!("  data           {}", data_dir.display());
    println!("  mail           {}", data_dir.join("mail").display());
    println!("  admin          {}", platform.admin.email);
    if platform.admin.generated {
        println!("  admin password {}  (generated; set ECOM_ADMIN_PASSWORD to choose one)", platform.admin.password);
    }
    println!();
    println!("  Ctrl-C stops it; the data stays for the next start.");
    println!();
}
