//! Load generators for `scripts/bench/commerce.sh`: hot-sku reservations through
//! inventory-service against the same SQL run directly, order placements through
//! the gateway (with order → email latency from Mailpit), and outbox relay throughput.
//!
//! Each prints Markdown rows on stdout; progress goes to stderr.

mod orders;
mod relay;
mod reservations;
mod stats;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Benchmarks for the ecom platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Hot-sku reservations: inventory-service over HTTP, then the same transaction as raw SQL.
    Reservations(reservations::Args),
    /// Order placements through the gateway, closed loop or at a fixed rate.
    Orders(orders::Args),
    /// Outbox relay throughput: pre-filled outbox rows published to Kafka with acks=all.
    Relay(relay::Args),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Reservations(args) => reservations::run(args).await,
        Command::Orders(args) => orders::run(args).await,
        Command::Relay(args) => relay::run(args).await,
    }
}
