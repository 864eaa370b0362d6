//! product-service over real sockets, on SQLite and on a MongoDB-wire server.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod catalog;
mod contract;
mod service_auth;
mod startup;
mod support;
