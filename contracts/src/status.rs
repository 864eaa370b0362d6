use crate::Invalid;

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
impl OrderStatus {
    pub const ALL: [Self; 4] = [Self::Pending, Self::Confirmed, Self::Failed, Self::Cancelled];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Confirmed => "CONFIRMED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|status| status.as_str() == raw)
            .ok_or(Invalid("must be PENDING, CONFIRMED, FAILED or CANCELLED"))
    }

    /// Whether a customer sees the order (`CONFIRMED`, `CANCELLED`); the others are a
    /// placement in progress or rolled back.
    pub const fn is_visible(self) -> bool {
        matches!(self, Self::Confirmed | Self::Cancelled)
    }
}

impl std::fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_on_the_wire_and_in_a_row() {
        for status in OrderStatus::ALL {
            assert_eq!(OrderStatus::parse(status.as_str()), Ok(status));
            assert_eq!(serde_json::to_string(&status).unwrap(), format!("\"{status}\""));
            assert_eq!(serde_json::from_str::<OrderStatus>(&format!("\"{status}\"")).unwrap(), status);
        }
        assert!(OrderStatus::parse("confirmed").is_err());
        assert!(serde_json::from_str::<OrderStatus>("\"SHIPPED\"").is_err());
    }
}
