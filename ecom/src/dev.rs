//! `ecom dev`: the six services in one process, each on its own listener and
//! talking HTTP to the others, on the embedded backends.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
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

pub use crate::admin::Admin;

/// The catalog's SQLite file: its absence marks a fresh data directory.
const CATALOG_DB: &str = "products.db";

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
    pub gateway_metrics: u16,
}

impl Ports {
    /// API.md's default ports, and the gateway's operations port of the deployments.
    pub const DEFAULT: Self = Self {
        gateway: api_gateway::DEFAULT_PORT,
        gateway_metrics: api_gateway::DEFAULT_METRICS_PORT,
        auth: auth_service::DEFAULT_PORT,
        product: product_service::DEFAULT_PORT,
        order: order_service::DEFAULT_PORT,
        inventory: inventory_service::DEFAULT_PORT,
        notification: notification_service::DEFAULT_PORT,
    };

    /// Every listener on a port the system chooses.
    pub const ANY: Self =
        Self { gateway: 0, gateway_metrics: 0, auth: 0, product: 0, order: 0, inventory: 0, notification: 0 };

    /// The default layout moved to `base`: the gateway on `base`, the services on
    /// `base + 1` to `base + 5`, the gateway's operations listener on `base + 1000`.
    pub fn from_base(base: u16) -> anyhow::Result<Self> {
        let port = |offset: u16| {
            base.checked_add(offset)
                .filter(|_| base > 0)
                .with_context(|| format!("--port-base {base}: the ports {base} to {base} + 1000 must be 1 to 65535"))
        };
        Ok(Self {
            gateway: port(0)?,
            auth: port(1)?,
            product: port(2)?,
            order: port(3)?,
            inventory: port(4)?,
            notification: port(5)?,
            gateway_metrics: port(1000)?,
        })
    }
}

/// Where to connect to a listener bound to `addr`: the loopback address of its family
/// when it listens on all of them.
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::from((Ipv4Addr::LOCALHOST, addr.port())),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())),
        _ => addr,
    }
}

/// A running dev platform.
#[derive(Debug)]
pub struct Platform {
    pub listeners: Vec<(&'static str, SocketAddr)>,
    pub gateway: SocketAddr,
    /// Where the gateway serves `/metrics` (never on its public listener).
    pub gateway_metrics: SocketAddr,
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
    host: impl Into<IpAddr>,
    ports: Ports,
    shutdown: CancellationToken,
) -> anyhow::Result<Platform> {
    let data_dir = create_data_dir(data_dir)?;
    let host = host.into();
    let listeners = Listeners::bind(host, ports).await?;
    let addrs = listeners.addrs()?;
    let gateway_metrics = listeners.gateway_metrics.local_addr()?;
    let admin = Admin::from_env(env, &data_dir).await?;
    let bus = InProcessBus::new();
    let dev_env = DevEnv::new(env, &data_dir, host, &addrs);
    let tasks = Services::configure(&dev_env, &admin, &bus)?.spawn(listeners, &shutdown);
    let gateway = addrs[0].1;
    Ok(Platform { listeners: addrs, gateway, gateway_metrics, admin, bus, tasks })
}

/// `data_dir` and its mail folder, created when missing; the absolute path.
fn create_data_dir(data_dir: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(data_dir.join("mail"))
        .with_context(|| format!("--data-dir: cannot create {}", data_dir.display()))?;
    data_dir.canonicalize().context("--data-dir")
}

/// Every listener of a platform, bound before any service starts so that a taken
/// port fails the start instead of one service.
struct Listeners {
    gateway: TcpListener,
    auth: TcpListener,
    product: TcpListener,
    order: TcpListener,
    inventory: TcpListener,
    notification: TcpListener,
    gateway_metrics: TcpListener,
}

impl Listeners {
    async fn bind(host: IpAddr, ports: Ports) -> anyhow::Result<Self> {
        let bind = |port: u16| async move {
            let addr = SocketAddr::from((host, port));
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr}: is another instance running?"))
        };
        Ok(Self {
            gateway: bind(ports.gateway).await?,
            auth: bind(ports.auth).await?,
            product: bind(ports.product).await?,
            order: bind(ports.order).await?,
            inventory: bind(ports.inventory).await?,
            notification: bind(ports.notification).await?,
            gateway_metrics: bind(ports.gateway_metrics).await?,
        })
    }

