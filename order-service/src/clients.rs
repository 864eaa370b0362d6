//! Calls to product-service and inventory-service through the resilient client, each
//! with order-service's service token.

use std::collections::HashMap;

use common::client::{CallError, ResilientClient};
use contracts::{OrderId, Sku};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::json;
use url::Url;

use crate::service_token::ServiceToken;

/// A downstream service could not give an answer.
#[derive(Debug, thiserror::Error)]
#[error("{service} unavailable: {reason}")]
pub struct Unavailable {
    pub service: &'static str,
    #[source]
    pub reason: Box<dyn std::error::Error + Send + Sync>,
    pub retry_after_secs: u64,
}

fn unavailable(service: &'static str, err: CallError) -> Unavailable {
    Unavailable { service, retry_after_secs: err.retry_after_secs(), reason: err.into() }
}

fn bad_status(service: &'static str, status: reqwest::StatusCode) -> Unavailable {
    Unavailable { service, reason: format!("answered {status}").into(), retry_after_secs: 1 }
}

/// Sends the request `build` makes with the service token. A 401 means the service
/// no longer accepts that token (it expired early, or auth-service's key changed): the
/// token is dropped and the request sent once more with a new one.
async fn send_as_service(
    service: &'static str,
    client: &ResilientClient,
    token: &ServiceToken,
    build: impl Fn() -> reqwest::RequestBuilder,
) -> Result<reqwest::Response, Unavailable> {
    let bearer = token.bearer().await?;
    let response = client.send(build().bearer_auth(&bearer)).await.map_err(|e| unavailable(service, e))?;
    if response.status() != reqwest::StatusCode::UNAUTHORIZED {
        return Ok(response);
    }
    token.forget(&bearer);
    let bearer = token.bearer().await?;
    let response = client.send(build().bearer_auth(&bearer)).await.map_err(|e| unavailable(service, e))?;
    if matches!(response.status().as_u16(), 401 | 403) {
        tracing::error!(service, status = %response.status(), "the service refused order-service's service token");
    }
    Ok(response)
}

/// What order-service needs of a product.
#[derive(Debug, Clone, Deserialize)]
pub struct CatalogEntry {
    pub sku: contracts::Sku,
    pub name: String,
    pub price: contracts::Money,
}

#[derive(Debug, Deserialize)]
struct Lookup {
    items: Vec<CatalogEntry>,
}

#[derive(Debug, Clone)]
pub struct Products {
    pub client: ResilientClient,
    pub base: Url,
    pub token: ServiceToken,
}

impl Products {
    /// Authoritative names and prices of `skus`, by sku (missing skus are absent).
    #[tracing::instrument(skip_all)]
    pub async fn lookup(&self, skus: &[Sku]) -> Result<HashMap<Sku, CatalogEntry>, Unavailable> {
        const NAME: &str = "product-service";
        let mut url = self.base.join("internal/products").map_err(|e| bad_url(NAME, &e))?;
        let skus: Vec<&str> = skus.iter().map(Sku::as_str).collect();
        url.query_pairs_mut().append_pair("skus", &skus.join(","));
        let response =
            send_as_service(NAME, &self.client, &self.token, || self.client.request(Method::GET, url.clone())).await?;
        if !response.status().is_success() {
            return Err(bad_status(NAME, response.status()));
        }
        let lookup: Lookup =
            response.json().await.map_err(|e| Unavailable { service: NAME, reason: e.into(), retry_after_secs: 1 })?;
        Ok(lookup.items.into_iter().map(|p| (p.sku.clone(), p)).collect())
    }
}

fn bad_url(service: &'static str, err: &url::ParseError) -> Unavailable {
    Unavailable { service, reason: Box::new(*err), retry_after_secs: 1 }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Shortage {
    pub sku: Sku,
    pub requested: i64,
    pub available: i64,
}

/// What inventory said to a reservation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reserve {
    Reserved,
    Insufficient(Vec<Shortage>),
}

#[derive(Debug, Clone)]
pub struct Inventory {
    pub client: ResilientClient,
    pub base: Url,
    pub token: ServiceToken,
}

impl Inventory {
    /// Reserves all lines or none. Idempotent on `order_id`, so it is sent with an
    /// idempotency key and retried like any idempotent call.
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn reserve(&self, order_id: OrderId, lines: &[(Sku, i64)]) -> Result<Reserve, Unavailable> {
        const NAME: &str = "inventory-service";
        let url = self.base.join("internal/reservations").map_err(|e| bad_url(NAME, &e))?;
        let lines: Vec<_> = lines.iter().map(|(sku, quantity)| json!({"sku": sku, "quantity": quantity})).collect();
        let body = json!({"order_id": order_id, "lines": lines});
        let response = send_as_service(NAME, &self.client, &self.token, || {
            self.client.request(Method::POST, url.clone()).header("idempotency-key", order_id.to_string()).json(&body)
        })
        .await?;
        match response.status().as_u16() {
            201 => Ok(Reserve::Reserved),
            409 => {
                #[derive(Deserialize)]
                struct Rejection {
                    #[serde(default)]
                    insufficient: Vec<Shortage>,
                }
                let rejection: Rejection = response.json().await.unwrap_or(Rejection { insufficient: Vec::new() });
                Ok(Reserve::Insufficient(rejection.insufficient))
            }
            _ => Err(bad_status(NAME, response.status())),
        }
    }

    /// Releases the order's reservation (idempotent on inventory's side).
    #[tracing::instrument(skip_all, fields(order_id = %order_id))]
    pub async fn release(&self, order_id: OrderId) -> Result<(), Unavailable> {
        const NAME: &str = "inventory-service";
        let url = self.base.join(&format!("internal/reservations/{order_id}")).map_err(|e| bad_url(NAME, &e))?;
        let response =
            send_as_service(NAME, &self.client, &self.token, || self.client.request(Method::DELETE, url.clone()))
                .await?;
        if response.status().is_success() { Ok(()) } else { Err(bad_status(NAME, response.status())) }
    }
}
