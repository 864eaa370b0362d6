//! Request ids: accept a sane incoming `x-request-id`, else make one; echo it on the
//! response, record it in the request span and make it available to error bodies.

use std::cell::Cell;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::Request;
use http::HeaderValue;
use http::header::HeaderName;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served, kept as the header value it travels in: it is
/// read as text far less often than it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Accepts a client's id if it is 1-128 characters of `A-Z a-z 0-9 - _ . :`.
    pub fn sanitize(raw: Option<&HeaderValue>) -> Option<Self> {
        let value = raw?;
        let bytes = value.as_bytes();
        let sane = !bytes.is_empty()
            && bytes.len() <= 128
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        sane.then(|| Self(value.clone()))
    }

    /// A fresh UUIDv7.
    pub fn generate() -> Self {
        let mut text = [0; uuid::fmt::Hyphenated::LENGTH];
        let text = uuid_v7().hyphenated().encode_lower(&mut text);
        // A UUID's text is always a header value: the fallback is never taken.
        Self(HeaderValue::from_str(text).unwrap_or(HeaderValue::from_static("0")))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        // Only ever made of visible ASCII (see `sanitize` and `generate`).
        self.0.to_str().unwrap_or_default()
    }

    /// The id as the header value it travels in.
    pub fn header_value(&self) -> HeaderValue {
        self.0.clone()
    }

    /// The id of the request this task is serving, if any.
    pub fn current() -> Option<String> {
        crate::request_scope::request_id().map(|id| id.as_str().to_owned())
    }
}

/// A UUIDv7 (RFC 9562: 48 bits of Unix milliseconds, 74 random bits) whose random bits
/// come from a per-thread generator seeded once from the operating system, rather than
/// a system call per request: a request id has to be unique, not unpredictable.
fn uuid_v7() -> uuid::Uuid {
    thread_local! {
        static STATE: Cell<u64> = Cell::new(uuid::Uuid::new_v4().as_u64_pair().0);
    }
    let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64);
    let (high, low) = STATE.with(|state| (splitmix64(state), splitmix64(state)));
    let mut random = [0; 10];
    random[..8].copy_from_slice(&high.to_le_bytes());
    random[8..].copy_from_slice(&low.to_le_bytes()[..2]);
    uuid::Builder::from_unix_timestamp_millis(millis, &random).into_uuid()
}

/// The next output of SplitMix64 (Steele, Lea, Flood 2014): full period, well mixed.
fn splitmix64(state: &Cell<u64>) -> u64 {
    let next = state.get().wrapping_add(0x9E37_79B9_7F4A_7C15);
    state.set(next);
    let mut z = next;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The request's id: a sane one it carries, else a new one, which then goes into its
/// headers too (for whoever it is passed on to).
pub(crate) fn settle(req: &mut Request) -> RequestId {
    if let Some(id) = RequestId::sanitize(req.headers().get(&X_REQUEST_ID)) {
        return id;
    }
    let id = RequestId::generate();
    req.headers_mut().insert(X_REQUEST_ID.clone(), id.0.clone());
    id
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept() {
        let value = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::sanitize(Some(&value)).unwrap().as_str(), "abc-123_x.y:z");
    }

    #[test]
    fn generated_ids_are_distinct_uuid_v7s_of_the_current_millisecond() {
        let before = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        let ids: std::collections::HashSet<String> =
            (0..10_000).map(|_| RequestId::generate().as_str().to_owned()).collect();
        let after = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
        assert_eq!(ids.len(), 10_000);
        for id in ids.iter().take(100) {
            let uuid = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(uuid.get_version_num(), 7, "{id}");
            assert_eq!(uuid.get_variant(), uuid::Variant::RFC4122, "{id}");
            let (seconds, nanos) = uuid.get_timestamp().unwrap().to_unix();
            let millis = seconds * 1000 + u64::from(nanos) / 1_000_000;
            assert!((before..=after).contains(&millis), "{id}");
        }
    }

    #[test]
    fn an_id_with_spaces_or_too_long_is_replaced() {
        assert!(RequestId::sanitize(Some(&HeaderValue::from_static("a b"))).is_none());
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert!(RequestId::sanitize(Some(&long)).is_none());
        assert!(RequestId::sanitize(Some(&HeaderValue::from_static(""))).is_none());
    }
}
