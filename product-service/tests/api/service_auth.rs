//! `/internal/products` answers only services.

use serde_json::Value;

use crate::support::{self, Catalog, product};

#[tokio::test]
async fn only_a_service_token_may_look_products_up_internally() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::start(support::backends(dir.path()).remove(0)).await;
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
    let as_service = catalog
        .http
        .post(catalog.service.url("/api/products"))
        .bearer_auth(&catalog.service_token)
        .json(&product("SA-2", "Chair", "home", 100))
        .send()
        .await
        .unwrap();
    assert_eq!(as_service.status(), 401);
    catalog.stop().await;
}

#[tokio::test]
async fn the_internal_lookup_is_documented_apart_from_the_public_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = Catalog::start(support::backends(dir.path()).remove(0)).await;
    let get = |path: &'static str| {
        let request = catalog.http.get(catalog.service.url(path));
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let internal = get("/internal/openapi.json").await;
    let responses = &internal["paths"]["/internal/products"]["get"]["responses"];
    for status in ["200", "401", "403", "422"] {
        assert!(responses.get(status).is_some(), "{status}: {responses}");
    }
    let public = get("/openapi.json").await;
    assert!(public["paths"].as_object().unwrap().keys().all(|p| !p.starts_with("/internal")));
    catalog.stop().await;
}
