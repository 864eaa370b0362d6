use serde_json::json;

use crate::support::Inventory;

#[tokio::test]
async fn an_admin_sets_stock_and_anyone_reads_it_while_customers_and_strangers_cannot_set_it() {
    for inventory in Inventory::on_each_backend(&[]).await {
        let missing = inventory.http.get(inventory.service.url("/api/inventory/NOPE-1")).send().await.unwrap();
        assert_eq!(missing.status(), 404);
        assert_eq!(missing.headers()["content-type"], "application/problem+json");

        assert_eq!(inventory.set_stock("MUG-1", 25).await.status(), 200);
        assert_eq!(inventory.stock("MUG-1").await, (25, 0));
        assert_eq!(inventory.set_stock("MUG-1", 7).await.status(), 200);
        assert_eq!(inventory.stock("MUG-1").await, (7, 0));

        let negative = inventory.set_stock("MUG-1", -1).await;
        assert_eq!(negative.status(), 422);
        let url = inventory.service.url("/api/inventory/MUG-1");
        let customer = inventory
            .http
            .put(&url)
            .bearer_auth(&inventory.customer_token)
            .json(&json!({"available": 1}))
            .send()
            .await
            .unwrap();
        assert_eq!(customer.status(), 403);
        let stranger = inventory.http.put(&url).json(&json!({"available": 1})).send().await.unwrap();
        assert_eq!(stranger.status(), 401);
        assert_eq!(stranger.headers()["www-authenticate"], "Bearer");
        assert_eq!(inventory.stock("MUG-1").await, (7, 0));
        inventory.stop().await;
    }
}
