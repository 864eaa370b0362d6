use serde_json::{Value, json};

use crate::support::{Catalog, product};

#[tokio::test]
async fn admins_create_replace_and_delete_products_with_api_md_status_codes() {
    for catalog in Catalog::on_each_backend().await {
        let created = catalog.create(product("MUG-1", "Mug", "kitchen", 1299)).await;
        assert_eq!(created.status(), 201);
        let location = created.headers()["location"].to_str().unwrap().to_owned();
        let body: Value = created.json().await.unwrap();
        assert_eq!(location, format!("/api/products/{}", body["id"].as_str().unwrap()));
        assert_eq!(body["price"], json!({"amount": 1299, "currency": "USD"}));

        let fetched: Value =
            catalog.http.get(catalog.service.url(&location)).send().await.unwrap().json().await.unwrap();
        assert_eq!(fetched, body);

        let duplicate = catalog.create(product("MUG-1", "Other mug", "kitchen", 1)).await;
        assert_eq!(duplicate.status(), 409);

        // A sku or price that does not parse is refused as the body is read, naming the field.
        let bad_sku = catalog.create(json!({"sku": "bad sku", "name": "x", "price": {"amount": 1, "currency": "USD"}}));
        let problem: Value = bad_sku.await.json().await.unwrap();
        assert_eq!(problem["status"], 422);
        assert_eq!(
            problem["errors"],
            json!([{"field": "sku", "message": "must be 1-64 characters of A-Z a-z 0-9 - _"}])
        );
        let bad_price = catalog.create(json!({"sku": "X-1", "name": "x", "price": {"amount": 1, "currency": "usd"}}));
        let problem: Value = bad_price.await.json().await.unwrap();
        assert_eq!(problem["errors"][0]["field"], "price.currency", "{problem}");
        // Every rule on parsed values is reported at once.
        let long_category = "c".repeat(101);
        let invalid = catalog
            .create(json!({"sku": "X-1", "name": " ", "category": long_category, "price": {"amount": 1, "currency": "USD"}}))
            .await;
        assert_eq!(invalid.status(), 422);
        let problem: Value = invalid.json().await.unwrap();
        assert_eq!(problem["errors"].as_array().unwrap().len(), 2, "{problem}");
        let unknown_field = catalog
            .create(json!({"sku": "X-1", "name": "x", "price": {"amount": 1, "currency": "USD"}, "id": "x"}))
            .await;
        assert_eq!(unknown_field.status(), 422);
        let float_price =
            catalog.create(json!({"sku": "X-1", "name": "x", "price": {"amount": 9.99, "currency": "USD"}})).await;
        assert_eq!(float_price.status(), 422, "money is never a float");

        let url = catalog.service.url(&location);
        let (status, replaced) = catalog.replace(&url, product("MUG-2", "Big mug", "kitchen", 1599)).await;
        assert_eq!(status, 200, "{replaced}");
        assert_eq!(
            (replaced["sku"].as_str(), replaced["created_at"].clone()),
            (Some("MUG-2"), body["created_at"].clone())
        );

        let missing = catalog.service.url(&format!("/api/products/{}", uuid::Uuid::now_v7()));
        assert_eq!(catalog.replace(&missing, product("Z-1", "z", "", 1)).await.0, 404);
        catalog.create(product("TAKEN-1", "Taken", "", 1)).await;
        assert_eq!(catalog.replace(&url, product("TAKEN-1", "Mug", "", 1)).await.0, 409);
        assert_eq!(catalog.replace(&url, json!({"sku": "MUG-2"})).await.0, 422);

        let customer_delete = catalog.http.delete(&url).bearer_auth(&catalog.customer).send().await.unwrap();
        assert_eq!(customer_delete.status(), 403);
        let anonymous_create =
            catalog.http.post(catalog.service.url("/api/products")).json(&product("A-9", "a", "", 1));
        assert_eq!(test_support::send(anonymous_create).await.0, 401);
        assert_eq!(catalog.http.delete(&url).bearer_auth(&catalog.admin).send().await.unwrap().status(), 204);
        assert_eq!(catalog.http.delete(&url).bearer_auth(&catalog.admin).send().await.unwrap().status(), 404);
        assert_eq!(catalog.http.get(&url).send().await.unwrap().status(), 404);
        assert_eq!(
            catalog.http.get(catalog.service.url("/api/products/not-a-uuid")).send().await.unwrap().status(),
            404
        );
        catalog.stop().await;
    }
}

#[tokio::test]
async fn listing_filters_sorts_and_pages_and_rejects_bad_parameters() {
    for catalog in Catalog::on_each_backend().await {
        for (sku, name, category, amount) in [
            ("A-1", "Alpha lamp", "home", 500),
            ("B-1", "Beta mug", "kitchen", 1500),
            ("C-1", "Gamma pan", "kitchen", 2500),
        ] {
            assert_eq!(catalog.create(product(sku, name, category, amount)).await.status(), 201);
        }
        let page = catalog.list("?category=kitchen&sort=-price").await;
        assert_eq!(page["total"], 2);
        assert_eq!(page["items"][0]["sku"], "C-1");
        assert_eq!((page["page"].clone(), page["per_page"].clone()), (json!(1), json!(20)));

        let page = catalog.list("?q=MUG").await;
        assert_eq!(page["items"].as_array().unwrap().len(), 1);
        let page = catalog.list("?min_price=1000&max_price=2000").await;
        assert_eq!(page["items"][0]["sku"], "B-1");
        let page = catalog.list("?sort=name&per_page=2&page=2").await;
        assert_eq!((page["total"].clone(), page["items"][0]["sku"].clone()), (json!(3), json!("C-1")));

        for bad in ["?per_page=101", "?page=0", "?sort=price_desc", "?min_price=-1", "?min_price=abc", "?colour=red"] {
            let response = catalog.http.get(catalog.service.url(&format!("/api/products{bad}"))).send().await.unwrap();
            assert_eq!(response.status(), 422, "{bad}");
        }

        let lookup: Value = catalog.lookup_as(Some(&catalog.service_token), "A-1,C-1,NOPE").await.json().await.unwrap();
        assert_eq!(lookup["items"].as_array().unwrap().len(), 2);
        catalog.stop().await;
    }
}