    /// Each service's address, the gateway first (the banner's order).
    fn addrs(&self) -> std::io::Result<Vec<(&'static str, SocketAddr)>> {
        Ok(vec![
            ("api-gateway", self.gateway.local_addr()?),
            ("auth-service", self.auth.local_addr()?),
            ("product-service", self.product.local_addr()?),
            ("order-service", self.order.local_addr()?),
            ("inventory-service", self.inventory.local_addr()?),
            ("notification-service", self.notification.local_addr()?),
        ])
    }
}

/// The environment every service's settings are read from: the caller's, with dev
/// mode's addresses, databases and service secret over it.
struct DevEnv<'a> {
    env: &'a Env,
    data_dir: &'a Path,
    host: IpAddr,
    addrs: &'a [(&'static str, SocketAddr)],
    /// order-service's client secret towards auth-service: new at every start, held
    /// only in this process (the tokens it buys live minutes; nothing needs it later).
    service_secret: String,
}

impl<'a> DevEnv<'a> {
    fn new(env: &'a Env, data_dir: &'a Path, host: IpAddr, addrs: &'a [(&'static str, SocketAddr)]) -> Self {
        let service_secret = Alphanumeric.sample_string(&mut rand::rng(), 48);
        Self { env, data_dir, host, addrs, service_secret }
    }

    fn url_of(&self, service: &str) -> String {
        let addr = self.addrs.iter().find(|(name, _)| *name == service).map(|(_, addr)| *addr);
        format!("http://{}", reachable(addr.unwrap_or_else(|| SocketAddr::from((self.host, 0)))))
    }

    fn sqlite(&self, file: &str) -> String {
        format!("sqlite://{}", self.data_dir.join(file).display())
    }

    fn path(&self, relative: impl AsRef<Path>) -> String {
        self.data_dir.join(relative).display().to_string()
    }

    /// The two variables that give a service the shared client secret.
    fn service_client(&self) -> [(&'static str, String); 2] {
        [
            ("ECOM_SERVICE_CLIENT_SECRET", self.service_secret.clone()),
            ("ECOM_SERVICE_CLIENT_SECRET_FILE", String::new()),
        ]
    }

    /// The caller's environment with what every service shares and then `pairs` over it.
    fn with(&self, pairs: &[(&str, String)]) -> Env {
        let mut env = self.env.clone();
        env.set("ECOM_JWKS_URL", format!("{}/.well-known/jwks.json", self.url_of("auth-service")));
        // One address for five services in one process: the gateway's metrics listener serves
        // the metrics of all of them.
        env.set("ECOM_METRICS_BIND_ADDR", "");
        for (key, value) in pairs {
            env.set(*key, value.clone());
        }
        env
    }
}

/// The six services' settings, ready to run.
struct Services {
    auth: auth_service::Settings,
    product: product_service::Settings,
    inventory: inventory_service::Settings,
    order: order_service::Settings,
    notification: notification_service::Settings,
    gateway: api_gateway::Settings,
}

