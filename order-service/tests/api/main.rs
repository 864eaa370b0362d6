//! order-service over real sockets with real auth-, product- and inventory-services,
//! on SQLite and on MariaDB.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod crash;
mod hostile;
mod idempotency;
mod placement;
mod resilience;
mod service_identity;
mod startup;
mod support;
mod token_renewal;
