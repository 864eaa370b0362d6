//! inventory-service over real sockets, on SQLite and on MariaDB.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod reservations;
mod service_auth;
mod startup;
mod stock;
mod support;
