//! The only code that talks to the orders database.

use chrono::{DateTime, Utc};
use common::db::{Corrupt, SqlPool, corrupt};
use common::on_pool;
use uuid::Uuid;

use crate::domain::{Currency, Email, Money, Order, OrderId, OrderLine, Sku, Status, UserId};
use crate::idempotency::KEY_RETENTION;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    /// An event that did not serialise for the outbox.
    #[error("event payload: {0}")]
    Encode(#[from] serde_json::Error),
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

/// One order's move between states, applied only if the order is still in `from` at
/// `version` (the same rule as [`apply`](crate::domain::Lifecycle::apply), enforced by the database).
#[derive(Debug, Clone, Copy)]
pub struct Transition<'a> {
    pub id: OrderId,
    pub from: Status,
    pub version: i64,
    pub to: Status,
    /// The order's reserved stock must (still) be released: it was rolled back after
    /// a reservation that may have happened, or cancelled.
    pub release_stock: bool,
    /// What the move announces, written to the outbox with it.
    pub event: Option<&'a OutboxEvent>,
    pub at: DateTime<Utc>,
}

impl<'a> Transition<'a> {
    /// `order`, as it was read, to `to`: now, announcing nothing, releasing nothing.
    pub fn of(order: &Order, to: Status) -> Self {
        Self {
            id: order.id,
            from: order.status,
            version: order.version,
            to,
            release_stock: false,
            event: None,
            at: crate::domain::now(),
        }
    }

    /// The same move, also marking the order's stock for release.
    pub fn releasing_stock(self) -> Self {
        Self { release_stock: true, ..self }
    }

    /// The same move at `at`, announced by `event`.
    pub fn announcing(self, event: &'a OutboxEvent, at: DateTime<Utc>) -> Self {
        Self { event: Some(event), at, ..self }
    }
}

/// One request's hold on a user's `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRef {
    pub user: UserId,
    pub key: String,
    /// The request holding it.
    pub owner: Uuid,
}

/// What an `Idempotency-Key` says about a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// First use: this request owns the key.
    Claimed,
    /// The previous owner's lease ran out before it answered: this request owns the key
    /// now, and must settle the order the previous owner recorded, if any.
    TakenOver { previous_order: Option<OrderId> },
    /// Completed before with the same body: replay this answer.
    Replay { status: u16, body: String },
    /// Another request holds the key until `until`.
    InProgress { until: DateTime<Utc> },
    /// Used before with a different body.
    Mismatch,
}

/// One request's attempt at claiming a key: `key.owner`'s, for a body hashing to
/// `request_hash`, to hold until `lease_until`, made at `now`.
#[derive(Clone, Copy)]
struct Claim<'a> {
    key: &'a KeyRef,
    request_hash: &'a str,
    lease_until: DateTime<Utc>,
    now: DateTime<Utc>,
}

#[derive(Debug, sqlx::FromRow)]
struct KeyRow {
    request_hash: String,
    status_code: Option<i64>,
    response: Option<String>,
    owner: Option<String>,
    locked_until: Option<DateTime<Utc>>,
    order_id: Option<String>,
}

impl KeyRow {
    /// What the stored key means for a request of `key.owner` with `request_hash`,
    /// which did (`taken`) or did not just take the key over.
    fn state(self, key: &KeyRef, request_hash: &str, taken: bool, now: DateTime<Utc>) -> Result<KeyState, StoreError> {
        if taken && self.owner.as_deref() == Some(key.owner.to_string().as_str()) {
            let previous_order = self
                .order_id
                .as_deref()
                .map(OrderId::parse)
                .transpose()
                .map_err(corrupt("idempotency_keys.order_id"))?;
            return Ok(KeyState::TakenOver { previous_order });
        }
        Ok(match self {
            KeyRow { request_hash: hash, .. } if hash != request_hash => KeyState::Mismatch,
            KeyRow { status_code: Some(status), response: Some(body), .. } => KeyState::Replay {
                status: u16::try_from(status).map_err(corrupt("idempotency_keys.status_code"))?,
                body,
            },
            KeyRow { locked_until, .. } => KeyState::InProgress { until: locked_until.unwrap_or(now) },
        })
    }
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

/// The service's queries, over its database.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: SqlPool,
}

