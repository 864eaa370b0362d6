//! Hot-sku reservations: every request takes one unit of the same sku.
//!
//! `service` posts `/internal/reservations` to inventory-service, with a service token
//! from auth-service (as order-service does); `raw-sql` runs the
//! statements inventory-service runs (claim the order id, the conditional update,
//! the line) in a transaction straight on the same database: the ceiling. Each mode
//! then checks its books (available + reserved = the stock set, reserved = the
//! successes) and runs a drain: more buyers than units, exactly the units sold.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use chrono::Utc;
use serde_json::json;
use sqlx::MySqlPool;
use sqlx::mysql::MySqlPoolOptions;
use uuid::Uuid;

use crate::stats::Latencies;

#[derive(clap::Args)]
pub struct Args {
    /// inventory-service base URL.
    #[arg(long)]
    inventory: String,
    /// auth-service base URL, for the service token `/internal/reservations` requires.
    #[arg(long)]
    auth: String,
    /// The service client's secret (the one auth-service was started with).
    #[arg(long, env = "ECOM_SERVICE_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// The MySQL database inventory-service uses.
    #[arg(long)]
    mysql: String,
    /// Concurrent requests (client tasks) in both modes.
    #[arg(long, default_value_t = 32)]
    tasks: usize,
    /// Connections of the raw-SQL pool (use inventory-service's pool size).
    #[arg(long, default_value_t = 10)]
    sql_connections: u32,
    /// Seconds of load per mode.
    #[arg(long, default_value_t = 15)]
    seconds: u64,
    /// Units in the drain check; twice as many buyers try.
    #[arg(long, default_value_t = 500)]
    drain_units: i64,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Service,
    RawSql,
}

impl Mode {
    fn label(self) -> &'static str {
        match self {
            Self::Service => "inventory-service (HTTP)",
            Self::RawSql => "raw SQL, same transaction",
        }
    }
}

#[derive(Clone)]
struct Target {
    mode: Mode,
    http: reqwest::Client,
    url: String,
    /// The service token sent with each reservation.
    token: String,
    db: MySqlPool,
}

impl Target {
    /// One reservation of one unit; `Ok(true)` reserved, `Ok(false)` refused for stock.
    async fn reserve(&self, sku: &str) -> anyhow::Result<bool> {
        let order_id = Uuid::now_v7();
        match self.mode {
            Mode::Service => {
                let body = json!({"order_id": order_id, "lines": [{"sku": sku, "quantity": 1}]});
                let status = self.http.post(&self.url).bearer_auth(&self.token).json(&body).send().await?.status();
                match status.as_u16() {
                    201 => Ok(true),
                    409 => Ok(false),
                    other => bail!("reservation answered {other}"),
                }
            }
            Mode::RawSql => {
                let now = Utc::now();
                let mut tx = self.db.begin().await?;
                sqlx::query("INSERT INTO reservation_orders (order_id, status, created_at) VALUES (?, 'RESERVED', ?)")
                    .bind(order_id.to_string())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                let taken = sqlx::query(
                    "UPDATE stock SET available = available - ?, reserved = reserved + ?, updated_at = ? \
                     WHERE sku = ? AND available >= ?",
                )
                .bind(1)
                .bind(1)
                .bind(now)
                .bind(sku)
                .bind(1)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 0 {
                    let _: Option<(i64,)> = sqlx::query_as("SELECT available FROM stock WHERE sku = ?")
                        .bind(sku)
                        .fetch_optional(&mut *tx)
                        .await?;
                    tx.rollback().await?;
                    return Ok(false);
                }
                sqlx::query("INSERT INTO reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)")
                    .bind(order_id.to_string())
                    .bind(sku)
                    .bind(1)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    }
}

struct Outcome {
    reserved: u64,
    refused: u64,
    errors: u64,
    elapsed: Duration,
    latencies: Latencies,
}

/// `tasks` loops reserving one unit each until `deadline` or `budget` attempts run out.
async fn load(target: &Target, sku: &str, tasks: usize, seconds: Option<u64>, budget: Option<u64>) -> Outcome {
    let attempts = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = seconds.map(|s| started + Duration::from_secs(s));
    let mut workers = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (target, sku, attempts) = (target.clone(), sku.to_owned(), attempts.clone());
        workers.spawn(async move {
            let (mut reserved, mut refused, mut errors, mut latencies) = (0u64, 0u64, 0u64, Vec::new());
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                if budget.is_some_and(|b| attempts.fetch_add(1, Ordering::Relaxed) >= b) {
                    break;
                }
                let t0 = Instant::now();
                match target.reserve(&sku).await {
                    Ok(true) => reserved += 1,
                    Ok(false) => refused += 1,
                    Err(err) => {
                        errors += 1;
                        if errors <= 3 {
                            eprintln!("[bench] reservation error: {err:#}");
                        }
                    }
                }
                latencies.push(t0.elapsed());
            }
            (reserved, refused, errors, latencies)
        });
    }
    let (mut reserved, mut refused, mut errors, mut all) = (0, 0, 0, Vec::new());
    while let Some(joined) = workers.join_next().await {
        if let Ok((r, f, e, l)) = joined {
            reserved += r;
            refused += f;
            errors += e;
            all.extend(l);
        }
    }
    Outcome { reserved, refused, errors, elapsed: started.elapsed(), latencies: Latencies::new(all) }
}