impl Services {
    fn configure(dev: &DevEnv<'_>, admin: &Admin, bus: &InProcessBus) -> anyhow::Result<Self> {
        let [secret, secret_file] = dev.service_client();
        let mut auth = auth_service::Settings::from_env(&dev.with(&[
            ("DATABASE_URL", dev.sqlite("auth.db")),
            ("ECOM_ADMIN_EMAIL", admin.email.clone()),
            ("ECOM_ADMIN_PASSWORD", admin.password.clone()),
            ("ECOM_JWT_SIGNING_KEY_FILE", dev.path(Path::new("keys").join("jwt-signing-key.pem"))),
            ("ECOM_JWT_GENERATE_KEY", "true".to_owned()),
            secret.clone(),
            secret_file.clone(),
        ]))?;
        if let Some(settings) = auth.admin.as_mut() {
            settings.password_hash = admin.password_hash.clone().map(Into::into);
        }
        let mut order = order_service::Settings::from_env(&dev.with(&[
            ("DATABASE_URL", dev.sqlite("orders.db")),
            ("ECOM_PRODUCT_URL", dev.url_of("product-service")),
            ("ECOM_INVENTORY_URL", dev.url_of("inventory-service")),
            ("ECOM_AUTH_URL", dev.url_of("auth-service")),
            secret,
            secret_file,
        ]))?;
        order.bus = BusConfig::InProcess(bus.clone());
        let mut notification = notification_service::Settings::from_env(
            &dev.with(&[("DATABASE_URL", dev.sqlite("notifications.db")), ("ECOM_MAIL_DIR", dev.path("mail"))]),
        )?;
        notification.bus = BusConfig::InProcess(bus.clone());
        Ok(Self {
            auth,
            product: product_service::Settings::from_env(&dev.with(&[("DATABASE_URL", dev.sqlite(CATALOG_DB))]))?,
            inventory: inventory_service::Settings::from_env(
                &dev.with(&[("DATABASE_URL", dev.sqlite("inventory.db"))]),
            )?,
            order,
            notification,
            gateway: api_gateway::Settings::from_env(&dev.with(&[
                ("ECOM_AUTH_URL", dev.url_of("auth-service")),
                ("ECOM_PRODUCT_URL", dev.url_of("product-service")),
                ("ECOM_ORDER_URL", dev.url_of("order-service")),
                ("ECOM_INVENTORY_URL", dev.url_of("inventory-service")),
            ]))?,
        })
    }

