//! Environment variables into typed settings, failing fast with the variable's name.
//!
//! Library code never reads the process environment: `main` takes a snapshot with
//! [`Env::from_process`] and each service parses its `Settings` from it. Tests and the
//! `ecom` binary build settings directly or from an [`Env`] made of pairs.
//!
//! Every variable that holds a secret ([`SECRET_VARIABLES`]) may instead be given as
//! `<NAME>_FILE`, the path of a file holding the value (a mounted Kubernetes Secret).
//! The files are read here, once, when the snapshot is taken; the values reach the
//! settings as [`SecretString`] or [`SecretUrl`], which `Debug` never prints.

mod kafka;
mod secret;

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::str::FromStr;
use std::time::Duration;

use secrecy::SecretString;
use url::Url;

pub use kafka::{KafkaSecurity, KafkaSettings, SaslMechanism, SaslSettings, SecurityProtocol};
pub use secret::SecretUrl;

/// The variables that hold secrets, each with its `_FILE` variant: the path of a file
/// whose content (without the final line break) is the value; an empty file counts as
/// unset, as an empty value does. Both names are spelt
/// out, so that a search for a variable finds where it is read.
pub const SECRET_VARIABLES: &[(&str, &str)] = &[
    ("DATABASE_URL", "DATABASE_URL_FILE"),
    ("ECOM_DB_PASSWORD", "ECOM_DB_PASSWORD_FILE"),
    // Not a secret, but kept beside the admin's password in one Secret.
    ("ECOM_ADMIN_EMAIL", "ECOM_ADMIN_EMAIL_FILE"),
    ("ECOM_ADMIN_PASSWORD", "ECOM_ADMIN_PASSWORD_FILE"),
    ("ECOM_SERVICE_CLIENT_SECRET", "ECOM_SERVICE_CLIENT_SECRET_FILE"),
    ("ECOM_SMTP_URL", "ECOM_SMTP_URL_FILE"),
    ("ECOM_SMTP_USERNAME", "ECOM_SMTP_USERNAME_FILE"),
    ("ECOM_SMTP_PASSWORD", "ECOM_SMTP_PASSWORD_FILE"),
    ("ECOM_KAFKA_SASL_USERNAME", "ECOM_KAFKA_SASL_USERNAME_FILE"),
    ("ECOM_KAFKA_SASL_PASSWORD", "ECOM_KAFKA_SASL_PASSWORD_FILE"),
    ("ECOM_KAFKA_SSL_KEY_PASSWORD", "ECOM_KAFKA_SSL_KEY_PASSWORD_FILE"),
];

/// A configuration error that names the variable at fault.
#[derive(Debug, Clone, thiserror::Error)]
#[error("configuration variable {var}: {reason}")]
pub struct SettingsError {
    pub var: String,
    pub reason: String,
}

impl SettingsError {
    pub fn new(var: &str, reason: impl Into<String>) -> Self {
        Self { var: var.to_owned(), reason: reason.into() }
    }
}

/// A snapshot of configuration variables, secret files read.
#[derive(Clone, Default)]
pub struct Env {
    vars: HashMap<String, String>,
    /// Secret variables whose value came from `<NAME>_FILE`.
    from_file: HashSet<String>,
    /// Secret variables whose `<NAME>_FILE` could not be used, and why.
    file_errors: HashMap<String, SettingsError>,
}

/// Names and sources only: the values may be secrets.
impl std::fmt::Debug for Env {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&String> = self.vars.keys().collect();
        names.sort();
        f.debug_struct("Env").field("vars", &names).field("from_file", &self.from_file).finish_non_exhaustive()
    }
}

