//! Fault injection on the real stack. Careful clients place and cancel orders through
//! the gateway while order-, inventory- and notification-service are SIGKILLed and
//! restarted and the broker is stopped for a while. Two replicas each of order- and
//! inventory-service share their databases behind balancers, as the prod overlay runs
//! them, every service its own process. Afterwards an oracle holds what each client was
//! told against the databases and the mailbox, and a probe's record against the
//! availability budget.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::test_util::{
    ChildService, TcpBalancer, TcpProxy, eventually, fresh_mysql_database, kafka_group_settles, mailpit_subjects,
    unique_name,
};
use serde_json::{Value, json};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::real_stack::{Backends, backends};
use crate::{BROKER, BrokerStopped};

const ECOM: &str = env!("CARGO_BIN_EXE_ecom");
const ADMIN: (&str, &str) = ("admin@example.com", "admin-password-1");
const PROBE_SKU: &str = "FI-PROBE";
/// Initial stock. FI-HOT sells out early, so refusals and the releases of cancellations
/// race with placements; the probe has a sku of its own that never runs out.
const STOCK: [(&str, i64); 4] = [("FI-MUG", 1_000_000), ("FI-PEN", 1_000_000), ("FI-HOT", 300), (PROBE_SKU, 1_000_000)];
const CUSTOMERS: usize = 4;
/// A careful client places at most one order per tick.
const PACE: Duration = Duration::from_millis(100);
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// docs/architecture.md, "Failure isolation": a fault costs the requests that met it,
/// and only for seconds.
const MAX_OUTAGE: Duration = Duration::from_secs(15);
/// One attempt of a client: longer than the gateway's upstream timeout (10 s).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client keeps asking about one key during the run before it moves on;
/// longer than an idempotency key's lease.
const KEY_BUDGET: Duration = Duration::from_secs(40);
/// How long asking again about every answer the run left open may take, all together.
const RECONCILE_BUDGET: Duration = Duration::from_secs(90);
/// How long the relay, the sweeper and the consumer may take to catch up after the run.
const SETTLE_BUDGET: Duration = Duration::from_secs(90);

/// The platform, one `ecom serve` process per service.
struct Platform {
    gateway: ChildService,
    notification: ChildService,
    orders: [ChildService; 2],
    inventories: [ChildService; 2],
    order_balancer: TcpBalancer,
    inventory_balancer: TcpBalancer,
    _auth: ChildService,
    _products: ChildService,
    order_db: url::Url,
    inventory_db: url::Url,
    notification_db: url::Url,
    /// notification-service's way to the mail server, held while it is killed.
    smtp_proxy: TcpProxy,
    topic: String,
    group: String,
}

async fn serve(service: &str, log: &str, env: &[(&str, String)], logs: &Path) -> ChildService {
    ChildService::start_with_args(ECOM, &["serve", service], env, &logs.join(format!("{log}.log"))).await
}

impl Platform {
    async fn start(b: &Backends, logs: &Path) -> Self {
        let (topic, group) = (unique_name("orders-faults"), unique_name("notification-faults"));
        let service_secret = ("ECOM_SERVICE_CLIENT_SECRET", test_support::random_secret());
        let auth_env = [
            ("DATABASE_URL", fresh_mysql_database(&b.mysql).await.to_string()),
            ("ECOM_ADMIN_EMAIL", ADMIN.0.to_owned()),
            ("ECOM_ADMIN_PASSWORD", ADMIN.1.to_owned()),
            ("ECOM_JWT_SIGNING_KEY_FILE", logs.join("jwt-signing-key.pem").display().to_string()),
            ("ECOM_JWT_GENERATE_KEY", "true".to_owned()),
            service_secret.clone(),
        ];
        let auth = serve("auth-service", "auth-service", &auth_env, logs).await;
        let jwks = ("ECOM_JWKS_URL", auth.url("/.well-known/jwks.json"));
        let catalog = format!("{}/{}", b.mongodb.trim_end_matches('/'), unique_name("products"));
        let products =
            serve("product-service", "product-service", &[("DATABASE_URL", catalog), jwks.clone()], logs).await;

        // Replicas start together, as a Deployment's pods do: both migrate at once.
        let inventory_db = fresh_mysql_database(&b.mysql).await;
        let inventory_env = [("DATABASE_URL", inventory_db.to_string()), jwks.clone()];
        let (inventory_1, inventory_2) = tokio::join!(
            serve("inventory-service", "inventory-service-1", &inventory_env, logs),
            serve("inventory-service", "inventory-service-2", &inventory_env, logs),
        );
        let inventory_balancer = TcpBalancer::start(&[inventory_1.addr(), inventory_2.addr()]).await;
        let order_db = fresh_mysql_database(&b.mysql).await;
        let order_env = [
            ("DATABASE_URL", order_db.to_string()),
            ("ECOM_KAFKA_BROKERS", b.brokers.clone()),
            ("ECOM_ORDERS_TOPIC", topic.clone()),
            ("ECOM_PRODUCT_URL", products.url("")),
            ("ECOM_INVENTORY_URL", inventory_balancer.url("")),
            // Orders a crash left PENDING are settled within the run, not a minute later.
            ("ECOM_SWEEP_INTERVAL_MS", "1000".to_owned()),
            ("ECOM_SWEEP_PENDING_AFTER_MS", "20000".to_owned()),
            ("ECOM_AUTH_URL", auth.url("")),
            service_secret.clone(),
            jwks.clone(),
        ];
        let (order_1, order_2) = tokio::join!(
            serve("order-service", "order-service-1", &order_env, logs),
            serve("order-service", "order-service-2", &order_env, logs),
        );
        let order_balancer = TcpBalancer::start(&[order_1.addr(), order_2.addr()]).await;

        let smtp: url::Url = b.smtp.parse().expect("ECOM_TEST_SMTP_URL is a URL");
        let smtp = format!("{}:{}", smtp.host_str().unwrap_or("127.0.0.1"), smtp.port().unwrap_or(25));
        let smtp_proxy = TcpProxy::start(smtp.parse().expect("the mail server's address")).await;
        let notification_db = fresh_mysql_database(&b.mysql).await;
        let notification_env = [
            ("DATABASE_URL", notification_db.to_string()),
            ("ECOM_KAFKA_BROKERS", b.brokers.clone()),
            ("ECOM_ORDERS_TOPIC", topic.clone()),
            ("ECOM_KAFKA_GROUP", group.clone()),
            ("ECOM_SMTP_URL", format!("smtp://{}", smtp_proxy.addr)),
        ];
        let notification = serve("notification-service", "notification-service", &notification_env, logs).await;
        let gateway_env = [
            ("ECOM_AUTH_URL", auth.url("")),
            ("ECOM_PRODUCT_URL", products.url("")),
            ("ECOM_ORDER_URL", order_balancer.url("")),
            ("ECOM_INVENTORY_URL", inventory_balancer.url("")),
            // Every client here shares one address; its rate budget is not what is under test.
            ("ECOM_RATE_LIMIT_PER_SECOND", "10000".to_owned()),
            ("ECOM_RATE_LIMIT_AUTH_PER_MINUTE", "10000".to_owned()),
        ];
        let gateway = serve("api-gateway", "api-gateway", &gateway_env, logs).await;
        Self {
            gateway,
            notification,
            orders: [order_1, order_2],
            inventories: [inventory_1, inventory_2],
            order_balancer,
            inventory_balancer,
            _auth: auth,
            _products: products,
            order_db,
            inventory_db,
            notification_db,
            smtp_proxy,
            topic,
            group,
        }
    }
}

