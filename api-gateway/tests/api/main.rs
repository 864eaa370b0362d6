//! api-gateway over real sockets, in front of a real auth-service.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod edge;
mod hostile;
mod jwt;
mod quiet;
mod startup;
mod support;
