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

use crate::support::{Databases, Shop, pending_order, sql_backends};

/// A shop selling 5 units of `sku`, a customer, and the customer's idempotency key
/// claimed by another request for one line of `quantity` units, its lease ending at
/// `lease_ends` (in the past: the holder died).
struct ClaimedKey {
    shop: Shop,
    token: String,
    who: common::auth::Identity,
    state: order_service::AppState,
    key: KeyRef,
    line: (&'static str, i64),
}

impl ClaimedKey {
    async fn start(databases: Databases, line: (&'static str, i64), key: &str, lease_ends: chrono::TimeDelta) -> Self {
        let shop = Shop::with_products(databases, &[(line.0, 900, "EUR", 5)]).await;
        let (token, who) = shop.customer_identity(&format!("{key}@example.com")).await;
        let state = shop.state().await;
        let key = KeyRef { user: who.user_id, key: key.into(), owner: Uuid::new_v4() };
        let request =
            PlaceOrderRequest { lines: vec![RequestedLine { sku: Sku::parse(line.0).unwrap(), quantity: line.1 }] };
        let lease = chrono::Utc::now() + lease_ends;
        assert_eq!(state.store.claim_key(&key, &request_hash(&request), lease).await.unwrap(), KeyState::Claimed);
        Self { shop, token, who, state, key, line }
    }

    /// The customer sends the same request with the same key again.
    async fn retry(&self) -> (u16, serde_json::Value) {
        let (sku, quantity) = self.line;
        self.shop.place(&self.token, json!([{"sku": sku, "quantity": quantity}]), Some(&self.key.key)).await
    }

    async fn stop(self) {
        self.state.store.pool.close().await;
    }
}

/// A lease that ran out a second ago: its holder died.
fn expired() -> chrono::TimeDelta {
    chrono::TimeDelta::seconds(-1)
}

#[tokio::test]
async fn a_retry_after_the_key_holder_died_mid_placement_rolls_its_order_back_and_places_one() {
    for databases in sql_backends().await {
        let claimed = ClaimedKey::start(databases, ("OWL-1", 2), "crash-1", expired()).await;
        let (shop, state) = (&claimed.shop, &claimed.state);

        // The holder recorded its order, wrote it PENDING and reserved, then died.
        let abandoned = OrderId::from(Uuid::now_v7());
        assert!(state.store.attach_order(&claimed.key, abandoned).await.unwrap());
        let order = pending_order(abandoned, claimed.who.user_id, ("OWL-1", 2), (900, "EUR"));
        state.store.insert_pending(&order).await.unwrap();
        state.inventory.reserve(abandoned, &[("OWL-1".parse().unwrap(), 2)]).await.unwrap();
        assert_eq!(shop.stock("OWL-1").await, (3, 2));

        let started = Instant::now();
        let (status, placed) = claimed.retry().await;
        assert_eq!(status, 201, "{placed}");
        assert!(started.elapsed() < Duration::from_secs(3), "the retry waited on the dead holder");
        assert_ne!(placed["id"], json!(abandoned.to_string()));
        assert_eq!(shop.stock("OWL-1").await, (3, 2), "the abandoned reservation went back");
        assert_eq!((shop.orders_in("CONFIRMED").await, shop.orders_in("FAILED").await), (1, 1));

        let (status, replayed) = claimed.retry().await;
        assert_eq!((status, &replayed["id"]), (201, &placed["id"]), "the key now replays its answer");
        claimed.stop().await;
    }
}

#[tokio::test]
async fn a_retry_after_the_key_holder_died_having_confirmed_answers_with_that_order() {
    for databases in sql_backends().await {
        let claimed = ClaimedKey::start(databases, ("FOX-1", 1), "crash-2", expired()).await;

        // The holder confirmed the order, then died before storing its answer.
        let wanted = vec![Wanted { sku: Sku::parse("FOX-1").unwrap(), quantity: 1 }];
        let confirmed = saga::place(&claimed.state, &claimed.who, wanted, Some(&claimed.key)).await.unwrap();

        let (status, answer) = claimed.retry().await;
        assert_eq!(status, 201, "{answer}");
        assert_eq!(answer["id"], json!(confirmed.id.to_string()), "the confirmed order is the answer");
        assert_eq!(claimed.shop.orders_in("CONFIRMED").await, 1, "no second order");
        assert_eq!(claimed.shop.stock("FOX-1").await, (4, 1));
        claimed.stop().await;
    }
}

#[tokio::test]
async fn a_request_whose_key_is_held_is_answered_409_at_once_with_retry_after() {
    for databases in sql_backends().await {
        let claimed = ClaimedKey::start(databases, ("ELK-1", 1), "busy-1", chrono::TimeDelta::seconds(5)).await;
        let shop = &claimed.shop;

        let started = Instant::now();
        let response = shop
            .http
            .post(shop.orders.url("/api/orders"))
            .bearer_auth(&claimed.token)
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
        claimed.stop().await;
    }
}

#[tokio::test]
async fn the_sweeper_purges_keys_past_their_retention() {
    for databases in sql_backends().await {
        let shop = Shop::with_products(databases, &[("YAK-1", 300, "EUR", 5)]).await;
        let token = shop.customer("kim@example.com").await;
        for key in ["old-1", "new-1"] {
            let (status, _) = shop.place(&token, json!([{"sku": "YAK-1", "quantity": 1}]), Some(key)).await;
            assert_eq!(status, 201);
        }
        let state = shop.state().await;
        let long_ago = chrono::Utc::now() - chrono::Duration::days(2);
        common::on_pool!(&state.store.pool, pool => {
            sqlx::query("UPDATE idempotency_keys SET created_at = ? WHERE idem_key = 'old-1'")
                .bind(long_ago)
                .execute(pool)
                .await
                .unwrap();
        });
        saga::sweep_once(&state).await.unwrap();
        let keys: Vec<(String,)> = common::on_pool!(&state.store.pool, pool => {
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
        state.store.pool.close().await;
    }
}
