//! `/internal/*` answers only services: anyone who can reach the port can no longer
//! lock stock or put a confirmed order's units back on sale.

use serde_json::Value;

use crate::support::{self, Inventory, order_id};

async fn start() -> (Inventory, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let url = support::backends(dir.path()).await.remove(0);
    (Inventory::start(url).await, dir)
}

#[tokio::test]
async fn only_a_service_token_may_reserve_stock() {
    let (inventory, _dir) = start().await;
    inventory.set_stock("SA-1", 10).await;

    let (status, body) = inventory.reserve_as(None, &order_id(), &[("SA-1", 10)]).await;
    assert_eq!(status, 401, "anonymous: {body}");
    let (status, body) = inventory.reserve_as(Some(&inventory.customer_token), &order_id(), &[("SA-1", 10)]).await;
    assert_eq!(status, 403, "customer: {body}");
    assert_eq!(body["type"], "/problems/forbidden");
    let (status, body) = inventory.reserve_as(Some(&inventory.admin_token), &order_id(), &[("SA-1", 10)]).await;
    assert_eq!(status, 403, "admin: {body}");
    let (status, _) = inventory.reserve_as(Some("not.a.token"), &order_id(), &[("SA-1", 10)]).await;
    assert_eq!(status, 401, "garbage");
    assert_eq!(inventory.stock("SA-1").await, (10, 0), "a refused caller reserved stock");

    let (status, body) = inventory.reserve(&order_id(), &[("SA-1", 10)]).await;
    assert_eq!(status, 201, "service: {body}");
    assert_eq!(inventory.stock("SA-1").await, (0, 10));
    inventory.stop().await;
}

#[tokio::test]
async fn only_a_service_token_may_release_a_reservation() {
    let (inventory, _dir) = start().await;
    inventory.set_stock("SA-2", 3).await;
    let order = order_id();
    assert_eq!(inventory.reserve(&order, &[("SA-2", 3)]).await.0, 201);

    let anonymous = inventory.release_as(None, &order).await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    for (who, token) in [("customer", &inventory.customer_token), ("admin", &inventory.admin_token)] {
        let response = inventory.release_as(Some(token), &order).await;
        assert_eq!(response.status(), 403, "{who}");
    }
    assert_eq!(inventory.stock("SA-2").await, (0, 3), "a refused caller put the units back on sale");

    assert_eq!(inventory.release(&order).await, 204);
    assert_eq!(inventory.stock("SA-2").await, (3, 0));
    inventory.stop().await;
}

#[tokio::test]
async fn a_service_token_is_not_an_admin_token() {
    let (inventory, _dir) = start().await;
    let response = inventory
        .http
        .put(inventory.service.url("/api/inventory/SA-3"))
        .bearer_auth(&inventory.service_token)
        .json(&serde_json::json!({"available": 1_000}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    inventory.stop().await;
}

#[tokio::test]
async fn the_internal_endpoints_are_documented_apart_from_the_public_ones() {
    let (inventory, _dir) = start().await;
    let get = |path: &'static str| {
        let request = inventory.http.get(inventory.service.url(path));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let internal = get("/internal/openapi.json").await;
    for (path, method) in [("/internal/reservations", "post"), ("/internal/reservations/{order_id}", "delete")] {
        let responses = &internal["paths"][path][method]["responses"];
        assert!(responses.get("401").is_some() && responses.get("403").is_some(), "{path}: {responses}");
    }
    let public = get("/openapi.json").await;
    assert!(public["paths"].as_object().unwrap().keys().all(|p| !p.starts_with("/internal")));
    inventory.stop().await;
}
