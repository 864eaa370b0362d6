//! One contract for every catalog backend.

use product_service::domain::{Currency, Money, Product, Query, Sku, Sort};
use product_service::store::{Store, StoreError, now};
use uuid::Uuid;

use crate::support;

fn product(sku: &str, name: &str, category: &str, amount: i64) -> Product {
    let at = now();
    Product {
        id: Uuid::now_v7(),
        sku: Sku::parse(sku).unwrap(),
        name: name.into(),
        description: format!("All about {name}"),
        category: category.into(),
        price: Money::new(amount, Currency::parse("EUR").unwrap()),
        created_at: at,
        updated_at: at,
    }
}

async fn contract(store: &Store) {
    let mug = product("MUG-1", "Blue Mug", "kitchen", 1200);
    let tee = product("TEE-1", "t-shirt", "clothing", 2500);
    let pan = product("PAN-1", "Pan (50% off)", "kitchen", 3000);
    for p in [&mug, &tee, &pan] {
        store.insert(p).await.unwrap();
    }

    assert_eq!(store.fetch(mug.id).await.unwrap(), Some(mug.clone()));
    assert_eq!(store.fetch(Uuid::now_v7()).await.unwrap(), None);

    let duplicate = product("MUG-1", "Another", "kitchen", 1);
    assert!(matches!(store.insert(&duplicate).await, Err(StoreError::DuplicateSku)));

    let page = |query: Query| async move { store.list(&query).await.unwrap() };
    let all = Query { per_page: 10, page: 1, ..Query::default() };
    let (items, total) = page(all.clone()).await;
    assert_eq!(total, 3);
    assert_eq!(items[0].sku, "PAN-1", "newest first by default");

    let (items, total) = page(Query { category: Some("kitchen".into()), sort: Sort::Price, ..all.clone() }).await;
    assert_eq!((total, items.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>()), (2, vec!["MUG-1", "PAN-1"]));

    let (items, _) = page(Query { min_price: Some(1500), max_price: Some(2600), ..all.clone() }).await;
    assert_eq!(items.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["TEE-1"]);

    let (items, _) = page(Query { q: Some("MUG".into()), ..all.clone() }).await;
    assert_eq!(items.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["MUG-1"], "case-insensitive text");
    let (items, _) = page(Query { q: Some("about t-sh".into()), ..all.clone() }).await;
    assert_eq!(items.len(), 1, "matches the description");
    let (items, _) = page(Query { q: Some("50%".into()), ..all.clone() }).await;
    assert_eq!(items.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["PAN-1"], "wildcards are literal");
    let (items, _) = page(Query { q: Some(".*".into()), ..all.clone() }).await;
    assert!(items.is_empty(), "regex characters are literal");

    let (items, _) = page(Query { sort: Sort::Name, ..all.clone() }).await;
    assert_eq!(items.iter().map(|p| p.sku.as_str()).collect::<Vec<_>>(), ["MUG-1", "PAN-1", "TEE-1"]);
    let (items, _) = page(Query { sort: Sort::PriceDesc, ..all.clone() }).await;
    assert_eq!(items[0].sku, "PAN-1");
    let (items, total) = page(Query { sort: Sort::Price, page: 2, per_page: 2, ..all.clone() }).await;
    assert_eq!((total, items.len(), items[0].sku.as_str()), (3, 1, "PAN-1"));

    let mut renamed = tee.clone();
    renamed.name = "T-Shirt".into();
    renamed.updated_at = now();
    assert!(store.replace(&renamed).await.unwrap());
    assert_eq!(store.fetch(tee.id).await.unwrap().unwrap().name, "T-Shirt");
    let mut clash = renamed.clone();
    clash.sku = Sku::parse("MUG-1").unwrap();
    let result = store.replace(&clash).await;
    assert!(matches!(result, Err(StoreError::DuplicateSku)), "{result:?}");
    assert!(!store.replace(&product("NEW-1", "x", "", 1)).await.unwrap());

    let found = store.fetch_by_skus(&["MUG-1".into(), "TEE-1".into(), "NONE".into()]).await.unwrap();
    let mut skus: Vec<_> = found.iter().map(|p| p.sku.as_str()).collect();
    skus.sort();
    assert_eq!(skus, ["MUG-1", "TEE-1"]);

    assert!(store.delete(mug.id).await.unwrap());
    assert!(!store.delete(mug.id).await.unwrap());
    assert_eq!(store.fetch(mug.id).await.unwrap(), None);
}

#[tokio::test]
async fn every_catalog_backend_keeps_the_same_contract() {
    for backend in support::backends() {
        let store = Store::connect(&support::offline_settings(backend.url.clone())).await.unwrap();
        contract(&store).await;
        store.close().await;
    }
}
