//! The dev platform's admin account: `ECOM_ADMIN_*` when set, else a password
//! generated once and kept in the data directory, readable by its owner only.
//!
//! The file holds the password on its first line and, below a comment, its argon2
//! hash: auth-service takes that hash as known, so a restart neither hashes nor
//! verifies (each costs tens of milliseconds of the start). A file holding only a
//! password works too, with a verify at each start.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use common::settings::Env;
use rand::distr::{Alphanumeric, SampleString};

/// The file, in the data directory, that keeps the generated password.
pub const PASSWORD_FILE: &str = "admin-password";

const HASH_COMMENT: &str = "# The password's argon2 hash, which spares auth-service a check at each start. \
                            To change the password, delete this file or set ECOM_ADMIN_PASSWORD.";

/// The admin account dev mode makes sure exists.
#[derive(Debug, Clone)]
pub struct Admin {
    pub email: String,
    pub password: String,
    /// Whether the password was generated at this start.
    pub generated: bool,
    /// The file the password is kept in; `None` when `ECOM_ADMIN_PASSWORD` chose it.
    pub password_file: Option<PathBuf>,
    /// The password's argon2 hash (PHC string), kept with a generated password.
    pub password_hash: Option<String>,
}

impl Admin {
    /// `ECOM_ADMIN_PASSWORD` wins; else the password kept in `data_dir`, generated
    /// (and kept with its hash, mode 0600) on the first start.
    pub async fn from_env(env: &Env, data_dir: &Path) -> anyhow::Result<Self> {
        let email = env.raw("ECOM_ADMIN_EMAIL").unwrap_or("admin@ecom.local").to_owned();
        if let Some(password) = env.raw("ECOM_ADMIN_PASSWORD") {
            let password = password.to_owned();
            return Ok(Self { email, password, generated: false, password_file: None, password_hash: None });
        }
        let file = data_dir.join(PASSWORD_FILE);
        let (kept, generated) = match read_kept(&file)? {
            Some(kept) => (kept, false),
            None => (keep_new(&file).await?, true),
        };
        let Kept { password, hash } = kept;
        Ok(Self { email, password, generated, password_file: Some(file), password_hash: hash })
    }
}

/// What the file holds.
struct Kept {
    password: String,
    /// Absent from a file written before hashes were kept: auth-service verifies then.
    hash: Option<String>,
}

/// The kept password, if the file exists; a file others could read is made the
/// owner's alone first.
fn read_kept(file: &Path) -> anyhow::Result<Option<Kept>> {
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", file.display())),
    };
    let mode = std::fs::metadata(file)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("cannot make {} readable by its owner only", file.display()))?;
        tracing::warn!(file = %file.display(), "the admin password file was readable by others; it is mode 0600 now");
    }
    let mut lines = text.lines().map(str::trim);
    let password = lines.next().unwrap_or_default().to_owned();
    anyhow::ensure!(
        (10..=128).contains(&password.chars().count()),
        "{} must hold the admin password (10 to 128 characters); delete it to have a new one generated",
        file.display()
    );
    let hash = lines.find(|line| line.starts_with("$argon2")).map(str::to_owned);
    Ok(Some(Kept { password, hash }))
}

/// Generates a password and writes it and its hash to `file`, created with mode 0600.
async fn keep_new(file: &Path) -> anyhow::Result<Kept> {
    let password = Alphanumeric.sample_string(&mut rand::rng(), 20);
    let hash = auth_service::password::hash(password.clone().into()).await?;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .with_context(|| format!("cannot create {}", file.display()))?;
    writeln!(out, "{password}\n{HASH_COMMENT}\n{hash}")
        .and_then(|()| out.sync_all())
        .with_context(|| format!("cannot write {}", file.display()))?;
    Ok(Kept { password, hash: Some(hash) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_generated_password_is_kept_owner_only_with_its_hash_and_read_back_at_the_next_start() {
        let dir = tempfile::tempdir().unwrap();
        let first = Admin::from_env(&Env::default(), dir.path()).await.unwrap();
        assert!(first.generated);
        assert_eq!(first.password.len(), 20);
        let file = dir.path().join(PASSWORD_FILE);
        assert_eq!(first.password_file.as_deref(), Some(file.as_path()));
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        let hash = first.password_hash.clone().unwrap();
        assert!(auth_service::password::verify(first.password.clone().into(), hash.clone()).await.unwrap());
        assert_eq!(std::fs::read_to_string(&file).unwrap().lines().next(), Some(first.password.as_str()));

        let second = Admin::from_env(&Env::default(), dir.path()).await.unwrap();
        assert!(!second.generated);
        assert_eq!(second.password, first.password);
        assert_eq!(second.password_hash, Some(hash));
    }

    #[tokio::test]
    async fn an_explicit_password_wins_over_the_kept_one_and_leaves_it_alone() {
        let dir = tempfile::tempdir().unwrap();
        let kept = Admin::from_env(&Env::default(), dir.path()).await.unwrap();
        let env =
            Env::from_pairs([("ECOM_ADMIN_EMAIL", "boss@example.com"), ("ECOM_ADMIN_PASSWORD", "chosen-password")]);
        let chosen = Admin::from_env(&env, dir.path()).await.unwrap();
        assert_eq!((chosen.email.as_str(), chosen.password.as_str()), ("boss@example.com", "chosen-password"));
        assert!(!chosen.generated && chosen.password_file.is_none() && chosen.password_hash.is_none());
        let file = std::fs::read_to_string(dir.path().join(PASSWORD_FILE)).unwrap();
        assert_eq!(file.lines().next(), Some(kept.password.as_str()));
    }

    #[tokio::test]
    async fn a_kept_password_without_a_hash_that_others_can_read_is_made_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(PASSWORD_FILE);
        std::fs::write(&file, "a-password-kept-here\n").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let admin = Admin::from_env(&Env::default(), dir.path()).await.unwrap();
        assert_eq!(admin.password, "a-password-kept-here");
        assert_eq!(admin.password_hash, None, "without a hash, auth-service verifies the password");
        assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn a_kept_password_file_that_is_too_short_stops_the_start_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(PASSWORD_FILE), "short\n").unwrap();
        let err = Admin::from_env(&Env::default(), dir.path()).await.unwrap_err();
        assert!(err.to_string().contains(PASSWORD_FILE), "{err}");
    }
}