impl Store {
    /// Writes a new `PENDING` order with its lines.
    #[tracing::instrument(skip_all, fields(order_id = %order.id))]
    pub async fn insert_pending(&self, order: &Order) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO orders (id, user_id, status, currency, total_amount, customer_email, customer_name, version, \
                 release_pending, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, FALSE, ?, ?)",
            )
            .bind(order.id.to_string())
            .bind(order.user_id.to_string())
            .bind(Status::Pending.as_str())
            .bind(order.total.currency.as_str())
            .bind(order.total.amount)
            .bind(order.customer_email.as_str())
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
                .bind(line.sku.as_str())
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

    /// Applies `change`, appending its event to the outbox in the same transaction.
    /// `false` if the order was not in that state and version any more (a concurrent
    /// change won).
    #[tracing::instrument(skip_all, fields(order_id = %change.id, to = change.to.as_str()))]
    pub async fn transition(&self, change: Transition<'_>) -> Result<bool, StoreError> {
        let Transition { id, from, version, to, release_stock, event, at } = change;
        let changed = on_pool!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            let changed = sqlx::query(
                "UPDATE orders SET status = ?, version = version + 1, release_pending = ?, updated_at = ? \
                 WHERE id = ? AND status = ? AND version = ?",
            )
            .bind(to.as_str())
            .bind(release_stock)
            .bind(at)
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
                .bind(at)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            changed
        });
        Ok(changed)
    }

    /// Marks that a rolled-back or cancelled order's stock must (still) be released.
    pub async fn mark_release_pending(&self, id: OrderId) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("UPDATE orders SET release_pending = TRUE WHERE id = ? AND status IN (?, ?)")
                .bind(id.to_string())
                .bind(Status::Failed.as_str())
                .bind(Status::Cancelled.as_str())
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    /// Marks that inventory confirmed the release of this order's stock.
    pub async fn clear_release_pending(&self, id: OrderId) -> Result<(), StoreError> {
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
    pub async fn fetch(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
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
        let currency = Currency::parse(&row.currency).map_err(corrupt("orders.currency"))?;
        let lines = lines
            .into_iter()
            .map(|l| {
                Ok(OrderLine {
                    sku: Sku::parse(&l.sku).map_err(corrupt("order_lines.sku"))?,
                    name: l.name,
                    quantity: l.quantity,
                    unit_price: Money::new(l.unit_amount, currency.clone()),
                })
            })
            .collect::<Result<_, StoreError>>()?;
        Ok(Order {
            id: OrderId::parse(&row.id).map_err(corrupt("orders.id"))?,
            user_id: UserId::parse(&row.user_id).map_err(corrupt("orders.user_id"))?,
            status: Status::parse(&row.status).map_err(corrupt("orders.status"))?,
            lines,
            total: Money::new(row.total_amount, currency),
            created_at: row.created_at,
            updated_at: row.updated_at,
            customer_email: Email::parse(&row.customer_email).map_err(corrupt("orders.customer_email"))?,
            customer_name: row.customer_name,
            version: row.version,
        })
    }

    /// A page of visible orders (`CONFIRMED`, `CANCELLED`), newest first, and their count.
    #[tracing::instrument(skip_all)]
    pub async fn list(&self, user: Option<UserId>, limit: u32, offset: u64) -> Result<(Vec<Order>, u64), StoreError> {
        let filter = if user.is_some() { "AND user_id = ?" } else { "" };
        let count_sql = format!("SELECT COUNT(*) FROM orders WHERE status IN (?, ?) {filter}");
        let page_sql = format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE status IN (?, ?) {filter} \
             ORDER BY created_at DESC, id DESC LIMIT ? OFFSET ?"
        );
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        let (visible, also) = (Status::Confirmed.as_str(), Status::Cancelled.as_str());
        let (total, rows): (i64, Vec<OrderRow>) = on_pool!(&self.pool, pool => {
            let mut count = sqlx::query_as::<_, (i64,)>(sqlx::AssertSqlSafe(count_sql.clone())).bind(visible).bind(also);
            let mut page = sqlx::query_as::<_, OrderRow>(sqlx::AssertSqlSafe(page_sql.clone())).bind(visible).bind(also);
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
    pub async fn unsettled(&self, older_than: DateTime<Utc>, limit: u32) -> Result<Vec<OrderId>, StoreError> {
        let ids: Vec<(String,)> = on_pool!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT id FROM orders WHERE (status = ? AND updated_at < ?) OR release_pending = TRUE \
                 ORDER BY updated_at LIMIT ?",
            )
            .bind(Status::Pending.as_str())
            .bind(older_than)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?
        });
        let ids = ids.into_iter().map(|(id,)| OrderId::parse(&id).map_err(corrupt("orders.id")));
        Ok(ids.collect::<Result<_, _>>()?)
    }

    /// Claims `key` for the request `owner` until `lease_until`, takes it over when
    /// the previous owner's lease ran out, or says what happened to it before.
    pub async fn claim_key(
        &self,
        key: &KeyRef,
        request_hash: &str,
        lease_until: DateTime<Utc>,
    ) -> Result<KeyState, StoreError> {
        let now = Utc::now();
        self.forget_expired_key(key, now - KEY_RETENTION).await?;
        let claim = Claim { key, request_hash, lease_until, now };
        if self.insert_key(&claim).await? {
            return Ok(KeyState::Claimed);
        }
        // Someone used the key before: take it over if their lease ran out.
        let taken = self.take_over_key(&claim).await?;
        let Some(row) = self.fetch_key(key).await? else {
            // Purged between the insert and the read: the client may simply retry.
            return Ok(KeyState::InProgress { until: now });
        };
        row.state(key, request_hash, taken, now)
    }

    /// Deletes `key` if it was first used before `expired`: it may be used afresh.
    async fn forget_expired_key(&self, key: &KeyRef, expired: DateTime<Utc>) -> Result<(), StoreError> {
        on_pool!(&self.pool, pool => {
            sqlx::query("DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND created_at < ?")
                .bind(key.user.to_string())
                .bind(&key.key)
                .bind(expired)
                .execute(pool)
                .await
                .map(drop)?
        });
        Ok(())
    }

    /// Records the first use of `key`; `false` if it was used before.
    async fn insert_key(&self, claim: &Claim<'_>) -> Result<bool, StoreError> {
        let Claim { key, request_hash, lease_until, now } = *claim;
        let inserted = on_pool!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO idempotency_keys (user_id, idem_key, request_hash, owner, locked_until, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?)",
            )
            .bind(key.user.to_string())
            .bind(&key.key)
            .bind(request_hash)
            .bind(key.owner.to_string())
            .bind(lease_until)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        });
        match inserted {
            Ok(()) => Ok(true),
            Err(err) if common::db::is_unique_violation(&err) => Ok(false),
            Err(err) => Err(err.into()),
        }
    }

    /// Makes `key.owner` the holder of an unanswered key whose lease ran out by `now`.
    async fn take_over_key(&self, claim: &Claim<'_>) -> Result<bool, StoreError> {
        let Claim { key, request_hash, lease_until, now } = *claim;
        let taken = on_pool!(&self.pool, pool => {
            sqlx::query(
                "UPDATE idempotency_keys SET owner = ?, locked_until = ? WHERE user_id = ? AND idem_key = ? \
                 AND request_hash = ? AND status_code IS NULL AND (locked_until IS NULL OR locked_until < ?)",
            )
            .bind(key.owner.to_string())
            .bind(lease_until)
            .bind(key.user.to_string())
            .bind(&key.key)
            .bind(request_hash)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        });
        Ok(taken)
    }

    async fn fetch_key(&self, key: &KeyRef) -> Result<Option<KeyRow>, StoreError> {
        let row = on_pool!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT request_hash, CAST(status_code AS SIGNED) AS status_code, response, owner, locked_until, order_id \
                 FROM idempotency_keys WHERE user_id = ? AND idem_key = ?",
            )
            .bind(key.user.to_string())
            .bind(&key.key)
            .fetch_optional(pool)
            .await?
        });
        Ok(row)
    }

    /// Records which order the request holding `key` is about to write, so a takeover
    /// can settle it. `false` if the request no longer holds the key.
    pub async fn attach_order(&self, key: &KeyRef, order: OrderId) -> Result<bool, StoreError> {
        let attached = on_pool!(&self.pool, pool => {
            sqlx::query(
                "UPDATE idempotency_keys SET order_id = ? WHERE user_id = ? AND idem_key = ? AND owner = ? \
                 AND status_code IS NULL",
            )
            .bind(order.to_string())
            .bind(key.user.to_string())
            .bind(&key.key)
            .bind(key.owner.to_string())
            .execute(pool)
            .await?
            .rows_affected()
                == 1
        });
        Ok(attached)
    }

    /// Stores the final answer for `key`; later requests with it replay this answer.
    pub async fn complete_key(&self, key: &KeyRef, status: u16, body: &str) -> Result<(), StoreError> {
        self.end_lease(key, Some((status, body))).await
    }

    /// Ends the lease of `key` without an answer (nothing final was decided, or the
    /// request was dropped): the next request with the key takes it over at once and
    /// settles whatever order it recorded.
    pub async fn release_key(&self, key: &KeyRef) -> Result<(), StoreError> {
        self.end_lease(key, None).await
    }

    /// Ends `key.owner`'s lease on the unanswered `key`, storing the `answer` (status
    /// and body) when there is one. Without one the answer columns stay empty, as they
    /// are on every unanswered key.
    async fn end_lease(&self, key: &KeyRef, answer: Option<(u16, &str)>) -> Result<(), StoreError> {
        let (status, body) = answer.map_or((None, None), |(status, body)| (Some(i64::from(status)), Some(body)));
        on_pool!(&self.pool, pool => {
            sqlx::query(
                "UPDATE idempotency_keys SET status_code = ?, response = ?, locked_until = NULL \
                 WHERE user_id = ? AND idem_key = ? AND owner = ? AND status_code IS NULL",
            )
            .bind(status)
            .bind(body)
            .bind(key.user.to_string())
            .bind(&key.key)
            .bind(key.owner.to_string())
            .execute(pool)
            .await
            .map(drop)?
        });
        Ok(())
    }

    /// Deletes keys older than their retention; returns how many.
    pub async fn purge_keys(&self, limit: u32) -> Result<u64, StoreError> {
        let expired = Utc::now() - KEY_RETENTION;
        let purged = on_pool!(&self.pool, pool => {
            // MySQL has no LIMIT in a DELETE with a subquery on the same table; SQLite
            // has no LIMIT in DELETE at all: select the victims first.
            let keys: Vec<(String, String)> = sqlx::query_as(
                "SELECT user_id, idem_key FROM idempotency_keys WHERE created_at < ? ORDER BY created_at LIMIT ?",
            )
            .bind(expired)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await?;
            let mut purged = 0;
            for (user, key) in keys {
                purged += sqlx::query("DELETE FROM idempotency_keys WHERE user_id = ? AND idem_key = ? AND created_at < ?")
                    .bind(user)
                    .bind(key)
                    .bind(expired)
                    .execute(pool)
                    .await?
                    .rows_affected();
            }
            purged
        });
        Ok(purged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> KeyRef {
        KeyRef { user: Uuid::now_v7().into(), key: "k".into(), owner: Uuid::now_v7() }
    }

    fn row(owner: &KeyRef) -> KeyRow {
        KeyRow {
            request_hash: "h".into(),
            status_code: None,
            response: None,
            owner: Some(owner.owner.to_string()),
            locked_until: None,
            order_id: None,
        }
    }

    #[test]
    fn a_key_this_request_took_over_hands_it_the_order_to_settle() {
        let (key, order) = (key(), OrderId::from(Uuid::now_v7()));
        let row = KeyRow { order_id: Some(order.to_string()), ..row(&key) };
        let state = row.state(&key, "h", true, Utc::now()).unwrap();
        assert_eq!(state, KeyState::TakenOver { previous_order: Some(order) });
    }

    #[test]
    fn a_key_used_with_another_body_is_a_mismatch_even_when_answered() {
        let key = key();
        let row = KeyRow { status_code: Some(201), response: Some("{}".into()), ..row(&key) };
        assert_eq!(row.state(&key, "other", false, Utc::now()).unwrap(), KeyState::Mismatch);
    }

    #[test]
    fn an_answered_key_replays_and_an_unanswered_one_is_in_progress_until_its_lease_ends() {
        let (key, now) = (key(), Utc::now());
        let answered = KeyRow { status_code: Some(409), response: Some("{}".into()), ..row(&key) };
        assert_eq!(answered.state(&key, "h", false, now).unwrap(), KeyState::Replay { status: 409, body: "{}".into() });
        let until = now + chrono::Duration::seconds(30);
        let held = KeyRow { locked_until: Some(until), owner: Some(Uuid::now_v7().to_string()), ..row(&key) };
        assert_eq!(held.state(&key, "h", false, now).unwrap(), KeyState::InProgress { until });
    }
}
