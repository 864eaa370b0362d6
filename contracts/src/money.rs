use std::fmt;

use crate::Invalid;

/// An ISO 4217 currency code: three upper-case letters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    pub const PATTERN: &'static str = "^[A-Z]{3}$";

    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        if raw.len() == 3 && raw.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid("must be an ISO 4217 code such as USD"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// How many decimal digits its minor unit has: 2 for EUR (cents), 0 for JPY, 3
    /// for KWD. ISO 4217's exceptions to two; any other code has two.
    pub fn exponent(&self) -> u32 {
        match self.0.as_str() {
            "BIF" | "CLP" | "DJF" | "GNF" | "ISK" | "JPY" | "KMF" | "KRW" | "PYG" | "RWF" | "UGX" | "UYI" | "VND"
            | "VUV" | "XAF" | "XOF" | "XPF" => 0,
            "BHD" | "IQD" | "JOD" | "KWD" | "LYD" | "OMR" | "TND" => 3,
            "CLF" | "UYW" => 4,
            _ => 2,
        }
    }
}

string_value!(Currency);

// `{"amount": 1299, "currency": "EUR"}` is 12.99 EUR; with "JPY" it is 1299 JPY.
/// An amount in minor units of an ISO 4217 currency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Money {
    #[cfg_attr(feature = "openapi", schema(minimum = 0, example = 1999))]
    #[serde(deserialize_with = "non_negative")]
    pub amount: i64,
    #[cfg_attr(feature = "openapi", schema(value_type = String, example = "USD", pattern = "^[A-Z]{3}$"))]
    pub currency: Currency,
}

impl Money {
    pub fn new(amount: i64, currency: Currency) -> Self {
        Self { amount, currency }
    }
}

/// The amount in major units with as many decimals as the currency has, and the
/// code: `12.99 EUR`, `1299 JPY`, `-0.50 USD`.
impl fmt::Display for Money {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.amount < 0 { "-" } else { "" };
        let abs = self.amount.unsigned_abs();
        let digits = self.currency.exponent();
        let unit = 10u64.pow(digits);
        if digits == 0 {
            write!(f, "{sign}{abs} {}", self.currency)
        } else {
            let width = digits as usize;
            write!(f, "{sign}{}.{:0width$} {}", abs / unit, abs % unit, self.currency)
        }
    }
}

/// A whole number of at least zero; `25.0` counts as 25 (JSON Schema's `integer`).
fn non_negative<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<i64, D::Error> {
    use serde::de::{Error, Unexpected};
    let value: i64 = crate::integral(deserializer)?;
    if value < 0 {
        return Err(D::Error::invalid_value(Unexpected::Signed(value), &"an amount of at least 0"));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn money(amount: i64, code: &str) -> String {
        Money::new(amount, Currency::parse(code).unwrap()).to_string()
    }

    #[test]
    fn an_amount_shows_as_many_decimals_as_its_currency_has() {
        assert_eq!(money(1299, "EUR"), "12.99 EUR");
        assert_eq!(money(5, "USD"), "0.05 USD");
        assert_eq!(money(1299, "JPY"), "1299 JPY");
        assert_eq!(money(1500, "KWD"), "1.500 KWD");
        assert_eq!(money(-50, "USD"), "-0.50 USD");
    }

    #[test]
    fn money_parses_once_and_refuses_a_bad_currency_or_a_negative_amount() {
        let parsed: Money = serde_json::from_str(r#"{"amount": 1299.0, "currency": "EUR"}"#).unwrap();
        assert_eq!(parsed, Money::new(1299, Currency::parse("EUR").unwrap()));
        for bad in [
            r#"{"amount": 1, "currency": "eur"}"#,
            r#"{"amount": -1, "currency": "EUR"}"#,
            r#"{"amount": 1.5, "currency": "EUR"}"#,
            r#"{"amount": 1, "currency": "EUR", "extra": 1}"#,
        ] {
            assert!(serde_json::from_str::<Money>(bad).is_err(), "{bad}");
        }
        let written = serde_json::to_string(&parsed).unwrap();
        assert_eq!(written, r#"{"amount":1299,"currency":"EUR"}"#);
    }
}
