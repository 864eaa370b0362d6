//! The MongoDB backend of the catalog.

use anyhow::Context as _;
use futures::TryStreamExt as _;
use mongodb::bson::{self, Document, doc};
use mongodb::options::{FindOptions, IndexOptions};
use mongodb::{Collection, Database, IndexModel};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{StoreError, Stored};
use crate::domain::{Product, Query, Sort};

pub const PRODUCTS: &str = "products";

/// MongoDB's duplicate-key error code.
const DUPLICATE_KEY: i32 = 11000;

#[derive(Debug, Clone)]
pub struct MongoCatalog {
    db: Database,
    products: Collection<ProductDoc>,
}

#[derive(Debug, Serialize, Deserialize)]
struct MoneyDoc {
    amount: i64,
    currency: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct ProductDoc {
    #[serde(rename = "_id")]
    id: String,
    sku: String,
    name: String,
    /// For case-insensitive sorting by name.
    name_lower: String,
    description: String,
    category: String,
    price: MoneyDoc,
    created_at: bson::DateTime,
    updated_at: bson::DateTime,
}

impl ProductDoc {
    fn from_product(p: &Product) -> Self {
        Self {
            id: p.id.to_string(),
            sku: p.sku.to_string(),
            name: p.name.clone(),
            name_lower: p.name.to_lowercase(),
            description: p.description.clone(),
            category: p.category.clone(),
            price: MoneyDoc { amount: p.price.amount, currency: p.price.currency.to_string() },
            created_at: bson::DateTime::from_millis(p.created_at.timestamp_millis()),
            updated_at: bson::DateTime::from_millis(p.updated_at.timestamp_millis()),
        }
    }

