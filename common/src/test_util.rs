//! Helpers for integration tests against the real dependency stack
//! (`scripts/stack.sh up`; `scripts/stack.sh env` prints the variables).

/// The value of `var` if the real stack is configured.
///
/// Without it the test is skipped with a message, except when `CI` is set: CI must
/// never pass by skipping the real dependencies, so there it panics.
pub fn real_dependency(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(value) if !value.trim().is_empty() => Some(value),
        _ if std::env::var_os("CI").is_some() => {
            panic!("{var} is not set: CI runs against the real stack (eval \"$(scripts/stack.sh env)\")")
        }
        _ => {
            eprintln!("skipped: {var} is not set (start the real stack with scripts/stack.sh up)");
            None
        }
    }
}

/// Installs quiet telemetry once per test binary, as `main` would (spans get
/// trace ids, so `traceparent` is continued and returned). With the test stack up
/// (`ECOM_TEST_OTLP_ENDPOINT`), spans are exported to its trace backend as service
/// `ecom-tests`.
pub fn init_telemetry() {
    static ONCE: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    ONCE.get_or_init(|| {
        let endpoint = std::env::var("ECOM_TEST_OTLP_ENDPOINT").ok().filter(|e| !e.trim().is_empty());
        let settings = crate::telemetry::TelemetrySettings {
            service_name: "ecom-tests".into(),
            filter: std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()),
            log_format: crate::telemetry::LogFormat::Pretty,
            otlp_endpoint: endpoint.and_then(|e| e.parse().ok()),
        };
        // The guard is leaked on purpose: the batch exporter sends every few seconds
        // while the tests run, and what is left at exit is not needed.
        if let Ok(guard) = crate::telemetry::init(&settings) {
            std::mem::forget(guard);
        }
    });
}

