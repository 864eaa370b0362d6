//! The only code that talks to the stock database.
//!
//! Reservations never read-then-write: each line is one conditional update
//! (`available >= ?`) whose affected-row count decides, all lines in one
//! transaction, so concurrent buyers cannot oversell and a failed line undoes the rest.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use common::db::{Corrupt, SqlPool, corrupt};
use common::on_pool;
use contracts::{Invalid, OrderId, Sku};
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Corrupt(#[from] Corrupt),
    #[error("reservation {0} has no record")]
    NoRecord(OrderId),
    #[error("stock of {0} vanished after it was written")]
    Vanished(Sku),
    #[error("cannot encode {0} for storage")]
    Encode(&'static str, #[source] serde_json::Error),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct StockLevel {
    #[schema(value_type = String)]
    #[sqlx(try_from = "String")]
    pub sku: Sku,
    pub available: i64,
    pub reserved: i64,
}

/// A line that could not be reserved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Insufficient {
    #[schema(value_type = String)]
    pub sku: Sku,
    pub requested: i64,
    pub available: i64,
}

/// The answer to a reservation request, replayed for repeats of the same order id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reservation {
    Reserved {
        lines: Vec<(Sku, i64)>,
    },
    Rejected {
        insufficient: Vec<Insufficient>,
    },
    /// The order was released before (or instead of) this reservation.
    Released,
}

/// Where an order's reservation stands, as `reservation_orders.status` stores it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReservationStatus {
    /// Its units are taken from `available` and held in `reserved`.
    Reserved,
    /// Some line was short; nothing was taken.
    Rejected,
    /// Its units went back (or it was released before any reservation arrived).
    Released,
}

impl ReservationStatus {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "RESERVED",
            Self::Rejected => "REJECTED",
            Self::Released => "RELEASED",
        }
    }

    fn parse(stored: &str) -> Result<Self, Invalid> {
        [Self::Reserved, Self::Rejected, Self::Released]
            .into_iter()
            .find(|status| status.as_str() == stored)
            .ok_or(Invalid("must be RESERVED, REJECTED or RELEASED"))
    }
}

/// The service's queries, over its database.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: SqlPool,
}

impl Store {
    #[tracing::instrument(skip_all, fields(sku = %sku))]
    pub async fn fetch_stock(&self, sku: &Sku) -> Result<Option<StockLevel>, StoreError> {
        Ok(on_pool!(&self.pool, pool => {
            sqlx::query_as::<_, StockLevel>("SELECT sku, available, reserved FROM stock WHERE sku = ?")
                .bind(sku.as_str())
                .fetch_optional(pool)
                .await?
        }))
    }

    /// Sets the sellable count of `sku`, creating it if needed; reserved units stay reserved.
    #[tracing::instrument(skip_all, fields(sku = %sku))]
    pub async fn set_available(&self, sku: &Sku, available: i64) -> Result<StockLevel, StoreError> {
        let now = Utc::now();
        match &self.pool {
            SqlPool::MySql(pool) => {
                sqlx::query(
                    "INSERT INTO stock (sku, available, reserved, updated_at) VALUES (?, ?, 0, ?) \
                     ON DUPLICATE KEY UPDATE available = VALUES(available), updated_at = VALUES(updated_at)",
                )
                .bind(sku.as_str())
                .bind(available)
                .bind(now)
                .execute(pool)
                .await?;
            }
            SqlPool::Sqlite(pool) => {
                sqlx::query(
                    "INSERT INTO stock (sku, available, reserved, updated_at) VALUES (?, ?, 0, ?) \
                     ON CONFLICT (sku) DO UPDATE SET available = excluded.available, updated_at = excluded.updated_at",
                )
                .bind(sku.as_str())
                .bind(available)
                .bind(now)
                .execute(pool)
                .await?;
            }
        }
        self.fetch_stock(sku).await?.ok_or_else(|| StoreError::Vanished(sku.clone()))
    }

