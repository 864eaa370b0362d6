use std::time::{Duration, Instant};

use common::breaker::State;
use common::test_util::{Running, eventually};
use serde_json::json;

use crate::support::{Shop, sql_backends};

#[tokio::test]
async fn with_inventory_stopped_placements_fail_fast_with_503_and_recover_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let (orders_db, inventory_db) = sql_backends(dir.path()).await.remove(0);
    let breaker = [
        ("ECOM_BREAKER_MIN_CALLS", "3"),
        ("ECOM_BREAKER_WINDOW", "5"),
        ("ECOM_BREAKER_OPEN_MS", "300"),
        ("ECOM_BREAKER_HALF_OPEN_CALLS", "1"),
    ];
    let mut shop = Shop::start(orders_db, inventory_db, &breaker).await;
    shop.product("CUP-1", 500, "USD", 10).await;
    let hal = shop.customer("hal@example.com").await;
    let inventory_addr = shop.inventory.addr;
    let stopped = std::mem::replace(&mut shop.inventory, Running::spawn(|_, _| async { Ok(()) }).await);
    stopped.stop().await.unwrap();

    let mut last = (0, serde_json::Value::Null);
    for _ in 0..5 {
        let started = Instant::now();
        last = shop.place(&hal, json!([{"sku": "CUP-1", "quantity": 1}]), None).await;
        assert_eq!(last.0, 503, "{}", last.1);
        assert!(started.elapsed() < Duration::from_secs(10));
    }
    // By now the breaker is open: the answer comes without waiting on inventory.
    let started = Instant::now();
    let (status, _) = shop.place(&hal, json!([{"sku": "CUP-1", "quantity": 1}]), None).await;
    assert_eq!(status, 503);
    assert!(started.elapsed() < Duration::from_millis(900), "an open circuit fails fast ({:?})", started.elapsed());
    assert!(last.1["detail"].as_str().unwrap().contains("inventory-service"));

    // Inventory returns on the same address.
    let settings = shop.inventory_settings.clone();
    let listener = tokio::net::TcpListener::bind(inventory_addr).await.unwrap();
    let shutdown = tokio_util::sync::CancellationToken::new();
    shop.inventory = Running {
        addr: inventory_addr,
        shutdown: shutdown.clone(),
        handle: tokio::spawn(inventory_service::run(settings, listener, shutdown.clone())),
    };
    let recovered = eventually(Duration::from_secs(10), || async {
        let (status, _) = shop.place(&hal, json!([{"sku": "CUP-1", "quantity": 1}]), None).await;
        (status == 201).then_some(())
    })
    .await;
    assert!(recovered.is_some(), "placements did not recover");

    // Every failed placement is FAILED with nothing reserved; the sweeper leaves nothing PENDING.
    let state = order_service::AppState::connect(&shop.order_settings).await.unwrap();
    order_service::saga::sweep_once(&state).await.unwrap();
    assert_eq!(state.inventory.client.breaker().state(), State::Closed);
    assert_eq!(shop.orders_in("PENDING").await, 0);
    let confirmed = shop.orders_in("CONFIRMED").await;
    let (available, reserved) = shop.stock("CUP-1").await;
    assert_eq!((available, reserved), (10 - confirmed, confirmed), "a failed placement left stock reserved");
}

#[tokio::test]
async fn the_sweeper_rolls_back_an_order_a_crash_left_pending_and_releases_its_stock() {
    let dir = tempfile::tempdir().unwrap();
    let (orders_db, inventory_db) = sql_backends(dir.path()).await.remove(0);
    let shop = Shop::start(orders_db, inventory_db, &[]).await;
    shop.product("BAG-1", 700, "USD", 4).await;
    let state = order_service::AppState::connect(&shop.order_settings).await.unwrap();

    // What a crash between "reserved" and "confirmed" leaves behind: a PENDING row
    // and a reservation at inventory.
    let id = order_service::domain::OrderId::from(uuid::Uuid::now_v7());
    let now = chrono::Utc::now();
    let order = order_service::domain::Order {
        id,
        user_id: uuid::Uuid::now_v7().into(),
        status: order_service::domain::Status::Pending,
        lines: vec![order_service::domain::OrderLine {
            sku: "BAG-1".parse().unwrap(),
            name: "Bag".into(),
            quantity: 2,
            unit_price: order_service::domain::Money::new(700, order_service::domain::Currency::parse("USD").unwrap()),
        }],
        total: order_service::domain::Money::new(1400, order_service::domain::Currency::parse("USD").unwrap()),
        created_at: now,
        updated_at: now,
        customer_email: "x@example.com".parse().unwrap(),
        customer_name: "X".into(),
        version: 1,
    };
    state.store.insert_pending(&order).await.unwrap();
    state.inventory.reserve(id, &[("BAG-1".parse().unwrap(), 2)]).await.unwrap();
    assert_eq!(shop.stock("BAG-1").await, (2, 2));

    assert_eq!(order_service::saga::sweep_once(&state).await.unwrap(), 1);
    assert_eq!(shop.stock("BAG-1").await, (4, 0));
    assert_eq!(shop.orders_in("PENDING").await, 0);
    assert_eq!(shop.orders_in("FAILED").await, 1);
    assert_eq!(order_service::saga::sweep_once(&state).await.unwrap(), 0, "nothing left to settle");
}
