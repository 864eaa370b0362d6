//! Order placements through the gateway, as a customer would place them.
//!
//! Closed loop (`--tasks`, as fast as answers come) for throughput, or open loop
//! (`--rate`, a fixed schedule; latency counted from the scheduled send time, so a
//! stall is not hidden by sending less). With `--mailpit`, waits for every confirmed
//! order's email and reports order → email latency: from the moment the order was
//! sent to the moment the mail server received the email.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    /// api-gateway base URL.
    #[arg(long)]
    gateway: String,
    #[arg(long, env = "ECOM_ADMIN_EMAIL")]
    admin_email: String,
    #[arg(long, env = "ECOM_ADMIN_PASSWORD")]
    admin_password: String,
    /// Closed loop with this many concurrent customers' requests.
    #[arg(long, conflicts_with = "rate")]
    tasks: Option<usize>,
    /// Open loop at this many orders per second.
    #[arg(long)]
    rate: Option<u32>,
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Mailpit base URL: also measure order → email latency.
    #[arg(long)]
    mailpit: Option<String>,
    /// How long to wait for the emails after the last order.
    #[arg(long, default_value_t = 120)]
    mail_wait_seconds: u64,
}

struct Placed {
    sent_at: DateTime<Utc>,
    latency: Duration,
    status: u16,
    order_id: Option<String>,
}

async fn expect_json(response: reqwest::Response, what: &str) -> anyhow::Result<Value> {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    ensure!(status.is_success(), "{what}: {status} {body}");
    serde_json::from_str(&body).with_context(|| format!("{what}: not JSON"))
}

async fn login(http: &reqwest::Client, gateway: &str, email: &str, password: &str) -> anyhow::Result<String> {
    let response = http
        .post(format!("{gateway}/api/auth/login"))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await?;
    let tokens = expect_json(response, "login").await?;
    tokens["access_token"].as_str().map(str::to_owned).context("login: no access_token")
}

/// A product with plenty of stock and a fresh customer; returns (sku, customer email, token).
async fn setup(http: &reqwest::Client, args: &Args) -> anyhow::Result<(String, String, String)> {
    let gw = args.gateway.trim_end_matches('/');
    let admin = login(http, gw, &args.admin_email, &args.admin_password).await?;
    let run = &Uuid::new_v4().simple().to_string()[..8];
    let sku = format!("BENCH-{run}");
    let product = json!({"sku": sku, "name": "Bench widget", "description": "for the benchmark",
        "category": "bench", "price": {"amount": 1250, "currency": "EUR"}});
    let response = http.post(format!("{gw}/api/products")).bearer_auth(&admin).json(&product).send().await?;
    expect_json(response, "create product").await?;
    let response = http
        .put(format!("{gw}/api/inventory/{sku}"))
        .bearer_auth(&admin)
        .json(&json!({"available": 100_000_000}))
        .send()
        .await?;
    expect_json(response, "set stock").await?;
    let email = format!("bench-{run}@example.com");
    let password = "bench-password-1";
    let response = http
        .post(format!("{gw}/api/auth/register"))
        .json(&json!({"email": email, "password": password, "name": "Bench Customer"}))
        .send()
        .await?;
    expect_json(response, "register").await?;
    let token = login(http, gw, &email, password).await?;
    Ok((sku, email, token))
}

async fn place(http: &reqwest::Client, url: &str, token: &str, sku: &str, due: Instant) -> Placed {
    let sent_at = Utc::now() - chrono::Duration::from_std(due.elapsed()).unwrap_or_default();
    let body = json!({"lines": [{"sku": sku, "quantity": 1}]});
    let result = http.post(url).bearer_auth(token).json(&body).send().await;
    let (status, order_id) = match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            (status, body["id"].as_str().map(str::to_owned))
        }
        Err(err) => {
            eprintln!("[bench] order request failed: {err}");
            (0, None)
        }
    };
    Placed { sent_at, latency: due.elapsed(), status, order_id }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().pool_max_idle_per_host(512).build()?;
    let (sku, email, token) = setup(&http, &args).await?;
    let target = Target { http, url: format!("{}/api/orders", args.gateway.trim_end_matches('/')), token, sku };
    if let Some(mailpit) = args.mailpit.as_deref() {
        // Warm-up: one order whose email arrives before the clock starts, so the
        // topic exists and the consumer has its partitions (steady state, not start-up).
        let warm = target.place(Instant::now()).await;
        ensure!(warm.status == 201, "warm-up order answered {}", warm.status);
        wait_for_mail(&target.http, mailpit, &email, 1, Duration::from_secs(args.mail_wait_seconds)).await?;
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let (mode, placed) = match (args.tasks, args.rate) {
        (Some(tasks), None) => (format!("closed loop, {tasks} concurrent"), target.closed_loop(tasks, deadline).await),
        (None, Some(rate)) => (format!("open loop, {rate}/s"), target.open_loop(rate, deadline).await),
        _ => bail!("give --tasks or --rate"),
    };
    print_orders(&mode, &placed, started.elapsed());
    let Some(mailpit) = args.mailpit.as_deref() else { return Ok(()) };
    check_mail(&target.http, mailpit, &email, &mode, &placed, Duration::from_secs(args.mail_wait_seconds)).await
}

/// Where and as whom the run orders.
#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: String,
    token: String,
    sku: String,
}

impl Target {
    async fn place(&self, due: Instant) -> Placed {
        place(&self.http, &self.url, &self.token, &self.sku, due).await
    }