async fn set_stock(db: &MySqlPool, sku: &str, units: i64) -> anyhow::Result<()> {
    sqlx::query(
        "INSERT INTO stock (sku, available, reserved, updated_at) VALUES (?, ?, 0, ?) \
         ON DUPLICATE KEY UPDATE available = VALUES(available), reserved = 0, updated_at = VALUES(updated_at)",
    )
    .bind(sku)
    .bind(units)
    .bind(Utc::now())
    .execute(db)
    .await?;
    Ok(())
}

/// available + reserved must equal the stock set, and reserved the successes.
async fn check_books(db: &MySqlPool, sku: &str, stock: i64, reserved: u64) -> anyhow::Result<(i64, i64)> {
    let (available, held): (i64, i64) =
        sqlx::query_as("SELECT CAST(available AS SIGNED), CAST(reserved AS SIGNED) FROM stock WHERE sku = ?")
            .bind(sku)
            .fetch_one(db)
            .await?;
    let lines: (i64,) =
        sqlx::query_as("SELECT CAST(COALESCE(SUM(quantity), 0) AS SIGNED) FROM reservation_lines WHERE sku = ?")
            .bind(sku)
            .fetch_one(db)
            .await?;
    ensure!(available >= 0, "{sku}: available went negative ({available})");
    ensure!(available + held == stock, "{sku}: available {available} + reserved {held} != stock {stock}");
    ensure!(held == i64::try_from(reserved)?, "{sku}: reserved {held} but {reserved} reservations succeeded");
    ensure!(lines.0 == held, "{sku}: reservation lines hold {} units, stock says {held}", lines.0);
    Ok((available, held))
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let db = MySqlPoolOptions::new()
        .max_connections(args.sql_connections)
        .connect(&args.mysql)
        .await
        .context("connect to MySQL")?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(args.tasks).build()?;
    let url = format!("{}/internal/reservations", args.inventory.trim_end_matches('/'));
    let token = service_token(&http, &args.auth, &args.client_secret).await?;
    let run_id = &Uuid::new_v4().simple().to_string()[..8];

    let targets = [Mode::Service, Mode::RawSql].map(|mode| Target {
        mode,
        http: http.clone(),
        url: url.clone(),
        token: token.clone(),
        db: db.clone(),
    });
    hot_sku(&args, &targets, run_id).await?;
    drain(&args, &targets, run_id).await
}

/// Both modes on one hot sku for `--seconds`: the reservations/s table and their ratio.
async fn hot_sku(args: &Args, targets: &[Target], run_id: &str) -> anyhow::Result<()> {
    println!("| mode | tasks | reservations/s | p50 ms | p99 ms | reserved | refused | errors | books |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---|");
    let mut rates = Vec::new();
    for target in targets {
        let (mode, db) = (target.mode, &target.db);
        let sku = format!("HOT-{run_id}-{}", rates.len());
        let stock = 100_000_000;
        set_stock(db, &sku, stock).await?;
        // Warm-up: connections and caches, on its own sku.
        let warm = format!("WARM-{run_id}-{}", rates.len());
        set_stock(db, &warm, stock).await?;
        load(target, &warm, args.tasks, Some(2), None).await;
        eprintln!("[bench] {}: {} s of hot-sku reservations", mode.label(), args.seconds);
        let out = load(target, &sku, args.tasks, Some(args.seconds), None).await;
        let books = check_books(db, &sku, stock, out.reserved).await;
        let rate = out.reserved as f64 / out.elapsed.as_secs_f64();
        rates.push(rate);
        println!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {} | {} |",
            mode.label(),
            args.tasks,
            rate,
            out.latencies.ms(0.5),
            out.latencies.ms(0.99),
            out.reserved,
            out.refused,
            out.errors,
            books.as_ref().map_or_else(|e| format!("**broken: {e}**"), |_| "exact".to_owned()),
        );
        books?;
    }
    println!();
    println!("inventory-service / raw SQL: **{:.2}×**", rates[0] / rates[1]);
    println!();
    Ok(())
}

/// Twice as many buyers as units, in both modes: nothing may be oversold.
async fn drain(args: &Args, targets: &[Target], run_id: &str) -> anyhow::Result<()> {
    println!("Drain: {} units, {} buyers, {} at a time.", args.drain_units, args.drain_units * 2, args.tasks);
    println!();
    println!("| mode | reserved | refused | errors | available after | oversold |");
    println!("|---|---:|---:|---:|---:|---:|");
    for target in targets {
        let (mode, db) = (target.mode, &target.db);
        let sku = format!("DRAIN-{run_id}-{}", mode.label().len());
        set_stock(db, &sku, args.drain_units).await?;
        let budget = u64::try_from(args.drain_units * 2)?;
        let out = load(target, &sku, args.tasks, None, Some(budget)).await;
        let (available, held) = check_books(db, &sku, args.drain_units, out.reserved).await?;
        ensure!(held == args.drain_units && available == 0, "{sku}: drain left {available} available, {held} reserved");
        println!(
            "| {} | {} | {} | {} | {available} | {} |",
            mode.label(),
            out.reserved,
            out.refused,
            out.errors,
            i64::try_from(out.reserved)? - args.drain_units,
        );
    }
    Ok(())
}

/// A service token from auth-service's client-credentials grant, as order-service gets one.
async fn service_token(http: &reqwest::Client, auth: &str, secret: &str) -> anyhow::Result<String> {
    let response = http
        .post(format!("{}/internal/token", auth.trim_end_matches('/')))
        .basic_auth("order-service", Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .context("ask auth-service for a service token")?;
    ensure!(response.status().is_success(), "auth-service refused a service token: {}", response.status());
    let body: serde_json::Value = response.json().await?;
    body["access_token"].as_str().map(str::to_owned).context("no access_token in the token answer")
}
