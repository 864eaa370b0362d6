//! Parsing what clients send into values that are known to be valid.
//!
//! Every length limit is checked on the value as it will be stored: after trimming
//! and, for emails, after the lowercasing that makes comparisons case-insensitive
//! (some characters grow when lowercased: `İ` becomes two).

use common::problem::FieldError;
use secrecy::SecretString;

pub const PASSWORD_MIN_CHARS: usize = 10;
pub const PASSWORD_MAX_CHARS: usize = 128;
pub const NAME_MAX_CHARS: usize = 200;
/// RFC 5321: a path holds at most 256 octets, so an address at most 254.
pub const EMAIL_MAX_OCTETS: usize = 254;
/// RFC 5321: the local part holds at most 64 octets.
pub const EMAIL_LOCAL_MAX_OCTETS: usize = 64;
/// RFC 1035: a domain label holds at most 63 octets.
const DOMAIN_LABEL_MAX_OCTETS: usize = 63;

/// An email address: an RFC 5322 addr-spec in its dot-atom form (`local@domain.tld`,
/// with RFC 6531's UTF-8 allowed), at most 254 octets as given and lowercased.
/// No display name, comment, quoted local part or address literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email {
    /// As given, without surrounding whitespace: what the user sees.
    address: String,
    /// Lowercased: what makes two spellings the same account.
    normalized: String,
}

impl Email {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || FieldError::new("email", "must be an email address of the form name@example.com");
        let too_long = || {
            FieldError::new("email", format!("must be at most {EMAIL_MAX_OCTETS} bytes (UTF-8), also when lowercased"))
        };
        let address = raw.trim();
        let normalized = normalize_email(address);
        // Checked first and on both forms, so nothing longer is looked at further.
        if address.len() > EMAIL_MAX_OCTETS || normalized.len() > EMAIL_MAX_OCTETS {
            return Err(too_long());
        }
        let (local, domain) = normalized.split_once('@').ok_or_else(invalid)?;
        if local.len() > EMAIL_LOCAL_MAX_OCTETS {
            return Err(too_long());
        }
        if !is_dot_atom(local) || !is_domain(domain) {
            return Err(invalid());
        }
        Ok(Self { address: address.to_owned(), normalized })
    }

    pub fn as_str(&self) -> &str {
        &self.address
    }

    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

/// What makes two spellings of an address the same account.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

/// RFC 5322 `atext` (RFC 6531 adds UTF-8), minus anything invisible or control.
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric()
        || "!#$%&'*+-/=?^_`{|}~".contains(c)
        || (!c.is_ascii() && !c.is_control() && !c.is_whitespace() && !is_line_or_format(c))
}

fn is_dot_atom(s: &str) -> bool {
    !s.is_empty() && s.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext))
}

/// A host name of at least two labels: letters and digits (any script), inner hyphens.
fn is_domain(domain: &str) -> bool {
    let labels: Vec<&str> = domain.split('.').collect();
    labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= DOMAIN_LABEL_MAX_OCTETS
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        })
}

/// Line and paragraph separators and bidirectional overrides: they break a header
/// line or reorder what a reader sees.
fn is_line_or_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
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

    fn email_ok(email: &str) -> bool {
        Email::parse(email).is_ok()
    }

    #[test]
    fn plausible_emails_pass_and_malformed_ones_do_not() {
        assert!(email_ok("ada@example.com"));
        assert!(email_ok("Ada.Lovelace+shop@mail.example.co.uk"));
        assert!(email_ok("jürgen@müller.example"));
        assert!(email_ok("x!#$%&'*+/=?^_`{|}~-y@a-b.xn--p1ai"));
        for bad in [
            "",
            "ada",
            "ada@",
            "@example.com",
            "ada@example",
            "a b@example.com",
            "a@b@c.com",
            "ada@.com",
            "ada@example..com",
            "ada.@example.com",
            ".ada@example.com",
            "a..b@example.com",
            "Ada <ada@example.com>",
            "<ada@example.com>",
            "\"ada\"@example.com",
            "ada(comment)@example.com",
            "ada@[127.0.0.1]",
            "ada@-example.com",
            "ada@example-.com",
            "ada@exa_mple.com",
            "ada\r\n@example.com",
            "ada\u{202E}@example.com",
        ] {
            assert!(!email_ok(bad), "{bad:?} passed");
        }
    }

    #[test]
    fn email_lengths_are_checked_after_lowercasing() {
        // 30 × `İ` is 60 bytes; lowercased, 90: over the local part's 64.
        let grows = format!("{}@example.com", "İ".repeat(30));
        assert!(grows.len() - "@example.com".len() <= EMAIL_LOCAL_MAX_OCTETS);
        assert!(!email_ok(&grows));
        assert!(!email_ok(&format!("{}@example.com", "İ".repeat(240))));
        let local = "a".repeat(64);
        let label = "b".repeat(63);
        let longest = format!("{local}@{label}.{label}.{}.com", "c".repeat(57));
        assert_eq!(longest.len(), EMAIL_MAX_OCTETS);
        assert!(email_ok(&longest));
        assert!(!email_ok(&format!("a{longest}")));
    }

    #[test]
    fn emails_keep_their_spelling_and_compare_lowercased() {
        let email = Email::parse("  Ada@Example.COM ").unwrap();
        assert_eq!(email.as_str(), "Ada@Example.COM");
        assert_eq!(email.normalized(), "ada@example.com");
    }

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
