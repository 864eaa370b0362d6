//! notification-service over real sockets, with real SMTP (Mailpit) and files.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod crash;
mod deferral;
mod events;
mod startup;
mod support;