impl Env {
    /// Snapshot of the process environment (only for `main`).
    pub fn from_process() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let vars = pairs.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut env = Self { vars, ..Self::default() };
        env.read_secret_files();
        env
    }

    /// Replaces each secret variable given as `<NAME>_FILE` by the file's content. A
    /// file that cannot be read, or a variable given both ways, is remembered and
    /// reported by whichever setting reads the variable.
    fn read_secret_files(&mut self) {
        for &(name, file_var) in SECRET_VARIABLES {
            let Some(path) = self.raw(file_var).map(|p| p.trim().to_owned()) else { continue };
            if self.raw(name).is_some() {
                self.file_errors
                    .insert(name.to_owned(), SettingsError::new(name, format!("set it or {file_var}, not both")));
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => {
                    // An empty file is an unset variable, as an empty value is: a mounted
                    // Secret can leave an optional setting out.
                    let value = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
                    if !value.trim().is_empty() {
                        self.vars.insert(name.to_owned(), value.to_owned());
                        self.from_file.insert(name.to_owned());
                    }
                }
                Err(e) => {
                    self.file_errors
                        .insert(name.to_owned(), SettingsError::new(file_var, format!("cannot read {path}: {e}")));
                }
            }
        }
    }

    pub fn set(&mut self, key: impl Into<String>, value: impl Into<String>) {
        self.vars.insert(key.into(), value.into());
    }

    /// The raw value; empty strings count as unset. For variables that are not
    /// secrets: a secret's `<NAME>_FILE` problems are reported by the typed readers.
    pub fn raw(&self, var: &str) -> Option<&str> {
        self.vars.get(var).map(String::as_str).filter(|v| !v.trim().is_empty())
    }

    /// The raw value, or why its `<NAME>_FILE` could not be used.
    fn value(&self, var: &str) -> Result<Option<&str>, SettingsError> {
        match self.file_errors.get(var) {
            Some(err) => Err(err.clone()),
            None => Ok(self.raw(var)),
        }
    }

    /// Where `var` was given: `var` itself, or `<var>_FILE`. For messages.
    pub fn origin(&self, var: &str) -> String {
        if self.from_file.contains(var) { format!("{var}_FILE") } else { var.to_owned() }
    }

    /// A required variable.
    pub fn require<T>(&self, var: &str) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.value(var)?.ok_or_else(|| SettingsError::new(var, "is required but not set"))?;
        parse(&self.origin(var), raw)
    }

    /// An optional variable.
    pub fn optional<T>(&self, var: &str) -> Result<Option<T>, SettingsError>
    where
        T: FromStr,
        T::Err: Display,
    {
        self.value(var)?.map(|raw| parse(&self.origin(var), raw)).transpose()
    }

    /// A variable with a default.
    pub fn or<T>(&self, var: &str, default: T) -> Result<T, SettingsError>
    where
        T: FromStr,
        T::Err: Display,
    {
        Ok(self.optional(var)?.unwrap_or(default))
    }

    /// A URL whose scheme must be one of `schemes`.
    pub fn url(&self, var: &str, default: &str, schemes: &[&str]) -> Result<Url, SettingsError> {
        let raw = self.value(var)?.unwrap_or(default);
        parse_url(&self.origin(var), raw, schemes)
    }

    /// An optional URL whose scheme must be one of `schemes`.
    pub fn optional_url(&self, var: &str, schemes: &[&str]) -> Result<Option<Url>, SettingsError> {
        self.value(var)?.map(|raw| parse_url(&self.origin(var), raw, schemes)).transpose()
    }

    /// A URL that may hold a password, whose scheme must be one of `schemes`.
    pub fn secret_url(&self, var: &str, default: &str, schemes: &[&str]) -> Result<SecretUrl, SettingsError> {
        self.url(var, default, schemes).map(SecretUrl::from)
    }

    /// `DATABASE_URL` (or `DATABASE_URL_FILE`), with the password from
    /// `ECOM_DB_PASSWORD` (or `ECOM_DB_PASSWORD_FILE`) when that is set: the URL can
    /// then live in plain configuration and only the password in a secret.
    pub fn database_url(&self, default: &str, schemes: &[&str]) -> Result<SecretUrl, SettingsError> {
        const URL: &str = "DATABASE_URL";
        const PASSWORD: &str = "ECOM_DB_PASSWORD";
        let mut url = self.url(URL, default, schemes)?;
        if let Some(password) = self.value(PASSWORD)? {
            if url.username().is_empty() {
                return Err(SettingsError::new(
                    &self.origin(PASSWORD),
                    format!("is set but {URL} names no user to go with it"),
                ));
            }
            if url.password().is_some() {
                return Err(SettingsError::new(
                    &self.origin(PASSWORD),
                    format!("is set but {URL} holds a password too: give it in one place"),
                ));
            }
            url.set_password(Some(password))
                .map_err(|()| SettingsError::new(URL, "cannot hold a password (no host)"))?;
        }
        Ok(SecretUrl::from(url))
    }

    /// A duration in milliseconds.
    pub fn millis(&self, var: &str, default: Duration) -> Result<Duration, SettingsError> {
        Ok(self.optional::<u64>(var)?.map(Duration::from_millis).unwrap_or(default))
    }

    /// A secret: never printed by `Debug`.
    pub fn secret(&self, var: &str) -> Result<Option<SecretString>, SettingsError> {
        Ok(self.value(var)?.map(|v| SecretString::from(v.to_owned())))
    }

    /// A boolean (`true/false/1/0/yes/no`).
    pub fn flag(&self, var: &str, default: bool) -> Result<bool, SettingsError> {
        match self.raw(var).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some("0" | "false" | "no" | "off") => Ok(false),
            Some(other) => Err(SettingsError::new(var, format!("expected true or false, got {other:?}"))),
        }
    }

    /// An optional path to a file that must exist and be readable now, so that a
    /// wrong path fails at start naming the variable rather than at first use.
    pub fn readable_file(&self, var: &str) -> Result<Option<std::path::PathBuf>, SettingsError> {
        let Some(path) = self.optional::<std::path::PathBuf>(var)? else { return Ok(None) };
        std::fs::File::open(&path)
            .map_err(|e| SettingsError::new(var, format!("cannot read {}: {e}", path.display())))?;
        Ok(Some(path))
    }
}

