//! How a service reaches Kafka: brokers, TLS and SASL.

use std::path::PathBuf;

use secrecy::SecretString;

use super::{Env, SettingsError};

/// The Kafka cluster and how to authenticate to it (`ECOM_KAFKA_*`).
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// `ECOM_KAFKA_BROKERS`: comma-separated `host:port` bootstrap servers.
    pub brokers: String,
    pub security: KafkaSecurity,
}

/// `ECOM_KAFKA_SECURITY_PROTOCOL`, as librdkafka's `security.protocol`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SecurityProtocol {
    #[default]
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plaintext => "plaintext",
            Self::Ssl => "ssl",
            Self::SaslPlaintext => "sasl_plaintext",
            Self::SaslSsl => "sasl_ssl",
        }
    }

    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }

    pub fn uses_sasl(self) -> bool {
        matches!(self, Self::SaslPlaintext | Self::SaslSsl)
    }
}

impl std::str::FromStr for SecurityProtocol {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        named(s, &[Self::Plaintext, Self::Ssl, Self::SaslPlaintext, Self::SaslSsl], Self::as_str)
    }
}

/// The one of `values` whose name is `s`, in any case; else what the names are.
fn named<T: Copy>(s: &str, values: &[T], name: fn(T) -> &'static str) -> Result<T, String> {
    if let Some(value) = values.iter().copied().find(|v| name(*v).eq_ignore_ascii_case(s)) {
        return Ok(value);
    }
    let names: Vec<&str> = values.iter().map(|v| name(*v)).collect();
    match names.split_last() {
        Some((last, [])) => Err(format!("expected {last}")),
        Some((last, rest)) => Err(format!("expected {} or {last}", rest.join(", "))),
        None => Err("no value is accepted".into()),
    }
}

/// `ECOM_KAFKA_SASL_MECHANISM`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    #[default]
    ScramSha512,
}

impl SaslMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::ScramSha256 => "SCRAM-SHA-256",
            Self::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

impl std::str::FromStr for SaslMechanism {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        named(s, &[Self::Plain, Self::ScramSha256, Self::ScramSha512], Self::as_str)
    }
}

/// SASL credentials; `Debug` hides the password.
#[derive(Debug, Clone)]
pub struct SaslSettings {
    pub mechanism: SaslMechanism,
    /// `ECOM_KAFKA_SASL_USERNAME[_FILE]`.
    pub username: String,
    /// `ECOM_KAFKA_SASL_PASSWORD[_FILE]`.
    pub password: SecretString,
}

/// TLS and SASL towards the brokers. The default is plaintext, as a local broker has.
#[derive(Debug, Clone, Default)]
pub struct KafkaSecurity {
    pub protocol: SecurityProtocol,
    pub sasl: Option<SaslSettings>,
    /// `ECOM_KAFKA_SSL_CA_FILE`: PEM certificates the brokers' certificates must chain
    /// to; unset, the system's trusted CAs.
    pub ca_file: Option<PathBuf>,
    /// `ECOM_KAFKA_SSL_CERT_FILE` / `ECOM_KAFKA_SSL_KEY_FILE`: a client certificate,
    /// for clusters that authenticate clients by certificate.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// `ECOM_KAFKA_SSL_KEY_PASSWORD[_FILE]`: the client key's passphrase.
    pub key_password: Option<SecretString>,
}

impl KafkaSettings {
    pub const DEFAULT_BROKERS: &str = "127.0.0.1:9092";

