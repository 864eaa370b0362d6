//! The `ecom` binary's library: the dev platform, reusable by tests.

pub mod dev;
