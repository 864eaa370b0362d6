//! Idempotency keys whose holder died: a retry never waits on it, and never doubles
//! the order it may have placed.

use std::time::{Duration, Instant};

use common::test_util::eventually;
use order_service::domain::{OrderId, Sku};
use order_service::idempotency::request_hash;
use order_service::routes::{PlaceOrderRequest, RequestedLine};
use order_service::saga::{self, Wanted};
use order_service::store::{KeyRef, KeyState};
use serde_json::json;
use uuid::Uuid;

use crate::support::{Shop, sql_backends};

fn body(sku: &str, quantity: i64) -> PlaceOrderRequest {
    PlaceOrderRequest { lines: vec![RequestedLine { sku: Sku::parse(sku).unwrap(), quantity }] }
}

/// Claims `key` as a request that then died: its lease ran out a second ago.
async fn claimed_by_a_dead_request(state: &order_service::AppState, key: &KeyRef, request: &PlaceOrderRequest) {
    let expired = chrono::Utc::now() - chrono::Duration::seconds(1);
    let claimed = state.store.claim_key(key, &request_hash(request), expired).await.unwrap();
    assert_eq!(claimed, KeyState::Claimed);
}

#[tokio::test]
async fn a_retry_after_the_key_holder_died_mid_placement_rolls_its_order_back_and_places_one() {
    let dir = tempfile::tempdir().unwrap();
    for (orders_db, inventory_db) in sql_backends(dir.path()).await {
        let shop = Shop::start(orders_db, inventory_db, &[]).await;
        shop.product("OWL-1", 900, "EUR", 5).await;
        let (token, who) = shop.customer_identity("hal@example.com").await;
        let state = order_service::AppState::connect(&shop.order_settings).await.unwrap();

        // The holder recorded its order, wrote it PENDING and reserved, then died.
        let key = KeyRef { user: who.user_id, key: "crash-1".into(), owner: Uuid::new_v4() };
        claimed_by_a_dead_request(&state, &key, &body("OWL-1", 2)).await;
        let abandoned = OrderId::from(Uuid::now_v7());
        assert!(state.store.attach_order(&key, abandoned).await.unwrap());
        let mut order = pending_order(abandoned, who.user_id);
        order.lines[0].sku = "OWL-1".parse().unwrap();
        state.store.insert_pending(&order).await.unwrap();
        state.inventory.reserve(abandoned, &[("OWL-1".parse().unwrap(), 2)]).await.unwrap();
        assert_eq!(shop.stock("OWL-1").await, (3, 2));

        let started = Instant::now();
        let (status, placed) = shop.place(&token, json!([{"sku": "OWL-1", "quantity": 2}]), Some("crash-1")).await;
        assert_eq!(status, 201, "{placed}");
        assert!(started.elapsed() < Duration::from_secs(3), "the retry waited on the dead holder");
        assert_ne!(placed["id"], json!(abandoned.to_string()));
        assert_eq!(shop.stock("OWL-1").await, (3, 2), "the abandoned reservation went back");
        assert_eq!((shop.orders_in("CONFIRMED").await, shop.orders_in("FAILED").await), (1, 1));

        let (status, replayed) = shop.place(&token, json!([{"sku": "OWL-1", "quantity": 2}]), Some("crash-1")).await;
        assert_eq!((status, &replayed["id"]), (201, &placed["id"]), "the key now replays its answer");
        state.store.pool().close().await;
    }
}

#[tokio::test]
async fn a_retry_after_the_key_holder_died_having_confirmed_answers_with_that_order() {
    let dir = tempfile::tempdir().unwrap();
    for (orders_db, inventory_db) in sql_backends(dir.path()).await {
        let shop = Shop::start(orders_db, inventory_db, &[]).await;
        shop.product("FOX-1", 1200, "EUR", 5).await;
        let (token, who) = shop.customer_identity("ida@example.com").await;
        let state = order_service::AppState::connect(&shop.order_settings).await.unwrap();

        // The holder confirmed the order, then died before storing its answer.
        let key = KeyRef { user: who.user_id, key: "crash-2".into(), owner: Uuid::new_v4() };
        claimed_by_a_dead_request(&state, &key, &body("FOX-1", 1)).await;
        let wanted = vec![Wanted { sku: Sku::parse("FOX-1").unwrap(), quantity: 1 }];
        let confirmed = saga::place(&state, &who, wanted, Some(&key)).await.unwrap();

        let (status, answer) = shop.place(&token, json!([{"sku": "FOX-1", "quantity": 1}]), Some("crash-2")).await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["id"], json!(confirmed.id.to_string()), "the confirmed order is the answer");
        assert_eq!(shop.orders_in("CONFIRMED").await, 1, "no second order");
        assert_eq!(shop.stock("FOX-1").await, (4, 1));
        state.store.pool().close().await;
    }
}

