use crate::Invalid;

/// RFC 5321: a path holds at most 256 octets, so an address at most 254.
pub const EMAIL_MAX_OCTETS: usize = 254;
/// RFC 5321: the local part holds at most 64 octets.
pub const EMAIL_LOCAL_MAX_OCTETS: usize = 64;
/// RFC 1035: a domain label holds at most 63 octets.
const DOMAIN_LABEL_MAX_OCTETS: usize = 63;

/// An email address: an RFC 5322 addr-spec in its dot-atom form (`local@domain.tld`,
/// with RFC 6531's UTF-8 allowed), at most 254 octets as given and lowercased.
/// No display name, comment, quoted local part or address literal.
///
/// Every length limit is checked on the value as it will be stored: after trimming
/// and after the lowercasing that makes comparisons case-insensitive (some characters
/// grow when lowercased: `İ` becomes two).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email {
    /// As given, without surrounding whitespace: what the user sees.
    address: String,
    /// Lowercased: what makes two spellings the same account.
    normalized: String,
}

impl Email {
    const RULE: &'static str = "must be an email address of the form name@example.com";
    const TOO_LONG: &'static str = "must be at most 254 bytes (UTF-8), also when lowercased";

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let address = raw.trim();
        let normalized = normalize_email(address);
        // Checked first and on both forms, so nothing longer is looked at further.
        if address.len() > EMAIL_MAX_OCTETS || normalized.len() > EMAIL_MAX_OCTETS {
            return Err(Invalid(Self::TOO_LONG));
        }
        let (local, domain) = normalized.split_once('@').ok_or(Invalid(Self::RULE))?;
        if local.len() > EMAIL_LOCAL_MAX_OCTETS {
            return Err(Invalid(Self::TOO_LONG));
        }
        if !is_dot_atom(local) || !is_domain(domain) {
            return Err(Invalid(Self::RULE));
        }
        Ok(Self { address: address.to_owned(), normalized })
    }

    /// As given: what the user sees and mail is addressed to.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// Lowercased: two spellings of one address are one account.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }
}

string_value!(Email);

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
pub fn is_line_or_format(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}')
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
        assert!(Email::TOO_LONG.contains(&EMAIL_MAX_OCTETS.to_string()));
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
    fn an_invalid_email_fails_deserialisation_with_the_rule() {
        let err = serde_json::from_str::<Email>("\"ada\"").unwrap_err().to_string();
        assert!(err.starts_with(Email::RULE), "{err}");
        let email: Email = serde_json::from_str("\"Ada@Example.com\"").unwrap();
        assert_eq!(serde_json::to_string(&email).unwrap(), "\"Ada@Example.com\"");
    }
}
