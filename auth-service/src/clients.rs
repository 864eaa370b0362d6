//! The service clients auth-service knows, and the service tokens it issues them
//! (the OAuth 2.0 client-credentials grant, RFC 6749 section 4.4).

use std::time::Duration;

use aws_lc_rs::constant_time::verify_slices_are_equal;
use common::auth::{ClientCredentials, Registered, SERVICE_AUDIENCE, SERVICE_ROLE, ServiceClaims};
use common::settings::{Env, SettingsError};
use secrecy::ExposeSecret as _;
use sha2::{Digest as _, Sha256};

use crate::keys::KeyRing;

/// `ECOM_SERVICE_CLIENT_ID`, `ECOM_SERVICE_CLIENT_SECRET[_FILE]`, `ECOM_SERVICE_TOKEN_TTL_SECS`.
#[derive(Debug, Clone)]
pub struct ServiceTokenSettings {
    /// The one client allowed to ask for service tokens; `None` refuses everyone.
    pub client: Option<ClientCredentials>,
    /// Lifetime of a service token.
    pub ttl: Duration,
}

/// The allowed range of `ECOM_SERVICE_TOKEN_TTL_SECS`.
const TTL_SECS: std::ops::RangeInclusive<u64> = 60..=3600;

impl ServiceTokenSettings {
    /// The client is required: without it order-service could not place an order.
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        const TTL: &str = "ECOM_SERVICE_TOKEN_TTL_SECS";
        let ttl = env.or(TTL, 300)?;
        if !TTL_SECS.contains(&ttl) {
            return Err(SettingsError::new(TTL, format!("must be {} to {}", TTL_SECS.start(), TTL_SECS.end())));
        }
        Ok(Self { client: Some(ClientCredentials::from_env(env)?), ttl: Duration::from_secs(ttl) })
    }

    /// No client at all: every request for a service token is refused.
    pub fn disabled() -> Self {
        Self { client: None, ttl: Duration::from_secs(300) }
    }
}

/// What auth-service keeps of its clients: the id and digests of the accepted secrets.
#[derive(Clone)]
pub struct ServiceClients {
    client: Option<(String, Vec<[u8; 32]>)>,
    ttl: Duration,
}

impl std::fmt::Debug for ServiceClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClients")
            .field("client_id", &self.client.as_ref().map(|(id, _)| id))
            .field("ttl", &self.ttl)
            .finish()
    }
}

/// A signed service token and its lifetime.
#[derive(Debug)]
pub struct ServiceToken {
    pub access_token: String,
    pub expires_in: u64,
}

impl ServiceClients {
    pub fn new(settings: &ServiceTokenSettings) -> Self {
        let client = settings.client.as_ref().map(|credentials| {
            let digests = credentials.secrets().iter().map(|s| digest(s.expose_secret())).collect();
            (credentials.client_id().to_owned(), digests)
        });
        Self { client, ttl: settings.ttl }
    }

    /// The client id, if `client_id` and `secret` are those of the known client. The
    /// secret is compared as a digest, in constant time, against every accepted one.
    pub fn authenticate(&self, client_id: &str, secret: &str) -> Option<&str> {
        let (id, digests) = self.client.as_ref()?;
        let presented = digest(secret);
        let matches = digests.iter().fold(false, |found, d| verify_slices_are_equal(d, &presented).is_ok() | found);
        (matches && id == client_id).then_some(id.as_str())
    }

    /// A service token for `client_id`, signed with the active key.
    pub fn issue(&self, keys: &KeyRing, issuer: &str, client_id: &str) -> Result<ServiceToken, anyhow::Error> {
        let claims = ServiceClaims {
            registered: Registered::issued_now(issuer, SERVICE_AUDIENCE, client_id, self.ttl),
            roles: vec![SERVICE_ROLE.to_owned()],
            client_id: Some(client_id.to_owned()),
        };
        Ok(ServiceToken { access_token: keys.sign(&claims)?, expires_in: self.ttl.as_secs() })
    }
}

fn digest(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "3f9c2a7d81e64b05c9e7a1d2f4b8306e";
    const PREVIOUS: &str = "9b1e44c07a3f2d6e8c5b0a7f1e2d3c4b";

    fn clients(secret: &str) -> ServiceClients {
        ServiceClients::new(&ServiceTokenSettings {
            client: Some(ClientCredentials::new("order-service", secret).unwrap()),
            ttl: Duration::from_secs(300),
        })
    }

    #[test]
    fn only_the_known_client_with_its_secret_is_authenticated() {
        let clients = clients(SECRET);
        assert_eq!(clients.authenticate("order-service", SECRET), Some("order-service"));
        assert_eq!(clients.authenticate("order-service", PREVIOUS), None);
        assert_eq!(clients.authenticate("inventory-service", SECRET), None);
        assert_eq!(clients.authenticate("order-service", ""), None);
        assert_eq!(ServiceClients::new(&ServiceTokenSettings::disabled()).authenticate("order-service", SECRET), None);
    }

    #[test]
    fn every_secret_of_a_rotation_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("secret");
        std::fs::write(&file, format!("{SECRET}\n{PREVIOUS}\n")).unwrap();
        let env = Env::from_pairs([("ECOM_SERVICE_CLIENT_SECRET_FILE", file.display().to_string())]);
        let clients = ServiceClients::new(&ServiceTokenSettings::from_env(&env).unwrap());
        assert!(clients.authenticate("order-service", SECRET).is_some());
        assert!(clients.authenticate("order-service", PREVIOUS).is_some());
    }

    #[test]
    fn debug_output_holds_no_secret_material() {
        let printed = format!("{:?}", clients(SECRET));
        assert!(printed.contains("order-service"));
        assert!(!printed.contains(SECRET));
    }
}
