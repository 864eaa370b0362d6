#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(api_gateway::SERVICE, api_gateway::Settings::from_env, api_gateway::run).await
}
