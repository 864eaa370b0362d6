//! The catalog store: a MongoDB backend for production and a SQLite backend for dev
//! mode, chosen by `DATABASE_URL` and held to the same contract tests. [`Store`] is the
//! one the service uses; each of its methods answers from the backend it holds.

pub mod mongo;
pub mod sqlite;

use chrono::{DateTime, Utc};
use common::db::{Corrupt, PoolSettings, SqlPool, corrupt};
use sqlx::migrate::Migrator;
use uuid::Uuid;

use crate::Settings;
use crate::domain::{Currency, Money, Product, Query, Sku};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
/// MongoDB needs no SQL migrations; an empty set keeps the connect helper uniform.
static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a product with this sku already exists")]
    DuplicateSku,
    #[error("catalog backend: {0}")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
}

/// Timestamps are kept to the millisecond, the precision both backends store.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_millis(now.timestamp_millis()).unwrap_or(now)
}

/// A product as either backend stores it, read back: its values are parsed again, and
/// one that does not parse is a corrupt row.
#[derive(sqlx::FromRow)]
struct Stored {
    id: String,
    sku: String,
    name: String,
    description: String,
    category: String,
    price_amount: i64,
    price_currency: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl Stored {
    fn into_product(self) -> Result<Product, StoreError> {
        let currency = Currency::parse(&self.price_currency).map_err(corrupt("price_currency"))?;
        Ok(Product {
            id: Uuid::parse_str(&self.id).map_err(corrupt("id"))?,
            sku: Sku::parse(&self.sku).map_err(corrupt("sku"))?,
            name: self.name,
            description: self.description,
            category: self.category,
            price: Money::new(self.price_amount, currency),
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
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

    pub async fn insert(&self, product: &Product) -> Result<(), StoreError> {
        match self {
            Self::Mongo(catalog) => catalog.insert(product).await,
            Self::Sqlite(catalog) => catalog.insert(product).await,
        }
    }

    pub async fn fetch(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        match self {
            Self::Mongo(catalog) => catalog.fetch(id).await,
            Self::Sqlite(catalog) => catalog.fetch(id).await,
        }
    }

    /// Replaces the product with `product.id`; `false` if there is none.
    pub async fn replace(&self, product: &Product) -> Result<bool, StoreError> {
        match self {
            Self::Mongo(catalog) => catalog.replace(product).await,
            Self::Sqlite(catalog) => catalog.replace(product).await,
        }
    }

    /// `false` if there was nothing to delete.
    pub async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        match self {
            Self::Mongo(catalog) => catalog.delete(id).await,
            Self::Sqlite(catalog) => catalog.delete(id).await,
        }
    }

    /// One page of matches and the number of all matches.
    pub async fn list(&self, query: &Query) -> Result<(Vec<Product>, u64), StoreError> {
        match self {
            Self::Mongo(catalog) => catalog.list(query).await,
            Self::Sqlite(catalog) => catalog.list(query).await,
        }
    }

    pub async fn fetch_by_skus(&self, skus: &[String]) -> Result<Vec<Product>, StoreError> {
        match self {
            Self::Mongo(catalog) => catalog.fetch_by_skus(skus).await,
            Self::Sqlite(catalog) => catalog.fetch_by_skus(skus).await,
        }
    }

    /// A round trip to the backend, for readiness.
    pub async fn ping(&self) -> Result<(), String> {
        match self {
            Self::Mongo(catalog) => catalog.ping().await,
            Self::Sqlite(catalog) => catalog.ping().await,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn stored() -> Stored {
        Stored {
            id: Uuid::new_v4().to_string(),
            sku: "TEE-RED-M".into(),
            name: "Tee".into(),
            description: String::new(),
            category: "apparel".into(),
            price_amount: 1999,
            price_currency: "EUR".into(),
            created_at: now(),
            updated_at: now(),
        }
    }

    #[test]
    fn a_stored_value_that_does_not_parse_is_reported_as_corrupt_with_its_column() {
        assert!(stored().into_product().is_ok());
        let cases = [
            ("id", Stored { id: "not-a-uuid".into(), ..stored() }),
            ("sku", Stored { sku: "no spaces allowed".into(), ..stored() }),
            ("price_currency", Stored { price_currency: "euro".into(), ..stored() }),
        ];
        for (column, row) in cases {
            match row.into_product() {
                Err(StoreError::Corrupt(err)) => {
                    assert!(err.to_string().starts_with(&format!("corrupt {column}:")), "{err}")
                }
                other => panic!("{column}: {:?}", other.map(|p| p.id)),
            }
        }
    }
}
