#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(auth_service::SERVICE, auth_service::Settings::from_env, auth_service::run).await
}
