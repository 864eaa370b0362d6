use common::test_util::{Running, fresh_mysql_database, real_dependency};
use inventory_service::Settings;
use url::Url;

fn settings(database_url: Url) -> Settings {
    crate::support::settings(database_url, "http://127.0.0.1:9/.well-known/jwks.json".parse().unwrap())
}

async fn start_and_stop(settings: Settings) {
    let service = Running::spawn(move |listener, shutdown| inventory_service::run(settings, listener, shutdown)).await;
    service.ready().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn on_sqlite_the_service_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    start_and_stop(settings(format!("sqlite://{}/inventory.db", dir.path().display()).parse().unwrap())).await;
}

#[tokio::test]
async fn on_mariadb_the_migrations_run_and_the_service_becomes_ready() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let url = fresh_mysql_database(&base).await;
    start_and_stop(settings(url.clone())).await;
    // Starting again on the migrated database applies nothing twice.
    start_and_stop(settings(url)).await;
}
