use common::test_util::{Running, fresh_mysql_database, real_dependency};
use inventory_service::Settings;
use test_support::{becomes_ready_and_stops, sqlite_url};
use url::Url;

fn settings(database_url: Url) -> Settings {
    crate::support::settings(database_url, "http://127.0.0.1:9/.well-known/jwks.json".parse().unwrap())
}

async fn start_and_stop(settings: Settings) {
    becomes_ready_and_stops(Running::spawn(move |l, s| inventory_service::run(settings, l, s)).await).await;
}

#[tokio::test]
async fn on_sqlite_the_service_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    start_and_stop(settings(sqlite_url(dir.path(), "inventory.db"))).await;
}

#[tokio::test]
async fn on_mariadb_the_migrations_run_and_the_service_becomes_ready() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let url = fresh_mysql_database(&base).await;
    start_and_stop(settings(url.clone())).await;
    // Starting again on the migrated database applies nothing twice.
    start_and_stop(settings(url)).await;
}
