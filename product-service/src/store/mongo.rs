//! The MongoDB backend of the catalog.

use anyhow::Context as _;
use mongodb::bson::doc;
use mongodb::options::IndexOptions;
use mongodb::{Database, IndexModel};

pub const PRODUCTS: &str = "products";

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

/// The unique index on `sku` and the indexes behind the filters and sorts.
pub async fn ensure_indexes(db: &Database) -> anyhow::Result<()> {
    let products = db.collection::<mongodb::bson::Document>(PRODUCTS);
    let indexes = vec![
        IndexModel::builder()
            .keys(doc! {"sku": 1})
            .options(IndexOptions::builder().name("products_sku_unique".to_owned()).unique(true).build())
            .build(),
        IndexModel::builder().keys(doc! {"category": 1, "price.amount": 1}).build(),
        IndexModel::builder().keys(doc! {"price.amount": 1}).build(),
        IndexModel::builder().keys(doc! {"created_at": -1}).build(),
        IndexModel::builder().keys(doc! {"name_lower": 1}).build(),
    ];
    products.create_indexes(indexes).await.context("DATABASE_URL: cannot create the catalog indexes")?;
    Ok(())
}

/// Whether a write failed on a unique index (by error code, not message text).
pub fn is_duplicate_key(err: &mongodb::error::Error) -> bool {
    use mongodb::error::{ErrorKind, WriteFailure};
    match &*err.kind {
        ErrorKind::Write(WriteFailure::WriteError(e)) => e.code == DUPLICATE_KEY,
        ErrorKind::InsertMany(e) => e.write_errors.iter().flatten().any(|e| e.code == DUPLICATE_KEY),
        ErrorKind::Command(e) => e.code == DUPLICATE_KEY,
        _ => false,
    }
}
