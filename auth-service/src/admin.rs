//! The admin account from configuration, created or brought up to date at start.

use anyhow::{Context as _, bail};
use secrecy::ExposeSecret as _;
use uuid::Uuid;

use crate::domain::Name;
use crate::password;
use crate::settings::AdminSettings;
use crate::store::{NewUser, Store, StoreError, UserRow};

pub const ADMIN_ROLES: &[&str] = &[contracts::Role::Customer.as_str(), contracts::Role::Admin.as_str()];

/// Creates the admin, or updates its password and roles if they differ.
///
/// An existing account that is not an admin is never promoted: whoever registered
/// the address first would otherwise own an admin account. The start fails instead.
pub async fn ensure_admin(store: &Store, admin: &AdminSettings) -> anyhow::Result<()> {
    let (email, password) = admin.parse()?;
    if let Some(existing) = store.fetch_user_by_email(email.as_str()).await.context("ECOM_ADMIN_EMAIL: lookup")? {
        return update_admin(store, existing, admin).await;
    }
    let hash = match &admin.password_hash {
        Some(known) => known.expose_secret().to_owned(),
        None => password::hash(password.into_secret()).await?,
    };
    let name = Name::parse("Administrator").map_err(|e| anyhow::anyhow!(e.message))?;
    let user =
        NewUser { id: Uuid::now_v7().into(), email: &email, name: &name, password_hash: &hash, roles: ADMIN_ROLES };
    match store.insert_user(&user).await {
        Ok(()) => {
            tracing::info!(email = %email.as_str(), "admin account created");
            Ok(())
        }
        // Someone else created the account in the meantime: another replica (an
        // admin, fine) or a registration (not an admin: refused as above).
        Err(StoreError::EmailTaken) => {
            let existing = store
                .fetch_user_by_email(email.as_str())
                .await
                .context("ECOM_ADMIN_EMAIL: lookup")?
                .context("ECOM_ADMIN_EMAIL: the account was taken and is gone again")?;
            update_admin(store, existing, admin).await
        }
        Err(err) => Err(err).context("ECOM_ADMIN_EMAIL: cannot create the admin"),
    }
}

/// Brings an existing admin's password and roles to what configuration says; a
/// change revokes its sessions.
async fn update_admin(store: &Store, existing: UserRow, admin: &AdminSettings) -> anyhow::Result<()> {
    let roles = existing.roles();
    if !contracts::Role::Admin.is_in(&roles) {
        bail!(
            "ECOM_ADMIN_EMAIL: {} belongs to an existing account that is not an admin; it is not promoted. \
             Choose another address for the admin, or remove that account first",
            existing.email
        );
    }
    let (_, password) = admin.parse()?;
    let secret = password.into_secret();
    let known = admin.password_hash.as_ref().map(|known| known.expose_secret().to_owned());
    // The stored hash is the known one: the password matches without computing a hash.
    let same_password = known.as_deref() == Some(existing.password_hash.as_str())
        || password::verify(secret.clone(), existing.password_hash.clone()).await?;
    let has_roles = ADMIN_ROLES.iter().all(|r| roles.iter().any(|have| have == r));
    if same_password && has_roles {
        return Ok(());
    }
    let hash = match known {
        _ if same_password => existing.password_hash.clone(),
        Some(known) => known,
        None => password::hash(secret).await?,
    };
    let mut roles = roles;
    for role in ADMIN_ROLES {
        if !roles.iter().any(|have| have == role) {
            roles.push((*role).to_owned());
        }
    }
    store.update_credentials(existing.id, &hash, &roles).await?;
    tracing::info!(email = %existing.email, "admin account updated; its sessions were revoked");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_settings_follow_the_account_rules() {
        let admin = |email: &str, password: &str| AdminSettings {
            email: email.to_owned(),
            password: password.to_owned().into(),
            password_hash: None,
        };
        assert!(admin("admin@ecom.local", "dev-only-admin-password").parse().is_ok());
        let err = admin("not an email", "dev-only-admin-password").parse().unwrap_err();
        assert_eq!(err.var, "ECOM_ADMIN_EMAIL");
        let err = admin("admin@ecom.local", "short").parse().unwrap_err();
        assert_eq!(err.var, "ECOM_ADMIN_PASSWORD");
        let _: crate::domain::Email = admin("Admin@Example.com", "admin-password-1").parse().unwrap().0;
    }
}
