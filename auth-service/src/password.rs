//! argon2id hashing off the async runtime, with a bound on concurrent hashes so a
//! burst of logins cannot exhaust memory (each hash holds 19 MiB).

use std::sync::{Arc, LazyLock};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Semaphore;

/// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
fn hasher() -> Argon2<'static> {
    let params = Params::new(19 * 1024, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// At most this many hashes run at once; the rest wait their turn.
static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
    Arc::new(Semaphore::new(cores * 2))
});

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// Hashes `password` into a PHC string.
pub async fn hash(password: SecretString) -> Result<String, PasswordError> {
    run_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        hasher()
            .hash_password(password.expose_secret().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| PasswordError::Hash(e.to_string()))
    })
    .await
}

/// Whether `password` matches the PHC string `stored`.
pub async fn verify(password: SecretString, stored: String) -> Result<bool, PasswordError> {
    run_blocking(move || {
        let parsed = PasswordHash::new(&stored).map_err(|e| PasswordError::Hash(e.to_string()))?;
        Ok(hasher().verify_password(password.expose_secret().as_bytes(), &parsed).is_ok())
    })
    .await
}

async fn run_blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    run_blocking_within(&PERMITS, work).await
}

/// Runs `work` on the blocking pool once `permits` has a permit for it. The permit
/// moves into the blocking task: a request cancelled while its hash runs does not
/// hand the permit (and its 19 MiB) to the next one before the hash is done.
async fn run_blocking_within<T: Send + 'static>(
    permits: &Arc<Semaphore>,
    work: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
) -> Result<T, PasswordError> {
    let permit = permits.clone().acquire_owned().await.map_err(|e| PasswordError::Hash(e.to_string()))?;
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        work()
    })
    .await
    .map_err(|e| PasswordError::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_another_does_not() {
        let stored = hash(SecretString::from("correct horse battery")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(SecretString::from("correct horse battery"), stored.clone()).await.unwrap());
        assert!(!verify(SecretString::from("wrong horse battery"), stored).await.unwrap());
    }

    #[tokio::test]
    async fn a_cancelled_request_keeps_its_permit_until_its_hash_is_done() {
        let permits = Arc::new(Semaphore::new(1));
        let (started_tx, started_rx) = tokio::sync::oneshot::channel();
        let (finish_tx, finish_rx) = std::sync::mpsc::channel::<()>();
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let request = tokio::spawn({
            let permits = permits.clone();
            async move {
                run_blocking_within(&permits, move || {
                    let _ = started_tx.send(());
                    let _ = finish_rx.recv();
                    let _ = done_tx.send(());
                    Ok(())
                })
                .await
            }
        });
        started_rx.await.unwrap();
        request.abort();
        assert!(request.await.unwrap_err().is_cancelled());
        assert_eq!(permits.available_permits(), 0, "the hash still runs, so its permit is still taken");

        finish_tx.send(()).unwrap();
        done_rx.await.unwrap();
        let permit = tokio::time::timeout(std::time::Duration::from_secs(10), permits.acquire()).await;
        assert!(permit.is_ok(), "the permit came back once the hash was done");
    }
}
