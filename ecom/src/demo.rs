//! The demo catalog (`ecom/demo-catalog.json`): products and their stock, loaded
//! through the gateway's admin API exactly as `scripts/load-demo-catalog.sh` does.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Context as _, bail};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// The catalog, built into the binary so `ecom dev` needs no checkout.
pub const CATALOG_JSON: &str = include_str!("../demo-catalog.json");

/// One product of the catalog: the body of `POST /api/products`, and its stock.
#[derive(Debug, Clone)]
pub struct DemoProduct {
    pub sku: String,
    pub body: Value,
    pub stock: u64,
}

/// The products of the catalog, in its order.
pub fn products() -> anyhow::Result<Vec<DemoProduct>> {
    let catalog: Value = serde_json::from_str(CATALOG_JSON).context("demo-catalog.json")?;
    let products = catalog["products"].as_array().context("demo-catalog.json: no products")?;
    products
        .iter()
        .map(|product| {
            let mut body = product.clone();
            let fields = body.as_object_mut().context("demo-catalog.json: a product is not an object")?;
            let stock = fields.remove("stock").and_then(|s| s.as_u64()).context("demo-catalog.json: stock")?;
            let sku = fields.get("sku").and_then(Value::as_str).context("demo-catalog.json: sku")?.to_owned();
            Ok(DemoProduct { sku, body, stock })
        })
        .collect()
}

/// What loading did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loaded {
    /// Products created, each with its stock set.
    pub created: usize,
    /// Products whose sku existed already: left as they were, and their stock too
    /// unless they had none.
    pub existing: usize,
}

/// Logs in as the admin at `gateway` and creates every product of the catalog that
/// does not exist yet, with its stock; an existing one without stock gets its stock.
/// Running it again changes nothing.
pub async fn load(gateway: SocketAddr, admin_email: &str, admin_password: &str) -> anyhow::Result<Loaded> {
    let catalog = products()?;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let url = |path: &str| format!("http://{gateway}{path}");

    let login = http
        .post(url("/api/auth/login"))
        .json(&json!({"email": admin_email, "password": admin_password}))
        .send()
        .await
        .context("demo catalog: admin login")?;
    if login.status() != StatusCode::OK {
        bail!("demo catalog: admin login answered {}", login.status());
    }
    let token: Value = login.json().await.context("demo catalog: admin login")?;
    let token = token["access_token"].as_str().context("demo catalog: no access_token in the login answer")?;

    let mut loaded = Loaded { created: 0, existing: 0 };
    for product in catalog {
        let created = http.post(url("/api/products")).bearer_auth(token).json(&product.body).send().await?;
        match created.status() {
            StatusCode::CREATED => {}
            StatusCode::CONFLICT => {
                loaded.existing += 1;
                // Stock a product without any (a load cut short between the two
                // requests); one that has stock is left as its users left it.
                let level = http.get(url(&format!("/api/inventory/{}", product.sku))).send().await?;
                if level.status() != StatusCode::NOT_FOUND {
                    continue;
                }
            }
            status => bail!("demo catalog: creating {} answered {status}: {}", product.sku, created.text().await?),
        }
        let stock = http
            .put(url(&format!("/api/inventory/{}", product.sku)))
            .bearer_auth(token)
            .json(&json!({"available": product.stock}))
            .send()
            .await?;
        if !stock.status().is_success() {
            bail!("demo catalog: stock of {} answered {}: {}", product.sku, stock.status(), stock.text().await?);
        }
        if created.status() == StatusCode::CREATED {
            loaded.created += 1;
        }
    }
    Ok(loaded)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_catalog_has_two_currencies_and_every_product_is_complete() {
        let products = products().unwrap();
        assert!(products.len() >= 10);
        let mut currencies: Vec<&str> = products.iter().filter_map(|p| p.body["price"]["currency"].as_str()).collect();
        currencies.sort_unstable();
        currencies.dedup();
        assert_eq!(currencies, ["EUR", "USD"]);
        for p in &products {
            for field in ["name", "description", "category"] {
                assert!(p.body[field].as_str().is_some_and(|v| !v.is_empty()), "{} has no {field}", p.sku);
            }
            assert!(p.body["price"]["amount"].as_i64().is_some_and(|a| a > 0), "{}", p.sku);
            assert!(p.stock > 0, "{}", p.sku);
        }
    }
}
