//! The outbox relay: publishes committed events to the bus, in order, at least once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use common::bus::{Message, Publisher};
use common::db::SqlPool;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

use crate::store::StoreError;

/// Most events claimed at once.
pub const BATCH: i64 = 100;

#[derive(sqlx::FromRow)]
struct Row {
    seq: i64,
    topic: String,
    event_key: String,
    payload: String,
    trace_context: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Bus(#[from] common::bus::BusError),
}

/// Claims up to [`BATCH`] unsent events, publishes them and marks them sent; a
/// failure leaves them unsent. Returns how many events went out.
///
/// On MySQL the claim, the publish and the marking are one transaction, the rows
/// claimed with `FOR UPDATE SKIP LOCKED`, so several replicas share the work without
/// publishing a row twice. SQLite (one process: `ecom dev`, tests) reads the rows,
/// publishes them and marks them in a short transaction of its own: a read kept open
/// across the publish (which on the in-process bus waits until the consumer has
/// handled the events) would make the marking fail whenever an order committed
/// meanwhile, as SQLite refuses to turn a read of an older snapshot into a write.
// A debug span: polling an empty outbox every 200 ms must not be a trace each time;
// the events it publishes get producer spans in their own requests' traces.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn relay_once(pool: &SqlPool, publisher: &dyn Publisher) -> Result<usize, RelayError> {
    const MARK_SENT: &str = "UPDATE outbox SET sent_at = ?, attempts = attempts + 1 WHERE seq = ?";
    let started = Instant::now();
    let sent = match pool {
        SqlPool::MySql(pool) => {
            let mut conn = pool.acquire().await?;
            // READ COMMITTED: the claim locks the rows it returns and no gaps, so orders
            // keep inserting their outbox rows while a batch is being published (for up
            // to the producer's timeout when the broker is away).
            sqlx::query("SET TRANSACTION ISOLATION LEVEL READ COMMITTED").execute(&mut *conn).await?;
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT seq, topic, event_key, payload, trace_context FROM outbox WHERE sent_at IS NULL \
                 ORDER BY seq LIMIT ? FOR UPDATE SKIP LOCKED",
            )
            .bind(BATCH)
            .fetch_all(&mut *tx)
            .await?;
            publish_all(publisher, &rows).await?;
            for row in &rows {
                sqlx::query(MARK_SENT).bind(Utc::now()).bind(row.seq).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            rows.len()
        }
        SqlPool::Sqlite(pool) => {
            let rows: Vec<Row> = sqlx::query_as(
                "SELECT seq, topic, event_key, payload, trace_context FROM outbox WHERE sent_at IS NULL \
                 ORDER BY seq LIMIT ?",
            )
            .bind(BATCH)
            .fetch_all(pool)
            .await?;
            if rows.is_empty() {
                return Ok(0);
            }
            publish_all(publisher, &rows).await?;
            let mut tx = pool.begin().await?;
            for row in &rows {
                sqlx::query(MARK_SENT).bind(Utc::now()).bind(row.seq).execute(&mut *tx).await?;
            }
            tx.commit().await?;
            rows.len()
        }
    };
    if sent > 0 {
        metrics::counter!("outbox_published_total").increment(sent as u64);
        metrics::histogram!("outbox_publish_duration_seconds").record(started.elapsed().as_secs_f64());
    }
    Ok(sent)
}

/// Publishes in `seq` order; every event of one order id keeps its order.
async fn publish_all(publisher: &dyn Publisher, rows: &[Row]) -> Result<(), common::bus::BusError> {
    // Sent concurrently (the idempotent producer keeps per-partition order), then
    // all delivery reports awaited before anything is marked sent.
    // Each event gets a producer span in the trace of the request that wrote it; its
    // context, not the request's, goes out as `traceparent`, so the consumer's span
    // hangs under the publish.
    let sends = rows.iter().map(|row| {
        let written_in = serde_json::from_str(&row.trace_context).unwrap_or_default();
        let span = tracing::info_span!(
            "publish",
            otel.name = format!("publish {}", row.topic),
            otel.kind = "producer",
            messaging.system = "kafka",
            messaging.destination.name = %row.topic,
            messaging.kafka.message.key = %row.event_key,
        );
        let _ = span.set_parent(common::propagation::extract_map(&written_in));
        let headers = span.in_scope(common::propagation::current_as_map);
        publisher
            .publish(Message {
                topic: row.topic.clone(),
                key: row.event_key.clone(),
                payload: Bytes::from(row.payload.clone()),
                headers,
            })
            .instrument(span)
    });
    for result in futures::future::join_all(sends).await {
        result?;
    }
    Ok(())
}

/// The backlog for the metrics: unsent rows and the age of the oldest.
pub async fn record_backlog(pool: &SqlPool) -> Result<(), sqlx::Error> {
    let (count, oldest): (i64, Option<chrono::DateTime<Utc>>) = common::on_pool!(pool, pool => {
        sqlx::query_as("SELECT COUNT(*), MIN(created_at) FROM outbox WHERE sent_at IS NULL").fetch_one(pool).await?
    });
    metrics::gauge!("outbox_backlog").set(count as f64);
    let age = oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
    metrics::gauge!("outbox_oldest_age_seconds").set(age);
    Ok(())
}

/// Runs the relay until `shutdown`: woken by new events or every 200 ms, backing
/// off while the bus is down (the outbox grows meanwhile) and catching up after.
pub async fn run_relay(pool: SqlPool, publisher: Arc<dyn Publisher>, wake: Arc<Notify>, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    let mut last_backlog = Instant::now() - Duration::from_secs(60);
    loop {
        if last_backlog.elapsed() > Duration::from_secs(5) {
            let _ = record_backlog(&pool).await;
            last_backlog = Instant::now();
        }
        // Cut short at shutdown: on the in-process bus a publish waits for a consumer
        // that may be stopping too. Nothing of the round is marked sent then, so its
        // rows go out again at the next start, as after a crash.
        let relayed = tokio::select! {
            relayed = relay_once(&pool, publisher.as_ref()) => relayed,
            () = shutdown.cancelled() => return,
        };
        let wait = match relayed {
            Ok(n) if n as i64 >= BATCH => {
                backoff = Duration::from_millis(100);
                continue;
            }
            Ok(_) => {
                backoff = Duration::from_millis(100);
                Duration::from_millis(200)
            }
            Err(err) => {
                metrics::counter!("outbox_publish_failures_total").increment(1);
                tracing::warn!(error = %err, retry_in_ms = backoff.as_millis() as u64, "outbox relay failed; retrying");
                let wait = backoff;
                backoff = (backoff * 2).min(Duration::from_secs(10));
                wait
            }
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = shutdown.cancelled() => return,
        }
    }
}
