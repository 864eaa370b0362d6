//! Catalog values parsed from what clients send.

use chrono::{DateTime, Utc};
use common::problem::FieldError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

pub const NAME_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 4000;
pub const CATEGORY_MAX: usize = 100;

pub use contracts::{Currency, Money, Sku};

/// A product as stored and returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Product {
    pub id: Uuid,
    #[schema(value_type = String, example = "MUG-001")]
    pub sku: Sku,
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
    #[schema(value_type = String, example = "MUG-001", pattern = "^[A-Za-z0-9_-]{1,64}$")]
    pub sku: Sku,
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

impl ProductInput {
    /// The input with trimmed text, or every problem with it (the sku and the price
    /// were parsed as the body was read).
    pub fn validate(mut self) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
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

    fn input(name: &str) -> ProductInput {
        ProductInput {
            sku: Sku::parse("MUG-1_a").unwrap(),
            name: name.into(),
            description: String::new(),
            category: String::new(),
            price: Money::new(0, Currency::parse("EUR").unwrap()),
        }
    }

    #[test]
    fn a_valid_product_passes_with_its_name_trimmed() {
        let ok = input("  Mug  ").validate().unwrap();
        assert_eq!(ok.name, "Mug");
    }

    #[test]
    fn every_invalid_field_is_reported() {
        let long = ProductInput { category: "c".repeat(101), ..input("") };
        let errors = long.validate().unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["name", "category"]);
        assert!(input(&"n".repeat(201)).validate().is_err());
    }

    #[test]
    fn a_bad_sku_or_price_fails_as_the_body_is_read() {
        let body = |sku: &str, amount: i64, currency: &str| serde_json::json!({"sku": sku, "name": "Mug", "price": {"amount": amount, "currency": currency}});
        assert!(serde_json::from_value::<ProductInput>(body("MUG-1", 0, "EUR")).is_ok());
        for bad in [body("bad sku!", 1, "USD"), body("A", -1, "USD"), body("A", 1, "usd")] {
            assert!(serde_json::from_value::<ProductInput>(bad.clone()).is_err(), "{bad}");
        }
    }
}
