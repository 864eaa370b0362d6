use std::collections::HashMap;

use futures::future::join_all;
use serde_json::{Value, json};

use crate::support::{Shop, sql_backends};

#[tokio::test]
async fn an_order_is_confirmed_at_catalog_prices_with_stock_reserved_and_its_event_in_the_outbox() {
    for databases in sql_backends().await {
        let shop = Shop::with_products(databases, &[("MUG-1", 1299, "EUR", 10), ("TEE-1", 2000, "EUR", 5)]).await;
        let ada = shop.customer("ada@example.com").await;

        let order = shop.placed(&ada, json!([{"sku": "MUG-1", "quantity": 2}, {"sku": "TEE-1", "quantity": 1}])).await;
        assert_eq!(order["status"], "CONFIRMED");
        assert_eq!(order["total"], json!({"amount": 4598, "currency": "EUR"}));
        assert_eq!(
            order["lines"][0],
            json!({"sku": "MUG-1", "name": "MUG-1 name", "quantity": 2, "unit_price": {"amount": 1299, "currency": "EUR"}})
        );
        assert_eq!(shop.stock("MUG-1").await, (8, 2));
        assert_eq!(shop.outbox_count("order.confirmed").await, 1);

        let id = order["id"].as_str().unwrap();
        let (status, fetched) = shop.get(&ada, &format!("/api/orders/{id}")).await;
        assert_eq!((status, fetched), (200, order.clone()));
    }
}

#[tokio::test]
async fn out_of_stock_is_409_listing_the_skus_and_leaves_nothing_reserved() {
    for databases in sql_backends().await {
        let shop = Shop::with_products(databases, &[("A-1", 100, "USD", 5), ("B-1", 100, "USD", 1)]).await;
        let bob = shop.customer("bob@example.com").await;
        let (status, problem) =
            shop.place(&bob, json!([{"sku": "A-1", "quantity": 2}, {"sku": "B-1", "quantity": 3}]), None).await;
        assert_eq!(status, 409, "{problem}");
        assert_eq!(problem["insufficient"][0]["sku"], "B-1");
        assert!(problem["detail"].as_str().unwrap().contains("B-1"));
        assert_eq!(shop.stock("A-1").await, (5, 0));
        assert_eq!(shop.stock("B-1").await, (1, 0));
        assert_eq!(shop.outbox_count("order.confirmed").await, 0);
        let (_, page) = shop.get(&bob, "/api/orders").await;
        assert_eq!(page["total"], 0, "a rejected placement is not an order of the customer");
    }
}

