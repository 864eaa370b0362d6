//! `ecom`: the platform in one process, or any one of its services alone.

use std::net::{IpAddr, Ipv4Addr};
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
    /// files, an in-process event bus and email written as .eml files. The first
    /// start of a data directory loads the demo catalog.
    Dev {
        /// Where the databases, signing keys, admin password and mail live; kept
        /// across restarts.
        #[arg(long, default_value = "./data")]
        data_dir: PathBuf,
        /// The address every listener binds (0.0.0.0 to be reachable from other
        /// machines).
        #[arg(long, value_name = "ADDR", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
        bind: IpAddr,
        /// The gateway's port; the services take the next five, the gateway's
        /// operations listener this + 1000.
        #[arg(long, value_name = "PORT", default_value_t = api_gateway::DEFAULT_PORT, conflicts_with = "any_ports")]
        port_base: u16,
        /// Listen on ports the system chooses instead of the defaults (the banner
        /// prints them), so a second instance can run beside the first.
        #[arg(long)]
        any_ports: bool,
        /// Start a fresh data directory with an empty catalog instead of the demo one.
        #[arg(long)]
        no_demo: bool,
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
        Command::Dev { data_dir, bind, port_base, any_ports, no_demo } => {
            let ports = if any_ports { ecom::dev::Ports::ANY } else { ecom::dev::Ports::from_base(port_base)? };
            ecom::dev::main(ecom::dev::Options { data_dir, bind, ports, demo: !no_demo }).await
        }
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
