//! What a customer can send to POST /api/orders that the shop must refuse or
//! survive: never more than the cap of one sku, never a 500 from a header.

use serde_json::{Value, json};

use crate::support::{Shop, sql_backends};

const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// The trace context stored with the order's outbox event.
async fn outbox_trace_context(shop: &Shop, order_id: &str) -> Value {
    let state = shop.state().await;
    let stored = common::on_pool!(&state.store.pool, pool => {
        let (context,): (String,) = sqlx::query_as("SELECT trace_context FROM outbox WHERE event_key = ?")
            .bind(order_id)
            .fetch_one(pool)
            .await
            .unwrap();
        context
    });
    state.store.pool.close().await;
    serde_json::from_str(&stored).unwrap()
}

async fn place_with_trace(shop: &Shop, token: &str, tracestate: &str) -> (u16, Value) {
    let request = shop.http.post(shop.orders.url("/api/orders")).bearer_auth(token);
    let traced = request.header("traceparent", TRACEPARENT).header("tracestate", tracestate);
    test_support::send(traced.json(&json!({"lines": [{"sku": "TRACE-1", "quantity": 1}]}))).await
}

#[tokio::test]
async fn the_same_sku_on_several_lines_is_capped_at_1000_in_total() {
    let shop = Shop::on_sqlite().await.selling(&[("BULK-1", 100, "EUR", 5000)]).await;
    let buyer = shop.customer("bulk@example.com").await;

    let three_thousand = json!([
        {"sku": "BULK-1", "quantity": 1000},
        {"sku": "BULK-1", "quantity": 1000},
        {"sku": "BULK-1", "quantity": 1000},
    ]);
    let (status, problem) = shop.place(&buyer, three_thousand, None).await;
    assert_eq!(status, 422, "{problem}");
    let fields: Vec<&str> =
        problem["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert_eq!(fields, ["lines[1].quantity"], "{problem}");
    assert_eq!(shop.stock("BULK-1").await, (5000, 0), "nothing was reserved");

    let (status, problem) =
        shop.place(&buyer, json!([{"sku": "BULK-1", "quantity": 999}, {"sku": "BULK-1", "quantity": 2}]), None).await;
    assert_eq!(status, 422, "{problem}");

    let (status, order) =
        shop.place(&buyer, json!([{"sku": "BULK-1", "quantity": 600}, {"sku": "BULK-1", "quantity": 400}]), None).await;
    assert_eq!(status, 201, "exactly 1000 over two lines is allowed: {order}");
    assert_eq!(shop.stock("BULK-1").await, (4000, 1000));
}

#[tokio::test]
async fn an_oversized_tracestate_is_dropped_and_the_order_is_placed() {
    common::test_util::init_telemetry();
    for databases in sql_backends().await {
        let backend = databases.backend();
        let shop = Shop::with_products(databases, &[("TRACE-1", 100, "EUR", 10)]).await;
        let buyer = shop.customer("trace@example.com").await;

        // 4 KB of well-formed members, each within its own bounds (16 of 32 members,
        // values of 250 of 256 characters): past the 512 characters of the whole.
        let huge: Vec<String> = (0..16).map(|i| format!("k{i:02}={}", "v".repeat(250))).collect();
        let huge = huge.join(",");
        assert!(huge.len() > 4000);
        let (status, order) = place_with_trace(&shop, &buyer, &huge).await;
        assert_eq!(status, 201, "{backend}: {order}");
        let stored = outbox_trace_context(&shop, order["id"].as_str().unwrap()).await;
        let traceparent = stored["traceparent"].as_str().unwrap_or_default();
        assert!(traceparent.contains("4bf92f3577b34da6a3ce929d0e0e4736"), "{backend}: the trace goes on: {stored}");
        assert!(stored.get("tracestate").is_none_or(|s| s == ""), "{backend}: the tracestate was kept: {stored}");

        // The largest tracestate kept still fits where it is stored.
        let largest: Vec<String> = (0..8).map(|i| format!("k{i}={}", "~".repeat(60))).collect();
        let largest = largest.join(",");
        assert!(largest.len() <= 512);
        let (status, order) = place_with_trace(&shop, &buyer, &largest).await;
        assert_eq!(status, 201, "{backend}: {order}");
        let stored = outbox_trace_context(&shop, order["id"].as_str().unwrap()).await;
        assert_eq!(stored["tracestate"], largest.as_str(), "{backend}");
        assert_eq!(shop.stock("TRACE-1").await, (8, 2), "{backend}");
    }
}

#[test]
fn settings_debug_output_holds_no_password() {
    let env = common::settings::Env::from_pairs([
        ("DATABASE_URL", "mysql://ecom:hunter2-db-secret@db.internal:3306/orders"),
        ("ECOM_PRODUCT_URL", "http://svc:hunter2-product-secret@products.internal:8082"),
        ("ECOM_SERVICE_CLIENT_SECRET", "3f9c2a7e1b5d4c8f9a0e6b2d7c1f4a8e5b9d3c6f0a2e7b1d4c8f5a9e3b6d0c2f"),
    ]);
    let settings = order_service::Settings::from_env(&env).unwrap();
    let printed = format!("{settings:?}");
    assert!(!printed.contains("hunter2"), "{printed}");
    assert!(!printed.contains("3f9c2a7e"), "{printed}");
    assert!(printed.contains("db.internal"), "{printed}");
}

#[tokio::test]
async fn the_openapi_document_states_the_order_rules_and_every_refusal_with_its_problem_body() {
    let shop = Shop::on_sqlite().await;
    let doc: Value = shop.http.get(shop.orders.url("/openapi.json")).send().await.unwrap().json().await.unwrap();
    let schemas = &doc["components"]["schemas"];
    assert_eq!(schemas["PlaceOrderRequest"]["properties"]["lines"]["maxItems"], 100);
    assert_eq!(schemas["RequestedLine"]["properties"]["sku"]["maxLength"], 64);
    assert_eq!(schemas["RequestedLine"]["properties"]["quantity"]["maximum"], 1000);

    let responses = &doc["paths"]["/api/orders"]["post"]["responses"];
    for status in ["400", "401", "409", "413", "415", "422", "503"] {
        let schema = &responses[status]["content"]["application/problem+json"]["schema"]["$ref"];
        assert_eq!(schema, "#/components/schemas/Problem", "{status}: {responses}");
    }
    assert!(responses["422"]["description"].as_str().unwrap().contains("sku"), "{}", responses["422"]);
}
