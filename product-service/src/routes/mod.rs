//! The HTTP surface; the catalog endpoints of API.md slot in here.

use axum::Router;

use crate::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new().with_state(state)
}