    /// `tasks` clients, each ordering again as soon as it has its answer, until `deadline`.
    async fn closed_loop(&self, tasks: usize, deadline: Instant) -> Vec<Placed> {
        let mut workers = tokio::task::JoinSet::new();
        for _ in 0..tasks {
            let target = self.clone();
            workers.spawn(async move {
                let mut mine = Vec::new();
                while Instant::now() < deadline {
                    mine.push(target.place(Instant::now()).await);
                }
                mine
            });
        }
        let mut placed = Vec::new();
        while let Some(joined) = workers.join_next().await {
            placed.extend(joined.unwrap_or_default());
        }
        placed
    }

    /// `rate` orders a second whatever the answers, until `deadline`; latency counts
    /// from when each was due.
    async fn open_loop(&self, rate: u32, deadline: Instant) -> Vec<Placed> {
        let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut inflight = tokio::task::JoinSet::new();
        loop {
            let due = tick.tick().await.into_std();
            if due >= deadline {
                break;
            }
            let target = self.clone();
            inflight.spawn(async move { target.place(due).await });
        }
        let mut placed = Vec::new();
        while let Some(joined) = inflight.join_next().await {
            placed.extend(joined.ok());
        }
        placed
    }
}

/// The row of the orders table: requests, confirmed per second, latencies, other answers.
fn print_orders(mode: &str, placed: &[Placed], elapsed: Duration) {
    let confirmed = placed.iter().filter(|p| p.status == 201).count();
    let mut statuses: HashMap<u16, usize> = HashMap::new();
    for p in placed {
        *statuses.entry(p.status).or_default() += 1;
    }
    let latencies = Latencies::new(placed.iter().map(|p| p.latency).collect());
    let others: Vec<String> = statuses.iter().filter(|(s, _)| **s != 201).map(|(s, n)| format!("{n}× {s}")).collect();
    println!(
        "| {mode} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
        placed.len(),
        confirmed as f64 / elapsed.as_secs_f64(),
        latencies.ms(0.5),
        latencies.ms(0.99),
        latencies.ms(1.0),
        if others.is_empty() { "none".to_owned() } else { others.join(", ") },
    );
}

/// Waits for one email per confirmed order, prints how long they took, and fails if
/// any is missing or doubled.
async fn check_mail(
    http: &reqwest::Client,
    mailpit: &str,
    email: &str,
    mode: &str,
    placed: &[Placed],
    wait: Duration,
) -> anyhow::Result<()> {
    let sent: HashMap<&str, DateTime<Utc>> =
        placed.iter().filter(|p| p.status == 201).filter_map(|p| Some((p.order_id.as_deref()?, p.sent_at))).collect();
    // The warm-up order's email is in the mailbox too (and matches no order of the run).
    let mails = wait_for_mail(http, mailpit, email, sent.len() + 1, wait).await?;
    let mut per_order: HashMap<&str, usize> = HashMap::new();
    let mut mail_latencies = Vec::new();
    for (subject, received) in &mails {
        let Some((id, sent_at)) = sent.iter().find(|(id, _)| subject.contains(**id)) else { continue };
        *per_order.entry(id).or_default() += 1;
        mail_latencies.push((*received - *sent_at).to_std().unwrap_or_default());
    }
    let doubled = per_order.values().filter(|n| **n > 1).count();
    let missing = sent.len() - per_order.len();
    let mail = Latencies::new(mail_latencies);
    println!();
    println!(
        "order → email handed to SMTP ({mode}): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         {} emails for {} confirmed orders, {missing} missing, {doubled} doubled",
        mail.ms(0.5),
        mail.ms(0.99),
        mail.ms(1.0),
        mails.len() - 1,
        sent.len(),
    );
    ensure!(
        missing == 0 && doubled == 0,
        "emails lost or doubled: {} emails for {} confirmed orders, {missing} missing, {doubled} doubled",
        mails.len() - 1,
        sent.len()
    );
    Ok(())
}

/// Every message to `address`: (subject, when Mailpit received it); waits for `expected`.
async fn wait_for_mail(
    http: &reqwest::Client,
    mailpit: &str,
    address: &str,
    expected: usize,
    wait: Duration,
) -> anyhow::Result<Vec<(String, DateTime<Utc>)>> {
    let mailpit = mailpit.trim_end_matches('/');
    let deadline = Instant::now() + wait;
    let query = format!("to:\"{address}\"");
    loop {
        let count: Value = http
            .get(format!("{mailpit}/api/v1/search"))
            .query(&[("query", query.as_str()), ("limit", "1")])
            .send()
            .await?
            .json()
            .await?;
        let found = count["messages_count"].as_u64().unwrap_or(0) as usize;
        if found >= expected || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let mut mails = Vec::new();
    loop {
        let start = mails.len().to_string();
        let page: Value = http
            .get(format!("{mailpit}/api/v1/search"))
            .query(&[("query", query.as_str()), ("limit", "1000"), ("start", start.as_str())])
            .send()
            .await?
            .json()
            .await?;
        let messages = page["messages"].as_array().cloned().unwrap_or_default();
        if messages.is_empty() {
            break;
        }
        for m in messages {
            let subject = m["Subject"].as_str().unwrap_or_default().to_owned();
            let created = m["Created"].as_str().context("Mailpit message without Created")?;
            mails.push((subject, DateTime::parse_from_rfc3339(created)?.with_timezone(&Utc)));
        }
    }
    Ok(mails)
}
