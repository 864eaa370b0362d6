//! The body of every service's `main`: settings, telemetry, bind, run until a stop
//! signal, flush telemetry.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::settings::{Env, ServerSettings, SettingsError};
use crate::telemetry::{self, TelemetrySettings};

/// The part of every service's `run` after it has connected: serves `app` on
/// `listener` until `shutdown`, then stops the `workers` and waits for them (also when
/// serving failed, so no worker outlives the service).
pub async fn serve_with_workers(
    listener: TcpListener,
    app: axum::Router,
    mut workers: tokio::task::JoinSet<()>,
    shutdown: CancellationToken,
    settings: &ServerSettings,
) -> std::io::Result<()> {
    let served = crate::server::serve(listener, app, shutdown.clone(), settings).await;
    shutdown.cancel();
    while workers.join_next().await.is_some() {}
    served
}

/// The body of every service's `run` once its state has connected: starts the
/// service's `workers`, serves its `router` on `listener` until `shutdown`, stops the
/// workers, then closes the state (also when serving failed, so no worker or
/// connection outlives the service).
pub async fn serve_state<S, C>(
    state: S,
    settings: &C,
    listener: TcpListener,
    shutdown: CancellationToken,
    router: impl FnOnce(S, &C) -> axum::Router,
    workers: impl FnOnce(S, &C, CancellationToken) -> tokio::task::JoinSet<()>,
) -> anyhow::Result<()>
where
    S: Clone + Close,
    C: ServiceSettings,
{
    let workers = workers(state.clone(), settings, shutdown.clone());
    let app = router(state.clone(), settings);
    let served = serve_with_workers(listener, app, workers, shutdown, settings.server()).await;
    state.close().await;
    Ok(served?)
}

/// The `workers` of a service with no background work.
pub fn no_workers<S, C>(_state: S, _settings: &C, _shutdown: CancellationToken) -> tokio::task::JoinSet<()> {
    tokio::task::JoinSet::new()
}

/// A service's state: what it holds open (database pools) is closed once serving stops.
pub trait Close {
    fn close(&self) -> impl Future<Output = ()> + Send;
}

/// Settings that say where the service listens.
pub trait ServiceSettings {
    fn server(&self) -> &ServerSettings;
}

/// Runs one service binary. Configuration errors end the process before anything
/// starts, naming the variable at fault.
pub async fn run_main<S, F, Fut>(
    service: &'static str,
    load: impl FnOnce(&Env) -> Result<S, SettingsError>,
    run: F,
) -> anyhow::Result<()>
where
    S: ServiceSettings,
    F: FnOnce(S, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    crate::install_crypto_provider();
    let env = Env::from_process();
    let telemetry_settings = TelemetrySettings::from_env(&env, service)?;
    let settings = load(&env)?;
    let guard = telemetry::init(&telemetry_settings)?;
    let addr = settings.server().bind_addr;
    let result = async {
        let listener =
            TcpListener::bind(addr).await.with_context(|| format!("ECOM_BIND_ADDR: cannot listen on {addr}"))?;
        tracing::info!(service, %addr, "starting");
        run(settings, listener, crate::shutdown::on_signal()).await
    }
    .await;
    match &result {
        Ok(()) => tracing::info!(service, "stopped"),
        Err(err) => tracing::error!(service, error = format!("{err:#}"), "stopped with an error"),
    }
    guard.shutdown();
    result
}
