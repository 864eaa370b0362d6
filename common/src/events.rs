//! The event contract on topic `orders.v1` (API.md, Events). Readers ignore fields
//! they do not know, so producers may add fields; removing or renaming one is a
//! new topic version.

use chrono::{DateTime, Utc};
use contracts::{Currency, Email, Money, OrderId, OrderStatus, Sku, UserId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const ORDERS_TOPIC: &str = "orders.v1";
pub const ORDER_CONFIRMED: &str = "order.confirmed";
pub const ORDER_CANCELLED: &str = "order.cancelled";

/// The envelope of every event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: String,
    pub time: DateTime<Utc>,
    pub data: T,
}

/// [`Money`] as an event carries it: the same JSON, but read as a reader of the topic
/// reads everything, ignoring fields it does not know (a request body refuses them).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyData {
    pub amount: i64,
    pub currency: Currency,
}

impl From<Money> for MoneyData {
    fn from(Money { amount, currency }: Money) -> Self {
        Self { amount, currency }
    }
}

impl From<MoneyData> for Money {
    fn from(MoneyData { amount, currency }: MoneyData) -> Self {
        Money::new(amount, currency)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLineData {
    pub sku: Sku,
    pub name: String,
    pub quantity: i64,
    pub unit_price: MoneyData,
}

/// The order as it was when the event happened, and who to tell. Each value parses
/// as the API's does, so an event with a malformed one is not an order event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderData {
    pub id: OrderId,
    pub user_id: UserId,
    pub status: OrderStatus,
    pub lines: Vec<OrderLineData>,
    pub total: MoneyData,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub customer_email: Email,
    pub customer_name: String,
}

pub type OrderEvent = Envelope<OrderData>;

#[cfg(test)]
mod tests {
    use super::*;

    const GOLDEN_CONFIRMED: &str = r#"{
        "id": "0192f5a0-0000-7000-8000-000000000001",
        "type": "order.confirmed",
        "source": "order-service",
        "time": "2026-11-25T10:00:00Z",
        "data": {
            "id": "0192f5a0-0000-7000-8000-0000000000aa",
            "user_id": "0192f5a0-0000-7000-8000-0000000000bb",
            "status": "CONFIRMED",
            "lines": [{"sku": "MUG-1", "name": "Mug", "quantity": 2, "unit_price": {"amount": 1299, "currency": "EUR"}}],
            "total": {"amount": 2598, "currency": "EUR"},
            "created_at": "2026-11-25T10:00:00Z",
            "updated_at": "2026-11-25T10:00:00Z",
            "customer_email": "ada@example.com",
            "customer_name": "Ada Lovelace",
            "field_from_the_future": {"ignored": true}
        },
        "another_new_field": 1
    }"#;

    #[test]
    fn the_golden_confirmed_event_still_parses_and_unknown_fields_are_ignored() {
        let event: OrderEvent = serde_json::from_str(GOLDEN_CONFIRMED).unwrap();
        assert_eq!(event.kind, ORDER_CONFIRMED);
        assert_eq!(event.data.total.amount, 2598);
        assert_eq!(event.data.lines[0].unit_price.currency.as_str(), "EUR");
        assert_eq!(event.data.status, OrderStatus::Confirmed);
        assert_eq!(event.data.customer_email.as_str(), "ada@example.com");
        assert_eq!(event.data.customer_name, "Ada Lovelace");
    }

    #[test]
    fn an_event_round_trips_with_the_field_names_of_the_contract() {
        let event: OrderEvent = serde_json::from_str(GOLDEN_CONFIRMED).unwrap();
        let json = serde_json::to_value(&event).unwrap();
        for key in ["id", "type", "source", "time", "data"] {
            assert!(json.get(key).is_some(), "{key}");
        }
        assert_eq!(serde_json::from_value::<OrderEvent>(json).unwrap(), event);
    }

    #[test]
    fn an_event_with_a_malformed_value_is_not_an_order_event() {
        let golden: serde_json::Value = serde_json::from_str(GOLDEN_CONFIRMED).unwrap();
        for (field, bad) in [
            ("status", serde_json::json!("SHIPPED")),
            ("customer_email", serde_json::json!("ada")),
            ("user_id", serde_json::json!("ada")),
            ("total", serde_json::json!({"amount": 1, "currency": "euro"})),
        ] {
            let mut event = golden.clone();
            event["data"][field] = bad;
            assert!(serde_json::from_value::<OrderEvent>(event).is_err(), "{field}");
        }
    }
}
