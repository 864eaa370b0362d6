//! Placing and cancelling orders: the small saga of docs/architecture.md, and the
//! sweeper that settles what a crash left half-done.

use std::collections::{BTreeMap, HashMap};

use chrono::Utc;

use crate::domain::now;
use common::auth::Identity;
use common::events::{self, Envelope, OrderData, OrderEvent, OrderLineData};
use common::problem::FieldError;
use uuid::Uuid;

use crate::AppState;
use crate::clients::{Reserve, Shortage, Unavailable};
use crate::domain::{
    Currency, Event, IllegalTransition, Lifecycle as _, MAX_LINES, MAX_QUANTITY, Money, Order, OrderId, OrderLine, Sku,
    Status,
};
use crate::store::{KeyRef, OutboxEvent, StoreError, Transition};

#[derive(Debug, thiserror::Error)]
pub enum SagaError {
    #[error("invalid order")]
    Validation(Vec<FieldError>),
    #[error("out of stock")]
    OutOfStock(Vec<Shortage>),
    #[error(transparent)]
    Unavailable(#[from] Unavailable),
    #[error("not found")]
    NotFound,
    #[error("the order cannot be cancelled in its current state")]
    NotCancellable,
    #[error("another request took the Idempotency-Key over")]
    KeyLost,
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A requested line: sku and quantity.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub sku: Sku,
    pub quantity: i64,
}

/// Checks shape before anything is looked up.
pub fn validate(lines: &[Wanted]) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if lines.is_empty() {
        errors.push(FieldError::new("lines", "must hold at least one line"));
    } else if lines.len() > MAX_LINES {
        errors.push(FieldError::new("lines", format!("must hold at most {MAX_LINES} lines")));
    }
    // The cap holds per sku, not per line: the same sku on several lines is one request.
    let mut totals: HashMap<&Sku, i64> = HashMap::new();
    for (i, line) in lines.iter().enumerate().take(MAX_LINES + 1) {
        if !(1..=MAX_QUANTITY).contains(&line.quantity) {
            errors.push(FieldError::new(format!("lines[{i}].quantity"), format!("must be 1 to {MAX_QUANTITY}")));
            continue;
        }
        let total = totals.entry(&line.sku).or_default();
        let before = *total;
        *total += line.quantity;
        if before <= MAX_QUANTITY && *total > MAX_QUANTITY {
            errors.push(FieldError::new(
                format!("lines[{i}].quantity"),
                format!("with the earlier lines of the same sku comes to {total}; at most {MAX_QUANTITY} per sku"),
            ));
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// validate → prices from product-service → `PENDING` → reserve → `CONFIRMED` + outbox.
#[tracing::instrument(skip_all, fields(order_id, user_id = %who.user_id))]
pub async fn place(
    state: &AppState,
    who: &Identity,
    wanted: Vec<Wanted>,
    key: Option<&KeyRef>,
) -> Result<Order, SagaError> {
    validate(&wanted).map_err(SagaError::Validation)?;
    let catalog = state.products.lookup(&distinct_skus(&wanted)).await.inspect_err(|_| {
        metrics::counter!("orders_rejected_total", "reason" => "unavailable").increment(1);
    })?;
    let order = price(who, &wanted, &catalog).map_err(SagaError::Validation)?;
    tracing::Span::current().record("order_id", tracing::field::display(order.id));
    // Recorded before the order exists, so whoever takes the key over can settle it.
    if let Some(key) = key
        && !state.store.attach_order(key, order.id).await?
    {
        return Err(SagaError::KeyLost);
    }
    state.store.insert_pending(&order).await?;

    match state.inventory.reserve(order.id, &units_per_sku(&order)).await {
        Ok(Reserve::Reserved) => confirm(state, order).await,
        Ok(Reserve::Insufficient(shortages)) => {
            state.store.transition(Transition::of(&order, Status::Failed)).await?;
            metrics::counter!("orders_rejected_total", "reason" => "out_of_stock").increment(1);
            Err(SagaError::OutOfStock(shortages))
        }
        Err(unavailable) => {
            // The reservation may or may not have happened: release it (idempotent).
            state.store.transition(Transition::of(&order, Status::Failed).releasing_stock()).await?;
            release_pending_stock(state, order.id).await?;
            metrics::counter!("orders_rejected_total", "reason" => "unavailable").increment(1);
            Err(SagaError::Unavailable(unavailable))
        }
    }
}

/// Each sku once, sorted: what product-service is asked to price.
fn distinct_skus(wanted: &[Wanted]) -> Vec<Sku> {
    let mut skus: Vec<Sku> = wanted.iter().map(|l| l.sku.clone()).collect();
    skus.sort();
    skus.dedup();
    skus
}

/// The units of each sku over all lines of `order`: what inventory is asked to reserve.
fn units_per_sku(order: &Order) -> Vec<(Sku, i64)> {
    let mut totals: BTreeMap<Sku, i64> = BTreeMap::new();
    for line in &order.lines {
        *totals.entry(line.sku.clone()).or_default() += line.quantity;
    }
    totals.into_iter().collect()
}

/// Confirms the `PENDING` `order` whose stock is reserved, with its event. If it was
/// rolled back meanwhile, the units just reserved go back and the client retries.
async fn confirm(state: &AppState, order: Order) -> Result<Order, SagaError> {
    let to = Status::Pending.apply(Event::Reserved)?;
    let mut confirmed = order.clone();
    confirmed.status = to;
    confirmed.version = order.version + 1;
    confirmed.updated_at = now();
    let event = outbox_event(&confirmed, events::ORDER_CONFIRMED, &state.orders_topic)?;
    let change = Transition::of(&order, to).announcing(&event, confirmed.updated_at);
    if !state.store.transition(change).await? {
        // Rolled back first (by the sweeper after a long stall, or by a retry that
        // took the key over): the units just reserved go back.
        state.store.mark_release_pending(order.id).await?;
        release_pending_stock(state, order.id).await?;
        return Err(SagaError::Unavailable(Unavailable {
            service: "order-service",
            reason: "the placement stalled and was rolled back".into(),
            retry_after_secs: 1,
        }));
    }
    state.outbox_wake.notify_one();
    metrics::counter!("orders_placed_total").increment(1);
    Ok(confirmed)
}

/// The order with authoritative names and prices, or what is wrong with the request.
fn price(
    who: &Identity,
    wanted: &[Wanted],
    catalog: &HashMap<Sku, crate::clients::CatalogEntry>,
) -> Result<Order, Vec<FieldError>> {
    let mut errors = Vec::new();
    let mut lines = Vec::with_capacity(wanted.len());
    let mut currency: Option<Currency> = None;
    let mut total: i64 = 0;
    for (i, line) in wanted.iter().enumerate() {
        let Some(entry) = catalog.get(&line.sku) else {
            errors.push(FieldError::new(format!("lines[{i}].sku"), "unknown sku"));
            continue;
        };
        match &currency {
            None => currency = Some(entry.price.currency.clone()),
            Some(c) if *c != entry.price.currency => {
                errors.push(FieldError::new(
                    format!("lines[{i}].sku"),
                    format!("is priced in {}, the order in {c}", entry.price.currency),
                ));
            }
            Some(_) => {}
        }
        match entry.price.amount.checked_mul(line.quantity).and_then(|l| total.checked_add(l)) {
            Some(t) => total = t,
            None => errors.push(FieldError::new(format!("lines[{i}].quantity"), "the total is too large")),
        }
        lines.push(OrderLine {
            sku: line.sku.clone(),
            name: entry.name.clone(),
            quantity: line.quantity,
            unit_price: entry.price.clone(),
        });
    }
    let Some(currency) = currency.filter(|_| errors.is_empty()) else {
        if errors.is_empty() {
            errors.push(FieldError::new("lines", "must hold at least one line"));
        }
        return Err(errors);
    };
    let now = now();
    Ok(Order {
        id: OrderId::from(Uuid::now_v7()),
        user_id: who.user_id,
        status: Status::Pending,
        lines,
        total: Money::new(total, currency),
        created_at: now,
        updated_at: now,
        customer_email: who.email.clone(),
        customer_name: who.name.clone().unwrap_or_else(|| who.email.to_string()),
        version: 1,
    })
}

/// The outbox row for `order` in its new state, carrying the current trace context.
pub fn outbox_event(order: &Order, kind: &'static str, topic: &str) -> Result<OutboxEvent, StoreError> {
    let event: OrderEvent = Envelope {
        id: Uuid::now_v7(),
        kind: kind.to_owned(),
        source: crate::SERVICE.to_owned(),
        time: Utc::now(),
        data: OrderData {
            id: order.id,
            user_id: order.user_id,
            status: order.status,
            lines: order
                .lines
                .iter()
                .map(|l| OrderLineData {
                    sku: l.sku.clone(),
                    name: l.name.clone(),
                    quantity: l.quantity,
                    unit_price: l.unit_price.clone().into(),
                })
                .collect(),
            total: order.total.clone().into(),
            created_at: order.created_at,
            updated_at: order.updated_at,
            customer_email: order.customer_email.clone(),
            customer_name: order.customer_name.clone(),
        },
    };
    let payload = serde_json::to_string(&event)?;
    let trace = serde_json::to_string(&common::propagation::current_as_map())?;
    Ok(OutboxEvent {
        event_id: event.id,
        event_type: kind,
        topic: topic.to_owned(),
        key: order.id.to_string(),
        payload,
        trace_context: trace,
    })
}

/// Cancels a `CONFIRMED` order of `who` (or any order for an admin) and releases its stock.
#[tracing::instrument(skip_all, fields(order_id = %id, user_id = %who.user_id))]
pub async fn cancel(state: &AppState, who: &Identity, id: OrderId) -> Result<Order, SagaError> {
    let order = state.store.fetch(id).await?.ok_or(SagaError::NotFound)?;
    if order.user_id != who.user_id && !who.is_admin() {
        return Err(SagaError::NotFound);
    }
    if matches!(order.status, Status::Pending | Status::Failed) {
        return Err(SagaError::NotFound);
    }
    if order.status == Status::Cancelled {
        // A repeated cancel (its first answer was lost) gets the same answer.
        return Ok(order);
    }
    let to = order.status.apply(Event::Cancel).map_err(|_| SagaError::NotCancellable)?;
    let mut cancelled = order.clone();
    cancelled.status = to;
    cancelled.version = order.version + 1;
    cancelled.updated_at = now();
    let event = outbox_event(&cancelled, events::ORDER_CANCELLED, &state.orders_topic)?;
    let change = Transition::of(&order, to).releasing_stock().announcing(&event, cancelled.updated_at);
    if !state.store.transition(change).await? {
        // A concurrent change won: a concurrent cancel is this one's answer too.
        return match state.store.fetch(id).await? {
            Some(now) if now.status == Status::Cancelled => Ok(now),
            _ => Err(SagaError::NotCancellable),
        };
    }
    state.outbox_wake.notify_one();
    metrics::counter!("orders_cancelled_total").increment(1);
    // The order is cancelled; if inventory cannot be reached now, the sweeper releases later.
    release_pending_stock(state, id).await?;
    Ok(cancelled)
}

/// At most this many expired idempotency keys are deleted per sweep.
const KEYS_PURGED_PER_SWEEP: u32 = 1000;
/// At most this many unsettled orders are settled per sweep; the next sweep goes on.
const ORDERS_SETTLED_PER_SWEEP: u32 = 100;

/// Settles orders a crash or an outage left half-done: a stale `PENDING` order is
/// rolled back (its reservation released, then `FAILED`), and every release that
/// inventory has not confirmed is retried. Returns how many orders it settled.
// A debug span: the periodic sweep is not exported as a trace of its own.
#[tracing::instrument(level = "debug", skip_all)]
pub async fn sweep_once(state: &AppState) -> Result<usize, StoreError> {
    let purged = state.store.purge_keys(KEYS_PURGED_PER_SWEEP).await?;
    if purged > 0 {
        tracing::debug!(purged, "purged expired idempotency keys");
    }
    let cutoff = Utc::now() - state.sweep_pending_after;
    let mut settled = 0;
    for id in state.store.unsettled(cutoff, ORDERS_SETTLED_PER_SWEEP).await? {
        let Some(order) = state.store.fetch(id).await? else { continue };
        if state.inventory.release(id).await.is_err() {
            continue;
        }
        if order.status == Status::Pending {
            if state.store.transition(Transition::of(&order, Status::Failed)).await? {
                tracing::warn!(order_id = %id, "rolled back an order abandoned in PENDING");
                settled += 1;
            }
        } else {
            state.store.clear_release_pending(id).await?;
            settled += 1;
        }
    }
    Ok(settled)
}

/// Settles the order a request recorded under its key before it died (or was dropped):
/// a `PENDING` one is rolled back and its stock released. Returns the order when it had
/// reached a final state the client should get as the answer.
#[tracing::instrument(skip_all, fields(order_id = %id))]
pub async fn settle_abandoned(state: &AppState, id: OrderId) -> Result<Option<Order>, SagaError> {
    let Some(order) = state.store.fetch(id).await? else { return Ok(None) };
    match order.status {
        Status::Confirmed | Status::Cancelled => Ok(Some(order)),
        Status::Failed => Ok(None),
        Status::Pending => {
            if !state.store.transition(Transition::of(&order, Status::Failed).releasing_stock()).await? {
                // Settled meanwhile (by the sweeper, or the holder was alive after all).
                let settled = state.store.fetch(id).await?;
                return Ok(settled.filter(|o| matches!(o.status, Status::Confirmed | Status::Cancelled)));
            }
            tracing::warn!("rolled back an order whose request died holding its Idempotency-Key");
            release_pending_stock(state, id).await?;
            Ok(None)
        }
    }
}

/// Releases the stock of `id`, whose `release_pending` is set: now if inventory answers
/// (and the flag is cleared), else the sweeper retries it.
async fn release_pending_stock(state: &AppState, id: OrderId) -> Result<(), StoreError> {
    match state.inventory.release(id).await {
        Ok(()) => state.store.clear_release_pending(id).await,
        Err(err) => {
            tracing::warn!(order_id = %id, error = %err, "stock release deferred to the sweeper");
            Ok(())
        }
    }
}
