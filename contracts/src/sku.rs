use crate::Invalid;

/// A stock keeping unit: 1 to 64 characters of `A-Z a-z 0-9 - _`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sku(String);

impl Sku {
    pub const MAX_LEN: usize = 64;
    /// The rule, as the OpenAPI documents state it.
    pub const PATTERN: &'static str = "^[A-Za-z0-9_-]{1,64}$";
    const RULE: &'static str = "must be 1-64 characters of A-Z a-z 0-9 - _";

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let allowed = |b: u8| b.is_ascii_alphanumeric() || b == b'-' || b == b'_';
        if (1..=Self::MAX_LEN).contains(&raw.len()) && raw.bytes().all(allowed) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid(Self::RULE))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

string_value!(Sku);

impl std::borrow::Borrow<str> for Sku {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Sku {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Sku {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_digits_dashes_and_underscores_up_to_64_are_a_sku() {
        for ok in ["MUG-001", "a", "x_y-Z9", &"A".repeat(64)] {
            assert_eq!(Sku::parse(ok).unwrap().as_str(), ok);
        }
        for bad in ["", "bad sku", "MUG.1", "ÄPFEL", &"A".repeat(65)] {
            assert!(Sku::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_invalid_sku_fails_deserialisation_with_the_rule() {
        let err = serde_json::from_str::<Sku>("\"bad sku\"").unwrap_err().to_string();
        assert!(err.starts_with("must be 1-64 characters of A-Z a-z 0-9 - _"), "{err}");
        assert_eq!(serde_json::to_string(&Sku::parse("B-1").unwrap()).unwrap(), "\"B-1\"");
    }
}
