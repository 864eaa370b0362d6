use std::num::NonZeroU32;
use std::path::PathBuf;

use common::bus::BusConfig;
use common::db::PoolSettings;
use common::runtime::ServiceSettings;
use common::settings::{Env, ServerSettings, SettingsError, redact_url};
use secrecy::SecretString;
use url::Url;

use crate::DEFAULT_PORT;

/// notification-service configuration. `Debug` hides passwords in URLs.
#[derive(Clone)]
pub struct Settings {
    pub server: ServerSettings,
    /// `DATABASE_URL`: `mysql://` or `sqlite://`.
    pub database_url: Url,
    /// `ECOM_DB_MAX_CONNECTIONS`.
    pub pool: PoolSettings,
    /// `ECOM_KAFKA_BROKERS`: where order events are consumed from.
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

#[derive(Clone)]
pub enum MailTransport {
    /// `ECOM_SMTP_URL` (`smtp://host:port`, `smtp://host:port?tls=required`, `smtps://host`),
    /// with `ECOM_SMTP_USERNAME` / `ECOM_SMTP_PASSWORD` when the server wants them.
    Smtp { url: Url, username: Option<String>, password: Option<SecretString> },
    /// `ECOM_MAIL_DIR`: one `.eml` file per message (dev mode).
    Files { dir: PathBuf },
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Settings")
            .field("server", &self.server)
            .field("database_url", &redact_url(&self.database_url))
            .field("pool", &self.pool)
            .field("bus", &self.bus)
            .field("orders_topic", &self.orders_topic)
            .field("kafka_group", &self.kafka_group)
            .field("mail", &self.mail)
            .finish_non_exhaustive()
    }
}

/// The SMTP URL may hold credentials (`smtps://user:pass@host`): printed redacted.
impl std::fmt::Debug for MailTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Smtp { url, username, password } => f
                .debug_struct("Smtp")
                .field("url", &redact_url(url))
                .field("username", username)
                .field("password", password)
                .finish(),
            Self::Files { dir } => f.debug_struct("Files").field("dir", dir).finish(),
        }
    }
}

impl Settings {
    pub fn from_env(env: &Env) -> Result<Self, SettingsError> {
        let transport = match env.optional::<PathBuf>("ECOM_MAIL_DIR")? {
            Some(dir) => MailTransport::Files { dir },
            None => MailTransport::Smtp {
                url: env.url("ECOM_SMTP_URL", "smtp://127.0.0.1:1025", &["smtp", "smtps"])?,
                username: env.optional("ECOM_SMTP_USERNAME")?,
                password: env.secret("ECOM_SMTP_PASSWORD"),
            },
        };
        let from: String = env.or("ECOM_MAIL_FROM", "ecom <no-reply@ecom.local>".to_owned())?;
        from.parse::<lettre::message::Mailbox>()
            .map_err(|e| SettingsError::new("ECOM_MAIL_FROM", format!("not a mailbox: {e}")))?;
        let max_attempts = env.or("ECOM_MAIL_MAX_ATTEMPTS", DEFAULT_MAIL_MAX_ATTEMPTS)?;
        Ok(Self {
            server: ServerSettings::from_env(env, DEFAULT_PORT)?,
            database_url: env.url("DATABASE_URL", "sqlite://data/notifications.db", common::db::SCHEMES)?,
            pool: PoolSettings { max_connections: env.or("ECOM_DB_MAX_CONNECTIONS", 10)?, ..PoolSettings::default() },
            bus: BusConfig::Kafka { brokers: env.or("ECOM_KAFKA_BROKERS", "127.0.0.1:9092".to_owned())? },
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
