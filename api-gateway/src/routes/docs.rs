//! The merged OpenAPI document of every service, and an interactive page whose
//! assets are served from this binary (no CDN).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};
use utoipa_swagger_ui::{Config, SwaggerUi};

use crate::AppState;
use crate::error::ApiError;

pub fn routes() -> Router<AppState> {
    let ui: Router<AppState> = SwaggerUi::new("/api/docs").config(Config::from("/api/openapi.json")).into();
    Router::new().route("/api/openapi.json", get(openapi)).merge(ui)
}

/// Fetches each service's `/openapi.json` and merges paths and schemas. A service
/// that cannot be reached is left out and named in `x-unavailable`.
async fn openapi(State(state): State<AppState>) -> Response {
    let mut paths = Map::new();
    let mut schemas = Map::new();
    let mut missing = Vec::new();
    for upstream in state.upstreams() {
        let Ok(url) = upstream.base.join("openapi.json") else { continue };
        let document: Option<Value> = match state.api_client.get(url).send().await {
            Ok(response) if response.status().is_success() => response.json().await.ok(),
            _ => None,
        };
        let Some(document) = document else {
            missing.push(upstream.name);
            continue;
        };
        if let Some(p) = document.get("paths").and_then(Value::as_object) {
            paths.extend(p.clone());
        }
        if let Some(s) = document.pointer("/components/schemas").and_then(Value::as_object) {
            for (name, schema) in s {
                // Two services describing one name differently would silently leave
                // one of them wrong in the merged document.
                if schemas.get(name).is_some_and(|known| known != schema) {
                    tracing::warn!(schema = %name, service = upstream.name, "schema differs between services");
                }
                schemas.insert(name.clone(), schema.clone());
            }
        }
    }
    if paths.is_empty() {
        return ApiError::NoServiceDescriptions.into_response();
    }
    let mut document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ecom API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "The public API of the ecom platform, through the gateway. Errors are RFC 9457 problem documents."
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
        },
        "x-unavailable": missing,
    });
    common::openapi::add_standard_problems(&mut document);
    axum::Json(document).into_response()
}
