//! The only code that talks to the orders database.

use chrono::{DateTime, Utc};
use common::db::SqlPool;
use common::on_pool;
use uuid::Uuid;

use crate::domain::{Money, Order, OrderLine, Status};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

/// An event to append to the outbox in the same transaction as a state change.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    pub event_id: Uuid,
    pub event_type: &'static str,
    pub topic: String,
    pub key: String,
    pub payload: String,
    pub trace_context: String,
}

/// What an `Idempotency-Key` says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// First use: this request owns the key.
    Claimed,
    /// Completed before with the same body: replay this answer.
    Replay { status: u16, body: String },
    /// Another request with this key is still running.
    InProgress,
    /// Used before with a different body.
    Mismatch,
}

#[derive(sqlx::FromRow)]
struct OrderRow {
    id: String,
    user_id: String,
    status: String,
    currency: String,
    total_amount: i64,
    customer_email: String,
    customer_name: String,
    version: i64,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct LineRow {
    sku: String,
    name: String,
    quantity: i64,
    unit_amount: i64,
}

const ORDER_COLUMNS: &str = "id, user_id, status, currency, total_amount, customer_email, customer_name, CAST(version AS SIGNED) AS version, created_at, updated_at";

#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlPool,
}

fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

impl Store {
    pub fn new(pool: SqlPool) -> Self {
        Self { pool }
    }

    pub fn pool(&self) -> &SqlPool {
        &self.pool
    }

