//! Shared infrastructure of the ecom services.
//!
//! Only what several services need in exactly the same form: configuration
//! helpers, telemetry, the standard HTTP layer stack, problem+json errors,
//! health endpoints, graceful shutdown and database/broker connection helpers.
//! No business rules live here.

pub mod body_timeout;
pub mod breaker;
pub mod bus;
pub mod events;
pub mod health;
pub mod http;
pub mod listener;
pub mod logs;
pub mod metrics;
pub mod problem;
pub mod propagation;
pub mod request_id;
mod request_scope;
pub mod retry;
pub mod runtime;
pub mod server;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod tls;

#[cfg(feature = "jwt")]
pub mod auth;
#[cfg(feature = "client")]
pub mod client;
#[cfg(feature = "sql")]
pub mod db;
#[cfg(feature = "kafka")]
pub mod kafka;
#[cfg(feature = "mongo")]
pub mod mongo;
#[cfg(feature = "openapi")]
pub mod openapi;
#[cfg(feature = "test-util")]
pub mod test_util;

/// Installs aws-lc-rs as the process-wide rustls crypto provider.
///
/// Every TLS user in the workspace (sqlx, reqwest, lettre, mongodb) is built on
/// aws-lc-rs; installing it explicitly keeps a stray feature from picking another
/// provider at run time. Safe to call more than once.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
