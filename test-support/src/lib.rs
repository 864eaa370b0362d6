//! Fixtures for the services' integration tests (a dev-dependency only): the
//! auth-service settings every suite starts from, a real auth-service on port 0, and
//! the ways a test gets a token from it.
//!
//! Helpers that need no service crate live in `common::test_util`; this crate holds
//! what needs auth-service, which `common` cannot depend on.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::time::Duration;

use auth_service::clients::ServiceTokenSettings;
use auth_service::keys::KeySettings;
use auth_service::settings::AdminSettings;
use common::auth::{ClientCredentials, Expectations, VerifierSettings};
use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::Running;
use serde_json::{Value, json};
use url::Url;

/// The admin auth-service seeds at start, unless a test names another.
pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "admin-password-1";
/// The service client that may buy service tokens (order-service, as in production).
pub const SERVICE_CLIENT: &str = "order-service";

/// The `iss` and `aud` auth-service issues and the services expect.
pub fn expectations() -> Expectations {
    Expectations { issuer: "ecom-auth".into(), audience: "ecom".into() }
}

/// How a service verifies the tokens of the auth-service publishing `jwks`.
pub fn verifier(jwks: Url) -> VerifierSettings {
    VerifierSettings {
        jwks_url: jwks,
        expectations: expectations(),
        min_refresh: Duration::from_secs(30),
        max_age: common::auth::DEFAULT_JWKS_MAX_AGE,
    }
}

/// A SQLite database file `name` in `dir`.
pub fn sqlite_url(dir: &Path, name: &str) -> Url {
    format!("sqlite://{}/{name}", dir.display()).parse().unwrap()
}

/// A database for one service under test: SQLite in a folder this keeps, or one the
/// test made (a fresh MariaDB or FerretDB database).
pub struct Database {
    pub url: Url,
    _dir: Option<tempfile::TempDir>,
}

impl Database {
    /// A SQLite database file `file` in a folder of its own.
    pub fn sqlite(file: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self { url: sqlite_url(dir.path(), file), _dir: Some(dir) }
    }

    pub fn at(url: Url) -> Self {
        Self { url, _dir: None }
    }
}

/// An admin to seed at start.
pub fn admin(email: &str, password: &str) -> Option<AdminSettings> {
    Some(AdminSettings { email: email.into(), password: password.to_owned().into(), password_hash: None })
}

/// Service tokens for [`SERVICE_CLIENT`] with `secret` (at least 32 characters).
pub fn service_tokens(secret: &str) -> ServiceTokenSettings {
    ServiceTokenSettings {
        client: Some(ClientCredentials::new(SERVICE_CLIENT, secret).unwrap()),
        ttl: Duration::from_secs(300),
    }
}

/// A random client secret, long enough to be accepted.
pub fn random_secret() -> String {
    // One UUID's 32 hex digits hold fewer than the 10 distinct characters a secret needs
    // about once in 12 000 draws; drawn until one passes, the check never fails a test.
    loop {
        let secret = uuid::Uuid::new_v4().simple().to_string();
        if ClientCredentials::new(SERVICE_CLIENT, &secret).is_ok() {
            return secret;
        }
    }
}