fn parse<T>(var: &str, raw: &str) -> Result<T, SettingsError>
where
    T: FromStr,
    T::Err: Display,
{
    raw.trim().parse().map_err(|e| SettingsError::new(var, format!("invalid value: {e}")))
}

fn parse_url(var: &str, raw: &str, schemes: &[&str]) -> Result<Url, SettingsError> {
    // The parser's message never holds the input, so no password can leak through it.
    let url = Url::parse(raw.trim()).map_err(|e| SettingsError::new(var, format!("not a valid URL: {e}")))?;
    if !schemes.is_empty() && !schemes.contains(&url.scheme()) {
        return Err(SettingsError::new(
            var,
            format!("unsupported scheme {:?}, expected one of {}", url.scheme(), schemes.join(", ")),
        ));
    }
    Ok(url)
}

/// The URL without its password, for messages and logs.
pub fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if url.password().is_some() {
        let _ = url.set_password(Some("***"));
    }
    url.to_string()
}

/// Settings every service shares: where to listen, and what one connection may hold.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// `ECOM_BIND_ADDR` (default `0.0.0.0:<service port>`).
    pub bind_addr: std::net::SocketAddr,
    /// `ECOM_SHUTDOWN_GRACE_MS`: how long in-flight requests get after a stop signal.
    pub shutdown_grace: Duration,
    /// `ECOM_REQUEST_TIMEOUT_MS`: the server-side bound on one request.
    pub request_timeout: Duration,
    pub limits: ConnectionLimits,
    /// `ECOM_METRICS_BIND_ADDR` (unset: none): a second listener that answers only
    /// `/metrics` and `/health/*`, so a scraper can be let in on a port that serves no API.
    pub metrics_bind_addr: Option<std::net::SocketAddr>,
}

/// What a client can hold on one listener, however slowly it talks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// `ECOM_HEADER_READ_TIMEOUT_MS`: from a new connection, or from the first byte of the
    /// next request on a kept-alive one, to the end of the request's headers.
    pub header_read_timeout: Duration,
    /// `ECOM_BODY_READ_TIMEOUT_MS`: from the end of the headers to the end of the body;
    /// past it the answer is 408.
    pub body_read_timeout: Duration,
    /// `ECOM_KEEP_ALIVE_TIMEOUT_MS`: how long a connection may wait idle for its next request.
    pub keep_alive_timeout: Duration,
    /// `ECOM_MAX_CONNECTIONS`: open connections at once; more wait in the listen queue.
    pub max_connections: usize,
}

/// A service's own bound on one request: shorter than the gateway's wait for it
/// (`ECOM_UPSTREAM_TIMEOUT_MS`, 10 s), so a slow request is answered by the service
/// that knows why, and never outlives the caller that waits for it.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(8);

