//! Orders and the transitions between their states; no I/O.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

pub const MAX_LINES: usize = 100;

/// Now, to the microsecond: the precision both databases keep, so what is
/// returned equals what is read back later.
pub fn now() -> DateTime<Utc> {
    let now = Utc::now();
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap_or(now)
}
pub const MAX_QUANTITY: i64 = 1000;

/// Where an order is in its life: the contract's statuses (the API, the events and
/// the rows spell them alike); the moves between them are this service's rule.
pub use contracts::OrderStatus as Status;

/// What happens to an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Reserved,
    PlacementFailed,
    Cancel,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an order that is {from:?} cannot take {event:?}")]
pub struct IllegalTransition {
    pub from: Status,
    pub event: Event,
}

/// The order's life as this service allows it, on the contract's [`Status`].
pub trait Lifecycle: Sized {
    /// The only legal moves: PENDING → CONFIRMED | FAILED, CONFIRMED → CANCELLED.
    fn apply(self, event: Event) -> Result<Self, IllegalTransition>;
}

impl Lifecycle for Status {
    fn apply(self, event: Event) -> Result<Status, IllegalTransition> {
        match (self, event) {
            (Self::Pending, Event::Reserved) => Ok(Self::Confirmed),
            (Self::Pending, Event::PlacementFailed) => Ok(Self::Failed),
            (Self::Confirmed, Event::Cancel) => Ok(Self::Cancelled),
            (from, event) => Err(IllegalTransition { from, event }),
        }
    }
}

pub use contracts::{Currency, Email, Money, OrderId, Sku, UserId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OrderLine {
    #[schema(value_type = String)]
    pub sku: Sku,
    pub name: String,
    pub quantity: i64,
    pub unit_price: Money,
}

/// An order as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Order {
    #[schema(value_type = uuid::Uuid)]
    pub id: OrderId,
    #[schema(value_type = uuid::Uuid)]
    pub user_id: UserId,
    pub status: Status,
    pub lines: Vec<OrderLine>,
    pub total: Money,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    #[serde(skip)]
    pub customer_email: Email,
    #[serde(skip)]
    pub customer_name: String,
    #[serde(skip)]
    pub version: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_saga_s_transitions_are_legal() {
        assert_eq!(Status::Pending.apply(Event::Reserved), Ok(Status::Confirmed));
        assert_eq!(Status::Pending.apply(Event::PlacementFailed), Ok(Status::Failed));
        assert_eq!(Status::Confirmed.apply(Event::Cancel), Ok(Status::Cancelled));
        for (from, event) in [
            (Status::Pending, Event::Cancel),
            (Status::Confirmed, Event::Reserved),
            (Status::Confirmed, Event::PlacementFailed),
            (Status::Cancelled, Event::Cancel),
            (Status::Failed, Event::Reserved),
            (Status::Failed, Event::Cancel),
        ] {
            assert!(from.apply(event).is_err(), "{from:?} + {event:?}");
        }
    }
}
