use std::num::NonZeroU32;
use std::path::PathBuf;

use common::bus::BusConfig;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, KafkaSettings, SecretUrl, ServerSettings, SettingsError};
use secrecy::SecretString;

use crate::DEFAULT_PORT;

/// notification-service configuration. `Debug` hides passwords.
#[derive(Debug, Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL[_FILE]`: `mysql://` or `sqlite://`; `ECOM_DB_PASSWORD[_FILE]`.
    pub database_url: SecretUrl,
    /// `ECOM_DB_MAX_CONNECTIONS`.
    pub pool: PoolSettings,
    /// `ECOM_KAFKA_*`: where order events are consumed from, with TLS and SASL when set.
    pub bus: BusConfig,
    /// `ECOM_ORDERS_TOPIC`: the topic consumed (`orders.v1`); dead letters go to `<topic>.dlq`.
    pub orders_topic: String,
    /// `ECOM_KAFKA_GROUP`: the consumer group.
    pub kafka_group: String,
    pub mail: MailSettings,
}

/// Where email goes.
#[derive(Debug, Clone)]
pub struct MailSettings {
    /// `ECOM_MAIL_FROM`.
    pub from: String,
    pub transport: MailTransport,
    /// `ECOM_MAIL_MAX_ATTEMPTS`: attempts at an email the mail server keeps deferring
    /// (4xx to the message or its recipient) before it goes to the dead-letter topic.
    pub max_attempts: NonZeroU32,
}

/// The default of `ECOM_MAIL_MAX_ATTEMPTS`.
pub const DEFAULT_MAIL_MAX_ATTEMPTS: NonZeroU32 = NonZeroU32::new(5).expect("five is not zero");

#[derive(Debug, Clone)]
pub enum MailTransport {
    /// `ECOM_SMTP_URL[_FILE]`: `smtp://host:port` (plain), `smtp://host:port?tls=required`
    /// (STARTTLS) or `smtps://host:port` (implicit TLS), with `ECOM_SMTP_USERNAME[_FILE]` /
    /// `ECOM_SMTP_PASSWORD[_FILE]` (or `user:password@` in the URL) when the server wants
    /// them, and `ECOM_SMTP_CA_FILE` for a server whose certificate a private CA signed.
    Smtp { url: SecretUrl, username: Option<String>, password: Option<SecretString>, ca_file: Option<PathBuf> },
    /// `ECOM_MAIL_DIR`: one `.eml` file per message (dev mode).
    Files { dir: PathBuf },
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        match (env.raw("ECOM_SMTP_USERNAME").is_some(), env.raw("ECOM_SMTP_PASSWORD").is_some()) {
            (true, false) => {
                return Err(SettingsError::new("ECOM_SMTP_PASSWORD", "is required with ECOM_SMTP_USERNAME"));
            }
            (false, true) => {
                return Err(SettingsError::new("ECOM_SMTP_USERNAME", "is required with ECOM_SMTP_PASSWORD"));
            }
            _ => {}
        }
        let transport = match env.optional::<PathBuf>("ECOM_MAIL_DIR")? {
            Some(dir) => MailTransport::Files { dir },
            None => MailTransport::Smtp {
                url: env.secret_url("ECOM_SMTP_URL", "smtp://127.0.0.1:1025", &["smtp", "smtps"])?,
                username: env.optional("ECOM_SMTP_USERNAME")?,
                password: env.secret("ECOM_SMTP_PASSWORD")?,
                ca_file: env.readable_file("ECOM_SMTP_CA_FILE")?,
            },
        };
        let from: String = env.or("ECOM_MAIL_FROM", "ecom <no-reply@ecom.local>".to_owned())?;
        from.parse::<lettre::message::Mailbox>()
            .map_err(|e| SettingsError::new("ECOM_MAIL_FROM", format!("not a mailbox: {e}")))?;
        let max_attempts = env.or("ECOM_MAIL_MAX_ATTEMPTS", DEFAULT_MAIL_MAX_ATTEMPTS)?;
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.database_url("sqlite://data/notifications.db", common::db::SCHEMES)?,
            pool: PoolSettings::from_env(env)?,
            bus: BusConfig::Kafka(KafkaSettings::from_env(env)?),
            orders_topic: env.or("ECOM_ORDERS_TOPIC", common::events::ORDERS_TOPIC.to_owned())?,
            kafka_group: env.or("ECOM_KAFKA_GROUP", "notification-service".to_owned())?,
            mail: MailSettings { from, transport, max_attempts },
        })
    }
}

impl ServiceSettings for Settings {
    fn server(&self) -> &ServerSettings {
        &self.server
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_holds_no_password() {
        let env = Env::from_pairs([
            ("DATABASE_URL", "mysql://ecom:hunter2-db-secret@db.internal:3306/notifications"),
            ("ECOM_SMTP_URL", "smtps://mailer:hunter2-smtp-secret@smtp.internal"),
        ]);
        let printed = format!("{:?}", Settings::from_env(&env).unwrap());
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("db.internal") || printed.contains("mongo.internal"), "{printed}");
    }
}
