//! `ecom`: the platform in one process, or any one of its services alone.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "ecom", version, about = "The ecom platform")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs all six services in this process on their default ports, with SQLite
    /// files, an in-process event bus and email written as .eml files.
    Dev {
        /// Where the databases, signing keys and mail live; kept across restarts.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// Listen on ports the system chooses instead of the defaults (the banner
        /// prints them), so a second instance can run beside the first.
        #[arg(long)]
        any_ports: bool,
    },
    /// Runs one service alone, exactly as its own binary does: configured by its
    /// environment variables, stopped by SIGTERM or Ctrl-C.
    Serve {
        #[arg(value_enum)]
        service: ServiceName,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ServiceName {
    ApiGateway,
    AuthService,
    ProductService,
    OrderService,
    InventoryService,
    NotificationService,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    use common::runtime::run_main;
    let cli = Cli::parse();
    match cli.command {
        Command::Dev { data_dir, any_ports } => ecom::dev::main(data_dir, any_ports).await,
        Command::Serve { service } => match service {
            ServiceName::ApiGateway => {
                run_main(api_gateway::SERVICE, api_gateway::Settings::from_env, api_gateway::run).await
            }
            ServiceName::AuthService => {
                run_main(auth_service::SERVICE, auth_service::Settings::from_env, auth_service::run).await
            }
            ServiceName::ProductService => {
                run_main(product_service::SERVICE, product_service::Settings::from_env, product_service::run).await
            }
            ServiceName::OrderService => {
                run_main(order_service::SERVICE, order_service::Settings::from_env, order_service::run).await
            }
            ServiceName::InventoryService => {
                run_main(inventory_service::SERVICE, inventory_service::Settings::from_env, inventory_service::run)
                    .await
            }
            ServiceName::NotificationService => {
                run_main(
                    notification_service::SERVICE,
                    notification_service::Settings::from_env,
                    notification_service::run,
                )
                .await
            }
        },
    }
}
