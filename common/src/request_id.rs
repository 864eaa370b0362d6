//! Request ids: accept a sane incoming `x-request-id`, else make one; echo it on the
//! response, record it in the request span and make it available to error bodies.

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use http::HeaderValue;
use http::header::HeaderName;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

tokio::task_local! {
    static CURRENT: RequestId;
}

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// Accepts a client's id if it is 1-128 characters of `A-Z a-z 0-9 - _ . :`.
    pub fn sanitize(raw: Option<&HeaderValue>) -> Option<Self> {
        let value = raw?.to_str().ok()?;
        let sane = !value.is_empty()
            && value.len() <= 128
            && value.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        sane.then(|| Self(value.to_owned()))
    }

    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7().to_string())
    }

    /// The id of the request this task is serving, if any.
    pub fn current() -> Option<String> {
        CURRENT.try_with(|id| id.0.clone()).ok()
    }

    /// Runs `fut` with `id` as the current request id (for workers that act on behalf of a request).
    pub async fn scope<F: Future>(id: RequestId, fut: F) -> F::Output {
        CURRENT.scope(id, fut).await
    }
}

/// Middleware: settles the request id before anything else runs.
pub async fn request_id(mut req: Request, next: Next) -> Response {
    let id = RequestId::sanitize(req.headers().get(&X_REQUEST_ID)).unwrap_or_else(RequestId::generate);
    if let Ok(value) = HeaderValue::from_str(&id.0) {
        req.headers_mut().insert(X_REQUEST_ID.clone(), value.clone());
        req.extensions_mut().insert(id.clone());
        let mut response = CURRENT.scope(id, next.run(req)).await;
        response.headers_mut().insert(X_REQUEST_ID.clone(), value);
        response
    } else {
        next.run(req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept() {
        let value = HeaderValue::from_static("abc-123_x.y:z");
        assert_eq!(RequestId::sanitize(Some(&value)), Some(RequestId("abc-123_x.y:z".into())));
    }

    #[test]
    fn an_id_with_spaces_or_too_long_is_replaced() {
        assert!(RequestId::sanitize(Some(&HeaderValue::from_static("a b"))).is_none());
        let long = HeaderValue::from_str(&"a".repeat(129)).unwrap();
        assert!(RequestId::sanitize(Some(&long)).is_none());
        assert!(RequestId::sanitize(Some(&HeaderValue::from_static(""))).is_none());
    }
}