    /// Starts each service on its listener; they stop when `shutdown` is cancelled.
    fn spawn(self, listeners: Listeners, shutdown: &CancellationToken) -> JoinSet<(&'static str, anyhow::Result<()>)> {
        let Self { auth, product, inventory, order, notification, gateway } = self;
        let l = listeners;
        let mut tasks = JoinSet::new();
        let token = || shutdown.clone();
        tasks.spawn(named("auth-service", auth_service::run(auth, l.auth, token())));
        tasks.spawn(named("product-service", product_service::run(product, l.product, token())));
        tasks.spawn(named("inventory-service", inventory_service::run(inventory, l.inventory, token())));
        tasks.spawn(named("order-service", order_service::run(order, l.order, token())));
        tasks.spawn(named("notification-service", notification_service::run(notification, l.notification, token())));
        let gateway_listeners = common::server::Listeners { api: l.gateway, metrics: Some(l.gateway_metrics) };
        tasks.spawn(named("api-gateway", api_gateway::run_on(gateway, gateway_listeners, token())));
        tasks
    }
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
        let url = format!("http://{}/health/ready", reachable(*addr));
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

/// What `ecom dev` was asked for on its command line.
#[derive(Debug, Clone)]
pub struct Options {
    pub data_dir: PathBuf,
    /// The address every listener binds.
    pub bind: IpAddr,
    pub ports: Ports,
    /// Load the demo catalog on the first start of `data_dir`.
    pub demo: bool,
}

/// `ecom dev`: runs until Ctrl-C or SIGTERM.
pub async fn main(options: Options) -> anyhow::Result<()> {
    let Options { data_dir, bind, ports, demo } = options;
    let started = Instant::now();
    common::install_crypto_provider();
    let env = Env::from_process();
    let mut telemetry_settings = TelemetrySettings::from_env(&env, "ecom")?;
    if env.raw("ECOM_LOG_FORMAT").is_none() {
        telemetry_settings.log_format = LogFormat::Pretty;
    }
    let guard = telemetry::init(&telemetry_settings)?;
    let shutdown = common::shutdown::on_signal();
    // A data directory without a catalog database has never been started: the demo
    // catalog goes in once, and a later start leaves the catalog as its users left it.
    let fresh = !data_dir.join(CATALOG_DB).exists();
    let result = async {
        let platform = start(&env, &data_dir, bind, ports, shutdown.clone()).await?;
        let prepared = tokio::select! {
            prepared = prepare(&platform, demo, fresh) => prepared.map(Some),
            () = shutdown.cancelled() => Ok(None),
        };
        match prepared {
            Ok(Some(catalog)) => print_banner(&platform, &data_dir, catalog, started.elapsed()),
            Ok(None) => {}
            Err(err) => {
                shutdown.cancel();
                let _ = platform.wait().await;
                return Err(err);
            }
        }
        platform.wait().await
    }
    .await;
    guard.shutdown();
    result
}

/// Waits until every service is ready, then loads the demo catalog into a fresh
/// data directory unless `--no-demo` said otherwise.
async fn prepare(platform: &Platform, demo: bool, fresh: bool) -> anyhow::Result<Catalog> {
    wait_ready(&platform.listeners, Duration::from_secs(30)).await?;
    if !demo {
        return Ok(Catalog::Skipped);
    }
    if !fresh {
        return Ok(Catalog::Kept);
    }
    let loading = Instant::now();
    let loaded = crate::demo::load(reachable(platform.gateway), &platform.admin.email, &platform.admin.password)
        .await
        .context("loading the demo catalog (start with --no-demo to skip it)")?;
    Ok(Catalog::Loaded(loaded.created, loading.elapsed()))
}

/// What happened to the demo catalog at this start.
#[derive(Debug, Clone, Copy)]
enum Catalog {
    /// A fresh data directory: this many products were created, in this long.
    Loaded(usize, Duration),
    /// The data directory had been started before; its catalog is as it was.
    Kept,
    /// `--no-demo`.
    Skipped,
}

fn print_banner(platform: &Platform, data_dir: &Path, catalog: Catalog, elapsed: Duration) {
    println!();
    println!("  ecom is ready in {} ms", elapsed.as_millis());
    println!();
    println!("  gateway        http://{}", platform.gateway);
    if platform.gateway.ip().is_unspecified() {
        println!("                 (every interface; from this machine http://{})", reachable(platform.gateway));
    }
    println!("  API docs       http://{}/api/docs", platform.gateway);
    println!("  metrics        http://{}/metrics", platform.gateway_metrics);
    for (service, addr) in &platform.listeners[1..] {
        println!("  {service:<20} http://{addr}");
    }
    println!("  data           {}", data_dir.display());
    println!("  mail           {}", data_dir.join("mail").display());
    match catalog {
        Catalog::Loaded(created, took) => println!(
            "  demo catalog   {created} products with stock, loaded in {} ms (first start; --no-demo skips it)",
            took.as_millis()
        ),
        Catalog::Kept => println!("  catalog        as the data directory keeps it"),
        Catalog::Skipped => println!("  catalog        no demo catalog (--no-demo)"),
    }
    println!("  admin          {}", platform.admin.email);
    if let Some(file) = &platform.admin.password_file {
        let how = if platform.admin.generated { "generated, kept in" } else { "kept in" };
        println!("  admin password {}  ({how} {})", platform.admin.password, file.display());
    }
    println!();
    println!("  Ctrl-C stops it; the data stays for the next start.");
    println!();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_base_moves_the_default_layout_and_one_too_high_is_refused() {
        let ports = Ports::from_base(18080).unwrap();
        assert_eq!(
            [ports.gateway, ports.auth, ports.product, ports.order, ports.inventory, ports.notification],
            [18080, 18081, 18082, 18083, 18084, 18085]
        );
        assert_eq!(ports.gateway_metrics, 19080);
        let default = Ports::from_base(api_gateway::DEFAULT_PORT).unwrap();
        assert_eq!((default.gateway, default.auth, default.gateway_metrics), (8080, 8081, 9080));
        let err = Ports::from_base(65000).unwrap_err();
        assert!(err.to_string().contains("--port-base"), "{err}");
        assert!(Ports::from_base(0).is_err(), "0 is --any-ports");
    }

    #[test]
    fn a_listener_on_every_address_is_reached_through_loopback() {
        let any: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        assert_eq!(reachable(any), "127.0.0.1:8080".parse().unwrap());
        let any6: SocketAddr = "[::]:8080".parse().unwrap();
        assert_eq!(reachable(any6), "[::1]:8080".parse().unwrap());
        let one: SocketAddr = "127.0.0.2:8080".parse().unwrap();
        assert_eq!(reachable(one), one);
    }
}
