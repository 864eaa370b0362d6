//! `/internal/products` answers only services.

use serde_json::Value;

use crate::support::{Catalog, product};

#[tokio::test]
async fn only_a_service_token_may_look_products_up_internally() {
    let catalog = Catalog::on_sqlite().await;
    assert_eq!(catalog.create(product("SA-1", "Lamp", "home", 4200)).await.status(), 201);

    let anonymous = catalog.lookup_as(None, "SA-1").await;
    assert_eq!(anonymous.status(), 401);
    assert_eq!(anonymous.headers()["www-authenticate"], "Bearer");
    for (who, token) in [("customer", &catalog.customer), ("admin", &catalog.admin)] {
        let response = catalog.lookup_as(Some(token), "SA-1").await;
        assert_eq!(response.status(), 403, "{who}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["type"], "/problems/forbidden", "{who}");
    }

    let response = catalog.lookup_as(Some(&catalog.service_token), "SA-1").await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["items"][0]["sku"], "SA-1");

    // Nor is a service token an admin's.
    let as_service = catalog.http.post(catalog.service.url("/api/products")).bearer_auth(&catalog.service_token);
    let (status, _) = test_support::send(as_service.json(&product("SA-2", "Chair", "home", 100))).await;
    assert_eq!(status, 401);
    catalog.stop().await;
}

#[tokio::test]
async fn the_internal_lookup_is_documented_apart_from_the_public_endpoints() {
    let catalog = Catalog::on_sqlite().await;
    let internal = test_support::internal_document(&catalog.http, &catalog.service.url("")).await;
    let responses = &internal["paths"]["/internal/products"]["get"]["responses"];
    for status in ["200", "401", "403", "422"] {
        assert!(responses.get(status).is_some(), "{status}: {responses}");
    }
    catalog.stop().await;
}
