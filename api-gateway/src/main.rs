/// mimalloc rather than glibc's malloc: a proxied request makes a few hundred small,
/// short-lived allocations on whichever worker thread serves it, which glibc served with
/// about a fifth of the gateway's instructions (docs/benchmarks/gateway.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    common::runtime::run_main(api_gateway::SERVICE, api_gateway::Settings::from_env, api_gateway::run).await
}
