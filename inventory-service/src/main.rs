#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(inventory_service::SERVICE, inventory_service::Settings::from_env, inventory_service::run)
        .await
}
