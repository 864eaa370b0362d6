//! Parsing what clients send into values that are known to be valid. The email is
//! the contract's (`contracts::Email`): tokens, orders and events carry it too.
//!
//! Every length limit is checked on the value as it will be stored: after trimming.

use common::problem::FieldError;
use secrecy::SecretString;

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;
pub const NAME_MAX_CHARS: usize = 200;
pub use contracts::{EMAIL_MAX_OCTETS, Email, normalize_email};
use contracts::{Invalid, is_line_or_format};

/// The email of a new account, as a field of the request.
pub fn new_email(raw: &str) -> Result<Email, FieldError> {
    Email::parse(raw).map_err(|Invalid(rule)| FieldError::new("email", rule))
}

/// A person's name as it appears on orders and in emails: 1 to 200 characters once
/// trimmed, with no control characters (no CR/LF to smuggle a header line), no line
/// separators and no bidirectional overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Name(String);

impl Name {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let name = raw.trim();
        let chars = name.chars().count();
        if chars == 0 {
            return Err(FieldError::new("name", "must not be empty"));
        }
        if chars > NAME_MAX_CHARS {
            return Err(FieldError::new("name", format!("must be at most {NAME_MAX_CHARS} characters")));
        }
        if name.chars().any(|c| c.is_control() || is_line_or_format(c)) {
            return Err(FieldError::new("name", "must not contain control characters or line breaks"));
        }
        Ok(Self(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password within the length rules, counted in characters. Never printed.
pub struct Password(SecretString);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// A new password (registration, configuration): 10 to 128 characters.
    pub fn parse_new(raw: String) -> Result<Self, FieldError> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            return Err(FieldError::new("password", format!("must be at least {PASSWORD_MIN_CHARS} characters")));
        }
        Self::parse_presented(raw)
    }

    /// A password presented at login: no stored password is longer than 128
    /// characters, so a longer one is refused before any hashing.
    pub fn parse_presented(raw: String) -> Result<Self, FieldError> {
        // Counting stops at the first character past the limit.
        if raw.chars().nth(PASSWORD_MAX_CHARS).is_some() {
            return Err(FieldError::new("password", format!("must be at most {PASSWORD_MAX_CHARS} characters")));
        }
        Ok(Self(SecretString::from(raw)))
    }

    pub fn into_secret(self) -> SecretString {
        self.0
    }
}

/// The email presented at login, as the key it is looked up by. Only its length is
/// checked: an address that could never be registered is simply not found.
#[derive(Debug, Clone)]
pub struct LoginEmail(String);

impl LoginEmail {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let normalized = normalize_email(raw);
        if normalized.len() > EMAIL_MAX_OCTETS {
            return Err(FieldError::new("email", format!("must be at most {EMAIL_MAX_OCTETS} bytes (UTF-8)")));
        }
        Ok(Self(normalized))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Collects the errors of several parses, in order, or their values.
pub fn all_or_errors<A, B, C>(
    a: Result<A, FieldError>,
    b: Result<B, FieldError>,
    c: Result<C, FieldError>,
) -> Result<(A, B, C), Vec<FieldError>> {
    match (a, b, c) {
        (Ok(a), Ok(b), Ok(c)) => Ok((a, b, c)),
        (a, b, c) => Err([a.err(), b.err(), c.err()].into_iter().flatten().collect()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_control_characters_and_line_breaks() {
        assert_eq!(Name::parse("  Ada Lovelace ").unwrap().as_str(), "Ada Lovelace");
        assert!(Name::parse("Zoë 李").is_ok());
        for bad in
            ["", "  ", "Eve\r\nBcc: x@example.com", "Eve\nBcc", "Eve\u{0}", "Eve\u{7f}", "Eve\u{2028}x", "Eve\u{202E}x"]
        {
            assert!(Name::parse(bad).is_err(), "{bad:?} passed");
        }
        assert!(Name::parse(&"é".repeat(200)).is_ok());
        assert!(Name::parse(&"é".repeat(201)).is_err());
    }

    #[test]
    fn passwords_are_counted_in_characters_not_bytes() {
        assert!(Password::parse_new("ééééééééé".into()).is_err()); // 9 chars, 18 bytes
        assert!(Password::parse_new("é".repeat(128)).is_ok());
        assert!(Password::parse_new("x".repeat(129)).is_err());
        assert!(Password::parse_presented("x".into()).is_ok(), "a short one is just wrong, at login");
        assert!(Password::parse_presented("x".repeat(1 << 20)).is_err());
    }
}
