//! `ecom`: the platform in one process.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Dev { data_dir } => ecom::dev::main(data_dir).await,
    }
}
