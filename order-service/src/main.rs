#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(order_service::SERVICE, order_service::Settings::from_env, order_service::run).await
}
