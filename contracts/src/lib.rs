//! The values of the public contract (docs/API.md) that more than one service reads or
//! writes, each parsed in one place: a value of these types is valid, so handlers do
//! not check it again. Deserialising an invalid one fails, naming the rule.
//!
//! No I/O and no framework: this crate depends on serde only, so every service, the
//! event contract and the tests can use it. OpenAPI schemas stay on the fields that
//! carry these types (`#[schema(value_type = String, pattern = ...)]`), so the
//! documents describe the same strings and numbers as before.

mod ids;
mod money;
mod role;
mod sku;

pub use ids::{OrderId, UserId};
pub use money::{Currency, Money};
pub use role::Role;
pub use sku::Sku;

/// Why a value does not parse: the rule it breaks, as a client should read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);
