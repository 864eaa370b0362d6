//! Request body extraction that answers as API.md says: malformed JSON 400, wrong
//! content type 415, too large 413, unknown or mistyped fields 422, all problem+json.

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde::de::DeserializeOwned;

use crate::problem::{FieldError, Problem};

/// The largest request body any service accepts.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// `axum::Json` with problem+json rejections. Deny unknown fields on the target type.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

impl<T: serde::Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

fn json_rejection(rejection: JsonRejection) -> Problem {
    match rejection {
        JsonRejection::MissingJsonContentType(_) => {
            Problem::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported-media-type", "Unsupported media type")
                .detail("expected Content-Type: application/json")
        }
        JsonRejection::JsonSyntaxError(err) => Problem::bad_request(format!("malformed JSON: {}", err.body_text())),
        JsonRejection::JsonDataError(err) => {
            let text = err.body_text();
            // axum's text is "Failed to deserialize ...: <path>: <message>".
            let detail = text.split_once(": ").map_or(text.as_str(), |(_, rest)| rest).to_owned();
            let (field, message) = match detail.split_once(": ") {
                Some((path, message)) if !path.contains(' ') => (path.to_owned(), without_position(message)),
                _ => (String::new(), without_position(&detail)),
            };
            Problem::validation(vec![FieldError::new(field, message)])
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            Problem::new(StatusCode::PAYLOAD_TOO_LARGE, "payload-too-large", "Payload too large")
                .detail(format!("request bodies are limited to {MAX_BODY_BYTES} bytes"))
        }
        other => Problem::bad_request(other.body_text()),
    }
}

/// The most items one page of a list holds (`?per_page=`, API.md).
pub const MAX_PER_PAGE: u32 = 100;
/// The items of a page when the client does not say.
pub const DEFAULT_PER_PAGE: u32 = 20;

/// Which page of a list a client asked for: `?page=1&per_page=20` (API.md, Pagination).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u32,
    pub per_page: u32,
}

impl Paging {
    /// `page` from 1 (default 1) and `per_page` from 1 to [`MAX_PER_PAGE`] (default
    /// [`DEFAULT_PER_PAGE`]); each that is out of range adds its error to `errors`, so a
    /// list endpoint reports them with its other parameters'.
    pub fn parse(page: Option<u32>, per_page: Option<u32>, errors: &mut Vec<FieldError>) -> Self {
        let page = page.unwrap_or(1);
        if page == 0 {
            errors.push(FieldError::new("page", "must be at least 1"));
        }
        let per_page = per_page.unwrap_or(DEFAULT_PER_PAGE);
        if !(1..=MAX_PER_PAGE).contains(&per_page) {
            errors.push(FieldError::new("per_page", format!("must be 1 to {MAX_PER_PAGE}")));
        }
        Self { page, per_page }
    }

    /// How many items come before this page.
    pub fn offset(self) -> u64 {
        u64::from(self.page.saturating_sub(1)) * u64::from(self.per_page)
    }
}

/// The message without serde_json's " at line 1 column 17": the field names the place.
fn without_position(message: &str) -> String {
    let Some((text, position)) = message.rsplit_once(" at line ") else { return message.to_owned() };
    let numbers = position
        .split_once(" column ")
        .filter(|(line, column)| [line, column].iter().all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())));
    if numbers.is_some() { text.to_owned() } else { message.to_owned() }
}

/// `#[serde(deserialize_with = "common::http::integral")]` on an integer field of a
/// request body: JSON Schema's `integer`, which the OpenAPI documents promise, admits
/// `25.0` and `2.5e1` as well as `25`, so any number without a fractional part is
/// accepted; others, and those out of the field's range, are refused as mistyped.
pub use contracts::integral;

#[cfg(test)]
mod position_tests {
    #[test]
    fn the_position_serde_json_appends_is_dropped_and_nothing_else() {
        assert_eq!(super::without_position("must be a UUID at line 1 column 17"), "must be a UUID");
        assert_eq!(super::without_position("seen at line two"), "seen at line two");
    }
}

#[cfg(test)]
mod integral_tests {
    #[derive(Debug, serde::Deserialize)]
    struct Count {
        #[serde(deserialize_with = "super::integral")]
        n: u16,
    }

    fn parse(json: &str) -> Option<u16> {
        serde_json::from_str::<Count>(json).ok().map(|c| c.n)
    }

    #[test]
    fn numbers_without_a_fraction_are_integers_however_written() {
        assert_eq!(parse(r#"{"n": 25}"#), Some(25));
        assert_eq!(parse(r#"{"n": 25.0}"#), Some(25));
        assert_eq!(parse(r#"{"n": 2.5e1}"#), Some(25));
    }

    #[test]
    fn fractions_strings_and_values_out_of_range_are_refused() {
        for json in
            [r#"{"n": 2.5}"#, r#"{"n": "25"}"#, r#"{"n": -1}"#, r#"{"n": 65536}"#, r#"{"n": 1e300}"#, r#"{"n": null}"#]
        {
            assert_eq!(parse(json), None, "{json}");
        }
    }
}

#[cfg(test)]
mod paging_tests {
    use super::*;

    #[test]
    fn a_page_counts_from_one_and_holds_one_to_a_hundred_items() {
        let mut errors = Vec::new();
        assert_eq!(Paging::parse(None, None, &mut errors), Paging { page: 1, per_page: DEFAULT_PER_PAGE });
        assert_eq!(Paging::parse(Some(3), Some(100), &mut errors).offset(), 200);
        assert!(errors.is_empty());
        Paging::parse(Some(0), Some(101), &mut errors);
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["page", "per_page"]);
    }
}
