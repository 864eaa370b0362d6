//! The values of the public contract (docs/API.md) that more than one service reads or
//! writes, each parsed in one place: a value of these types is valid, so handlers do
//! not check it again. Deserialising an invalid one fails, naming the rule.
//!
//! No I/O and no framework: this crate depends on serde only, so every service, the
//! event contract and the tests can use it. OpenAPI schemas stay on the fields that
//! carry these types (`#[schema(value_type = String, pattern = ...)]`), so the
//! documents describe the same strings and numbers as before.

/// The conversions of a value that is a string on the wire: `TryFrom<String>` and
/// `FromStr` through its `parse` (the first is what `#[serde(try_from = "String")]`
/// calls), back to the `as_str()` form (`#[serde(into = "String")]`), `AsRef<str>`
/// and `Display`.
macro_rules! string_value {
    ($name:ident) => {
        impl TryFrom<String> for $name {
            type Error = $crate::Invalid;
            fn try_from(raw: String) -> Result<Self, $crate::Invalid> {
                Self::parse(&raw)
            }
        }

        impl std::str::FromStr for $name {
            type Err = $crate::Invalid;
            fn from_str(raw: &str) -> Result<Self, $crate::Invalid> {
                Self::parse(raw)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.as_str().to_owned()
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                self.as_str()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// For an enum whose values travel as fixed names (in JSON, in tokens, in rows):
/// `ALL`, `as_str`, `parse` (refusing any other name, as `$rule` says) and `Display`.
macro_rules! wire_names {
    ($name:ident, $rule:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }

            pub fn parse(raw: &str) -> Result<Self, $crate::Invalid> {
                match raw {
                    $($text => Ok(Self::$variant),)+
                    _ => Err($crate::Invalid($rule)),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

mod email;
mod ids;
mod money;
mod role;
mod sku;
mod status;

pub use email::{EMAIL_MAX_OCTETS, Email, is_line_or_format, normalize_email};
pub use ids::{OrderId, UserId};
pub use money::{Currency, Money};
pub use role::Role;
pub use sku::Sku;
pub use status::OrderStatus;

/// Why a value does not parse: the rule it breaks, as a client should read it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub &'static str);

/// `#[serde(deserialize_with = "contracts::between::<_, 1, 1000>")]` on an `i64` field:
/// an integer as [`integral`] reads it, from `MIN` to `MAX`; others are refused,
/// naming the range.
pub fn between<'de, D, const MIN: i64, const MAX: i64>(deserializer: D) -> Result<i64, D::Error>
where
    D: serde::Deserializer<'de>,
{
    use serde::de::{Error, Unexpected};
    struct Range(i64, i64);
    impl serde::de::Expected for Range {
        fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            write!(f, "an integer from {} to {}", self.0, self.1)
        }
    }
    let value: i64 = integral(deserializer)?;
    if (MIN..=MAX).contains(&value) {
        Ok(value)
    } else {
        Err(D::Error::invalid_value(Unexpected::Signed(value), &Range(MIN, MAX)))
    }
}

/// `#[serde(deserialize_with = "contracts::integral")]` on an integer field: JSON
/// Schema's `integer`, which the OpenAPI documents promise, admits `25.0` and `2.5e1`
/// as well as `25`, so any number without a fractional part is accepted; others, and
/// those out of the field's range, are refused as mistyped.
pub fn integral<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: TryFrom<i64>,
{
    use serde::de::{Error, Unexpected, Visitor};

    struct Integral;
    impl Visitor<'_> for Integral {
        type Value = i64;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("an integer")
        }
        fn visit_i64<E: Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an integer in range"))
        }
        fn visit_f64<E: Error>(self, v: f64) -> Result<i64, E> {
            // 2^63 is exact as an f64; every integral f64 in [-2^63, 2^63) fits an i64.
            const LIMIT: f64 = 9_223_372_036_854_775_808.0;
            if v.fract() == 0.0 && (-LIMIT..LIMIT).contains(&v) {
                #[expect(clippy::cast_possible_truncation, reason = "integral and in range, checked above")]
                Ok(v as i64)
            } else {
                Err(E::invalid_type(Unexpected::Float(v), &self))
            }
        }
    }
    let value = deserializer.deserialize_any(Integral)?;
    T::try_from(value).map_err(|_| D::Error::invalid_value(Unexpected::Signed(value), &"an integer in range"))
}

/// Every value of a [`wire_names!`] enum reads back as itself from its name and from
/// its JSON, which is that name too.
#[cfg(test)]
fn assert_names_round_trip<T>(all: &[T], parse: fn(&str) -> Result<T, Invalid>)
where
    T: Copy + std::fmt::Debug + std::fmt::Display + PartialEq + serde::Serialize + serde::de::DeserializeOwned,
{
    for &value in all {
        assert_eq!(parse(&value.to_string()), Ok(value));
        let json = format!("\"{value}\"");
        assert_eq!(serde_json::to_string(&value).unwrap(), json);
        assert_eq!(serde_json::from_str::<T>(&json).unwrap(), value);
    }
}

#[cfg(test)]
mod tests {
    #[derive(Debug, serde::Deserialize)]
    struct Line {
        #[serde(deserialize_with = "crate::between::<_, 1, 1000>")]
        quantity: i64,
    }

    #[test]
    fn a_bounded_integer_is_refused_outside_its_range_naming_the_range() {
        let quantity = |json: &str| serde_json::from_str::<Line>(json).map(|l| l.quantity).map_err(|e| e.to_string());
        assert_eq!(quantity(r#"{"quantity": 1000.0}"#), Ok(1000));
        assert_eq!(quantity(r#"{"quantity": 1}"#), Ok(1));
        for bad in ["0", "1001", "-5", "2.5"] {
            assert!(quantity(&format!(r#"{{"quantity": {bad}}}"#)).is_err(), "{bad}");
        }
        let refused = quantity(r#"{"quantity": 0}"#).unwrap_err();
        assert!(refused.contains("an integer from 1 to 1000"), "{refused}");
    }
}
