//! The catalog store: one trait, a MongoDB backend for production and a SQLite
//! backend for dev mode, held to the same contract tests.

pub mod mongo;
pub mod sqlite;

use chrono::{DateTime, Utc};
use common::db::{PoolSettings, SqlPool};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::Settings;
use crate::domain::{Product, Query};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
/// MongoDB needs no SQL migrations; an empty set keeps the connect helper uniform.
static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a product with this sku already exists")]
    DuplicateSku,
    #[error("catalog backend: {0}")]
    Backend(String),
}

/// What every catalog backend does.
pub trait Catalog: Send + Sync {
    fn insert(&self, product: &Product) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn fetch(&self, id: Uuid) -> impl Future<Output = Result<Option<Product>, StoreError>> + Send;
    /// Replaces the product with `product.id`; `false` if there is none.
    fn replace(&self, product: &Product) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// `false` if there was nothing to delete.
    fn delete(&self, id: Uuid) -> impl Future<Output = Result<bool, StoreError>> + Send;
    /// One page of matches and the number of all matches.
    fn list(&self, query: &Query) -> impl Future<Output = Result<(Vec<Product>, u64), StoreError>> + Send;
    fn fetch_by_skus(&self, skus: &[String]) -> impl Future<Output = Result<Vec<Product>, StoreError>> + Send;
    fn ping(&self) -> impl Future<Output = Result<(), String>> + Send;
}

/// Timestamps are kept to the millisecond, the precision both backends store.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// A currency read back from the catalog; one that does not parse is a corrupt row.
fn stored_currency(code: &str) -> Result<crate::domain::Currency, StoreError> {
    crate::domain::Currency::parse(code).map_err(|e| StoreError::Backend(format!("stored currency {code}: {e}")))
}

/// A sku read back from the catalog; one that does not parse is a corrupt row.
fn stored_sku(sku: &str) -> Result<crate::domain::Sku, StoreError> {
    crate::domain::Sku::parse(sku).map_err(|e| StoreError::Backend(format!("stored sku {sku}: {e}")))
}

/// The backend chosen by `DATABASE_URL`.

#[derive(Debug, Clone)]
pub enum Store {
    Mongo(mongo::MongoCatalog),
    Sqlite(sqlite::SqliteCatalog),
}

impl Store {
    /// Connects to the backend the URL names and prepares it (indexes, migrations).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        let url = &settings.database_url;
        match url.scheme() {
            "mongodb" | "mongodb+srv" => {
                let db = common::mongo::connect("DATABASE_URL", url, crate::SERVICE, "ecom_products").await?;
                mongo::ensure_indexes(&db).await?;
                Ok(Self::Mongo(mongo::MongoCatalog::new(db)))
            }
            _ => Ok(Self::Sqlite(sqlite::SqliteCatalog::connect(url, &settings.pool).await?)),
        }
    }

    pub async fn close(&self) {
        if let Self::Sqlite(catalog) = self {
            catalog.close().await;
        }
    }
}

pub(crate) async fn sqlite_pool(
    url: &common::settings::SecretUrl,
    pool: &PoolSettings,
) -> anyhow::Result<sqlx::SqlitePool> {
    match SqlPool::connect("DATABASE_URL", url, pool, &NO_MIGRATIONS, &SQLITE).await? {
        SqlPool::Sqlite(pool) => Ok(pool),
        SqlPool::MySql(_) => anyhow::bail!("DATABASE_URL: product-service takes mongodb:// or sqlite://"),
    }
}

macro_rules! delegate {
    ($self:ident, $c:ident => $call:expr) => {
        match $self {
            Store::Mongo($c) => $call,
            Store::Sqlite($c) => $call,
        }
    };
}

impl Catalog for Store {
    async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        delegate!(self, c => c.insert(product).await)
    }
    async fn fetch(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        delegate!(self, c => c.fetch(id).await)
    }
    async fn replace(&self, product: &Product) -> Result<bool, StoreError> {
        delegate!(self, c => c.replace(product).await)
    }
    async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        delegate!(self, c => c.delete(id).await)
    }
    async fn list(&self, query: &Query) -> Result<(Vec<Product>, u64), StoreError> {
        delegate!(self, c => c.list(query).await)
    }
    async fn fetch_by_skus(&self, skus: &[String]) -> Result<Vec<Product>, StoreError> {
        delegate!(self, c => c.fetch_by_skus(skus).await)
    }
    async fn ping(&self) -> Result<(), String> {
        delegate!(self, c => c.ping().await)
    }
}
