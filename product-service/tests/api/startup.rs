use common::test_util::{Running, real_dependency};
use mongodb::bson::{Document, doc};
use product_service::Settings;
use product_service::store::{Store, mongo};

use test_support::{Database, becomes_ready_and_stops};

use crate::support::{mongo_url, offline_settings};

async fn start_and_stop(settings: Settings) {
    becomes_ready_and_stops(Running::spawn(move |l, s| product_service::run(settings, l, s)).await).await;
}

#[tokio::test]
async fn on_sqlite_the_service_becomes_ready() {
    let database = Database::sqlite("products.db");
    start_and_stop(offline_settings(database.url.clone())).await;
}

#[tokio::test]
async fn on_mongodb_the_service_becomes_ready() {
    let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") else { return };
    start_and_stop(offline_settings(mongo_url(&base))).await;
}

#[tokio::test]
async fn the_mongodb_driver_inserts_finds_by_filter_and_reports_a_duplicate_sku_by_its_code() {
    let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") else { return };
    assert!(matches!(Store::connect(&offline_settings(mongo_url(&base))).await.unwrap(), Store::Mongo(_)));
    let db = common::mongo::connect("DATABASE_URL", &mongo_url(&base).into(), "test", "test").await.unwrap();
    mongo::ensure_indexes(&db).await.unwrap();
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

#[tokio::test]
async fn on_mongodb_a_restart_on_an_existing_catalog_becomes_ready_and_restores_a_dropped_index() {
    let Some(base) = real_dependency("ECOM_TEST_MONGODB_URL") else { return };
    let url = mongo_url(&base);
    for _ in 0..2 {
        start_and_stop(offline_settings(url.clone())).await;
    }

    let db = common::mongo::connect("DATABASE_URL", &url.clone().into(), "test", "test").await.unwrap();
    let products = db.collection::<Document>(mongo::PRODUCTS);
    products.drop_index("price.amount_1").await.unwrap();
    start_and_stop(offline_settings(url)).await;
    let names: Vec<String> = products.list_index_names().await.unwrap();
    assert!(names.iter().any(|n| n == "price.amount_1"), "{names:?}");
    assert!(names.iter().any(|n| n == "products_sku_unique"), "{names:?}");
}
