//! The HTTP surface. The auth endpoints of API.md slot in here.

use axum::Router;

use crate::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new().with_state(state)
}
