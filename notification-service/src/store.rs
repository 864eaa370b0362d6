//! The only code of notification-service that talks to its database: which events have
//! had their email sent.

use chrono::Utc;
use common::db::SqlPool;
use common::events::OrderEvent;
use common::on_pool;

/// The service's queries, over its database.
#[derive(Debug, Clone)]
pub struct Store {
    pub pool: SqlPool,
}

impl Store {
    /// Whether the email for `event_id` has gone out already.
    pub async fn already_handled(&self, event_id: &str) -> Result<bool, sqlx::Error> {
        let row: Option<(String,)> = on_pool!(&self.pool, pool => {
            sqlx::query_as("SELECT event_id FROM processed_events WHERE event_id = ?")
                .bind(event_id)
                .fetch_optional(pool)
                .await?
        });
        Ok(row.is_some())
    }

    /// Records that the email for `event` has gone out; a second record of the same
    /// event (a redelivery handled twice at once) is no error.
    pub async fn record_handled(&self, event: &OrderEvent) -> Result<(), sqlx::Error> {
        let result = on_pool!(&self.pool, pool => {
            sqlx::query("INSERT INTO processed_events (event_id, event_type, order_id, handled_at) VALUES (?, ?, ?, ?)")
                .bind(event.id.to_string())
                .bind(&event.kind)
                .bind(event.data.id.to_string())
                .bind(Utc::now())
                .execute(pool)
                .await
                .map(drop)
        });
        match result {
            Err(err) if common::db::is_unique_violation(&err) => Ok(()),
            other => other,
        }
    }
}
