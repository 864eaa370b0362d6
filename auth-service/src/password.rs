//! argon2id hashing off the async runtime, on a pool of at most one thread per core.
//!
//! Each hash needs 19 MiB of working memory. A pool thread allocates that once,
//! reuses it for every hash queued while it runs, and exits, returning the memory
//! to the system, as soon as the queue is empty. A burst of logins therefore holds
//! at most one buffer per core while it lasts and nothing once it is over; further
//! logins wait in the queue.

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::sync::{LazyLock, Mutex, PoisonError};

use argon2::password_hash::rand_core::{OsRng, RngCore as _};
use argon2::password_hash::{Output, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::oneshot;

/// OWASP's argon2id parameters: m = 19 MiB, t = 2, p = 1.
const M_COST: u32 = 19 * 1024;
const T_COST: u32 = 2;
const P_COST: u32 = 1;
const OUTPUT_LEN: usize = 32;

/// A stored hash that asks for more memory than this is refused rather than computed.
const MAX_BLOCKS: usize = 256 * 1024;

/// glibc maps a freed block of up to 32 MiB back into its heaps: it raises its mmap
/// threshold to the size of any mapped block that is freed, and later blocks of that
/// size stay resident after `free` (auth-service kept ≈ 240 MiB after a few dozen
/// logins that way). A buffer with more capacity than that is always a mapping of
/// its own, unmapped when dropped. The capacity past what a hash uses is never
/// touched, so it costs address space, not memory.
const ALWAYS_MAPPED_BLOCKS: usize = 33 * 1024;

fn params() -> Params {
    Params::new(M_COST, T_COST, P_COST, Some(OUTPUT_LEN)).unwrap_or_default()
}

static POOL: LazyLock<Pool> =
    LazyLock::new(|| Pool::new(std::thread::available_parallelism().map_or(2, std::num::NonZero::get)));

#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    #[error("password hashing failed: {0}")]
    Hash(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("cannot start a hashing thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl PasswordError {
    fn hash(err: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::Hash(err.into())
    }
}

/// Hashes `password` into a PHC string.
pub async fn hash(password: SecretString) -> Result<String, PasswordError> {
    POOL.run(move |memory| hash_with(&password, memory)).await
}

/// Whether `password` matches the PHC string `stored`.
pub async fn verify(password: SecretString, stored: String) -> Result<bool, PasswordError> {
    POOL.run(move |memory| verify_with(&password, &stored, memory)).await
}

/// A PHC string with the current parameters that no password matches: verifying
/// against it costs what verifying a real hash costs, and computing it costs
/// nothing. Used for logins with an unknown email.
pub fn unmatchable_hash() -> Result<String, PasswordError> {
    let salt = SaltString::generate(&mut OsRng);
    let mut output = [0u8; OUTPUT_LEN];
    OsRng.fill_bytes(&mut output);
    let output = Output::new(&output).map_err(PasswordError::hash)?;
    Ok(format!("$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${output}", salt.as_str()))
}

fn hash_with(password: &SecretString, memory: &mut Vec<Block>) -> Result<String, PasswordError> {
    let params = params();
    let salt = SaltString::generate(&mut OsRng);
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(PasswordError::hash)?;
    let mut output = [0u8; OUTPUT_LEN];
    let blocks = blocks(memory, params.block_count())?;
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into_with_memory(password.expose_secret().as_bytes(), salt_bytes, &mut output, blocks)
        .map_err(PasswordError::hash)?;
    let output = Output::new(&output).map_err(PasswordError::hash)?;
    Ok(format!("$argon2id$v=19$m={M_COST},t={T_COST},p={P_COST}${}${output}", salt.as_str()))
}

/// Recomputes the hash with the parameters, salt and length `stored` names, so
/// hashes made with other parameters keep verifying.
fn verify_with(password: &SecretString, stored: &str, memory: &mut Vec<Block>) -> Result<bool, PasswordError> {
    let parsed = PasswordHash::new(stored).map_err(PasswordError::hash)?;
    let algorithm = Algorithm::try_from(parsed.algorithm).map_err(PasswordError::hash)?;
    let version = parsed.version.map_or(Ok(Version::V0x13), Version::try_from).map_err(PasswordError::hash)?;
    let params = Params::try_from(&parsed).map_err(PasswordError::hash)?;
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return Err(PasswordError::hash("the stored hash has no salt or no output"));
    };
    let mut salt_bytes = [0u8; 64];
    let salt_bytes = salt.decode_b64(&mut salt_bytes).map_err(PasswordError::hash)?;
    let mut output = vec![0u8; expected.len()];
    let blocks = blocks(memory, params.block_count())?;
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.expose_secret().as_bytes(), salt_bytes, &mut output, blocks)
        .map_err(PasswordError::hash)?;
    // `Output` compares in constant time.
    Ok(Output::new(&output).map_err(PasswordError::hash)? == expected)
}

