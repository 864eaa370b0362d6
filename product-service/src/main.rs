#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(product_service::SERVICE, product_service::Settings::from_env, product_service::run).await
}
