//! The admin account from configuration, created or brought up to date at start.

use anyhow::Context as _;
use uuid::Uuid;

use crate::password;
use crate::settings::AdminSettings;
use crate::store::{NewUser, Store, StoreError};

pub const ADMIN_ROLES: &[&str] = &["customer", "admin"];

/// Creates the admin, or updates its password and roles if they differ.
pub async fn ensure_admin(store: &Store, admin: &AdminSettings) -> anyhow::Result<()> {
    if let Some(existing) = store.fetch_user_by_email(&admin.email).await.context("ECOM_ADMIN_EMAIL: lookup")? {
        let same_password = password::verify(admin.password.clone(), existing.password_hash.clone()).await?;
        let roles = existing.roles();
        let has_roles = ADMIN_ROLES.iter().all(|r| roles.iter().any(|have| have == r));
        if !same_password || !has_roles {
            let hash = password::hash(admin.password.clone()).await?;
            let mut roles = roles;
            for role in ADMIN_ROLES {
                if !roles.iter().any(|have| have == role) {
                    roles.push((*role).to_owned());
                }
            }
            store.update_credentials(&existing.id, &hash, &roles).await?;
            tracing::info!(email = %existing.email, "admin account updated");
        }
        return Ok(());
    }
    let hash = password::hash(admin.password.clone()).await?;
    let user = NewUser {
        id: Uuid::now_v7(),
        email: &admin.email,
        name: "Administrator",
        password_hash: &hash,
        roles: ADMIN_ROLES,
    };
    match store.insert_user(&user).await {
        // Another replica created it at the same moment.
        Ok(()) | Err(StoreError::EmailTaken) => {}
        Err(err) => return Err(err).context("ECOM_ADMIN_EMAIL: cannot create the admin"),
    }
    tracing::info!(email = %admin.email, "admin account created");
    Ok(())
}