/// A unique name for a per-test database, topic or collection prefix.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// Polls `check` until it returns `Some` or `deadline` passes.
pub async fn eventually<T, F, Fut>(deadline: std::time::Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= until {
            return None;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A service started in-process on a loopback port for a test.
#[derive(Debug)]
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub shutdown: tokio_util::sync::CancellationToken,
    pub handle: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Binds `127.0.0.1:0` and runs the service there.
    pub async fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(tokio::net::TcpListener, tokio_util::sync::CancellationToken) -> Fut,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let shutdown = tokio_util::sync::CancellationToken::new();
        let handle = tokio::spawn(run(listener, shutdown.clone()));
        Self { addr, shutdown, handle }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Polls `/health/ready` until it answers 200; panics with the last answer after 20 s.
    pub async fn ready(&self) -> &Self {
        let client = reqwest::Client::new();
        let url = self.url("/health/ready");
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
        loop {
            let last = match client.get(&url).send().await {
                Ok(response) if response.status().is_success() => break,
                Ok(response) => format!("{}: {}", response.status(), response.text().await.unwrap_or_default()),
                Err(err) => err.to_string(),
            };
            assert!(!self.handle.is_finished(), "the service at {} stopped before it was ready: {last}", self.addr);
            assert!(tokio::time::Instant::now() < until, "service at {} never became ready: {last}", self.addr);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        self
    }

    /// Stops the service gracefully and returns what `run` returned.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        self.handle.await?
    }
}

/// A service binary running as its own process (so it can be killed for real), on a
/// free loopback port, its output (the log lines) appended to `log`.
#[derive(Debug)]
pub struct ChildService {
    process: tokio::process::Child,
    pub port: u16,
    log: std::path::PathBuf,
    binary: String,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ChildService {
    /// Starts `binary` with `env` (JSON logs at `RUST_LOG=warn` unless `env` says
    /// otherwise) and waits until `/health/ready` answers 200.
    pub async fn start(binary: &str, env: &[(&str, String)], log: &std::path::Path) -> Self {
        Self::start_with_args(binary, &[], env, log).await
    }

    /// As [`ChildService::start`], with command-line arguments (`ecom serve order-service`).
    pub async fn start_with_args(binary: &str, args: &[&str], env: &[(&str, String)], log: &std::path::Path) -> Self {
        let args = args.iter().map(|a| (*a).to_owned()).collect();
        let env = env.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        Self::launch(binary.to_owned(), args, env, log.to_owned()).await
    }

    async fn launch(binary: String, args: Vec<String>, env: Vec<(String, String)>, log: std::path::PathBuf) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free loopback port")
            .port();
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("open the service log");
        let process = tokio::process::Command::new(&binary)
            .args(&args)
            .env("RUST_LOG", "warn")
            .env("ECOM_LOG_FORMAT", "json")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("ECOM_BIND_ADDR", format!("127.0.0.1:{port}"))
            .stdout(out.try_clone().expect("share the service log"))
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .expect("start the service binary");
        let mut child = Self { process, port, log, binary, args, env };
        let url = child.url("/health/ready");
        let until = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = child.process.try_wait() {
                panic!("{} {:?} exited at start ({status}):\n{}", child.binary, child.args, child.log_tail());
            }
            if reqwest::get(&url).await.is_ok_and(|r| r.status() == 200) {
                return child;
            }
            let waited = tokio::time::Instant::now() < until;
            assert!(waited, "{} {:?} never became ready:\n{}", child.binary, child.args, child.log_tail());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        std::net::SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The last 20 lines of the log, for failure messages (without backtraces).
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().filter(|l| !l.starts_with(char::is_whitespace)).collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGKILL: no shutdown, no flush, no commit.
    pub async fn kill(mut self) {
        self.process.kill().await.expect("kill the service");
    }

    /// SIGKILL, then the same command again, on a new port (as a restarted pod gets a
    /// new address); returns once the new process is ready.
    pub async fn kill_and_restart(&mut self) {
        self.kill_and_restart_after(async {}).await;
    }

    /// As [`ChildService::kill_and_restart`], doing `meanwhile` between the two.
    pub async fn kill_and_restart_after(&mut self, meanwhile: impl Future<Output = ()>) {
        self.process.kill().await.expect("kill the service");
        meanwhile.await;
        let (binary, args, env, log) = (self.binary.clone(), self.args.clone(), self.env.clone(), self.log.clone());
        *self = Self::launch(binary, args, env, log).await;
    }
}

/// A TCP forwarder in front of a real dependency that a test can cut and restore,
/// to lose a dependency at run time without stopping the shared server; or hold,
/// to stop the client's bytes (only those) at the proxy and see that the client is
/// waiting on them, and that no request already let through is still unanswered.
#[derive(Debug)]
pub struct TcpProxy {
    pub addr: std::net::SocketAddr,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
    cut: tokio::sync::watch::Sender<u64>,
    hold: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    unanswered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    trigger: std::sync::Arc<std::sync::Mutex<Option<HoldTrigger>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Holds the client's bytes once `count` client writes containing `marker` went through.
#[derive(Debug)]
struct HoldTrigger {
    marker: &'static [u8],
    count: usize,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let open = std::sync::Arc::new(AtomicBool::new(true));
        let waiting = std::sync::Arc::new(AtomicUsize::new(0));
        let unanswered = std::sync::Arc::new(AtomicUsize::new(0));
        let (cut, _) = tokio::sync::watch::channel(0u64);
        let (hold, _) = tokio::sync::watch::channel(false);
        let trigger: std::sync::Arc<std::sync::Mutex<Option<HoldTrigger>>> = std::sync::Arc::default();
        let (accept_open, accept_cut, accept_hold, accept_waiting, accept_unanswered, accept_trigger) =
            (open.clone(), cut.clone(), hold.clone(), waiting.clone(), unanswered.clone(), trigger.clone());
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !accept_open.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = accept_cut.subscribe();
                let gate = Gate {
                    hold: accept_hold.subscribe(),
                    holder: accept_hold.clone(),
                    waiting: accept_waiting.clone(),
                    trigger: accept_trigger.clone(),
                };
                let asked = Asked { open: AtomicBool::new(false), count: accept_unanswered.clone() };
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else { return };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_target, mut to_target) = outbound.into_split();
                    // Biased: a cut wins over bytes a release would let through at the same time.
                    tokio::select! {
                        biased;
                        _ = cut.changed() => {}
                        _ = forward_held(&mut from_client, &mut to_target, gate, &asked) => {}
                        _ = forward_answers(&mut from_target, &mut to_client, &asked) => {}
                    }
                });
            }
        });
        Self { addr, open, cut, hold, waiting, unanswered, trigger, task }
    }

    /// Drops every open connection (and any bytes held) and refuses new ones.
    pub fn cut(&self) {
        self.open.store(false, std::sync::atomic::Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Stops forwarding what clients send (answers still flow back).
    pub fn hold(&self) {
        self.hold.send_replace(true);
    }

    /// Holds what clients send from the moment `count` client writes containing
    /// `marker` have been forwarded (for SMTP, `b"\r\n.\r\n"`: after `count` messages).
    pub fn hold_after(&self, marker: &'static [u8], count: usize) {
        if let Ok(mut trigger) = self.trigger.lock() {
            *trigger = Some(HoldTrigger { marker, count });
        }
    }

    /// Forwards what clients send again, held bytes first.
    pub fn release(&self) {
        self.hold.send_replace(false);
    }

    /// Whether a client has sent bytes that the hold keeps from the target.
    pub fn client_waiting(&self) -> bool {
        self.waiting.load(std::sync::atomic::Ordering::SeqCst) > 0
    }

    /// Whether some connection forwarded client bytes that the target has not answered yet.
    pub fn request_unanswered(&self) -> bool {
        self.unanswered.load(std::sync::atomic::Ordering::SeqCst) > 0
    }
}

/// Whether a connection's last forwarded client bytes still wait for an answer; kept
/// in the proxy's count of such connections, also when the connection ends.
struct Asked {
    open: std::sync::atomic::AtomicBool,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl Asked {
    fn asked(&self) {
        if !self.open.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn answered(&self) {
        if self.open.swap(false, std::sync::atomic::Ordering::SeqCst) {
            self.count.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

impl Drop for Asked {
    fn drop(&mut self) {
        self.answered();
    }
}

/// Copies the target's answers back to the client.
async fn forward_answers(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    asked: &Asked,
) -> std::io::Result<()> {
    pump(from, to, Seen(|_: &[u8]| asked.answered())).await
}

/// What a copy does with each chunk before forwarding it: it may wait, and ends the
/// copy by answering `false`.
trait BeforeForwarding: Send {
    fn before<'a>(&'a mut self, chunk: &'a [u8]) -> impl Future<Output = bool> + Send + 'a;
}

/// Shows each chunk to a function, then forwards it.
struct Seen<F>(F);

impl<F: FnMut(&[u8]) + Send> BeforeForwarding for Seen<F> {
    fn before<'a>(&'a mut self, chunk: &'a [u8]) -> impl Future<Output = bool> + Send + 'a {
        (self.0)(chunk);
        std::future::ready(true)
    }
}

/// Copies `from` to `to` until it ends, each chunk through `hook` first.
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    mut hook: impl BeforeForwarding,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = from.read(&mut buf).await?;
        if n == 0 || !hook.before(&buf[..n]).await {
            return Ok(());
        }
        to.write_all(&buf[..n]).await?;
    }
}

/// What one connection's client-to-target copy consults before forwarding.
struct Gate {
    hold: tokio::sync::watch::Receiver<bool>,
    holder: tokio::sync::watch::Sender<bool>,
    waiting: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    trigger: std::sync::Arc<std::sync::Mutex<Option<HoldTrigger>>>,
}

impl Gate {
    /// Counts a forwarded write against the trigger; holds when it is reached.
    fn forwarded(&self, bytes: &[u8]) {
        let Ok(mut trigger) = self.trigger.lock() else { return };
        let Some(t) = trigger.as_mut() else { return };
        if bytes.windows(t.marker.len()).any(|w| w == t.marker) {
            t.count = t.count.saturating_sub(1);
            if t.count == 0 {
                *trigger = None;
                self.holder.send_replace(true);
            }
        }
    }
}

/// Copies client bytes to the target, waiting at the gate while it is held.
async fn forward_held(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    gate: Gate,
    asked: &Asked,
) -> std::io::Result<()> {
    pump(from, to, Held { gate, asked }).await
}

/// A client's chunk waits while the gate is held, and counts as asked once let through.
struct Held<'a> {
    gate: Gate,
    asked: &'a Asked,
}

impl BeforeForwarding for Held<'_> {
    fn before<'a>(&'a mut self, chunk: &'a [u8]) -> impl Future<Output = bool> + Send + 'a {
        use std::sync::atomic::Ordering;
        async move {
            let gate = &mut self.gate;
            if *gate.hold.borrow() {
                // Counted while waiting, also when a cut drops this future mid-wait.
                struct Waiting<'a>(&'a std::sync::atomic::AtomicUsize);
                impl Drop for Waiting<'_> {
                    fn drop(&mut self) {
                        self.0.fetch_sub(1, Ordering::SeqCst);
                    }
                }
                gate.waiting.fetch_add(1, Ordering::SeqCst);
                let _waiting = Waiting(&gate.waiting);
                if gate.hold.wait_for(|held| !held).await.is_err() {
                    return false;
                }
            }
            self.asked.asked();
            // A hold this chunk triggers stops the chunks after it.
            gate.forwarded(chunk);
            true
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A TCP balancer in front of several replicas of one service, as a Kubernetes
/// Service with readiness is: each new connection goes to the next backend in turn,
/// and a backend whose connect is refused (a replica that is down) is skipped. A
/// restarted replica listens on a new port: [`TcpBalancer::set_backend`] points its
/// slot there.
#[derive(Debug)]
pub struct TcpBalancer {
    pub addr: std::net::SocketAddr,
    backends: std::sync::Arc<std::sync::Mutex<Vec<std::net::SocketAddr>>>,
    pending: Pending,
    task: tokio::task::JoinHandle<()>,
}

/// Requests the backends have not started to answer: per connection, its slot and the
/// request's first bytes (for HTTP, the request line).
type Pending = std::sync::Arc<std::sync::Mutex<std::collections::HashMap<u64, (usize, Vec<u8>)>>>;

impl TcpBalancer {
    pub async fn start(backends: &[std::net::SocketAddr]) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        assert!(!backends.is_empty(), "a balancer needs a backend");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let slots = std::sync::Arc::new(std::sync::Mutex::new(backends.to_vec()));
        let pending = Pending::default();
        let (accept_slots, accept_pending) = (slots.clone(), pending.clone());
        let task = tokio::spawn(async move {
            let next = AtomicU64::new(0);
            while let Ok((inbound, _)) = listener.accept().await {
                let id = next.fetch_add(1, Ordering::Relaxed);
                let (slots, pending) = (accept_slots.clone(), accept_pending.clone());
                tokio::spawn(async move {
                    let first = usize::try_from(id).unwrap_or_default();
                    let Some((slot, outbound)) = connect_in_turn(&slots, first).await else { return };
                    let exchange = Exchange { pending, id, slot };
                    let (mut from_client, mut to_client) = inbound.into_split();
                    let (mut from_backend, mut to_backend) = outbound.into_split();
                    tokio::select! {
                        _ = exchange.requests(&mut from_client, &mut to_backend) => {}
                        _ = exchange.answers(&mut from_backend, &mut to_client) => {}
                    }
                });
            }
        });
        Self { addr, backends: slots, pending, task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends new connections for slot `index` to `addr` from now on.
    pub fn set_backend(&self, index: usize, addr: std::net::SocketAddr) {
        if let Ok(mut slots) = self.backends.lock() {
            slots[index] = addr;
        }
    }

    /// How many requests whose first bytes contain `marker` (any request for an empty
    /// one) the backend of slot `index` (any backend for `None`) holds without having
    /// started to answer them.
    pub fn requests_in_flight(&self, index: Option<usize>, marker: &str) -> usize {
        let Ok(pending) = self.pending.lock() else { return 0 };
        let marker = marker.as_bytes();
        let matches = |head: &[u8]| marker.is_empty() || head.windows(marker.len()).any(|w| w == marker);
        pending.values().filter(|(slot, head)| index.is_none_or(|i| i == *slot) && matches(head)).count()
    }
}

/// Connects to the backends in turn from `first`, skipping those that refuse or do
/// not answer within a second; the slot and the connection.
async fn connect_in_turn(
    slots: &std::sync::Mutex<Vec<std::net::SocketAddr>>,
    first: usize,
) -> Option<(usize, tokio::net::TcpStream)> {
    let backends = slots.lock().ok()?.clone();
    for offset in 0..backends.len() {
        let index = (first + offset) % backends.len();
        let connect = tokio::net::TcpStream::connect(backends[index]);
        if let Ok(Ok(stream)) = tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
            let _ = stream.set_nodelay(true);
            return Some((index, stream));
        }
    }
    None
}

/// One balanced connection, noting in the balancer's pending list which request it
/// forwarded and is still waiting on; forgotten when answered or closed.
struct Exchange {
    pending: Pending,
    id: u64,
    slot: usize,
}

impl Exchange {
    const HEAD: usize = 256;

    async fn requests(
        &self,
        from: &mut tokio::net::tcp::OwnedReadHalf,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> std::io::Result<()> {
        pump(
            from,
            to,
            Seen(|chunk: &[u8]| {
                if let Ok(mut pending) = self.pending.lock() {
                    let head = || (self.slot, chunk[..chunk.len().min(Self::HEAD)].to_vec());
                    pending.entry(self.id).or_insert_with(head);
                }
            }),
        )
        .await
    }

    async fn answers(
        &self,
        from: &mut tokio::net::tcp::OwnedReadHalf,
        to: &mut tokio::net::tcp::OwnedWriteHalf,
    ) -> std::io::Result<()> {
        pump(from, to, Seen(|_: &[u8]| self.answered())).await
    }

    fn answered(&self) {
        if let Ok(mut pending) = self.pending.lock() {
            pending.remove(&self.id);
        }
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        self.answered();
    }
}

impl Drop for TcpBalancer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A new, empty MySQL database on the server `base` points at; its URL.
#[cfg(feature = "sql")]
pub async fn fresh_mysql_database(base: &str) -> url::Url {
    use sqlx::Connection as _;
    let mut url = url::Url::parse(base).expect("ECOM_TEST_MYSQL_URL is a URL");
    let name = unique_name("test");
    let mut conn = sqlx::MySqlConnection::connect(url.as_str()).await.expect("connect to the test MySQL server");
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(&mut conn)
    .await
    .expect("create a test database");
    url.set_path(&name);
    url
}

/// Whether consumer group `group` has committed every partition of `topic` up to its
/// end: with commits only after handling, nothing consumed is still in progress.
/// Blocking (the client's calls block): call it from `spawn_blocking`.
#[cfg(feature = "kafka")]
pub fn kafka_group_caught_up(brokers: &str, group: &str, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let Ok(reader) = crate::kafka::client_config(brokers, "test").set("group.id", group).create::<BaseConsumer>()
    else {
        return false;
    };
    let timeout = std::time::Duration::from_secs(5);
    let Ok(metadata) = reader.fetch_metadata(Some(topic), timeout) else { return false };
    let mut wanted = rdkafka::TopicPartitionList::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions()) {
        wanted.add_partition(topic, p.id());
    }
    let Ok(committed) = reader.committed_offsets(wanted, timeout) else { return false };
    committed.elements().iter().all(|e| {
        let Ok((_, high)) = reader.fetch_watermarks(topic, e.partition(), timeout) else { return false };
        match e.offset() {
            rdkafka::Offset::Offset(at) => at >= high,
            _ => high == 0,
        }
    })
}

/// Polls [`kafka_group_caught_up`] until it holds or `deadline` passes; whether it held.
#[cfg(feature = "kafka")]
pub async fn kafka_group_settles(brokers: &str, group: &str, topic: &str, deadline: std::time::Duration) -> bool {
    let settled = eventually(deadline, || {
        let (brokers, group, topic) = (brokers.to_owned(), group.to_owned(), topic.to_owned());
        async move {
            let caught_up = tokio::task::spawn_blocking(move || kafka_group_caught_up(&brokers, &group, &topic));
            caught_up.await.ok()?.then_some(())
        }
    })
    .await;
    settled.is_some()
}

/// The subjects of every message Mailpit holds for `address`.
pub async fn mailpit_subjects(mailpit: &str, address: &str) -> Vec<String> {
    let http = reqwest::Client::new();
    let query = format!("to:\"{address}\"");
    let mut subjects = Vec::new();
    loop {
        let start = subjects.len().to_string();
        let page: serde_json::Value = http
            .get(format!("{}/api/v1/search", mailpit.trim_end_matches('/')))
            .query(&[("query", query.as_str()), ("limit", "500"), ("start", start.as_str())])
            .send()
            .await
            .expect("Mailpit answers")
            .json()
            .await
            .expect("Mailpit answers JSON");
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            return subjects;
        }
        subjects.extend(messages.iter().map(|m| m["Subject"].as_str().unwrap_or_default().to_owned()));
    }
}
