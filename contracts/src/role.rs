/// What a user or client may do, as tokens carry it (`"roles": ["customer", "admin"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every registered user.
    Customer,
    /// Manages the catalog and stock, sees every order.
    Admin,
    /// A service calling another's internal endpoints.
    Service,
}

wire_names!(Role, "must be customer, admin or service", {
    Customer => "customer",
    Admin => "admin",
    Service => "service",
});

impl Role {
    /// Whether the role names `raw` stand for this role (unknown names are no role).
    pub fn is_in<S: AsRef<str>>(self, raw: &[S]) -> bool {
        raw.iter().any(|name| name.as_ref() == self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_and_write_as_their_lowercase_names() {
        crate::assert_names_round_trip(Role::ALL, Role::parse);
        assert!(Role::parse("Admin").is_err());
        assert!(Role::Admin.is_in(&["customer", "admin"]));
        assert!(!Role::Admin.is_in(&["customer", "administrator"]));
    }
}