/// auth-service on `database_url`, its signing key generated in `key_dir`, seeding
/// [`ADMIN_EMAIL`], with service tokens refused. Tests change what they are about with
/// struct update syntax: `Settings { admin: None, ..auth_settings_at(url, dir) }`.
pub fn auth_settings_at(database_url: Url, key_dir: &Path) -> auth_service::Settings {
    auth_service::Settings {
        server: ServerSettings::for_tests(),
        database_url: database_url.into(),
        pool: PoolSettings::default(),
        admin: admin(ADMIN_EMAIL, ADMIN_PASSWORD),
        keys: KeySettings {
            signing_key_file: key_dir.join("signing.pem"),
            previous_key_files: Vec::new(),
            next_key_files: Vec::new(),
            generate_missing: true,
        },
        expectations: expectations(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(3600),
        refresh_family_lifetime: Duration::from_secs(24 * 3600),
        service_tokens: ServiceTokenSettings::disabled(),
    }
}

/// [`auth_settings_at`] with its SQLite database and key both in `dir`.
pub fn auth_settings(dir: &Path) -> auth_service::Settings {
    auth_settings_at(sqlite_url(dir, "auth.db"), dir)
}

/// Starts auth-service with `settings` on port 0 and waits until it is ready.
pub async fn start_auth(settings: auth_service::Settings) -> Running {
    let running = Running::spawn(move |listener, shutdown| auth_service::run(settings, listener, shutdown)).await;
    running.ready().await;
    running
}

/// Runs auth-service on a copy of `listener` and waits until it is ready.
async fn run_auth(settings: auth_service::Settings, listener: &std::net::TcpListener) -> Running {
    let copy = tokio::net::TcpListener::from_std(listener.try_clone().unwrap()).unwrap();
    let addr = copy.local_addr().unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    let handle = tokio::spawn(auth_service::run(settings, copy, shutdown.clone()));
    let running = Running { addr, shutdown, handle };
    running.ready().await;
    running
}

/// Sends `request`: its status and its JSON body (`Null` when it has none).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, Value) {
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// `request` with `token` as its bearer token; without one, anonymous.
pub fn bearer(request: reqwest::RequestBuilder, token: Option<&str>) -> reqwest::RequestBuilder {
    match token {
        Some(token) => request.bearer_auth(token),
        None => request,
    }
}

/// The access token `request` (a login or a token grant) is answered with.
async fn access_token(request: reqwest::RequestBuilder, what: &str) -> String {
    let (status, body) = send(request).await;
    assert_eq!(status, 200, "{what}: {body}");
    body["access_token"].as_str().unwrap().to_owned()
}

/// The access token of a login at the auth API under `base` (a service or the gateway).
pub async fn login(http: &reqwest::Client, base: &str, email: &str, password: &str) -> String {
    let request = http.post(format!("{base}/api/auth/login")).json(&json!({"email": email, "password": password}));
    access_token(request, &format!("login as {email}")).await
}

/// Registers a customer at the auth API under `base`; the new user.
pub async fn register(http: &reqwest::Client, base: &str, email: &str, password: &str, name: &str) -> Value {
    let request = http
        .post(format!("{base}/api/auth/register"))
        .json(&json!({"email": email, "password": password, "name": name}));
    let (status, user) = send(request).await;
    assert_eq!(status, 201, "register {email}: {user}");
    user
}

/// A service token for [`SERVICE_CLIENT`], bought from the auth-service under `base`.
pub async fn service_token(http: &reqwest::Client, base: &str, secret: &str) -> String {
    let request = http
        .post(format!("{base}/internal/token"))
        .basic_auth(SERVICE_CLIENT, Some(secret))
        .form(&[("grant_type", "client_credentials")]);
    access_token(request, "a service token").await
}

/// `(available, reserved)` of `sku` at the inventory-service under `base`.
pub async fn stock(http: &reqwest::Client, base: &str, sku: &str) -> (i64, i64) {
    let (status, body) = send(http.get(format!("{base}/api/inventory/{sku}"))).await;
    assert_eq!(status, 200, "the stock of {sku}: {body}");
    (body["available"].as_i64().unwrap(), body["reserved"].as_i64().unwrap())
}

/// The internal OpenAPI document of the service under `base`, once its public document
/// is seen to list no `/internal` path.
pub async fn internal_document(http: &reqwest::Client, base: &str) -> Value {
    let (status, public) = send(http.get(format!("{base}/openapi.json"))).await;
    assert_eq!(status, 200, "the public document: {public}");
    let paths = public["paths"].as_object().unwrap();
    assert!(paths.keys().all(|p| !p.starts_with("/internal")), "{:?}", paths.keys());
    let (status, internal) = send(http.get(format!("{base}/internal/openapi.json"))).await;
    assert_eq!(status, 200, "the internal document: {internal}");
    internal
}

/// `service`, once it is ready.
pub async fn ready(service: Running) -> Running {
    service.ready().await;
    service
}

/// Waits until `service` is ready, then stops it; panics if it never becomes ready or
/// does not stop cleanly.
pub async fn becomes_ready_and_stops(service: Running) {
    service.ready().await;
    service.stop().await.unwrap();
}

/// The three callers a service tells apart, each with its access token.
pub struct Callers {
    pub admin: String,
    pub customer: String,
    /// What order-service presents: a service token.
    pub service: String,
}

/// A real auth-service for a suite that needs tokens: seeds [`ADMIN_EMAIL`] and
/// sells service tokens to [`SERVICE_CLIENT`] for a secret random per start.
pub struct Auth {
    pub service: Running,
    /// A second handle on the service's listening socket: the port stays ours across a
    /// restart ([`Auth::rotate_signing_key`]), and connections made meanwhile wait in its
    /// queue for the new process instead of being refused.
    listener: std::net::TcpListener,
    pub settings: auth_service::Settings,
    /// The service client's secret this auth-service knows.
    pub service_secret: String,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Auth {
    pub async fn start() -> Self {
        Self::with_service_token_ttl(Duration::from_secs(300)).await
    }

    /// An auth-service whose service tokens live `ttl` (whole seconds): short lives let a
    /// test see a token renewed without waiting minutes.
    pub async fn with_service_token_ttl(ttl: Duration) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let service_secret = random_secret();
        let service_tokens = ServiceTokenSettings { ttl, ..service_tokens(&service_secret) };
        let settings = auth_service::Settings { service_tokens, ..auth_settings(dir.path()) };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let service = run_auth(settings.clone(), &listener).await;
        Self { service, listener, settings, service_secret, http: reqwest::Client::new(), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        self.service.url(path)
    }

    /// Where the services fetch its verification keys.
    pub fn jwks_url(&self) -> Url {
        self.url("/.well-known/jwks.json").parse().unwrap()
    }

    /// How a service verifies its tokens.
    pub fn verifier(&self) -> VerifierSettings {
        verifier(self.jwks_url())
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        login(&self.http, &self.url(""), email, password).await
    }

    pub async fn admin_token(&self) -> String {
        self.login(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Registers a customer and logs in; the user and its access token.
    pub async fn customer(&self, email: &str, password: &str, name: &str) -> (Value, String) {
        let user = register(&self.http, &self.url(""), email, password, name).await;
        (user, self.login(email, password).await)
    }

    pub async fn service_token(&self) -> String {
        service_token(&self.http, &self.url(""), &self.service_secret).await
    }

    /// The admin, a new customer `email` and a service, each with a token.
    pub async fn callers(&self, email: &str) -> Callers {
        let (_, customer) = self.customer(email, "customer-password", "Customer").await;
        Callers { admin: self.admin_token().await, customer, service: self.service_token().await }
    }

    /// Restarts auth-service on its address signing with a new key, the old one gone
    /// from its key set: a service that fetches the key set from now on refuses every
    /// token signed before.
    pub async fn rotate_signing_key(&mut self) {
        self.service.shutdown.cancel();
        (&mut self.service.handle).await.unwrap().unwrap();
        let key = format!("signing-{}.pem", uuid::Uuid::new_v4().simple());
        self.settings.keys.signing_key_file = self._dir.path().join(key);
        self.service = run_auth(self.settings.clone(), &self.listener).await;
    }

    pub async fn stop(self) {
        self.service.stop().await.unwrap();
    }
}

/// What a child process writes to its pipes, line by line, read as it comes by one
/// thread per pipe.
pub struct PipeLines {
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl PipeLines {
    /// Starts reading `pipes` (a child's stdout, stderr).
    pub fn read(pipes: Vec<Box<dyn std::io::Read + Send>>) -> Self {
        use std::io::BufRead as _;
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let readers = pipes
            .into_iter()
            .map(|pipe| {
                let lines = lines.clone();
                std::thread::spawn(move || {
                    for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
                        lines.lock().unwrap().push(line);
                    }
                })
            })
            .collect();
        Self { lines, readers }
    }

    /// The lines read so far.
    pub fn so_far(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every line, once the pipes have closed (the child has exited).
    pub fn all(self) -> Vec<String> {
        for reader in self.readers {
            reader.join().unwrap();
        }
        std::mem::take(&mut *self.lines.lock().unwrap())
    }
}
