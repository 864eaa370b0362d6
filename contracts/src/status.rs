/// Where an order is in its life. `Pending` and `Failed` are internal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema), schema(as = Status))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum OrderStatus {
    Pending,
    Confirmed,
    Failed,
    Cancelled,
}

// The statuses are the contract's (the API, the events and order-service's rows spell
// them so); which moves between them are legal is order-service's rule.
wire_names!(OrderStatus, "must be PENDING, CONFIRMED, FAILED or CANCELLED", {
    Pending => "PENDING",
    Confirmed => "CONFIRMED",
    Failed => "FAILED",
    Cancelled => "CANCELLED",
});

impl OrderStatus {
    /// Whether a customer sees the order (`CONFIRMED`, `CANCELLED`); the others are a
    /// placement in progress or rolled back.
    pub const fn is_visible(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_on_the_wire_and_in_a_row() {
        crate::assert_names_round_trip(OrderStatus::ALL, OrderStatus::parse);
        assert!(OrderStatus::parse("confirmed").is_err());
        assert!(serde_json::from_str::<OrderStatus>("\"SHIPPED\"").is_err());
    }
}
