//! `/internal/*` answers only services: anyone who can reach the port can no longer
//! lock stock or put a confirmed order's units back on sale.

use serde_json::json;
use test_support::send;

use crate::support::{Inventory, order_id};

#[tokio::test]
async fn only_a_service_token_may_reserve_stock() {
    let inventory = Inventory::on_sqlite(&[("SA-1", 10)]).await;

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
    let inventory = Inventory::on_sqlite(&[("SA-2", 3)]).await;
    let order = inventory.reserved(&[("SA-2", 3)]).await;

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
    let inventory = Inventory::on_sqlite(&[]).await;
    let as_service = inventory.http.put(inventory.service.url("/api/inventory/SA-3"));
    let (status, _) = send(as_service.bearer_auth(&inventory.service_token).json(&json!({"available": 1_000}))).await;
    assert_eq!(status, 401);
    inventory.stop().await;
}

#[tokio::test]
async fn the_internal_endpoints_are_documented_apart_from_the_public_ones() {
    let inventory = Inventory::on_sqlite(&[]).await;
    let internal = test_support::internal_document(&inventory.http, &inventory.service.url("")).await;
    for (path, method) in [("/internal/reservations", "post"), ("/internal/reservations/{order_id}", "delete")] {
        let responses = &internal["paths"][path][method]["responses"];
        assert!(responses.get("401").is_some() && responses.get("403").is_some(), "{path}: {responses}");
    }
    inventory.stop().await;
}
