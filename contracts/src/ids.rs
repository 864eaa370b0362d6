use std::fmt;

use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            pub fn parse(raw: &str) -> Result<Self, crate::Invalid> {
                Uuid::parse_str(raw).map(Self).map_err(|_| crate::Invalid("must be a UUID"))
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = crate::Invalid;
            fn from_str(raw: &str) -> Result<Self, crate::Invalid> {
                Self::parse(raw)
            }
        }

        impl TryFrom<String> for $name {
            type Error = crate::Invalid;
            fn try_from(raw: String) -> Result<Self, crate::Invalid> {
                Self::parse(&raw)
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

uuid_id!(
    /// A user, as auth-service assigns it and tokens carry it (`sub`).
    UserId
);
uuid_id!(
    /// An order, as order-service assigns it.
    OrderId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_uuids_on_the_wire_and_do_not_mix() {
        let id = Uuid::now_v7();
        let order = OrderId::from(id);
        assert_eq!(serde_json::to_string(&order).unwrap(), format!("\"{id}\""));
        assert_eq!(OrderId::parse(&id.to_string()).unwrap(), order);
        assert!(UserId::parse("not-a-uuid").is_err());
    }
}
