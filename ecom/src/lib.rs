//! The `ecom` binary's library: the dev platform, reusable by tests.

pub mod admin;
pub mod demo;
pub mod dev;
