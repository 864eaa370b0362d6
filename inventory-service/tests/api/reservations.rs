use std::collections::HashMap;

use futures::future::join_all;

use crate::support::{Inventory, order_id};

#[tokio::test]
async fn a_reservation_takes_every_line_or_none_and_lists_what_is_missing() {
    for inventory in Inventory::on_each_backend(&[("A-1", 5), ("B-1", 1)]).await {
        let (status, body) = inventory.reserve(&order_id(), &[("A-1", 2), ("B-1", 2), ("GHOST", 1)]).await;
        assert_eq!(status, 409, "{body}");
        let insufficient = body["insufficient"].as_array().unwrap();
        assert_eq!(insufficient.len(), 2, "{body}");
        assert!(insufficient.iter().any(|i| i["sku"] == "B-1" && i["requested"] == 2 && i["available"] == 1));
        assert!(insufficient.iter().any(|i| i["sku"] == "GHOST" && i["available"] == 0));
        assert_eq!(inventory.stock("A-1").await, (5, 0), "the satisfiable line was not kept");

        let (status, _) = inventory.reserve(&order_id(), &[("A-1", 2), ("B-1", 1)]).await;
        assert_eq!(status, 201);
        assert_eq!(inventory.stock("A-1").await, (3, 2));
        assert_eq!(inventory.stock("B-1").await, (0, 1));
        inventory.stop().await;
    }
}

#[tokio::test]
async fn repeating_a_reservation_answers_the_same_and_reserves_nothing_more() {
    for inventory in Inventory::on_each_backend(&[("C-1", 10)]).await {
        let order = order_id();
        let first = inventory.reserve(&order, &[("C-1", 3)]).await;
        let second = inventory.reserve(&order, &[("C-1", 3)]).await;
        assert_eq!(first.0, 201);
        assert_eq!(first, second);
        assert_eq!(inventory.stock("C-1").await, (7, 3));

        // A rejected order stays rejected, even once stock arrives.
        let rejected = order_id();
        let (status, mut body) = inventory.reserve(&rejected, &[("C-1", 50)]).await;
        assert_eq!(status, 409);
        inventory.set_stock("C-1", 100).await;
        let (status, mut again) = inventory.reserve(&rejected, &[("C-1", 50)]).await;
        assert_eq!(status, 409);
        // Each answer carries its own request id; the rest is the same.
        body.as_object_mut().unwrap().remove("request_id");
        again.as_object_mut().unwrap().remove("request_id");
        assert_eq!(again, body);
        assert_eq!(inventory.stock("C-1").await, (100, 3));

        // Five concurrent identical requests: one reservation.
        let order = order_id();
        let answers = join_all((0..5).map(|_| inventory.reserve(&order, &[("C-1", 4)]))).await;
        assert!(answers.iter().all(|a| a.0 == 201), "{answers:?}");
        assert_eq!(inventory.stock("C-1").await, (96, 7));
        inventory.stop().await;
    }
}

#[tokio::test]
async fn release_is_idempotent_and_an_early_release_blocks_a_late_reservation() {
    for inventory in Inventory::on_each_backend(&[("D-1", 10)]).await {
        let order = inventory.reserved(&[("D-1", 4)]).await;
        assert_eq!(inventory.release(&order).await, 204);
        assert_eq!(inventory.release(&order).await, 204);
        assert_eq!(inventory.stock("D-1").await, (10, 0));

        let never_reserved = order_id();
        assert_eq!(inventory.release(&never_reserved).await, 204);
        let (status, _) = inventory.reserve(&never_reserved, &[("D-1", 1)]).await;
        assert_eq!(status, 409, "a reservation arriving after its release must not take stock");
        assert_eq!(inventory.stock("D-1").await, (10, 0));
        inventory.stop().await;
    }
}

#[tokio::test]
async fn forty_concurrent_buyers_of_ten_units_get_exactly_ten_reservations() {
    for inventory in Inventory::on_each_backend(&[("HOT-1", 10)]).await {
        let answers =
            join_all((0..40).map(|_| async { inventory.reserve(&order_id(), &[("HOT-1", 1)]).await.0 })).await;
        let mut counts: HashMap<u16, usize> = HashMap::new();
        for status in answers {
            *counts.entry(status).or_default() += 1;
        }
        assert_eq!(counts.get(&201), Some(&10), "{counts:?}");
        assert_eq!(counts.get(&409), Some(&30), "{counts:?}");
        let (available, reserved) = inventory.stock("HOT-1").await;
        assert_eq!((available, reserved), (0, 10));
        inventory.stop().await;
    }
}

#[tokio::test]
async fn overlapping_multi_line_orders_under_concurrency_never_oversell_and_keep_the_invariant() {
    for inventory in Inventory::on_each_backend(&[("X-1", 10), ("Y-1", 10), ("Z-1", 10)]).await {
        let baskets: [&[(&str, i64)]; 4] = [
            &[("X-1", 1), ("Y-1", 1)],
            &[("Y-1", 1), ("Z-1", 2)],
            &[("Z-1", 1), ("X-1", 1)],
            &[("X-1", 1), ("Y-1", 1), ("Z-1", 1)],
        ];
        let inventory_ref = &inventory;
        let answers = join_all((0..40).map(|i| {
            let basket = baskets[i % baskets.len()];
            async move { (basket, inventory_ref.reserve(&order_id(), basket).await.0) }
        }))
        .await;
        let mut taken: HashMap<&str, i64> = HashMap::new();
        for (basket, status) in &answers {
            assert!(*status == 201 || *status == 409, "{status}");
            if *status == 201 {
                for (sku, quantity) in *basket {
                    *taken.entry(sku).or_default() += quantity;
                }
            }
        }
        for sku in ["X-1", "Y-1", "Z-1"] {
            let (available, reserved) = inventory.stock(sku).await;
            assert!(available >= 0);
            assert_eq!(available + reserved, 10, "{sku}: invariant broken");
            assert_eq!(reserved, taken.get(sku).copied().unwrap_or(0), "{sku}: reserved differs from what was granted");
        }
        inventory.stop().await;
    }
}