    /// Brokers without TLS or SASL.
    pub fn plaintext(brokers: impl Into<String>) -> Self {
        Self { brokers: brokers.into(), security: KafkaSecurity::default() }
    }

    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        const PROTOCOL: &str = "ECOM_KAFKA_SECURITY_PROTOCOL";
        const USERNAME: &str = "ECOM_KAFKA_SASL_USERNAME";
        const PASSWORD: &str = "ECOM_KAFKA_SASL_PASSWORD";
        const CERT: &str = "ECOM_KAFKA_SSL_CERT_FILE";
        const KEY: &str = "ECOM_KAFKA_SSL_KEY_FILE";
        let brokers: String = env.or("ECOM_KAFKA_BROKERS", Self::DEFAULT_BROKERS.to_owned())?;
        let protocol: SecurityProtocol = env.or(PROTOCOL, SecurityProtocol::Plaintext)?;
        let username: Option<String> = env.optional(USERNAME)?;
        let password = env.secret(PASSWORD)?;
        let sasl = match (protocol.uses_sasl(), username, password) {
            (true, Some(username), Some(password)) => Some(SaslSettings {
                mechanism: env.or("ECOM_KAFKA_SASL_MECHANISM", SaslMechanism::default())?,
                username,
                password,
            }),
            (true, None, _) => {
                return Err(SettingsError::new(USERNAME, format!("is required with {PROTOCOL}={}", protocol.as_str())));
            }
            (true, Some(_), None) => {
                return Err(SettingsError::new(PASSWORD, format!("is required with {PROTOCOL}={}", protocol.as_str())));
            }
            (false, Some(_), _) | (false, _, Some(_)) => {
                return Err(SettingsError::new(
                    PROTOCOL,
                    format!("is {}, which sends no SASL credentials: use sasl_ssl", protocol.as_str()),
                ));
            }
            (false, None, None) => None,
        };
        let ca_file = env.readable_file("ECOM_KAFKA_SSL_CA_FILE")?;
        let client_cert = match (env.readable_file(CERT)?, env.readable_file(KEY)?) {
            (Some(cert), Some(key)) => Some((cert, key)),
            (None, None) => None,
            (Some(_), None) => return Err(SettingsError::new(KEY, format!("is required with {CERT}"))),
            (None, Some(_)) => return Err(SettingsError::new(CERT, format!("is required with {KEY}"))),
        };
        if !protocol.uses_tls() && (ca_file.is_some() || client_cert.is_some()) {
            return Err(SettingsError::new(
                PROTOCOL,
                format!("is {}, without TLS, but TLS files are configured: use ssl or sasl_ssl", protocol.as_str()),
            ));
        }
        Ok(Self {
            brokers,
            security: KafkaSecurity {
                protocol,
                sasl,
                ca_file,
                client_cert,
                key_password: env.secret("ECOM_KAFKA_SSL_KEY_PASSWORD")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_mechanisms_are_read_in_any_case_and_a_wrong_one_lists_the_accepted() {
        assert_eq!("SASL_SSL".parse::<SecurityProtocol>(), Ok(SecurityProtocol::SaslSsl));
        assert_eq!("scram-sha-256".parse::<SaslMechanism>(), Ok(SaslMechanism::ScramSha256));
        assert_eq!(
            "tls".parse::<SecurityProtocol>().unwrap_err(),
            "expected plaintext, ssl, sasl_plaintext or sasl_ssl"
        );
        assert_eq!("GSSAPI".parse::<SaslMechanism>().unwrap_err(), "expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512");
    }

    #[test]
    fn sasl_ssl_needs_both_credentials_and_names_the_missing_one() {
        let env = Env::from_pairs([("ECOM_KAFKA_SECURITY_PROTOCOL", "sasl_ssl"), ("ECOM_KAFKA_SASL_USERNAME", "ecom")]);
        assert_eq!(KafkaSettings::from_env(&env).unwrap_err().var, "ECOM_KAFKA_SASL_PASSWORD");
        let env = Env::from_pairs([("ECOM_KAFKA_SASL_USERNAME", "ecom"), ("ECOM_KAFKA_SASL_PASSWORD", "x")]);
        assert_eq!(KafkaSettings::from_env(&env).unwrap_err().var, "ECOM_KAFKA_SECURITY_PROTOCOL");
    }

    #[test]
    fn a_missing_ca_file_is_refused_at_start() {
        let env = Env::from_pairs([
            ("ECOM_KAFKA_SECURITY_PROTOCOL", "ssl"),
            ("ECOM_KAFKA_SSL_CA_FILE", "/nonexistent/ecom-ca.pem"),
        ]);
        assert_eq!(KafkaSettings::from_env(&env).unwrap_err().var, "ECOM_KAFKA_SSL_CA_FILE");
    }

    #[test]
    fn the_sasl_password_can_come_from_a_file_and_never_prints() {
        let dir = std::env::temp_dir().join(format!("ecom-kafka-settings-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("password");
        std::fs::write(&file, "hunter2-kafka\n").unwrap();
        let env = Env::from_pairs([
            ("ECOM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL"),
            ("ECOM_KAFKA_SASL_MECHANISM", "PLAIN"),
            ("ECOM_KAFKA_SASL_USERNAME", "ecom"),
            ("ECOM_KAFKA_SASL_PASSWORD_FILE", file.to_str().unwrap()),
        ]);
        let kafka = KafkaSettings::from_env(&env).unwrap();
        let sasl = kafka.security.sasl.as_ref().unwrap();
        assert_eq!(secrecy::ExposeSecret::expose_secret(&sasl.password), "hunter2-kafka");
        assert_eq!(sasl.mechanism, SaslMechanism::Plain);
        assert!(!format!("{kafka:?}").contains("hunter2"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