    /// Reserves every line or none. A repeat of `order_id` answers as the first
    /// request did and reserves nothing more. `lines` must have distinct skus.
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn reserve(&self, order_id: OrderId, lines: &BTreeMap<Sku, i64>) -> Result<Reservation, StoreError> {
        let now = Utc::now();
        match self.try_reserve(order_id, lines, now).await? {
            Some(insufficient) if insufficient.is_empty() => {
                Ok(Reservation::Reserved { lines: lines.iter().map(|(s, q)| (s.clone(), *q)).collect() })
            }
            Some(insufficient) => self.record_rejection(order_id, insufficient, now).await,
            None => self.recorded(order_id).await,
        }
    }

    /// In one transaction: claims `order_id`, then takes each line's units with a
    /// conditional update, committing only if every line had enough. `None` if the
    /// order id was claimed before; else the lines that were short (none: reserved).
    async fn try_reserve(
        &self,
        order_id: OrderId,
        lines: &BTreeMap<Sku, i64>,
        now: DateTime<Utc>,
    ) -> Result<Option<Vec<Insufficient>>, StoreError> {
        let attempt: Result<_, sqlx::Error> = on_pool!(&self.pool, pool => async {
            let mut tx = pool.begin().await?;
            // Claims the order id first: a concurrent repeat waits here, then sees the key.
            let claimed = sqlx::query("INSERT INTO reservation_orders (order_id, status, created_at) VALUES (?, ?, ?)")
                .bind(order_id.to_string())
                .bind(ReservationStatus::Reserved.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await;
            match claimed {
                Err(err) if common::db::is_unique_violation(&err) => return Ok(None),
                other => other?,
            };
            let mut insufficient = Vec::new();
            // BTreeMap order: every transaction locks rows in the same (sku) order.
            for (sku, quantity) in lines {
                let taken = sqlx::query(
                    "UPDATE stock SET available = available - ?, reserved = reserved + ?, updated_at = ? \
                     WHERE sku = ? AND available >= ?",
                )
                .bind(quantity)
                .bind(quantity)
                .bind(now)
                .bind(sku.as_str())
                .bind(quantity)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if taken == 0 {
                    let available: Option<(i64,)> = sqlx::query_as("SELECT available FROM stock WHERE sku = ?")
                        .bind(sku.as_str())
                        .fetch_optional(&mut *tx)
                        .await?;
                    let available = available.map_or(0, |(a,)| a);
                    insufficient.push(Insufficient { sku: sku.clone(), requested: *quantity, available });
                    continue;
                }
                sqlx::query("INSERT INTO reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)")
                    .bind(order_id.to_string())
                    .bind(sku.as_str())
                    .bind(quantity)
                    .execute(&mut *tx)
                    .await?;
            }
            if insufficient.is_empty() { tx.commit().await? } else { tx.rollback().await? }
            Ok(Some(insufficient))
        }.await);
        Ok(attempt?)
    }

    /// Remembers a rejection so a repeat answers the same; if a repeat got there
    /// first, its record wins.
    async fn record_rejection(
        &self,
        order_id: OrderId,
        insufficient: Vec<Insufficient>,
        now: DateTime<Utc>,
    ) -> Result<Reservation, StoreError> {
        let response = serde_json::to_string(&insufficient)
            .map_err(|err| StoreError::Encode("reservation_orders.response", err))?;
        let recorded = on_pool!(&self.pool, pool => {
            sqlx::query("INSERT INTO reservation_orders (order_id, status, response, created_at) VALUES (?, ?, ?, ?)")
                .bind(order_id.to_string())
                .bind(ReservationStatus::Rejected.as_str())
                .bind(&response)
                .bind(now)
                .execute(pool)
                .await
                .map(drop)
        });
        match recorded {
            Ok(()) => Ok(Reservation::Rejected { insufficient }),
            Err(err) if common::db::is_unique_violation(&err) => self.recorded(order_id).await,
            Err(err) => Err(err.into()),
        }
    }

    /// The stored outcome of an earlier request for `order_id`.
    async fn recorded(&self, order_id: OrderId) -> Result<Reservation, StoreError> {
        let row: Option<(String, Option<String>)> = on_pool!(&self.pool, pool => {
            sqlx::query_as("SELECT status, response FROM reservation_orders WHERE order_id = ?")
                .bind(order_id.to_string())
                .fetch_optional(pool)
                .await?
        });
        let Some((status, response)) = row else {
            return Err(StoreError::NoRecord(order_id));
        };
        match ReservationStatus::parse(&status).map_err(corrupt("reservation_orders.status"))? {
            ReservationStatus::Reserved => {
                let lines: Vec<(String, i64)> = on_pool!(&self.pool, pool => {
                    sqlx::query_as("SELECT sku, CAST(quantity AS SIGNED) FROM reservation_lines WHERE order_id = ? ORDER BY sku")
                        .bind(order_id.to_string())
                        .fetch_all(pool)
                        .await?
                });
                let lines = lines
                    .into_iter()
                    .map(|(sku, quantity)| Ok((Sku::parse(&sku).map_err(corrupt("reservation_lines.sku"))?, quantity)))
                    .collect::<Result<_, StoreError>>()?;
                Ok(Reservation::Reserved { lines })
            }
            ReservationStatus::Rejected => {
                let insufficient = serde_json::from_str(response.as_deref().unwrap_or("[]"))
                    .map_err(corrupt("reservation_orders.response"))?;
                Ok(Reservation::Rejected { insufficient })
            }
            ReservationStatus::Released => Ok(Reservation::Released),
        }
    }

    /// Returns the order's units to `available`. Idempotent; an unknown order is
    /// recorded as released so a reservation arriving late cannot take stock.
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn release(&self, order_id: OrderId) -> Result<(), StoreError> {
        let now = Utc::now();
        on_pool!(&self.pool, pool => {
            let mut tx = pool.begin().await?;
            let tombstone = sqlx::query("INSERT INTO reservation_orders (order_id, status, created_at, released_at) VALUES (?, ?, ?, ?)")
                .bind(order_id.to_string())
                .bind(ReservationStatus::Released.as_str())
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await;
            match tombstone {
                Ok(_) => {}
                Err(err) if common::db::is_unique_violation(&err) => {
                    let released = sqlx::query(
                        "UPDATE reservation_orders SET status = ?, released_at = ? WHERE order_id = ? AND status = ?",
                    )
                    .bind(ReservationStatus::Released.as_str())
                    .bind(now)
                    .bind(order_id.to_string())
                    .bind(ReservationStatus::Reserved.as_str())
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                    if released == 1 {
                        let lines: Vec<(String, i64)> =
                            sqlx::query_as("SELECT sku, CAST(quantity AS SIGNED) FROM reservation_lines WHERE order_id = ? ORDER BY sku")
                                .bind(order_id.to_string())
                                .fetch_all(&mut *tx)
                                .await?;
                        for (sku, quantity) in lines {
                            sqlx::query(
                                "UPDATE stock SET available = available + ?, reserved = reserved - ?, updated_at = ? WHERE sku = ?",
                            )
                            .bind(quantity)
                            .bind(quantity)
                            .bind(now)
                            .bind(&sku)
                            .execute(&mut *tx)
                            .await?;
                        }
                    }
                }
                Err(err) => return Err(err.into()),
            }
            tx.commit().await?;
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_and_an_unknown_one_is_corrupt() {
        for status in [ReservationStatus::Reserved, ReservationStatus::Rejected, ReservationStatus::Released] {
            assert_eq!(ReservationStatus::parse(status.as_str()).unwrap(), status);
        }
        assert!(ReservationStatus::parse("reserved").is_err());
    }
}
