//! Dev mode's in-process bus keeps nothing, yet loses no event across a restart.

use std::path::Path;
use std::time::Duration;

use common::settings::Env;
use common::test_util::eventually;
use serde_json::{Value, json};

use crate::start;

/// Calls through the dev platform's gateway.
struct Gateway {
    base: String,
    http: reqwest::Client,
}

impl Gateway {
    async fn send(&self, method: reqwest::Method, path: &str, token: Option<&str>, body: Value) -> (u16, Value) {
        let mut request = self.http.request(method, format!("{}{path}", self.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn login(&self, email: &str, password: &str) -> String {
        let (status, tokens) = self
            .send(reqwest::Method::POST, "/api/auth/login", None, json!({"email": email, "password": password}))
            .await;
        assert_eq!(status, 200, "{tokens}");
        tokens["access_token"].as_str().unwrap().to_owned()
    }
}

/// The `.eml` files in `dir` that mention `needle`.
fn emails_mentioning(dir: &Path, needle: &str) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| std::fs::read_to_string(e.ok()?.path()).ok())
                .filter(|text| text.contains(needle))
                .count()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn an_event_published_but_not_yet_emailed_when_dev_mode_stops_is_emailed_after_the_restart() {
    use reqwest::Method;
    let dir = tempfile::tempdir().unwrap();
    let env = Env::from_pairs([("ECOM_ADMIN_EMAIL", "boss@example.com"), ("ECOM_ADMIN_PASSWORD", "dev-password-123")]);
    let (platform, shutdown) = start(dir.path(), &env).await;
    let api = Gateway { base: format!("http://{}", platform.gateway), http: reqwest::Client::new() };
    let admin = api.login("boss@example.com", "dev-password-123").await;
    let product =
        json!({"sku": "MUG-1", "name": "Mug", "category": "kitchen", "price": {"amount": 1299, "currency": "EUR"}});
    let (status, body) = api.send(Method::POST, "/api/products", Some(&admin), product).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = api.send(Method::PUT, "/api/inventory/MUG-1", Some(&admin), json!({"available": 3})).await;
    assert_eq!(status, 200, "{body}");
    let customer = json!({"email": "ada@example.com", "password": "ada password 1", "name": "Ada"});
    let (status, body) = api.send(Method::POST, "/api/auth/register", None, customer).await;
    assert_eq!(status, 201, "{body}");
    let ada = api.login("ada@example.com", "ada password 1").await;

    // The mail directory turns into a file: writing any email fails, a transient
    // failure that notification-service retries until it is stopped.
    let mail_dir = dir.path().join("mail");
    std::fs::remove_dir_all(&mail_dir).unwrap();
    std::fs::write(&mail_dir, b"").unwrap();

    let lines = json!({"lines": [{"sku": "MUG-1", "quantity": 1}]});
    let (status, order) = api.send(Method::POST, "/api/orders", Some(&ada), lines).await;
    assert_eq!(status, 201, "{order}");
    let order_id = order["id"].as_str().unwrap().to_owned();
    // Published, and not acknowledged by the consumer: it cannot write the email.
    let topic = common::events::ORDERS_TOPIC;
    let published =
        eventually(Duration::from_secs(10), || async { (platform.bus.in_flight(topic) == 1).then_some(()) }).await;
    assert!(published.is_some(), "the confirmation never went out on the bus, or was acknowledged unhandled");
    shutdown.cancel();
    platform.wait().await.unwrap();

    std::fs::remove_file(&mail_dir).unwrap();
    let (platform, shutdown) = start(dir.path(), &Env::default()).await;
    let emailed =
        eventually(Duration::from_secs(10), || async { (emails_mentioning(&mail_dir, &order_id) > 0).then_some(()) })
            .await;
    assert!(emailed.is_some(), "the confirmation published before the stop was never emailed");
    assert_eq!(emails_mentioning(&mail_dir, &order_id), 1);
    shutdown.cancel();
    platform.wait().await.unwrap();
}