    fn into_product(self) -> Result<Product, StoreError> {
        let time = |t: bson::DateTime, column| {
            chrono::DateTime::from_timestamp_millis(t.timestamp_millis())
                .ok_or_else(|| common::db::corrupt(column)(TimestampOutOfRange(t.timestamp_millis())))
        };
        let stored = Stored {
            created_at: time(self.created_at, "created_at")?,
            updated_at: time(self.updated_at, "updated_at")?,
            id: self.id,
            sku: self.sku,
            name: self.name,
            description: self.description,
            category: self.category,
            price_amount: self.price.amount,
            price_currency: self.price.currency,
        };
        stored.into_product()
    }
}

/// MongoDB's "namespace not found": `listIndexes` on a collection not created yet.
const NAMESPACE_NOT_FOUND: i32 = 26;

/// The unique index on `sku` and the indexes behind the filters and sorts.
fn wanted_indexes() -> Vec<IndexModel> {
    vec![
        IndexModel::builder()
            .keys(doc! {"sku": 1})
            .options(IndexOptions::builder().name("products_sku_unique".to_owned()).unique(true).build())
            .build(),
        IndexModel::builder().keys(doc! {"category": 1, "price.amount": 1}).build(),
        IndexModel::builder().keys(doc! {"price.amount": 1}).build(),
        IndexModel::builder().keys(doc! {"created_at": -1}).build(),
        IndexModel::builder().keys(doc! {"name_lower": 1}).build(),
    ]
}

/// Creates the catalog's indexes that do not exist yet, so a restart on an existing
/// catalog creates nothing. Asking for an existing index again is a no-op on MongoDB,
/// but FerretDB 1.x drops the connection instead, so the existing ones are listed first
/// and compared by keys and uniqueness. An index with the keys of a wanted one but
/// other options is an error naming it: creating the wanted one would fail too.
pub async fn ensure_indexes(db: &Database) -> anyhow::Result<()> {
    const CONTEXT: &str = "DATABASE_URL: cannot create the catalog indexes";
    let products = db.collection::<Document>(PRODUCTS);
    let existing = existing_indexes(&products).await.context(CONTEXT)?;
    let missing = missing_indexes(wanted_indexes(), &existing)?;
    if missing.is_empty() {
        return Ok(());
    }
    if let Err(err) = products.create_indexes(missing).await {
        // Another replica starting at the same moment may have created them first.
        let now = existing_indexes(&products).await.context(CONTEXT)?;
        if !missing_indexes(wanted_indexes(), &now)?.is_empty() {
            return Err(anyhow::Error::new(err).context(CONTEXT));
        }
    }
    Ok(())
}

async fn existing_indexes(products: &Collection<Document>) -> mongodb::error::Result<Vec<IndexModel>> {
    match products.list_indexes().await {
        Ok(cursor) => cursor.try_collect().await,
        Err(err) if matches!(&*err.kind, mongodb::error::ErrorKind::Command(e) if e.code == NAMESPACE_NOT_FOUND) => {
            Ok(Vec::new())
        }
        Err(err) => Err(err),
    }
}

/// The wanted indexes that `existing` lacks.
fn missing_indexes(wanted: Vec<IndexModel>, existing: &[IndexModel]) -> anyhow::Result<Vec<IndexModel>> {
    let unique = |index: &IndexModel| index.options.as_ref().and_then(|o| o.unique).unwrap_or(false);
    let mut missing = Vec::new();
    for index in wanted {
        match existing.iter().find(|e| same_keys(&e.keys, &index.keys)) {
            None => missing.push(index),
            Some(found) if unique(found) == unique(&index) => {}
            Some(found) => {
                let name = found.options.as_ref().and_then(|o| o.name.as_deref()).unwrap_or("unnamed");
                anyhow::bail!(
                    "DATABASE_URL: the catalog's index {name} on {} is {}unique, product-service needs it {}unique; \
                     drop it and restart",
                    found.keys,
                    if unique(found) { "" } else { "not " },
                    if unique(&index) { "" } else { "not " },
                );
            }
        }
    }
    Ok(missing)
}

/// The same fields in the same order and directions; servers may return `1` as an
/// int32, an int64 or a double.
fn same_keys(a: &Document, b: &Document) -> bool {
    let direction = |v: &bson::Bson| match v {
        bson::Bson::Int32(n) => Some(f64::from(*n)),
        bson::Bson::Int64(n) => Some(*n as f64),
        bson::Bson::Double(n) => Some(*n),
        _ => None,
    };
    a.len() == b.len()
        && a.iter().zip(b.iter()).all(|((ka, va), (kb, vb))| {
            ka == kb
                && match (direction(va), direction(vb)) {
                    (Some(x), Some(y)) => x == y,
                    _ => va == vb,
                }
        })
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

fn backend(err: mongodb::error::Error) -> StoreError {
    if is_duplicate_key(&err) { StoreError::DuplicateSku } else { StoreError::Backend(err.into()) }
}

/// A regular expression matching `text` literally.
fn literal_regex(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\^$.|?*+()[]{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

impl MongoCatalog {
    pub fn new(db: Database) -> Self {
        Self { products: db.collection(PRODUCTS), db }
    }

    pub(super) async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        self.products.insert_one(ProductDoc::from_product(product)).await.map_err(backend)?;
        Ok(())
    }

    pub(super) async fn fetch(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        let found = self.products.find_one(doc! {"_id": id.to_string()}).await.map_err(backend)?;
        found.map(ProductDoc::into_product).transpose()
    }

    pub(super) async fn replace(&self, product: &Product) -> Result<bool, StoreError> {
        let replaced =
            self.products.replace_one(doc! {"_id": product.id.to_string()}, ProductDoc::from_product(product)).await;
        match replaced {
            Ok(result) => Ok(result.matched_count == 1),
            Err(err) if is_duplicate_key(&err) => Err(StoreError::DuplicateSku),
            Err(err) => {
                // The unique index rejected the write either way; FerretDB 1.x reports a
                // violation on update as InternalError (code 1) instead of 11000, so an
                // unclassified failure is classified by whether the sku is taken.
                let taken = self
                    .products
                    .find_one(doc! {"sku": product.sku.as_str(), "_id": {"$ne": product.id.to_string()}})
                    .await
                    .map_err(backend)?;
                if taken.is_some() { Err(StoreError::DuplicateSku) } else { Err(backend(err)) }
            }
        }
    }

    pub(super) async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let result = self.products.delete_one(doc! {"_id": id.to_string()}).await.map_err(backend)?;
        Ok(result.deleted_count == 1)
    }

    pub(super) async fn list(&self, query: &Query) -> Result<(Vec<Product>, u64), StoreError> {
        let mut filter = Document::new();
        if let Some(q) = &query.q {
            let pattern = literal_regex(q);
            filter.insert(
                "$or",
                vec![
                    doc! {"name": {"$regex": &pattern, "$options": "i"}},
                    doc! {"description": {"$regex": &pattern, "$options": "i"}},
                ],
            );
        }
        if let Some(category) = &query.category {
            filter.insert("category", category);
        }
        let mut price = Document::new();
        if let Some(min) = query.min_price {
            price.insert("$gte", min);
        }
        if let Some(max) = query.max_price {
            price.insert("$lte", max);
        }
        if !price.is_empty() {
            filter.insert("price.amount", price);
        }
        let sort = match query.sort {
            Sort::Name => doc! {"name_lower": 1, "_id": 1},
            Sort::Price => doc! {"price.amount": 1, "_id": 1},
            Sort::PriceDesc => doc! {"price.amount": -1, "_id": 1},
            Sort::CreatedAt => doc! {"created_at": 1, "_id": 1},
            Sort::CreatedAtDesc => doc! {"created_at": -1, "_id": -1},
        };
        let total = self.products.count_documents(filter.clone()).await.map_err(backend)?;
        let options = FindOptions::builder().sort(sort).skip(query.offset()).limit(i64::from(query.per_page)).build();
        let docs: Vec<ProductDoc> = self
            .products
            .find(filter)
            .with_options(options)
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        let products = docs.into_iter().map(ProductDoc::into_product).collect::<Result<_, _>>()?;
        Ok((products, total))
    }

    pub(super) async fn fetch_by_skus(&self, skus: &[String]) -> Result<Vec<Product>, StoreError> {
        let docs: Vec<ProductDoc> = self
            .products
            .find(doc! {"sku": {"$in": skus}})
            .await
            .map_err(backend)?
            .try_collect()
            .await
            .map_err(backend)?;
        docs.into_iter().map(ProductDoc::into_product).collect()
    }

    pub(super) async fn ping(&self) -> Result<(), String> {
        common::mongo::ping(&self.db).await
    }
}

/// A stored time that chrono cannot represent.
#[derive(Debug, thiserror::Error)]
#[error("{0} ms since the epoch is out of range")]
struct TimestampOutOfRange(i64);