    /// Writes a new `PENDING` order with its lines.
    #[tracing::instrument(skip_all, fields(order_id = %order.id))]
    pub async fn insert_pending(&self, order: &Order) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO orders (id, user_id, status, currency, total_amount, customer_email, customer_name, version, \
                 release_pending, created_at, updated_at) VALUES (?, ?, 'PENDING', ?, ?, ?, ?, 1, FALSE, ?, ?)",
            )
            .bind(order.id.to_string())
            .bind(order.user_id.to_string())
            .bind(&order.total.currency)
            .bind(order.total.amount)
            .bind(&order.customer_email)
            .bind(&order.customer_name)
            .bind(order.created_at)
            .bind(order.updated_at)
            .execute(&mut *tx)
            .await?;
            for (n, line) in order.lines.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO order_lines (order_id, line_no, sku, name, quantity, unit_amount) VALUES (?, ?, ?, ?, ?, ?)",
                )
                .bind(order.id.to_string())
                .bind(i64::try_from(n).unwrap_or(i64::MAX))
                .bind(&line.sku)
                .bind(&line.name)
                .bind(line.quantity)
                .bind(line.unit_price.amount)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Moves the order from `from` (at `version`) to `to`, appending `event` to the
    /// outbox in the same transaction. `false` if the order was not in that state
    /// and version any more (a concurrent change won).
    #[tracing::instrument(skip_all, fields(order_id = %id, to = to.as_str()))]
    #[allow(clippy::too_many_arguments)]
    pub async fn transition(
        &self,
        id: Uuid,
        from: Status,
        version: i64,
        to: Status,
        release_pending: bool,
        event: Option<&OutboxEvent>,
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let changed = on_pool!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE orders SET status = ?, version = version + 1, release_pending = ?, updated_at = ? \
                 WHERE id = ? AND status = ? AND version = ?",
            )
            .bind(to.as_str())
            .bind(release_pending)
            .bind(now)
            .bind(id.to_string())
            .bind(from.as_str())
            .bind(version)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if changed && let Some(event) = event {
                sqlx::query(
                    "INSERT INTO outbox (event_id, event_type, topic, event_key, payload, trace_context, created_at) \
                     VALUES (?, ?, ?, ?, ?, ?, ?)",
                )
                .bind(event.event_id.to_string())
                .bind(event.event_type)
                .bind(&event.topic)
                .bind(&event.key)
                .bind(&event.payload)
                .bind(&event.trace_context)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            changed
        });
        Ok(changed)
    }

    /// Marks that inventory confirmed the release of this order's stock.
    pub async fn clear_release_pending(&self, id: Uuid) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE orders SET release_pending = FALSE WHERE id = ?")
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(order_id = %id))]
    pub async fn fetch(&self, id: Uuid) -> Result<Option<Order>, StoreError> {
        let sql = format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?");
        let row: Option<OrderRow> = on_pool!(&self.pool, pool => {
            sqlx::query_as(sqlx::AssertSqlSafe(sql.clone())).bind(id.to_string()).fetch_optional(pool).await?
        });
        match row {
            Some(row) => Ok(Some(self.with_lines(row).await?)),
            None => Ok(None),
        }
    }

    async fn with_lines(&self, row: OrderRow) -> Result<Order, StoreError> {
        let lines: Vec<LineRow> = on_pool!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT sku, name, CAST(quantity AS SIGNED) AS quantity, unit_amount FROM order_lines WHERE order_id = ? ORDER BY line_no",
            )
            .bind(&row.id)
            .fetch_all(pool)
            .await?
        });
        let currency = row.currency.clone();
        Ok(Order {
            id: Uuid::parse_str(&row.id).map_err(corrupt)?,
            user_id: Uuid::parse_str(&row.user_id).map_err(corrupt)?,
            status: Status::parse(&row.status).ok_or_else(|| corrupt(&row.status))?,
            lines: lines
                .into_iter()
                .map(|l| OrderLine {
                    sku: l.sku,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: Money { amount: l.unit_amount, currency: currency.clone() },
                })
                .collect(),
            total: Money { amount: row.total_amount, currency: row.currency },
            created_at: row.created_at,
            updated_at: row.updated_at,
            customer_email: row.customer_email,
            customer_name: row.customer_name,
            version: row.version,
        })
    }

    /// A page of visible orders (`CONFIRMED`, `CANCELLED`), newest first, and their count.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self, user: Option<Uuid>, limit: u32, offset: u64) -> Result<(Vec<Order>, u64), StoreError> {
        let filter = if user.is_some() { "AND user_id = ?" } else { "" };
        let count_sql = format!("SELECT COUNT(*) FROM orders WHERE status IN ('CONFIRMED', 'CANCELLED') {filter}");
        let page_sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status IN ('CONFIRMED', 'CANCELLED') {filter} \
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        );
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let (total, rows): (i64, Vec<OrderRow>) = on_pool!(&self.pool, pool => {
            let mut count = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql.clone()));
            let mut page = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(page_sql.clone()));
            if let Some(user) = user {
                count = count.bind(user.to_string());
                page = page.bind(user.to_string());
            }
            let (total,) = count.fetch_one(pool).await?;
            (total, page.bind(i64::from(limit)).bind(offset).fetch_all(pool).await?)
        });
        let mut orders = Vec::with_capacity(rows.len());
        for row in rows {
            orders.push(self.with_lines(row).await?);
        }
        Ok((orders, total.max(0).unsigned_abs()))
    }

    /// Orders the sweeper must settle: `PENDING` for longer than `older_than`, or
    /// with a release inventory has not confirmed yet.
    pub async fn unsettled(&self, older_than: DateTime<Utc>, limit: u32) -> Result<Vec<Uuid>, StoreError> {
        let ids: Vec<(String,)> = on_pool!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT id FROM orders WHERE (status = 'PENDING' AND updated_at < ?) OR release_pending = TRUE \
                 ORDER BY updated_at LIMIT ?",
            )
            .bind(older_than)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        ids.into_iter().map(|(id,)| Uuid::parse_str(&id).map_err(corrupt)).collect()
    }

    /// Claims `key` for this request, or says what happened to it before.
    pub async fn claim_key(&self, user: Uuid, key: &str, request_hash: &str) -> Result<KeyState, StoreError> {
        // A key is remembered for 24 hours; after that it may be used afresh.
        let expired = Utc::now() - chrono::Duration::hours(24);
        on_pool!(&self.pool, pool => {
            sqlx::query("DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND created_at < ?")
                .bind(user.to_string())
                .bind(key)
                .bind(expired)
                .execute(pool)
                .await
                .map(drop)?
        });
        let inserted = on_pool!(&self.pool, pool => {
            sqlx::query("INSERT INTO idempotency_keys (user_id, idem_key, request_hash, created_at) VALUES (?, ?, ?, ?)")
                .bind(user.to_string())
                .bind(key)
                .bind(request_hash)
                .bind(Utc::now())
                .execute(pool)
                .await
                .map(drop)
        });
        match inserted {
            Ok(()) => return Ok(KeyState::Claimed),
            Err(err) if common::db::is_unique_violation(&err) => {}
            Err(err) => return Err(err.into()),
        }
        let row: Option<(String, Option<i64>, Option<String>)> = on_pool!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT request_hash, CAST(status_code AS SIGNED), response FROM idempotency_keys WHERE user_id = ? AND idem_key = ?",
            )
            .bind(user.to_string())
            .bind(key)
            .fetch_optional(pool)
            .await?
        });
        Ok(match row {
            None => KeyState::InProgress,
            Some((hash, _, _)) if hash != request_hash => KeyState::Mismatch,
            Some((_, Some(status), Some(body))) => {
                KeyState::Replay { status: u16::try_from(status).map_err(corrupt)?, body }
            }
            Some(_) => KeyState::InProgress,
        })
    }

    pub async fn complete_key(&self, user: Uuid, key: &str, status: u16, body: &str) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE idempotency_keys SET status_code = ?, response = ? WHERE user_id = ? AND idem_key = ?")
                .bind(i64::from(status))
                .bind(body)
                .bind(user.to_string())
                .bind(key)
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    /// Gives the key back (the request failed in a way worth retrying).
    pub async fn release_key(&self, user: Uuid, key: &str) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND status_code IS NULL")
                .bind(user.to_string())
                .bind(key)
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }
}