/// What the gateway answered.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    retry_after: Option<Duration>,
    body: Value,
}

impl Answer {
    fn problem_type(&self) -> &str {
        self.body["type"].as_str().unwrap_or_default()
    }

    fn is(&self, status: u16, problem: &str) -> bool {
        self.status == status && self.problem_type().ends_with(&format!("/problems/{problem}"))
    }

    fn summary(&self) -> String {
        let detail = self.body["detail"].as_str().or(self.body["title"].as_str()).unwrap_or_default();
        format!("{} {} {detail}", self.status, self.problem_type())
    }
}

/// A client of the gateway; `Err` is an attempt that got no answer (connection lost,
/// timed out).
#[derive(Debug, Clone)]
struct Api {
    http: reqwest::Client,
    gateway: String,
}

impl Api {
    fn new(gateway: &str) -> Self {
        let http = reqwest::Client::builder().timeout(ATTEMPT_TIMEOUT).build().expect("an HTTP client");
        Self { http, gateway: gateway.trim_end_matches('/').to_owned() }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<Answer, String> {
        let response = request.send().await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse().ok());
        let bytes = response.bytes().await.map_err(|e| e.to_string())?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(Answer { status, retry_after: retry_after.map(Duration::from_secs), body })
    }

    async fn post(&self, path: &str, token: Option<&str>, body: &Value) -> Result<Answer, String> {
        let mut request = self.http.post(format!("{}{path}", self.gateway)).json(body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        self.send(request).await
    }

    async fn get(&self, path: &str, token: &str) -> Result<Answer, String> {
        self.send(self.http.get(format!("{}{path}", self.gateway)).bearer_auth(token)).await
    }

    async fn place(&self, token: &str, key: &str, lines: &Value) -> Result<Answer, String> {
        let request = self
            .http
            .post(format!("{}/api/orders", self.gateway))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .json(&json!({ "lines": lines }));
        self.send(request).await
    }

    async fn cancel(&self, token: &str, order_id: &str) -> Result<Answer, String> {
        self.post(&format!("/api/orders/{order_id}/cancel"), Some(token), &Value::Null).await
    }

    /// A new account's (email, access token).
    async fn customer(&self, name: &str) -> Customer {
        let email = format!("{}@example.com", unique_name("faults"));
        let account = json!({"email": email, "password": "customer-password", "name": name});
        let registered = self.post("/api/auth/register", None, &account).await.expect("register answers");
        assert_eq!(registered.status, 201, "{:?}", registered.body);
        let token = self.login(&email, "customer-password").await;
        Customer { email, token, ledger: Ledger::default() }
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let tokens = self.post("/api/auth/login", None, &json!({"email": email, "password": password})).await;
        let tokens = tokens.expect("login answers");
        tokens.body["access_token"].as_str().expect("an access token").to_owned()
    }
}

/// How long a careful client waits before it asks again; `None` when `reply` is the answer.
fn retry_pause(reply: &Result<Answer, String>, backoff: Duration) -> Option<Duration> {
    match reply {
        Err(_) => Some(backoff),
        Ok(a) if a.status >= 500 || a.status == 429 => Some(a.retry_after.unwrap_or(backoff)),
        Ok(a) if a.is(409, "idempotency-key-in-use") => Some(a.retry_after.unwrap_or(backoff)),
        Ok(_) => None,
    }
}

/// Why clients asked again, counted for the report.
#[derive(Debug, Default)]
struct Retries {
    lost: AtomicUsize,
    unavailable: AtomicUsize,
    key_in_use: AtomicUsize,
}

impl Retries {
    fn count(&self, reply: &Result<Answer, String>) {
        let counter = match reply {
            Err(_) => &self.lost,
            Ok(a) if a.status == 409 => &self.key_in_use,
            Ok(_) => &self.unavailable,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Asks until the answer is final, honouring `Retry-After`, else backing off from 100 ms
/// doubling to 2 s. `None` when `budget` runs out or `stop` fires first.
async fn until_answered<F, Fut>(
    budget: Duration,
    stop: &CancellationToken,
    retries: &Retries,
    mut ask: F,
) -> Option<Answer>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Answer, String>>,
{
    let until = Instant::now() + budget;
    let mut backoff = Duration::from_millis(100);
    loop {
        let reply = ask().await;
        let Some(pause) = retry_pause(&reply, backoff) else { return reply.ok() };
        retries.count(&reply);
        backoff = (backoff * 2).min(Duration::from_secs(2));
        if Instant::now() + pause > until {
            return None;
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

/// One key and the final answer the client got for it (`None`: not yet).
#[derive(Debug, Clone)]
struct Placement {
    key: String,
    lines: Value,
    answer: Option<Answer>,
}

impl Placement {
    fn new(lines: Value) -> Self {
        Self { key: uuid::Uuid::new_v4().to_string(), lines, answer: None }
    }

    /// The order the client was told it placed.
    fn order_id(&self) -> Option<&str> {
        self.answer.as_ref().filter(|a| a.status == 201)?.body["id"].as_str()
    }
}

#[derive(Debug, Clone)]
struct Cancellation {
    order_id: String,
    answer: Option<Answer>,
}

/// Everything one client asked and was told.
#[derive(Debug, Default)]
struct Ledger {
    placements: Vec<Placement>,
    cancellations: Vec<Cancellation>,
}

impl Ledger {
    /// The state the client believes each of its orders is in.
    fn believed(&self) -> HashMap<String, String> {
        let mut states: HashMap<String, String> = self
            .placements
            .iter()
            .filter_map(Placement::order_id)
            .map(|id| (id.to_owned(), "CONFIRMED".into()))
            .collect();
        for cancellation in &self.cancellations {
            if let Some(answer) = cancellation.answer.as_ref().filter(|a| a.status == 200) {
                let state = answer.body["status"].as_str().unwrap_or("CANCELLED");
                states.insert(cancellation.order_id.clone(), state.to_owned());
            }
        }
        states
    }
}

#[derive(Debug)]
struct Customer {
    email: String,
    token: String,
    ledger: Ledger,
}

/// One to three lines over the customers' skus, one to three units each.
fn random_lines() -> Value {
    let mut lines: Vec<Value> = [("FI-MUG", 0.6), ("FI-PEN", 0.6), ("FI-HOT", 0.25)]
        .into_iter()
        .filter(|(_, p)| rand::random_bool(*p))
        .map(|(sku, _)| json!({"sku": sku, "quantity": rand::random_range(1..=3)}))
        .collect();
    if lines.is_empty() {
        lines.push(json!({"sku": "FI-MUG", "quantity": 1}));
    }
    Value::Array(lines)
}

/// Places orders with a key each, asking again about a key until it has a final answer,
/// and cancels every fifth order placed, asking again the same way.
async fn careful_client(api: Api, mut customer: Customer, stop: CancellationToken, retries: Arc<Retries>) -> Customer {
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut placed = 0usize;
    while !stop.is_cancelled() {
        pace.tick().await;
        let mut placement = Placement::new(random_lines());
        let (token, key, lines) = (&customer.token, &placement.key, &placement.lines);
        placement.answer = until_answered(KEY_BUDGET, &stop, &retries, || api.place(token, key, lines)).await;
        let order_id = placement.order_id().map(str::to_owned);
        customer.ledger.placements.push(placement);
        let Some(order_id) = order_id else { continue };
        placed += 1;
        if placed.is_multiple_of(5) {
            let token = &customer.token;
            let answer = until_answered(KEY_BUDGET, &stop, &retries, || api.cancel(token, &order_id)).await;
            customer.ledger.cancellations.push(Cancellation { order_id, answer });
        }
    }
    customer
}

/// When the probe's orders succeeded, as they are answered.
type Successes = Arc<std::sync::Mutex<Vec<Instant>>>;

/// A client placing a one-unit order every `PROBE_EVERY` with a fresh key, each attempt
/// on its own so a slow one does not delay the next. It does not retry while it probes;
/// what it was not answered is reconciled afterwards like everyone's.
async fn probe(api: Api, mut customer: Customer, stop: CancellationToken, successes: Successes) -> Customer {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut attempts = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            _ = tick.tick() => {}
        }
        let (api, token, successes) = (api.clone(), customer.token.clone(), successes.clone());
        attempts.spawn(async move {
            let mut placement = Placement::new(json!([{"sku": PROBE_SKU, "quantity": 1}]));
            let reply = api.place(&token, &placement.key, &placement.lines).await;
            let answered = Instant::now();
            if retry_pause(&reply, Duration::ZERO).is_none() {
                placement.answer = reply.ok();
            }
            if placement.order_id().is_some() {
                successes.lock().expect("the probe's record").push(answered);
            }
            placement
        });
    }
    while let Some(attempt) = attempts.join_next().await {
        customer.ledger.placements.push(attempt.expect("a probe attempt"));
    }
    customer
}

#[derive(Debug)]
struct Fault {
    name: &'static str,
    injected: Instant,
    /// When the service was ready again, or the broker back.
    over: Instant,
}

/// The service of which two replicas run behind a balancer.
#[derive(Debug, Clone, Copy)]
enum Tier {
    Order,
    Inventory,
}

/// A replica killed during the run.
struct Kill {
    /// Seconds into the run.
    at: u64,
    name: &'static str,
    tier: Tier,
    slot: usize,
    /// See [`Victim`].
    during: &'static str,
    calling: Option<(Tier, &'static str)>,
}

const REPLICA_KILLS: [Kill; 3] = [
    Kill {
        at: 15,
        name: "order-service replica 1 killed",
        tier: Tier::Order,
        slot: 0,
        during: "POST /api/orders HTTP",
        calling: None,
    },
    Kill {
        at: 25,
        name: "inventory-service replica 2 killed",
        tier: Tier::Inventory,
        slot: 1,
        during: "POST /internal/reservations",
        calling: None,
    },
    // This time in a cancellation that committed and is releasing its stock: the
    // answer is lost, so its client asks again about an order already cancelled.
    Kill {
        at: 35,
        name: "order-service replica 2 killed",
        tier: Tier::Order,
        slot: 1,
        during: "/cancel HTTP",
        calling: Some((Tier::Inventory, "DELETE /internal/reservations/")),
    },
];

impl Platform {
    fn victim(&mut self, kill: &Kill) -> Victim<'_> {
        let Self { orders, inventories, order_balancer, inventory_balancer, .. } = self;
        let balancer = |tier| match tier {
            Tier::Order => &*order_balancer,
            Tier::Inventory => &*inventory_balancer,
        };
        let replicas = match kill.tier {
            Tier::Order => orders,
            Tier::Inventory => inventories,
        };
        Victim {
            name: kill.name,
            replica: &mut replicas[kill.slot],
            balancer: balancer(kill.tier),
            slot: kill.slot,
            during: kill.during,
            calling: kill.calling.map(|(tier, request)| (balancer(tier), request)),
        }
    }
}

/// A replica of a pair behind a balancer, and the moment it should be killed in.
struct Victim<'a> {
    name: &'static str,
    replica: &'a mut ChildService,
    balancer: &'a TcpBalancer,
    slot: usize,
    /// Part of the request line of a request the replica should die holding.
    during: &'static str,
    /// And a call of that request to a service behind another balancer, in flight at
    /// the same moment (the request is past its first steps).
    calling: Option<(&'a TcpBalancer, &'static str)>,
}

impl Victim<'_> {
    /// Waits up to `within` for the moment; whether it came.
    async fn moment(&self, within: Duration) -> bool {
        let until = Instant::now() + within;
        // Requests live for milliseconds: look often.
        let mut look = tokio::time::interval(Duration::from_millis(2));
        while Instant::now() < until {
            look.tick().await;
            let held = self.balancer.requests_in_flight(Some(self.slot), self.during) > 0;
            if held && self.calling.is_none_or(|(other, call)| other.requests_in_flight(None, call) > 0) {
                return true;
            }
        }
        false
    }
}

/// SIGKILLs a replica at its moment (or after 10 s at any other), restarts it and
/// points its balancer slot at the new process.
async fn kill_replica(victim: Victim<'_>) -> Fault {
    if !victim.moment(Duration::from_secs(10)).await {
        eprintln!("fault injection: {}: its moment did not come within 10 s, killed anyway", victim.name);
    }
    let Victim { name, replica, balancer, slot, .. } = victim;
    let injected = Instant::now();
    replica.kill_and_restart().await;
    balancer.set_backend(slot, replica.addr());
    Fault { name, injected, over: Instant::now() }
}

async fn stop_broker_for(name: &'static str, outage: Duration) -> Fault {
    let injected = Instant::now();
    let stopped = tokio::task::spawn_blocking(BrokerStopped::new).await.expect("stop the broker");
    tokio::time::sleep_until(injected + outage).await;
    tokio::task::spawn_blocking(move || drop(stopped)).await.expect("start the broker");
    Fault { name, injected, over: Instant::now() }
}

/// Where the customers' emails arrive.
struct Mailbox {
    mailpit: String,
    addresses: Vec<String>,
}

impl Mailbox {
    /// How many emails the mail server has accepted for the customers.
    async fn accepted(&self) -> usize {
        let mut accepted = 0;
        for address in &self.addresses {
            accepted += mailpit_subjects(&self.mailpit, address).await.len();
        }
        accepted
    }
}

/// How many events notification-service has recorded as emailed.
async fn recorded(notifications: &sqlx::MySqlPool) -> usize {
    usize::try_from(count(notifications, "SELECT COUNT(*) FROM processed_events").await).unwrap_or_default()
}

/// SIGKILLs notification-service while it waits on the mail server and no email sits
/// between the server's acceptance and the service's record of it. That window, in
/// which a crash sends an email twice, is the one no consumer can close (see the
/// notification consumer in docs/architecture.md); anywhere else a duplicate is a
/// defect. Also returns a task that measures when the next email was recorded.
async fn kill_notification(platform: &mut Platform, mail: &Mailbox) -> (Fault, JoinHandle<Option<Duration>>) {
    let notifications = sqlx::MySqlPool::connect(platform.notification_db.as_str()).await.expect("its database");
    let proxy = &platform.smtp_proxy;
    proxy.hold();
    let quiet = eventually(Duration::from_secs(10), || async {
        if !proxy.client_waiting() || proxy.request_unanswered() {
            return None;
        }
        (recorded(&notifications).await == mail.accepted().await).then_some(())
    })
    .await;
    if quiet.is_none() {
        eprintln!("fault injection: notification-service was never quiet at the held mail server; killed anyway");
    }
    let injected = Instant::now();
    let before = recorded(&notifications).await;
    platform
        .notification
        .kill_and_restart_after(async {
            // Drop the held bytes with their connections before letting anything through.
            proxy.cut();
            let dropped = eventually(Duration::from_secs(10), || async { (!proxy.client_waiting()).then_some(()) });
            assert!(dropped.await.is_some(), "the held SMTP connections were not dropped");
            proxy.release();
            proxy.restore();
        })
        .await;
    let over = Instant::now();
    let resumed = tokio::spawn(async move {
        let next =
            eventually(Duration::from_secs(120), || async { (recorded(&notifications).await > before).then_some(()) });
        next.await.map(|()| injected.elapsed())
    });
    (Fault { name: "notification-service killed", injected, over }, resumed)
}

/// The faults, ten seconds apart from `start + 5 s`; then the broker, long after the
/// killed consumer's group session (10 s) has run out, so the broker's restart does not
/// start that wait over again.
async fn inject_faults(
    platform: &mut Platform,
    mail: &Mailbox,
    start: Instant,
) -> (Vec<Fault>, JoinHandle<Option<Duration>>) {
    let at = |secs: u64| tokio::time::sleep_until(start + Duration::from_secs(secs));
    let mut faults = Vec::new();
    at(5).await;
    let (fault, emails_resumed) = kill_notification(platform, mail).await;
    faults.push(fault);
    for kill in &REPLICA_KILLS {
        at(kill.at).await;
        faults.push(kill_replica(platform.victim(kill)).await);
    }
    at(45).await;
    faults.push(stop_broker_for("Kafka stopped 15 s", Duration::from_secs(15)).await);
    (faults, emails_resumed)
}

/// Asks again, with the same key and body, about every answer the run left open.
/// Returns how many got their answer.
async fn reconcile(gateway: &str, customers: &mut [Customer], retries: &Arc<Retries>) -> usize {
    enum Open {
        Placement(usize),
        Cancellation(usize),
    }
    let until = Instant::now() + RECONCILE_BUDGET;
    let mut asks = JoinSet::new();
    for (c, customer) in customers.iter().enumerate() {
        let open_placements = customer.ledger.placements.iter().enumerate().filter(|(_, p)| p.answer.is_none());
        for (i, placement) in open_placements {
            let (api, token, retries, placement) =
                (Api::new(gateway), customer.token.clone(), retries.clone(), placement.clone());
            asks.spawn(async move {
                let ask = || api.place(&token, &placement.key, &placement.lines);
                let budget = until.saturating_duration_since(Instant::now());
                (c, Open::Placement(i), until_answered(budget, &CancellationToken::new(), &retries, ask).await)
            });
        }
        let open_cancellations = customer.ledger.cancellations.iter().enumerate().filter(|(_, p)| p.answer.is_none());
        for (i, cancellation) in open_cancellations {
            let (api, token, retries, id) =
                (Api::new(gateway), customer.token.clone(), retries.clone(), cancellation.order_id.clone());
            asks.spawn(async move {
                let budget = until.saturating_duration_since(Instant::now());
                let ask = || api.cancel(&token, &id);
                (c, Open::Cancellation(i), until_answered(budget, &CancellationToken::new(), &retries, ask).await)
            });
        }
    }
    let mut answered = 0;
    while let Some(ask) = asks.join_next().await {
        let (c, open, answer) = ask.expect("a reconciliation");
        answered += usize::from(answer.is_some());
        match open {
            Open::Placement(i) => customers[c].ledger.placements[i].answer = answer,
            Open::Cancellation(i) => customers[c].ledger.cancellations[i].answer = answer,
        }
    }
    answered
}

async fn count(pool: &sqlx::MySqlPool, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(pool).await.expect("a count");
    n
}

/// Waits until every event is relayed and consumed and the sweeper has settled every
/// order: from then on no email, release or rollback is still on its way.
async fn settle(b: &Backends, platform: &Platform, orders: &sqlx::MySqlPool) -> Vec<String> {
    let mut failures = Vec::new();
    let began = Instant::now();
    let settled = eventually(SETTLE_BUDGET, || async {
        let unsettled = count(orders, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").await
            + count(orders, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING' OR release_pending").await;
        (unsettled == 0).then_some(())
    })
    .await;
    let relayed = Instant::now();
    if settled.is_none() {
        let unsent = count(orders, "SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL").await;
        let pending = count(orders, "SELECT COUNT(*) FROM orders WHERE status = 'PENDING'").await;
        let releases = count(orders, "SELECT COUNT(*) FROM orders WHERE release_pending").await;
        failures.push(format!(
            "not settled {SETTLE_BUDGET:?} after the run: {unsent} events unsent, {pending} orders PENDING, \
             {releases} releases pending"
        ));
    }
    let consumed = kafka_group_settles(&b.brokers, &platform.group, &platform.topic, SETTLE_BUDGET).await;
    if !consumed {
        failures.push(format!("notification-service did not catch up with the topic within {SETTLE_BUDGET:?}"));
    }
    eprintln!(
        "fault injection: outbox relayed and orders settled {:.1} s after the run, events consumed {:.1} s after",
        (relayed - began).as_secs_f64(),
        began.elapsed().as_secs_f64()
    );
    failures
}

/// Lists at most `limit` items of a failure category, with how many there are.
fn report(failures: &mut Vec<String>, what: &str, items: &[String]) {
    const LIMIT: usize = 8;
    if items.is_empty() {
        return;
    }
    let shown = items.iter().take(LIMIT).map(|i| format!("\n    {i}")).collect::<String>();
    let more = if items.len() > LIMIT { format!("\n    ... and {} more", items.len() - LIMIT) } else { String::new() };
    failures.push(format!("{what}: {}{shown}{more}", items.len()));
}

/// Every key and every cancellation has a final answer, and it is one the API promises.
fn check_answers(customers: &[Customer], failures: &mut Vec<String>) {
    let mut open = Vec::new();
    let mut unexpected = Vec::new();
    for customer in customers {
        for p in &customer.ledger.placements {
            match &p.answer {
                None => open.push(format!("placement with key {}", p.key)),
                Some(a) if a.status == 201 || a.is(409, "out-of-stock") => {}
                Some(a) => unexpected.push(format!("placement with key {}: {}", p.key, a.summary())),
            }
        }
        for c in &customer.ledger.cancellations {
            match &c.answer {
                None => open.push(format!("cancellation of {}", c.order_id)),
                Some(a) if a.status == 200 => {}
                Some(a) => unexpected.push(format!("cancellation of {}: {}", c.order_id, a.summary())),
            }
        }
    }
    report(failures, "requests still unanswered after reconciling", &open);
    report(failures, "final answers a careful client cannot act on", &unexpected);
}

/// Every order a client was told about is in the state it was told (GET each one).
async fn check_states(api: &Api, customers: &[Customer], failures: &mut Vec<String>) {
    let mut reads = JoinSet::new();
    for customer in customers {
        let believed: Vec<(String, String)> = customer.ledger.believed().into_iter().collect();
        for chunk in believed.chunks(64) {
            let (api, token, chunk) = (api.clone(), customer.token.clone(), chunk.to_vec());
            reads.spawn(async move {
                let (never, quiet) = (CancellationToken::new(), Retries::default());
                let mut wrong = Vec::new();
                for (id, state) in chunk {
                    let path = format!("/api/orders/{id}");
                    let read = until_answered(Duration::from_secs(30), &never, &quiet, || api.get(&path, &token));
                    let actual = match read.await {
                        Some(a) if a.status == 200 => a.body["status"].as_str().unwrap_or_default().to_owned(),
                        Some(a) => a.summary(),
                        None => "no answer".to_owned(),
                    };
                    if actual != state {
                        wrong.push(format!("order {id}: the client was told {state}, the platform says {actual}"));
                    }
                }
                wrong
            });
        }
    }
    let mut wrong = Vec::new();
    while let Some(read) = reads.join_next().await {
        wrong.extend(read.expect("order reads"));
    }
    report(failures, "orders not in the state their client was told", &wrong);
}

/// Every order of a customer, through the API (newest first, all pages).
async fn listed_orders(api: &Api, token: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let (never, quiet) = (CancellationToken::new(), Retries::default());
    for page in 1.. {
        let path = format!("/api/orders?per_page=100&page={page}");
        let listed = until_answered(Duration::from_secs(30), &never, &quiet, || api.get(&path, token));
        let listed = listed.await.expect("the order list answers");
        let items = listed.body["items"].as_array().cloned().unwrap_or_default();
        ids.extend(items.iter().filter_map(|o| o["id"].as_str().map(str::to_owned)));
        if items.len() < 100 {
            break;
        }
    }
    ids
}

/// No order exists that its client was not told about: per customer through the API,
/// and in the orders database for everyone.
async fn check_unknown_orders(api: &Api, customers: &[Customer], orders: &sqlx::MySqlPool, failures: &mut Vec<String>) {
    let mut unknown = Vec::new();
    let mut missing = Vec::new();
    let mut known = HashSet::new();
    for customer in customers {
        let told: HashSet<String> = customer.ledger.believed().into_keys().collect();
        let listed = listed_orders(api, &customer.token).await;
        unknown.extend(listed.difference(&told).map(|id| format!("order {id} listed for {}", customer.email)));
        missing.extend(told.difference(&listed).map(|id| format!("order {id} of {}", customer.email)));
        known.extend(told);
    }
    let stored: Vec<(String,)> = sqlx::query_as("SELECT id FROM orders WHERE status IN ('CONFIRMED', 'CANCELLED')")
        .fetch_all(orders)
        .await
        .expect("read the orders");
    unknown.extend(
        stored.into_iter().filter(|(id,)| !known.contains(id)).map(|(id,)| format!("order {id} in the database")),
    );
    report(failures, "orders no client was told about", &unknown);
    report(failures, "orders a client was told about that its list lacks", &missing);
}

/// Per sku: available + reserved = the stock set, and reserved = units in confirmed orders.
async fn unbalanced_books(inventory: &sqlx::MySqlPool, orders: &sqlx::MySqlPool) -> Vec<String> {
    let stock: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT sku, CAST(available AS SIGNED), CAST(reserved AS SIGNED) FROM stock")
            .fetch_all(inventory)
            .await
            .expect("read the stock");
    let confirmed: Vec<(String, i64)> = sqlx::query_as(
        "SELECT l.sku, CAST(SUM(l.quantity) AS SIGNED) FROM order_lines l JOIN orders o ON o.id = l.order_id \
         WHERE o.status = 'CONFIRMED' GROUP BY l.sku",
    )
    .fetch_all(orders)
    .await
    .expect("read the confirmed units");
    let confirmed: HashMap<String, i64> = confirmed.into_iter().collect();
    let mut wrong = Vec::new();
    for (sku, set) in STOCK {
        let Some((_, available, reserved)) = stock.iter().find(|(s, ..)| s == sku) else {
            wrong.push(format!("{sku}: no stock row"));
            continue;
        };
        let sold = confirmed.get(sku).copied().unwrap_or(0);
        if available + reserved != set || *reserved != sold {
            wrong.push(format!(
                "{sku}: available {available} + reserved {reserved} (stock set: {set}); {sold} units in confirmed orders"
            ));
        }
    }
    wrong
}

async fn check_books(inventory: &sqlx::MySqlPool, orders: &sqlx::MySqlPool, failures: &mut Vec<String>) {
    let balanced = eventually(Duration::from_secs(30), || async {
        unbalanced_books(inventory, orders).await.is_empty().then_some(())
    })
    .await;
    if balanced.is_none() {
        report(failures, "skus whose books do not balance", &unbalanced_books(inventory, orders).await);
    }
}

/// Exactly one email per confirmation and per cancellation. Returns how many arrived.
async fn check_emails(
    mailpit: &str,
    customers: &[Customer],
    orders: &sqlx::MySqlPool,
    failures: &mut Vec<String>,
) -> usize {
    let stored: Vec<(String, String)> =
        sqlx::query_as("SELECT id, status FROM orders WHERE status IN ('CONFIRMED', 'CANCELLED')")
            .fetch_all(orders)
            .await
            .expect("read the orders");
    let mut expected: HashSet<(String, String)> = HashSet::new();
    for (id, status) in stored {
        if status == "CANCELLED" {
            expected.insert((id.clone(), "cancelled".to_owned()));
        }
        expected.insert((id, "confirmed".to_owned()));
    }
    let received = || async {
        let mut subjects = Vec::new();
        for customer in customers {
            subjects.extend(mailpit_subjects(mailpit, &customer.email).await);
        }
        subjects
    };
    // Every event has been consumed by now; this only bounds Mailpit's own indexing.
    let _ = eventually(Duration::from_secs(30), || async { (received().await.len() >= expected.len()).then_some(()) })
        .await;
    let subjects = received().await;
    let mut per_event: HashMap<(String, String), usize> = HashMap::new();
    for subject in &subjects {
        // "Your order <id> is confirmed" / "Your order <id> was cancelled"
        let words: Vec<&str> = subject.split_whitespace().collect();
        if let (Some(id), Some(kind)) = (words.get(2), words.last()) {
            *per_event.entry(((*id).to_owned(), (*kind).to_owned())).or_default() += 1;
        }
    }
    let missing: Vec<String> = expected
        .iter()
        .filter(|e| !per_event.contains_key(*e))
        .map(|(id, kind)| format!("order {id} {kind}"))
        .collect();
    let twice: Vec<String> = per_event
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|((id, kind), n)| format!("order {id} {kind}: {n} emails"))
        .collect();
    let unexpected: Vec<String> =
        per_event.keys().filter(|e| !expected.contains(*e)).map(|(id, kind)| format!("order {id} {kind}")).collect();
    report(failures, "emails missing", &missing);
    report(failures, "emails sent more than once", &twice);
    report(failures, "emails for events that did not happen", &unexpected);
    subjects.len()
}

/// A stretch of the run the probe's record is judged over.
struct Window {
    name: &'static str,
    from: Instant,
    to: Instant,
}

/// What the probe saw: the longest time without a success overall and within each
/// window, and how soon it succeeded after the last fault was over.
struct Availability {
    longest: Duration,
    per_window: Vec<(&'static str, Duration)>,
    after_last_fault: Option<Duration>,
}

/// Each fault's window runs from its injection to the next one's; the last fault's to
/// the end of the run. Then the reconciliation: clients asking again about what the run
/// left unanswered, while the probe goes on.
fn windows(faults: &[Fault], run_end: Instant, probe_end: Instant) -> Vec<Window> {
    let mut windows: Vec<Window> = faults
        .iter()
        .enumerate()
        .map(|(i, f)| Window {
            name: f.name,
            from: f.injected,
            to: faults.get(i + 1).map_or(run_end, |next| next.injected),
        })
        .collect();
    windows.push(Window { name: "reconciliation", from: run_end, to: probe_end });
    windows
}

fn availability(
    start: Instant,
    end: Instant,
    successes: &[Instant],
    windows: &[Window],
    last_fault: Instant,
) -> Availability {
    let points: Vec<Instant> = std::iter::once(start).chain(successes.iter().copied()).chain([end]).collect();
    let gaps: Vec<(Instant, Instant)> = points.windows(2).map(|w| (w[0], w[1])).collect();
    let longest_within = |from: Instant, to: Instant| {
        gaps.iter().filter(|(a, b)| *a < to && *b > from).map(|(a, b)| *b - *a).max().unwrap_or_default()
    };
    Availability {
        longest: longest_within(start, end),
        per_window: windows.iter().map(|w| (w.name, longest_within(w.from, w.to))).collect(),
        after_last_fault: successes.iter().find(|s| **s >= last_fault).map(|s| *s - last_fault),
    }
}

fn check_availability(seen: &Availability, failures: &mut Vec<String>) {
    if seen.longest > MAX_OUTAGE {
        failures.push(format!(
            "the probe went {:.1} s without a successful order (at most {MAX_OUTAGE:?}); longest gap {}",
            seen.longest.as_secs_f64(),
            seen.gaps()
        ));
    }
    match seen.after_last_fault {
        Some(after) if after <= MAX_OUTAGE => {}
        Some(after) => {
            failures.push(format!("the first order after the last fault succeeded {:.1} s later", after.as_secs_f64()))
        }
        None => failures.push("no order succeeded after the last fault".to_owned()),
    }
}

impl Availability {
    fn gaps(&self) -> String {
        let gaps: Vec<String> =
            self.per_window.iter().map(|(w, gap)| format!("{w} {:.1} s", gap.as_secs_f64())).collect();
        gaps.join(", ")
    }
}

/// The catalog and stock, through the gateway as an admin.
async fn stock_the_shop(api: &Api) {
    let admin = api.login(ADMIN.0, ADMIN.1).await;
    for (sku, stock) in STOCK {
        let product = json!({"sku": sku, "name": format!("{sku} item"), "price": {"amount": 250, "currency": "EUR"}});
        let created = api.post("/api/products", Some(&admin), &product).await.expect("create a product");
        assert_eq!(created.status, 201, "{:?}", created.body);
        let path = format!("{}/api/inventory/{sku}", api.gateway);
        let set = api.send(api.http.put(path).bearer_auth(&admin).json(&json!({"available": stock}))).await;
        let set = set.expect("set the stock");
        assert_eq!(set.status, 200, "{:?}", set.body);
    }
}

/// What the run did, for the report line.
struct Run {
    faults: Vec<Fault>,
    start: Instant,
    /// When the clients stopped.
    end: Instant,
    /// When the probe stopped, after the reconciliation.
    probe_end: Instant,
    successes: Vec<Instant>,
    reconciled: usize,
    /// How long after notification-service was killed the next email was recorded.
    emails_resumed: Option<Duration>,
}

/// Careful clients and the probe while the faults are injected; once the probe has
/// succeeded after the last fault (or `MAX_OUTAGE` passed), the clients stop and ask
/// again about what is unanswered while the probe goes on.
async fn run(
    platform: &mut Platform,
    api: &Api,
    mail: &Mailbox,
    customers: Vec<Customer>,
    prober: Customer,
    retries: &Arc<Retries>,
) -> (Vec<Customer>, Run) {
    let (stop_clients, stop_probe) = (CancellationToken::new(), CancellationToken::new());
    let successes = Successes::default();
    let start = Instant::now();
    let clients: Vec<_> = customers
        .into_iter()
        .map(|c| tokio::spawn(careful_client(Api::new(&api.gateway), c, stop_clients.clone(), retries.clone())))
        .collect();
    let probing = tokio::spawn(probe(Api::new(&api.gateway), prober, stop_probe.clone(), successes.clone()));
    let (faults, emails_resumed) = inject_faults(platform, mail, start).await;
    let last_fault = faults.iter().map(|f| f.over).max().expect("faults were injected");
    let succeeded_since = || async {
        let record = successes.lock().expect("the probe's record");
        record.iter().any(|s| *s >= last_fault).then_some(())
    };
    let _ = eventually(MAX_OUTAGE, succeeded_since).await;
    stop_clients.cancel();
    let end = Instant::now();
    let mut customers = Vec::new();
    for client in clients {
        customers.push(client.await.expect("a careful client"));
    }
    let mut reconciled = reconcile(&api.gateway, &mut customers, retries).await;
    stop_probe.cancel();
    let probe_end = Instant::now();
    customers.push(probing.await.expect("the probe"));
    let last = customers.len() - 1;
    reconciled += reconcile(&api.gateway, &mut customers[last..], retries).await;
    let mut successes = successes.lock().expect("the probe's record").clone();
    successes.sort();
    let emails_resumed = emails_resumed.await.expect("the email watch");
    (customers, Run { faults, start, end, probe_end, successes, reconciled, emails_resumed })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn careful_clients_lose_nothing_and_ordering_recovers_within_seconds_while_services_are_killed_and_kafka_stops() {
    let Some(b) = backends() else { return };
    let _broker = BROKER.lock().await;
    let began = Instant::now();
    let logs: PathBuf = tempfile::Builder::new().prefix("ecom-faults-").tempdir().expect("a log directory").keep();
    let mut platform = Platform::start(&b, &logs).await;
    let api = Api::new(&platform.gateway.url(""));
    stock_the_shop(&api).await;
    let mut customers = Vec::new();
    for n in 0..CUSTOMERS {
        customers.push(api.customer(&format!("Careful Customer {n}")).await);
    }
    let prober = api.customer("Probe").await;
    let setup = began.elapsed();

    let retries = Arc::new(Retries::default());
    let mut addresses: Vec<String> = customers.iter().map(|c| c.email.clone()).collect();
    addresses.push(prober.email.clone());
    let mail = Mailbox { mailpit: b.mailpit.clone(), addresses };
    let (customers, run) = run(&mut platform, &api, &mail, customers, prober, &retries).await;

    let checking = Instant::now();
    let orders = sqlx::MySqlPool::connect(platform.order_db.as_str()).await.expect("the orders database");
    let inventory = sqlx::MySqlPool::connect(platform.inventory_db.as_str()).await.expect("the inventory database");
    let mut failures = settle(&b, &platform, &orders).await;
    let settled = checking.elapsed();
    check_answers(&customers, &mut failures);
    check_states(&api, &customers, &mut failures).await;
    check_unknown_orders(&api, &customers, &orders, &mut failures).await;
    check_books(&inventory, &orders, &mut failures).await;
    let emails = check_emails(&b.mailpit, &customers, &orders, &mut failures).await;
    let last_fault = run.faults.iter().map(|f| f.over).max().unwrap_or(run.end);
    let windows = windows(&run.faults, run.end, run.probe_end);
    let seen = availability(run.start, run.probe_end, &run.successes, &windows, last_fault);
    check_availability(&seen, &mut failures);

    let ledgers = customers.iter().map(|c| &c.ledger);
    let placements: usize = ledgers.clone().map(|l| l.placements.len()).sum();
    let placed: usize = ledgers.clone().map(|l| l.placements.iter().filter(|p| p.order_id().is_some()).count()).sum();
    let cancellations: usize = ledgers.map(|l| l.cancellations.len()).sum();
    let restarts: Vec<String> =
        run.faults.iter().map(|f| format!("{} {:.1} s", f.name, (f.over - f.injected).as_secs_f64())).collect();
    eprintln!(
        "fault injection: {placements} placements ({placed} placed), {cancellations} cancellations, {emails} emails; \
         retries: {} lost answers, {} 5xx/429, {} keys in use; {} answers reconciled after the run; \
         probe: {} orders, longest gap {:.1} s, first success {} after the last fault; longest gap per window: {}; \
         fault durations: {}; emails resumed {} after notification-service was killed; setup {:.0} s, run {:.0} s, reconciliation {:.0} s, settling {:.0} s, checks {:.0} s; \
         logs in {}",
        retries.lost.load(Ordering::Relaxed),
        retries.unavailable.load(Ordering::Relaxed),
        retries.key_in_use.load(Ordering::Relaxed),
        run.reconciled,
        run.successes.len(),
        seen.longest.as_secs_f64(),
        seen.after_last_fault.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        seen.gaps(),
        restarts.join(", "),
        run.emails_resumed.map_or("never".to_owned(), |d| format!("{:.1} s", d.as_secs_f64())),
        setup.as_secs_f64(),
        (run.end - run.start).as_secs_f64(),
        (checking - run.end).as_secs_f64(),
        settled.as_secs_f64(),
        (checking.elapsed() - settled).as_secs_f64(),
        logs.display(),
    );
    assert!(
        failures.is_empty(),
        "{} failed checks (service logs in {}):\n{}",
        failures.len(),
        logs.display(),
        failures.join("\n")
    );
    drop(platform);
    let _ = std::fs::remove_dir_all(&logs);
}
