//! A real auth-service and a gateway in front of it.

use std::net::SocketAddr;
use std::path::PathBuf;

use api_gateway::Settings;
use common::server::Listeners;
use common::settings::{Env, ServerSettings};
use common::test_util::Running;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub use test_support::{ADMIN_EMAIL, ADMIN_PASSWORD, auth_settings};

pub struct Platform {
    pub gateway: Running,
    /// The gateway's metrics listener (`/metrics`).
    pub ops: SocketAddr,
    pub auth: Running,
    pub auth_settings: auth_service::Settings,
    pub signing_key: PathBuf,
    pub http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// Gateway settings for an auth-service at `auth`; other upstreams point at a closed port.
pub fn gateway_settings(auth: SocketAddr, extra: &[(&str, &str)]) -> Settings {
    let mut env = Env::from_pairs([
        ("ECOM_AUTH_URL", format!("http://{auth}")),
        ("ECOM_PRODUCT_URL", "http://127.0.0.1:9".to_owned()),
        ("ECOM_ORDER_URL", "http://127.0.0.1:9".to_owned()),
        ("ECOM_INVENTORY_URL", "http://127.0.0.1:9".to_owned()),
        ("ECOM_RATE_LIMIT_PER_SECOND", "10000".to_owned()),
        ("ECOM_RATE_LIMIT_AUTH_PER_MINUTE", "10000".to_owned()),
        ("ECOM_UPSTREAM_TIMEOUT_MS", "500".to_owned()),
    ]);
    for (key, value) in extra {
        env.set(*key, *value);
    }
    let settings = Settings::from_env(&env).unwrap();
    // The connection limits come from `extra`; the rest of the server settings are the tests'.
    Settings { server: ServerSettings { limits: settings.server.limits, ..ServerSettings::for_tests() }, ..settings }
}

impl Platform {
    pub async fn start(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let auth_settings = auth_settings(dir.path());
        let auth = test_support::start_auth(auth_settings.clone()).await;
        let settings = gateway_settings(auth.addr, extra);
        let ops = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ops_addr = ops.local_addr().unwrap();
        let gateway =
            Running::spawn(move |api, s| api_gateway::run_on(settings, Listeners { api, metrics: Some(ops) }, s)).await;
        gateway.ready().await;
        let signing_key = dir.path().join("signing.pem");
        Self { gateway, ops: ops_addr, auth, auth_settings, signing_key, http: reqwest::Client::new(), _dir: dir }
    }

    pub fn url(&self, path: &str) -> String {
        self.gateway.url(path)
    }

    pub async fn post(&self, path: &str, body: Value, token: Option<&str>) -> reqwest::Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap()
    }

    pub async fn login(&self, email: &str, password: &str) -> String {
        test_support::login(&self.http, &self.url(""), email, password).await
    }

    pub async fn customer_token(&self) -> String {
        let email = format!("{}@example.com", uuid::Uuid::now_v7().simple());
        test_support::register(&self.http, &self.url(""), &email, "customer password", "C").await;
        self.login(&email, "customer password").await
    }

    pub async fn me(&self, authorization: &str) -> reqwest::Response {
        self.http.get(self.url("/api/auth/me")).header("authorization", authorization).send().await.unwrap()
    }
}

/// Reads from `socket` until the peer closes it; everything received.
pub async fn read_until_closed(socket: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return received,
            Ok(n) => received.extend_from_slice(&buf[..n]),
        }
    }
}

/// Six clients each send the gateway at `addr` the head of a logout announcing a body,
/// then part of the body, and stall; what each reads until its connection is closed.
pub fn stall_six_bodies(addr: SocketAddr) -> Vec<tokio::task::JoinHandle<String>> {
    let head = "POST /api/auth/logout HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{\"refresh_token\"";
    let stall = move || async move {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.write_all(head.as_bytes()).await.unwrap();
        String::from_utf8_lossy(&read_until_closed(&mut socket).await).into_owned()
    };
    (0..6).map(|_| tokio::spawn(stall())).collect()
}

impl Platform {
    /// The admin logs in through the gateway three times at once: auth-service's breaker
    /// is closed (open, it would refuse for the default 5 s).
    pub async fn admin_logs_in_right_away(&self) {
        for _ in 0..3 {
            let response =
                self.post("/api/auth/login", json!({"email": ADMIN_EMAIL, "password": ADMIN_PASSWORD}), None).await;
            assert_eq!(response.status(), 200);
        }
    }
}
