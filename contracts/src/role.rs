use std::fmt;

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

impl Role {
    pub const ALL: [Self; 3] = [Self::Customer, Self::Admin, Self::Service];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Customer => "customer",
            Self::Admin => "admin",
            Self::Service => "service",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == raw)
    }

    /// Whether the role names `raw` stand for this role (unknown names are no role).
    pub fn is_in<S: AsRef<str>>(self, raw: &[S]) -> bool {
        raw.iter().any(|name| name.as_ref() == self.as_str())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_read_and_write_as_their_lowercase_names() {
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(serde_json::to_string(&role).unwrap(), format!("\"{role}\""));
        }
        assert_eq!(Role::parse("Admin"), None);
        assert!(Role::Admin.is_in(&["customer", "admin"]));
        assert!(!Role::Admin.is_in(&["customer", "administrator"]));
    }
}
