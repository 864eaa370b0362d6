//! The SQLite backend of the catalog (dev mode).

use common::db::PoolSettings;
use common::settings::SecretUrl;
use sqlx::{AssertSqlSafe, SqlitePool};
use uuid::Uuid;

use super::{StoreError, Stored};
use crate::domain::{Product, Query, Sort};

#[derive(Debug, Clone)]
pub struct SqliteCatalog {
    pool: SqlitePool,
}

const COLUMNS: &str = "id, sku, name, description, category, price_amount, price_currency, created_at, updated_at";

fn backend(err: sqlx::Error) -> StoreError {
    if common::db::is_unique_violation(&err) { StoreError::DuplicateSku } else { StoreError::Backend(err.into()) }
}

/// Binds what a write sets, in the order both statements name it: sku, name,
/// description, category, price amount and currency, updated_at.
fn bind_values<'q>(
    query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    p: &'q Product,
) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
    query
        .bind(p.sku.as_str())
        .bind(&p.name)
        .bind(&p.description)
        .bind(&p.category)
        .bind(p.price.amount)
        .bind(p.price.currency.as_str())
        .bind(p.updated_at)
}

enum Bind {
    Text(String),
    Int(i64),
}

impl SqliteCatalog {
    pub async fn connect(url: &SecretUrl, pool: &PoolSettings) -> anyhow::Result<Self> {
        Ok(Self { pool: super::sqlite_pool(url, pool).await? })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    pub(super) async fn insert(&self, p: &Product) -> Result<(), StoreError> {
        let insert = sqlx::query(
            "INSERT INTO products (sku, name, description, category, price_amount, price_currency, updated_at, \
             created_at, id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        );
        bind_values(insert, p).bind(p.created_at).bind(p.id.to_string()).execute(&self.pool).await.map_err(backend)?;
        Ok(())
    }

    pub(super) async fn fetch(&self, id: Uuid) -> Result<Option<Product>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM products WHERE id = ?");
        let row = sqlx::query_as::<_, Stored>(AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        row.map(Stored::into_product).transpose()
    }

    pub(super) async fn replace(&self, p: &Product) -> Result<bool, StoreError> {
        let update = sqlx::query(
            "UPDATE products SET sku = ?, name = ?, description = ?, category = ?, price_amount = ?, price_currency = ?, \
             updated_at = ? WHERE id = ?",
        );
        let updated = bind_values(update, p).bind(p.id.to_string()).execute(&self.pool).await.map_err(backend)?;
        Ok(updated.rows_affected() == 1)
    }

    pub(super) async fn delete(&self, id: Uuid) -> Result<bool, StoreError> {
        let deleted = sqlx::query("DELETE FROM products WHERE id = ?")
            .bind(id.to_string())
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(deleted.rows_affected() == 1)
    }

    pub(super) async fn list(&self, query: &Query) -> Result<(Vec<Product>, u64), StoreError> {
        let mut clauses = Vec::new();
        let mut binds = Vec::new();
        if let Some(q) = &query.q {
            let escaped = q.to_lowercase().replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
            clauses.push("(lower(name) LIKE ? ESCAPE '\\' OR lower(description) LIKE ? ESCAPE '\\')");
            binds.push(Bind::Text(format!("%{escaped}%")));
            binds.push(Bind::Text(format!("%{escaped}%")));
        }
        if let Some(category) = &query.category {
            clauses.push("category = ?");
            binds.push(Bind::Text(category.clone()));
        }
        if let Some(min) = query.min_price {
            clauses.push("price_amount >= ?");
            binds.push(Bind::Int(min));
        }
        if let Some(max) = query.max_price {
            clauses.push("price_amount <= ?");
            binds.push(Bind::Int(max));
        }
        let filter = if clauses.is_empty() { String::new() } else { format!("WHERE {}", clauses.join(" AND ")) };
        let order = match query.sort {
            Sort::Name => "lower(name) ASC, id ASC",
            Sort::Price => "price_amount ASC, id ASC",
            Sort::PriceDesc => "price_amount DESC, id ASC",
            Sort::CreatedAt => "created_at ASC, id ASC",
            Sort::CreatedAtDesc => "created_at DESC, id DESC",
        };
        let count_sql = format!("SELECT COUNT(*) FROM products {filter}");
        let mut count = sqlx::query_as::<_, (i64,)>(AssertSqlSafe(count_sql));
        for bind in &binds {
            count = match bind {
                Bind::Text(t) => count.bind(t.clone()),
                Bind::Int(i) => count.bind(*i),
            };
        }
        let (total,) = count.fetch_one(&self.pool).await.map_err(backend)?;
        let page_sql = format!("SELECT {COLUMNS} FROM products {filter} ORDER BY {order} LIMIT ? OFFSET ?");
        let mut page = sqlx::query_as::<_, Stored>(AssertSqlSafe(page_sql));
        for bind in &binds {
            page = match bind {
                Bind::Text(t) => page.bind(t.clone()),
                Bind::Int(i) => page.bind(*i),
            };
        }
        let offset = i64::try_from(query.offset()).unwrap_or(i64::MAX);
        let rows = page.bind(i64::from(query.per_page)).bind(offset).fetch_all(&self.pool).await.map_err(backend)?;
        let products = rows.into_iter().map(Stored::into_product).collect::<Result<_, _>>()?;
        Ok((products, total.max(0).unsigned_abs()))
    }

    pub(super) async fn fetch_by_skus(&self, skus: &[String]) -> Result<Vec<Product>, StoreError> {
        if skus.is_empty() {
            return Ok(Vec::new());
        }
        let marks = vec!["?"; skus.len()].join(", ");
        let sql = format!("SELECT {COLUMNS} FROM products WHERE sku IN ({marks})");
        let mut query = sqlx::query_as::<_, Stored>(AssertSqlSafe(sql));
        for sku in skus {
            query = query.bind(sku.clone());
        }
        let rows = query.fetch_all(&self.pool).await.map_err(backend)?;
        rows.into_iter().map(Stored::into_product).collect()
    }

    pub(super) async fn ping(&self) -> Result<(), String> {
        sqlx::query("SELECT 1").execute(&self.pool).await.map(drop).map_err(|_| "database unreachable".to_owned())
    }
}
