//! A URL that may carry a password, printed without it.

use std::fmt;
use std::str::FromStr;

use url::Url;

/// A URL that may carry credentials (`mysql://user:password@host/db`). `Debug` and
/// `Display` print it with the password as `***`, so settings holding it derive
/// `Debug` and can be logged; [`SecretUrl::expose`] is for the one place that connects.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(Url);

impl SecretUrl {
    /// The URL with its password, for connecting.
    pub fn expose(&self) -> &Url {
        &self.0
    }

    pub fn scheme(&self) -> &str {
        self.0.scheme()
    }

    /// The URL with the password replaced by `***`.
    pub fn redacted(&self) -> String {
        super::redact_url(&self.0)
    }
}

impl From<Url> for SecretUrl {
    fn from(url: Url) -> Self {
        Self(url)
    }
}

impl FromStr for SecretUrl {
    type Err = url::ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Url::parse(s).map(Self)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.redacted(), f)
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::SecretUrl;

    #[test]
    fn a_secret_url_prints_without_its_password() {
        let url: SecretUrl = "mysql://ecom:hunter2@db.internal:3306/orders?ssl-mode=verify_identity".parse().unwrap();
        for printed in [format!("{url:?}"), url.to_string(), url.redacted()] {
            assert!(!printed.contains("hunter2"), "{printed}");
            assert!(printed.contains("ecom:***@db.internal:3306/orders"), "{printed}");
        }
        assert_eq!(url.expose().password(), Some("hunter2"));
    }
}
