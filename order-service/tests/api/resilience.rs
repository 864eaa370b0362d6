use std::time::{Duration, Instant};

use common::breaker::State;
use common::test_util::{Running, eventually};
use serde_json::json;

use crate::support::{Databases, Shop, pending_order};

#[tokio::test]
async fn with_inventory_stopped_placements_fail_fast_with_503_and_recover_when_it_returns() {
    let breaker = [
        ("ECOM_BREAKER_MIN_CALLS", "3"),
        ("ECOM_BREAKER_WINDOW", "5"),
        ("ECOM_BREAKER_OPEN_MS", "300"),
        ("ECOM_BREAKER_HALF_OPEN_CALLS", "1"),
    ];
    let mut shop = Shop::start(Databases::sqlite(), &breaker).await.selling(&[("CUP-1", 500, "USD", 10)]).await;
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
    let state = shop.state().await;
    order_service::saga::sweep_once(&state).await.unwrap();
    assert_eq!(state.inventory.client.breaker().state(), State::Closed);
    assert_eq!(shop.orders_in("PENDING").await, 0);
    let confirmed = shop.orders_in("CONFIRMED").await;
    let (available, reserved) = shop.stock("CUP-1").await;
    assert_eq!((available, reserved), (10 - confirmed, confirmed), "a failed placement left stock reserved");
}

#[tokio::test]
async fn the_sweeper_rolls_back_an_order_a_crash_left_pending_and_releases_its_stock() {
    let shop = Shop::on_sqlite().await.selling(&[("BAG-1", 700, "USD", 4)]).await;
    let state = shop.state().await;

    // What a crash between "reserved" and "confirmed" leaves behind: a PENDING row
    // and a reservation at inventory.
    let id = order_service::domain::OrderId::from(uuid::Uuid::now_v7());
    let order = pending_order(id, uuid::Uuid::now_v7(), ("BAG-1", 2), (700, "USD"));
    state.store.insert_pending(&order).await.unwrap();
    state.inventory.reserve(id, &[("BAG-1".parse().unwrap(), 2)]).await.unwrap();
    assert_eq!(shop.stock("BAG-1").await, (2, 2));

    assert_eq!(order_service::saga::sweep_once(&state).await.unwrap(), 1);
    assert_eq!(shop.stock("BAG-1").await, (4, 0));
    assert_eq!(shop.orders_in("PENDING").await, 0);
    assert_eq!(shop.orders_in("FAILED").await, 1);
    assert_eq!(order_service::saga::sweep_once(&state).await.unwrap(), 0, "nothing left to settle");
}
