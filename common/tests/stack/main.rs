//! The standard HTTP stack and the real dependencies, exercised over real sockets.

// A failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

mod http_stack;
mod kafka;
mod migrations;
mod otlp;