#[tokio::test]
async fn invalid_orders_are_422_naming_the_fields() {
    let shop = Shop::on_sqlite().await.selling(&[("EUR-1", 100, "EUR", 5), ("USD-1", 100, "USD", 5)]).await;
    let carol = shop.customer("carol@example.com").await;
    let many: Vec<Value> = (0..101).map(|_| json!({"sku": "EUR-1", "quantity": 1})).collect();
    let cases = [
        (json!([]), "lines"),
        (json!([{"sku": "EUR-1", "quantity": 0}]), "lines[0].quantity"),
        (json!([{"sku": "EUR-1", "quantity": 1001}]), "lines[0].quantity"),
        (Value::Array(many), "lines"),
        (json!([{"sku": "NOPE-1", "quantity": 1}]), "lines[0].sku"),
        (json!([{"sku": "EUR-1", "quantity": 1}, {"sku": "USD-1", "quantity": 1}]), "lines[1].sku"),
        (json!([{"sku": "bad sku", "quantity": 1}]), "lines[0].sku"),
    ];
    for (lines, field) in cases {
        let (status, problem) = shop.place(&carol, lines.clone(), None).await;
        assert_eq!(status, 422, "{lines}: {problem}");
        assert!(problem["errors"].as_array().unwrap().iter().any(|e| e["field"] == field), "{field}: {problem}");
    }
    assert_eq!(shop.stock("EUR-1").await, (5, 0));
    let response = shop.http.post(shop.orders.url("/api/orders")).json(&json!({"lines": []})).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn customers_see_only_their_orders_admins_see_all_and_cancelling_releases_stock_once() {
    for databases in sql_backends().await {
        let shop = Shop::with_products(databases, &[("LAMP-1", 5000, "USD", 3)]).await;
        let dan = shop.customer("dan@example.com").await;
        let eve = shop.customer("eve@example.com").await;
        let dans = shop.placed(&dan, json!([{"sku": "LAMP-1", "quantity": 1}])).await;
        let eves = shop.placed(&eve, json!([{"sku": "LAMP-1", "quantity": 1}])).await;
        let dans_id = dans["id"].as_str().unwrap();

        assert_eq!(shop.get(&eve, &format!("/api/orders/{dans_id}")).await.0, 404);
        assert_eq!(shop.get(&shop.admin, &format!("/api/orders/{dans_id}")).await.0, 200);
        let (_, page) = shop.get(&dan, "/api/orders").await;
        assert_eq!((page["total"].clone(), page["items"][0]["id"].clone()), (json!(1), dans["id"].clone()));
        let (_, all) = shop.get(&shop.admin, "/api/orders").await;
        assert_eq!(all["total"], 2);
        assert_eq!(all["items"][0]["id"], eves["id"], "newest first");
        let (_, filtered) =
            shop.get(&shop.admin, &format!("/api/orders?user_id={}", eves["user_id"].as_str().unwrap())).await;
        assert_eq!(filtered["total"], 1);

        assert_eq!(shop.cancel(&eve, dans_id).await.0, 404, "someone else's order");
        let (status, cancelled) = shop.cancel(&dan, dans_id).await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!(cancelled["status"], "CANCELLED");
        assert_eq!(shop.stock("LAMP-1").await, (2, 1));
        let (status, again) = shop.cancel(&dan, dans_id).await;
        assert_eq!((status, again), (200, cancelled), "a repeated cancel answers as the first did");
        assert_eq!(shop.stock("LAMP-1").await, (2, 1));
        assert_eq!(shop.outbox_count("order.cancelled").await, 1);
        let (status, _) = shop.cancel(&shop.admin, eves["id"].as_str().unwrap()).await;
        assert_eq!(status, 200, "an admin cancels anyone's order");
        assert_eq!(shop.stock("LAMP-1").await, (3, 0));
    }
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer_and_concurrent_duplicates_are_told_to_retry() {
    for databases in sql_backends().await {
        let shop = Shop::with_products(databases, &[("PEN-1", 150, "USD", 100)]).await;
        let fay = shop.customer("fay@example.com").await;
        let lines = json!([{"sku": "PEN-1", "quantity": 3}]);

        let first = join_all((0..5).map(|_| shop.place(&fay, lines.clone(), Some("key-1")))).await;
        assert!(first.iter().any(|(s, _)| *s == 201), "{first:?}");
        for (status, problem) in first.iter().filter(|(s, _)| *s != 201) {
            assert_eq!((*status, &problem["type"]), (409, &json!("/problems/idempotency-key-in-use")), "{problem}");
        }
        // Every duplicate, retried once the first is answered, gets its answer.
        let answers = join_all((0..5).map(|_| shop.place(&fay, lines.clone(), Some("key-1")))).await;
        assert!(answers.iter().all(|(s, _)| *s == 201), "{answers:?}");
        let ids: std::collections::HashSet<_> = answers.iter().map(|(_, o)| o["id"].clone()).collect();
        assert_eq!(ids.len(), 1, "one order for five identical requests");
        assert_eq!(shop.stock("PEN-1").await, (97, 3), "one reservation");

        let (status, _) = shop.place(&fay, json!([{"sku": "PEN-1", "quantity": 4}]), Some("key-1")).await;
        assert_eq!(status, 422, "same key, different body");
        let other = shop.customer("gus@example.com").await;
        let (status, order) = shop.place(&other, lines.clone(), Some("key-1")).await;
        assert_eq!(status, 201);
        assert!(!ids.contains(&order["id"]), "keys are per user");
    }
}

#[tokio::test]
async fn forty_concurrent_buyers_of_ten_units_get_exactly_ten_orders_and_the_invariant_holds() {
    for databases in sql_backends().await {
        let shop = Shop::with_products(databases, &[("HOT-1", 999, "USD", 10), ("HOT-2", 999, "USD", 10)]).await;
        let buyer = shop.customer("crowd@example.com").await;

        let single =
            join_all((0..40).map(|_| shop.place(&buyer, json!([{"sku": "HOT-1", "quantity": 1}]), None))).await;
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for (status, _) in &single {
            *counts.entry(*status).or_default() += 1;
        }
        assert_eq!((counts.get(&201), counts.get(&409)), (Some(&10), Some(&30)), "{counts:?}");
        assert_eq!(shop.stock("HOT-1").await, (0, 10));

        // Overlapping multi-line orders on HOT-2 and the now-empty HOT-1 plus fresh stock.
        shop.product("HOT-3", 999, "USD", 10).await;
        let baskets = [
            json!([{"sku": "HOT-2", "quantity": 1}, {"sku": "HOT-3", "quantity": 1}]),
            json!([{"sku": "HOT-3", "quantity": 2}]),
        ];
        let mixed = join_all((0..40).map(|i| shop.place(&buyer, baskets[i % 2].clone(), None))).await;
        for sku in ["HOT-2", "HOT-3"] {
            let (available, reserved) = shop.stock(sku).await;
            assert!(available >= 0);
            assert_eq!(available + reserved, 10, "{sku}");
        }
        let confirmed: i64 = mixed.iter().filter(|(s, _)| *s == 201).count().try_into().unwrap();
        assert_eq!(shop.orders_in("CONFIRMED").await, 10 + confirmed);
        assert_eq!(shop.orders_in("PENDING").await, 0);
    }
}