#[tokio::test]
async fn a_request_whose_key_is_held_is_answered_409_at_once_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    for (orders_db, inventory_db) in sql_backends(dir.path()).await {
        let shop = Shop::start(orders_db, inventory_db, &[]).await;
        shop.product("ELK-1", 300, "EUR", 5).await;
        let (token, who) = shop.customer_identity("jo@example.com").await;
        let state = order_service::AppState::connect(&shop.order_settings).await.unwrap();
        let key = KeyRef { user: who.user_id, key: "busy-1".into(), owner: Uuid::new_v4() };
        let lease = chrono::Utc::now() + chrono::Duration::seconds(5);
        let claimed = state.store.claim_key(&key, &request_hash(&body("ELK-1", 1)), lease).await.unwrap();
        assert_eq!(claimed, KeyState::Claimed);

        let started = Instant::now();
        let response = shop
            .http
            .post(shop.orders.url("/api/orders"))
            .bearer_auth(&token)
            .header("idempotency-key", "busy-1")
            .json(&json!({"lines": [{"sku": "ELK-1", "quantity": 1}]}))
            .send()
            .await
            .unwrap();
        assert!(started.elapsed() < Duration::from_secs(2), "it waited on the holder");
        assert_eq!(response.status(), 409);
        let retry_after: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=5).contains(&retry_after), "Retry-After {retry_after}");
        let problem: serde_json::Value = response.json().await.unwrap();
        assert_eq!(problem["type"], "/problems/idempotency-key-in-use");
        assert_eq!(shop.stock("ELK-1").await, (5, 0), "nothing was placed");
        state.store.pool().close().await;
    }
}

#[tokio::test]
async fn the_sweeper_purges_keys_past_their_retention() {
    let dir = tempfile::tempdir().unwrap();
    for (orders_db, inventory_db) in sql_backends(dir.path()).await {
        let shop = Shop::start(orders_db, inventory_db, &[]).await;
        shop.product("YAK-1", 300, "EUR", 5).await;
        let token = shop.customer("kim@example.com").await;
        for key in ["old-1", "new-1"] {
            let (status, _) = shop.place(&token, json!([{"sku": "YAK-1", "quantity": 1}]), Some(key)).await;
            assert_eq!(status, 201);
        }
        let state = order_service::AppState::connect(&shop.order_settings).await.unwrap();
        let long_ago = chrono::Utc::now() - chrono::Duration::days(2);
        common::on_pool!(state.store.pool(), pool => {
            sqlx::query("UPDATE idempotency_keys SET created_at = ? WHERE idem_key = 'old-1'")
                .bind(long_ago)
                .execute(pool)
                .await
                .unwrap();
        });
        saga::sweep_once(&state).await.unwrap();
        let keys: Vec<(String,)> = common::on_pool!(state.store.pool(), pool => {
            sqlx::query_as("SELECT idem_key FROM idempotency_keys").fetch_all(pool).await.unwrap()
        });
        assert_eq!(keys, vec![("new-1".to_owned(),)]);
        // A purged key may be used afresh.
        let placed = eventually(Duration::from_secs(5), || async {
            let (status, _) = shop.place(&token, json!([{"sku": "YAK-1", "quantity": 1}]), Some("old-1")).await;
            (status == 201).then_some(())
        })
        .await;
        assert!(placed.is_some());
        assert_eq!(shop.orders_in("CONFIRMED").await, 3);
        state.store.pool().close().await;
    }
}

fn pending_order(id: OrderId, user_id: order_service::domain::UserId) -> order_service::domain::Order {
    let now = chrono::Utc::now();
    order_service::domain::Order {
        id,
        user_id,
        status: order_service::domain::Status::Pending,
        lines: vec![order_service::domain::OrderLine {
            sku: "SKU".parse().unwrap(),
            name: "Thing".into(),
            quantity: 2,
            unit_price: order_service::domain::Money::new(900, order_service::domain::Currency::parse("EUR").unwrap()),
        }],
        total: order_service::domain::Money::new(1800, order_service::domain::Currency::parse("EUR").unwrap()),
        created_at: now,
        updated_at: now,
        customer_email: "x@example.com".parse().unwrap(),
        customer_name: "X".into(),
        version: 1,
    }
}
