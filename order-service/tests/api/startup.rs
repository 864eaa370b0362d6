use common::bus::{BusConfig, InProcessBus};
use common::db::PoolSettings;
use common::settings::{KafkaSettings, ServerSettings};
use common::test_util::{Running, fresh_mysql_database, real_dependency};
use order_service::Settings;
use test_support::{becomes_ready_and_stops, send, sqlite_url};
use url::Url;

fn settings(database_url: Url, bus: BusConfig) -> Settings {
    let env = common::settings::Env::from_pairs([
        ("ECOM_PRODUCT_URL", "http://127.0.0.1:9"),
        ("ECOM_INVENTORY_URL", "http://127.0.0.1:9"),
        ("ECOM_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json"),
        ("ECOM_SERVICE_CLIENT_SECRET", &test_support::random_secret()),
    ]);
    Settings {
        server: ServerSettings::for_tests(),
        database_url: database_url.into(),
        pool: PoolSettings::default(),
        bus,
        ..Settings::from_env(&env).unwrap()
    }
}

#[tokio::test]
async fn on_sqlite_with_the_in_process_bus_the_service_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(sqlite_url(dir.path(), "orders.db"), BusConfig::InProcess(InProcessBus::new()));
    becomes_ready_and_stops(Running::spawn(move |l, s| order_service::run(settings, l, s)).await).await;
}

#[tokio::test]
async fn on_mariadb_and_kafka_the_service_becomes_ready() {
    let Some(base) = real_dependency("ECOM_TEST_MYSQL_URL") else { return };
    let Some(brokers) = real_dependency("ECOM_TEST_KAFKA_BROKERS") else { return };
    let settings = settings(fresh_mysql_database(&base).await, BusConfig::Kafka(KafkaSettings::plaintext(brokers)));
    becomes_ready_and_stops(Running::spawn(move |l, s| order_service::run(settings, l, s)).await).await;
}

#[tokio::test]
async fn stays_ready_while_the_brokers_cannot_be_reached_because_the_outbox_holds_the_events() {
    let dir = tempfile::tempdir().unwrap();
    let settings =
        settings(sqlite_url(dir.path(), "orders.db"), BusConfig::Kafka(KafkaSettings::plaintext("127.0.0.1:1")));
    let service = Running::spawn(move |l, s| order_service::run(settings, l, s)).await;
    let (status, body) = send(reqwest::Client::new().get(service.url("/health/ready"))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["checks"]["database"], "up");
    assert!(body["checks"].get("kafka").is_none(), "{body}");
    service.stop().await.unwrap();
}

#[test]
fn without_a_usable_client_secret_the_service_refuses_to_start_and_names_the_variable() {
    let base = [("ECOM_JWKS_URL", "http://127.0.0.1:9/.well-known/jwks.json")];
    let missing = Settings::from_env(&common::settings::Env::from_pairs(base)).unwrap_err();
    assert_eq!(missing.var, "ECOM_SERVICE_CLIENT_SECRET_FILE");
    for placeholder in ["change-me-service-client-secret-0000", "tooshort"] {
        let env =
            common::settings::Env::from_pairs(base.into_iter().chain([("ECOM_SERVICE_CLIENT_SECRET", placeholder)]));
        let err = Settings::from_env(&env).unwrap_err();
        assert_eq!(err.var, "ECOM_SERVICE_CLIENT_SECRET", "{placeholder}");
    }
}
