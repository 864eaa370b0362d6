//! Catalog values parsed from what clients send.

use chrono::{DateTime, Utc};
use common::problem::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 4000;
pub const CATEGORY_MAX: usize = 100;

/// An amount in minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[schema(minimum = 0, example = 1999)]
    #[serde(deserialize_with = "common::http::integral")]
    pub amount: i64,
    #[schema(example = "USD", pattern = "^[A-Z]{3}$")]
    pub currency: String,
}

/// A product as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub id: Uuid,
    #[schema(example = "MUG-001")]
    pub sku: String,
    pub name: String,
    pub description: String,
    pub category: String,
    pub price: Money,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an admin sends to create or replace a product.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductInput {
    #[schema(example = "MUG-001", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub sku: String,
    /// 1 to 200 characters once trimmed.
    #[schema(example = "Enamel mug", min_length = 1, max_length = 200, pattern = "\\S")]
    pub name: String,
    #[serde(default)]
    #[schema(max_length = 4000)]
    pub description: String,
    #[serde(default)]
    #[schema(example = "kitchen", max_length = 100)]
    pub category: String,
    pub price: Money,
}

/// `A-Z a-z 0-9 - _`, 1 to 64 characters.
pub fn valid_sku(sku: &str) -> bool {
    (1..=64).contains(&sku.len()) && sku.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Three upper-case letters, as ISO 4217 codes are.
pub fn valid_currency(code: &str) -> bool {
    code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase())
}

impl ProductInput {
    /// The input with trimmed text, or every problem with it.
    pub fn validate(mut self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        if !valid_sku(&self.sku) {
            errors.push(FieldError::new("sku", "must be 1-64 characters of A-Z a-z 0-9 - _"));
        }
        self.name = self.name.trim().to_owned();
        if !(1..=NAME_MAX).contains(&self.name.chars().count()) {
            errors.push(FieldError::new("name", format!("must be 1-{NAME_MAX} characters")));
        }
        if self.description.chars().count() > DESCRIPTION_MAX {
            errors.push(FieldError::new("description", format!("must be at most {DESCRIPTION_MAX} characters")));
        }
        self.category = self.category.trim().to_owned();
        if self.category.chars().count() > CATEGORY_MAX {
            errors.push(FieldError::new("category", format!("must be at most {CATEGORY_MAX} characters")));
        }
        if self.price.amount < 0 {
            errors.push(FieldError::new("price.amount", "must not be negative"));
        }
        if !valid_currency(&self.price.currency) {
            errors.push(FieldError::new("price.currency", "must be an ISO 4217 code such as USD"));
        }
        if errors.is_empty() { Ok(self) } else { Err(errors) }
    }
}

/// How a listing is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sort {
    Name,
    Price,
    PriceDesc,
    CreatedAt,
    #[default]
    CreatedAtDesc,
}

impl std::str::FromStr for Sort {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "name" => Ok(Self::Name),
            "price" => Ok(Self::Price),
            "-price" => Ok(Self::PriceDesc),
            "created_at" => Ok(Self::CreatedAt),
            "-created_at" => Ok(Self::CreatedAtDesc),
            _ => Err(()),
        }
    }
}

/// A listing request, validated.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub q: Option<String>,
    pub category: Option<String>,
    pub min_price: Option<i64>,
    pub max_price: Option<i64>,
    pub sort: Sort,
    pub page: u32,
    pub per_page: u32,
}

impl Query {
    pub fn offset(&self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(sku: &str, name: &str, amount: i64, currency: &str) -> ProductInput {
        ProductInput {
            sku: sku.into(),
            name: name.into(),
            description: String::new(),
            category: String::new(),
            price: Money { amount, currency: currency.into() },
        }
    }

    #[test]
    fn a_valid_product_passes_with_its_name_trimmed() {
        let ok = input("MUG-1_a", "  Mug  ", 0, "EUR").validate().unwrap();
        assert_eq!(ok.name, "Mug");
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let errors = input("bad sku!", "", -1, "usd").validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["sku", "name", "price.amount", "price.currency"]);
        assert!(input(&"A".repeat(65), "x", 1, "USD").validate().is_err());
        assert!(input("A", &"n".repeat(201), 1, "USD").validate().is_err());
    }
}
