use common::db::PoolSettings;
use common::settings::ServerSettings;
use common::test_util::{Running, real_dependency, unique_name};
use mongodb::bson::{Document, doc};
use product_service::Settings;
use product_service::store::{Store, mongo};
use url::Url;

fn settings(database_url: Url) -> Settings {
    Settings { server: ServerSettings::for_tests(), database_url, pool: PoolSettings::default() }
}

fn mongo_url(base: &str) -> Url {
    let mut url: Url = base.parse().unwrap();
    url.set_path(&unique_name("products"));
    url
}

#[tokio::test]
async fn on_sqlite_the_service_becomes_ready() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/products.db", dir.path().display()).parse().unwrap();
    let settings = settings(url);
    let service = Running::spawn(move |listener, shutdown| product_service::run(settings, listener, shutdown)).await;
    service.ready().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn on_mongodb_the_service_becomes_ready() {
    let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") else { return };
    let settings = settings(mongo_url(&base));
    let service = Running::spawn(move |listener, shutdown| product_service::run(settings, listener, shutdown)).await;
    service.ready().await;
    service.stop().await.unwrap();
}

#[tokio::test]
async fn the_mongodb_driver_inserts_finds_by_filter_and_reports_a_duplicate_sku_by_its_code() {
    let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") else { return };
    let Store::Mongo(db) = Store::connect(&settings(mongo_url(&base))).await.unwrap() else {
        panic!("a mongodb:// URL must give the MongoDB store")
    };
    let products = db.collection::<Document>(mongo::PRODUCTS);
    products
        .insert_one(doc! {"sku": "MUG-1", "category": "kitchen", "price": {"amount": 1299, "currency": "EUR"}})
        .await
        .unwrap();
    products
        .insert_one(doc! {"sku": "TEE-1", "category": "clothing", "price": {"amount": 1999, "currency": "EUR"}})
        .await
        .unwrap();

    let found = products.find_one(doc! {"category": "kitchen", "price.amount": {"$lt": 1500}}).await.unwrap().unwrap();
    assert_eq!(found.get_str("sku").unwrap(), "MUG-1");

    let err = products.insert_one(doc! {"sku": "MUG-1", "category": "other"}).await.unwrap_err();
    assert!(mongo::is_duplicate_key(&err), "{err}");
    db.drop().await.unwrap();
}
