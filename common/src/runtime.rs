//! The body of every service's `main`: settings, telemetry, bind, run until a stop
//! signal, flush telemetry.

use anyhow::Context as _;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::settings::{Env, ServerSettings, SettingsError};
use crate::telemetry::{self, TelemetrySettings};

/// How long a stopping service waits for its workers to end, and then for its state to
/// close (its pools wait for every connection to come back). A worker that ignores the
/// stop, or a connection a task still holds, must not keep a stopping process alive: past
/// this the workers are aborted and the close is left to process exit, with a warning.
pub const SHUTDOWN_STEP_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// [`serve_state`]'s serving: `app` on `listener` until `shutdown`, then stops the
/// `workers` and waits for them (also when serving failed, so no worker outlives the
/// service), at most [`SHUTDOWN_STEP_LIMIT`].
async fn serve_with_workers(
    listener: TcpListener,
    app: axum::Router,
    workers: tokio::task::JoinSet<()>,
    shutdown: CancellationToken,
    settings: &ServerSettings,
) -> std::io::Result<()> {
    let served = crate::server::serve(listener, app, shutdown.clone(), settings).await;
    shutdown.cancel();
    stop_workers(workers, SHUTDOWN_STEP_LIMIT).await;
    served
}

/// Waits up to `limit` for `workers` to end after the stop; those still running are
/// aborted when the set is dropped on return.
async fn stop_workers(mut workers: tokio::task::JoinSet<()>, limit: std::time::Duration) {
    let ended = tokio::time::timeout(limit, async { while workers.join_next().await.is_some() {} }).await;
    if ended.is_err() {
        tracing::warn!(
            still_running = workers.len(),
            limit_ms = limit.as_millis() as u64,
            "workers did not stop in time; aborting them"
        );
    }
}

/// The body of every service's `run` once its state has connected: starts the
/// service's `workers`, serves its `router` on `listener` until `shutdown`, stops the
/// workers, then closes the state (also when serving failed, so no worker or
/// connection outlives the service); each step at most [`SHUTDOWN_STEP_LIMIT`].
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
    close_within(&state, SHUTDOWN_STEP_LIMIT).await;
    Ok(served?)
}

/// Closes `state`, waiting at most `limit`.
async fn close_within(state: &impl Close, limit: std::time::Duration) {
    if tokio::time::timeout(limit, state.close()).await.is_err() {
        tracing::warn!(
            limit_ms = limit.as_millis() as u64,
            "connections were still in use after the stop; leaving them to close with the process"
        );
    }
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

#[cfg(test)]
mod shutdown_tests {
    use std::time::Duration;

    use super::*;

    struct NeverCloses;

    impl Close for NeverCloses {
        async fn close(&self) {
            std::future::pending::<()>().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_ignores_the_stop_is_aborted_after_the_limit() {
        let mut workers = tokio::task::JoinSet::new();
        let (dropped, was_dropped) = tokio::sync::oneshot::channel::<()>();
        workers.spawn(async move {
            let _dropped_with_the_task = dropped;
            std::future::pending::<()>().await;
        });
        workers.spawn(async {});
        let started = tokio::time::Instant::now();
        // Paused, the clock jumps to the next timer: a stop that never ends fails at 60 s.
        tokio::time::timeout(Duration::from_secs(60), stop_workers(workers, Duration::from_secs(5)))
            .await
            .expect("the stop waited for the stuck worker");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
        assert!(was_dropped.await.is_err(), "the stuck worker was not aborted");
    }

    #[tokio::test(start_paused = true)]
    async fn a_close_that_never_ends_gives_up_after_the_limit() {
        let started = tokio::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(60), close_within(&NeverCloses, Duration::from_secs(5)))
            .await
            .expect("the stop waited for the close");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }
}