impl ConnectionLimits {
    /// Long enough for any real client's headers, short enough that a connection which
    /// never finishes them is gone in seconds.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
    /// Below the services' request timeout (8 s), so a stalled body is answered 408 by
    /// this bound and not 503 by the request timeout: 1 MiB (the largest body) in 5 s
    /// needs about 200 KB/s. Never more than half the request timeout by default.
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);
    /// Longer than the idle time of the pools that keep connections to a listener (the
    /// gateway's 60 s, the ingress controller's 60 s), so a pooled connection is closed
    /// by its client and never under a request that was just sent on it.
    pub const DEFAULT_KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(75);
    pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

    pub fn from_env(env: &Env, request_timeout: Duration) -> Result<Self, SettingsError> {
        let positive = |var: &str, default: Duration| -> Result<Duration, SettingsError> {
            let value = env.millis(var, default)?;
            if value.is_zero() {
                return Err(SettingsError::new(var, "must be at least 1"));
            }
            Ok(value)
        };
        let limits = Self {
            header_read_timeout: positive("ECOM_HEADER_READ_TIMEOUT_MS", Self::DEFAULT_HEADER_READ_TIMEOUT)?,
            body_read_timeout: positive(
                "ECOM_BODY_READ_TIMEOUT_MS",
                Self::DEFAULT_BODY_READ_TIMEOUT.min(request_timeout / 2),
            )?,
            keep_alive_timeout: positive("ECOM_KEEP_ALIVE_TIMEOUT_MS", Self::DEFAULT_KEEP_ALIVE_TIMEOUT)?,
            max_connections: env.or("ECOM_MAX_CONNECTIONS", Self::DEFAULT_MAX_CONNECTIONS)?,
        };
        if limits.max_connections == 0 {
            return Err(SettingsError::new("ECOM_MAX_CONNECTIONS", "must be at least 1"));
        }
        if limits.body_read_timeout >= request_timeout {
            return Err(SettingsError::new(
                "ECOM_BODY_READ_TIMEOUT_MS",
                "must be shorter than ECOM_REQUEST_TIMEOUT_MS, so a stalled body is answered 408 and not 503",
            ));
        }
        Ok(limits)
    }
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
            keep_alive_timeout: Self::DEFAULT_KEEP_ALIVE_TIMEOUT,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl ServerSettings {
    pub fn from_env(env: &Env, default_port: u16) -> Result<Self, SettingsError> {
        Self::from_env_with_timeout(env, default_port, DEFAULT_REQUEST_TIMEOUT)
    }

    /// As [`ServerSettings::from_env`], with another default request timeout.
    pub fn from_env_with_timeout(
        env: &Env,
        default_port: u16,
        default_request_timeout: Duration,
    ) -> Result<Self, SettingsError> {
        let request_timeout = env.millis("ECOM_REQUEST_TIMEOUT_MS", default_request_timeout)?;
        let bind_addr = env.or("ECOM_BIND_ADDR", std::net::SocketAddr::from(([0, 0, 0, 0], default_port)))?;
        let metrics_bind_addr = env.optional("ECOM_METRICS_BIND_ADDR")?;
        if metrics_bind_addr.is_some_and(|m: std::net::SocketAddr| m == bind_addr && m.port() != 0) {
            return Err(SettingsError::new("ECOM_METRICS_BIND_ADDR", "must differ from ECOM_BIND_ADDR"));
        }
        Ok(Self {
            bind_addr,
            shutdown_grace: env.millis("ECOM_SHUTDOWN_GRACE_MS", Duration::from_secs(20))?,
            request_timeout,
            limits: ConnectionLimits::from_env(env, request_timeout)?,
            metrics_bind_addr,
        })
    }

    pub fn for_tests() -> Self {
        Self {
            bind_addr: std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            shutdown_grace: Duration::from_secs(5),
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            limits: ConnectionLimits::default(),
            metrics_bind_addr: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_url_names_the_variable() {
        let env = Env::from_pairs([("DATABASE_URL", "not a url")]);
        let err = env.url("DATABASE_URL", "sqlite://x.db", &["mysql", "sqlite"]).unwrap_err();
        assert_eq!(err.var, "DATABASE_URL");
        assert!(err.to_string().contains("DATABASE_URL"));
    }

    #[test]
    fn an_unsupported_scheme_is_rejected() {
        let env = Env::from_pairs([("DATABASE_URL", "postgres://localhost/x")]);
        let err = env.url("DATABASE_URL", "sqlite://x.db", &["mysql", "sqlite"]).unwrap_err();
        assert!(err.reason.contains("postgres"));
    }

    #[test]
    fn a_number_that_does_not_parse_names_the_variable() {
        let env = Env::from_pairs([("ECOM_DB_MAX_CONNECTIONS", "many")]);
        let err = env.or::<u32>("ECOM_DB_MAX_CONNECTIONS", 10).unwrap_err();
        assert_eq!(err.var, "ECOM_DB_MAX_CONNECTIONS");
    }

    #[test]
    fn an_empty_variable_counts_as_unset() {
        let env = Env::from_pairs([("ECOM_X", "  ")]);
        assert_eq!(env.or::<u32>("ECOM_X", 7).unwrap(), 7);
        assert!(env.require::<u32>("ECOM_X").is_err());
    }

    #[test]
    fn a_body_read_timeout_not_below_the_request_timeout_is_refused() {
        let env = Env::from_pairs([("ECOM_REQUEST_TIMEOUT_MS", "4000"), ("ECOM_BODY_READ_TIMEOUT_MS", "4000")]);
        let err = ServerSettings::from_env(&env, 8080).unwrap_err();
        assert_eq!(err.var, "ECOM_BODY_READ_TIMEOUT_MS");
        let env = Env::from_pairs([("ECOM_MAX_CONNECTIONS", "0")]);
        assert_eq!(ServerSettings::from_env(&env, 8080).unwrap_err().var, "ECOM_MAX_CONNECTIONS");
        let env = Env::from_pairs([("ECOM_HEADER_READ_TIMEOUT_MS", "0")]);
        assert_eq!(ServerSettings::from_env(&env, 8080).unwrap_err().var, "ECOM_HEADER_READ_TIMEOUT_MS");
    }

    #[test]
    fn a_secret_comes_from_its_file_without_the_final_line_break() {
        let dir = std::env::temp_dir().join(format!("ecom-settings-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db-password");
        std::fs::write(&file, "p@ss word\n").unwrap();
        let path = file.display().to_string();
        let env = Env::from_pairs([
            ("DATABASE_URL", "mysql://ecom@db.internal:3306/orders?ssl-mode=verify_identity"),
            ("ECOM_DB_PASSWORD_FILE", path.as_str()),
        ]);
        let url = env.database_url("sqlite://x.db", &["mysql"]).unwrap();
        assert_eq!(url.expose().password(), Some("p%40ss%20word"));
        assert!(!format!("{url:?} {env:?}").contains("p@ss"), "{url:?} {env:?}");
        assert_eq!(env.origin("ECOM_DB_PASSWORD"), "ECOM_DB_PASSWORD_FILE");

        let both = Env::from_pairs([("ECOM_SMTP_PASSWORD", "x"), ("ECOM_SMTP_PASSWORD_FILE", path.as_str())]);
        assert_eq!(both.secret("ECOM_SMTP_PASSWORD").unwrap_err().var, "ECOM_SMTP_PASSWORD");
        let missing = Env::from_pairs([("ECOM_ADMIN_PASSWORD_FILE", "/nonexistent/ecom-admin")]);
        assert_eq!(missing.secret("ECOM_ADMIN_PASSWORD").unwrap_err().var, "ECOM_ADMIN_PASSWORD_FILE");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_database_password_needs_a_user_and_no_second_password() {
        let env = Env::from_pairs([("DATABASE_URL", "mysql://db.internal/orders"), ("ECOM_DB_PASSWORD", "x")]);
        assert_eq!(env.database_url("sqlite://x.db", &["mysql"]).unwrap_err().var, "ECOM_DB_PASSWORD");
        let env = Env::from_pairs([("DATABASE_URL", "mysql://u:p@db.internal/orders"), ("ECOM_DB_PASSWORD", "x")]);
        assert_eq!(env.database_url("sqlite://x.db", &["mysql"]).unwrap_err().var, "ECOM_DB_PASSWORD");
    }

    #[test]
    fn flags_accept_the_usual_spellings_and_reject_others() {
        let env = Env::from_pairs([("A", "yes"), ("B", "0"), ("C", "maybe")]);
        assert!(env.flag("A", false).unwrap());
        assert!(!env.flag("B", true).unwrap());
        assert!(env.flag("C", true).is_err());
    }
}
