#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(
        notification_service::SERVICE,
        notification_service::Settings::from_env,
        notification_service::run,
    )
    .await
}