/// The first `count` blocks of `memory`, grown to that size if it is smaller.
fn blocks(memory: &mut Vec<Block>, count: usize) -> Result<&mut [Block], PasswordError> {
    if count > MAX_BLOCKS {
        return Err(PasswordError::hash(format!("the stored hash asks for {count} KiB of memory")));
    }
    if memory.len() < count {
        memory.resize(count, Block::new());
    }
    Ok(&mut memory[..count])
}

type Job = Box<dyn FnOnce(&mut Vec<Block>) + Send>;

/// A queue of hashes served by at most `threads` threads, each with its own memory.
struct Pool {
    threads: usize,
    state: Mutex<PoolState>,
}

#[derive(Default)]
struct PoolState {
    queue: VecDeque<Job>,
    running: usize,
}

impl Pool {
    fn new(threads: usize) -> Self {
        Self { threads: threads.max(1), state: Mutex::default() }
    }

    /// Queues `work` and waits for its result. A caller that stops waiting before
    /// its turn comes costs no hash.
    async fn run<T: Send + 'static>(
        &'static self,
        work: impl FnOnce(&mut Vec<Block>) -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        let (tx, rx) = oneshot::channel();
        self.submit(Box::new(move |memory| {
            if tx.is_closed() {
                return;
            }
            let _ = tx.send(work(memory));
        }))?;
        rx.await.map_err(|_| PasswordError::hash("the hashing thread stopped"))?
    }

    fn submit(&'static self, job: Job) -> Result<(), PasswordError> {
        let mut state = self.lock();
        state.queue.push_back(job);
        if state.running >= self.threads {
            return Ok(());
        }
        state.running += 1;
        drop(state);
        let spawned = std::thread::Builder::new().name("argon2".to_owned()).spawn(move || self.serve());
        if let Err(err) = spawned {
            let mut state = self.lock();
            state.running -= 1;
            if state.running == 0 {
                // Nobody would ever take these: their callers get an error instead.
                state.queue.clear();
            }
            return Err(PasswordError::Thread(err));
        }
        Ok(())
    }

    /// One pool thread: hashes until the queue is empty, then leaves with its memory.
    fn serve(&self) {
        let mut memory = Vec::with_capacity(ALWAYS_MAPPED_BLOCKS);
        loop {
            let job = {
                let mut state = self.lock();
                match state.queue.pop_front() {
                    Some(job) => job,
                    None => {
                        state.running -= 1;
                        return;
                    }
                }
            };
            // A panicking hash fails its own request (its sender is dropped), not the pool.
            if std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut memory))).is_err() {
                memory = Vec::with_capacity(ALWAYS_MAPPED_BLOCKS);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::time::Duration;

    use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};

    use super::*;

    #[tokio::test]
    async fn a_hashed_password_verifies_and_another_does_not() {
        let stored = hash(SecretString::from("correct horse battery")).await.unwrap();
        assert!(stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert!(verify(SecretString::from("correct horse battery"), stored.clone()).await.unwrap());
        assert!(!verify(SecretString::from("wrong horse battery"), stored).await.unwrap());
    }

    #[tokio::test]
    async fn hashes_made_by_the_argon2_crate_itself_keep_verifying() {
        let salt = SaltString::generate(&mut OsRng);
        for (m, t) in [(M_COST, T_COST), (12 * 1024, 3), (47 * 1024, 1)] {
            let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(m, t, 1, None).unwrap());
            let stored = argon2.hash_password(b"an older password", &salt).unwrap().to_string();
            assert!(verify(SecretString::from("an older password"), stored.clone()).await.unwrap(), "m={m} t={t}");
            assert!(!verify(SecretString::from("another password"), stored).await.unwrap(), "m={m} t={t}");
        }
        let ours = hash(SecretString::from("a newer password")).await.unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"a newer password", &parsed).is_ok());
    }

    #[tokio::test]
    async fn no_password_matches_the_unmatchable_hash_and_it_costs_a_real_verification() {
        let dummy = unmatchable_hash().unwrap();
        assert!(dummy.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
        assert_ne!(dummy, unmatchable_hash().unwrap());
        assert!(!verify(SecretString::from("correct horse battery"), dummy.clone()).await.unwrap());
        assert_eq!(Params::try_from(&PasswordHash::new(&dummy).unwrap()).unwrap(), params());
    }

    #[tokio::test]
    async fn a_hundred_concurrent_hashes_all_finish_on_a_bounded_pool() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(2)));
        let peak = Arc::new(AtomicUsize::new(0));
        let mut callers = tokio::task::JoinSet::new();
        for i in 0..100 {
            let peak = peak.clone();
            callers.spawn(pool.run(move |memory| {
                peak.fetch_max(pool.lock().running, Ordering::Relaxed);
                blocks(memory, 8)?[0] = Block::new();
                Ok(i)
            }));
        }
        let mut done = callers.join_all().await.into_iter().map(Result::unwrap).collect::<Vec<_>>();
        done.sort_unstable();
        assert_eq!(done, (0..100).collect::<Vec<_>>());
        assert!(peak.load(Ordering::Relaxed) <= 2, "never more threads than the bound");
        // A thread hands over its last result just before it leaves.
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while pool.lock().running > 0 && std::time::Instant::now() < deadline {
            tokio::task::yield_now().await;
        }
        assert_eq!(pool.lock().running, 0, "the threads left once the queue was empty");
    }

    #[tokio::test]
    async fn a_panicking_hash_fails_its_caller_and_the_pool_goes_on() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(1)));
        let failed = pool.run(|_: &mut Vec<Block>| -> Result<(), PasswordError> { panic!("a hash that panics") }).await;
        assert!(failed.is_err());
        assert_eq!(pool.run(|_| Ok(7)).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn a_caller_that_stopped_waiting_costs_no_hash() {
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(1)));
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = oneshot::channel();
        let first = tokio::spawn(pool.run(move |_| {
            let _ = started_tx.send(());
            let _ = release_rx.recv();
            Ok(())
        }));
        started_rx.await.unwrap();

        let ran = Arc::new(AtomicBool::new(false));
        let mut second = Box::pin(pool.run({
            let ran = ran.clone();
            move |_| {
                ran.store(true, Ordering::Relaxed);
                Ok(())
            }
        }));
        // Polled once: queued behind the first hash, which holds the only thread.
        assert!(tokio::time::timeout(Duration::ZERO, &mut second).await.is_err());
        assert_eq!(pool.lock().queue.len(), 1);
        drop(second);

        release_tx.send(()).unwrap();
        first.await.unwrap().unwrap();
        assert_eq!(pool.run(|_| Ok(1)).await.unwrap(), 1, "the pool serves the next caller");
        assert!(!ran.load(Ordering::Relaxed), "the abandoned hash never ran");
    }
}
