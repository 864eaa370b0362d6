//! auth-service over real sockets, on SQLite and on MariaDB.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod accounts;
mod hostile;
mod keys;
mod service_tokens;
mod sessions;
mod startup;
mod support;
