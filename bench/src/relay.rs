//! Outbox relay throughput: fills the outbox of a fresh order-service database with
//! order events, then runs the relay (`order_service::events::relay_once`, the code
//! the service runs) against Kafka until the outbox is empty.

use std::time::Instant;

use anyhow::{Context as _, ensure};
use chrono::Utc;
use common::bus::Publisher;
use common::db::{PoolSettings, SqlPool};
use serde_json::json;
use uuid::Uuid;

#[derive(clap::Args)]
pub struct Args {
    /// An empty MySQL database (the migrations run first).
    #[arg(long)]
    mysql: url::Url,
    /// Kafka bootstrap servers.
    #[arg(long)]
    brokers: String,
    #[arg(long, default_value_t = 20_000)]
    events: usize,
}

/// A confirmation event of a typical size (two lines).
fn payload(event_id: Uuid, order_id: Uuid) -> String {
    json!({
        "id": event_id, "type": "order.confirmed", "source": "order-service", "time": Utc::now(),
        "data": {
            "id": order_id, "user_id": Uuid::now_v7(), "status": "CONFIRMED",
            "customer_email": "bench@example.com", "customer_name": "Bench Customer",
            "lines": [
                {"sku": "BENCH-1", "name": "Bench widget", "quantity": 2, "unit_price": {"amount": 1250, "currency": "EUR"}},
                {"sku": "BENCH-2", "name": "Bench gadget", "quantity": 1, "unit_price": {"amount": 990, "currency": "EUR"}}
            ],
            "total": {"amount": 3490, "currency": "EUR"},
            "created_at": Utc::now(), "updated_at": Utc::now()
        }
    })
    .to_string()
}

async fn fill(pool: &SqlPool, topic: &str, events: usize) -> anyhow::Result<()> {
    let SqlPool::MySql(db) = pool else { anyhow::bail!("the relay benchmark needs MySQL") };
    for chunk in (0..events).collect::<Vec<_>>().chunks(500) {
        let mut insert = sqlx::QueryBuilder::new(
            "INSERT INTO outbox (event_id, event_type, topic, event_key, payload, trace_context, created_at) ",
        );
        insert.push_values(chunk, |mut row, _| {
            let (event_id, order_id) = (Uuid::now_v7(), Uuid::now_v7());
            row.push_bind(event_id.to_string())
                .push_bind("order.confirmed")
                .push_bind(topic)
                .push_bind(order_id.to_string())
                .push_bind(payload(event_id, order_id))
                .push_bind("{}")
                .push_bind(Utc::now());
        });
        insert.build().execute(db).await?;
    }
    Ok(())
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let pool = SqlPool::connect(
        "--mysql",
        &args.mysql.clone().into(),
        &PoolSettings::default(),
        &order_service::state::MYSQL,
        &order_service::state::SQLITE,
    )
    .await?;
    let publisher = common::kafka::KafkaPublisher::new(&args.brokers, "ecom-bench").context("Kafka producer")?;
    let topic = format!("bench.relay.{}", &Uuid::new_v4().simple().to_string()[..8]);
    let publisher: &dyn Publisher = &publisher;

    // Warm-up: creates the topic and the producer's connections.
    fill(&pool, &topic, 200).await?;
    while order_service::events::relay_once(&pool, publisher).await? > 0 {}

    fill(&pool, &topic, args.events).await?;
    eprintln!("[bench] relaying {} events to {topic}", args.events);
    let started = Instant::now();
    let mut sent = 0;
    loop {
        let n = order_service::events::relay_once(&pool, publisher).await?;
        if n == 0 {
            break;
        }
        sent += n;
    }
    let elapsed = started.elapsed();
    ensure!(sent == args.events, "relayed {sent} of {} events", args.events);
    println!(
        "| {} | {} | {:.2} | {:.0} |",
        args.events,
        order_service::events::BATCH,
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}
