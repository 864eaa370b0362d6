//! Signing keys: one active Ed25519 key signs, every configured key is published in
//! the JWKS: previous keys so tokens signed before a rotation verify until they expire,
//! the next key so that every verifier holds it before any replica signs with it.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 key bytes follow it.
const ED25519_SPKI_PREFIX: [u8; 12] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00];

/// Where the keys come from: `ECOM_JWT_SIGNING_KEY_FILE`, `ECOM_JWT_PREVIOUS_KEY_FILES`,
/// `ECOM_JWT_NEXT_KEY_FILES`, `ECOM_JWT_GENERATE_KEY`.
#[derive(Debug, Clone)]
pub struct KeySettings {
    /// PKCS#8 PEM of the active Ed25519 private key.
    pub signing_key_file: PathBuf,
    /// PEM files (private or public) of earlier keys still accepted.
    pub previous_key_files: Vec<PathBuf>,
    /// PEM files (private or public) of the keys that will sign next: published (and
    /// accepted) before any replica signs with them, so that during the rollout that
    /// makes one of them the signing key, every replica's JWKS holds every key in use.
    pub next_key_files: Vec<PathBuf>,
    /// Create the signing key file if it does not exist (dev mode).
    pub generate_missing: bool,
}

/// A public key as published: its `kid` and raw bytes.
#[derive(Debug, Clone)]
struct PublicKey {
    kid: String,
    x: String,
}

/// The active signing key and every published key.
pub struct KeyRing {
    active_kid: String,
    encoding: EncodingKey,
    published: Vec<PublicKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing").field("active_kid", &self.active_kid).finish_non_exhaustive()
    }
}

impl KeyRing {
    pub fn load(settings: &KeySettings) -> anyhow::Result<Self> {
        const VAR: &str = "ECOM_JWT_SIGNING_KEY_FILE";
        let path = &settings.signing_key_file;
        if !path.exists() {
            if !settings.generate_missing {
                bail!("{VAR}: {} does not exist (set ECOM_JWT_GENERATE_KEY=true to create one)", path.display());
            }
            write_new_key(path).with_context(|| format!("{VAR}: cannot create {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new signing key");
        }
        let pem = std::fs::read_to_string(path).with_context(|| format!("{VAR}: cannot read {}", path.display()))?;
        let der = pem_der(&pem, "PRIVATE KEY").with_context(|| format!("{VAR}: {}", path.display()))?;
        let pair = Ed25519KeyPair::from_pkcs8(&der)
            .map_err(|_| anyhow::anyhow!("{VAR}: {} is not a PKCS#8 Ed25519 private key", path.display()))?;
        let active = public_key(pair.public_key().as_ref());
        let encoding = EncodingKey::from_ed_der(&der);

        let mut published = vec![active.clone()];
        let others = [
            ("ECOM_JWT_NEXT_KEY_FILES", &settings.next_key_files),
            ("ECOM_JWT_PREVIOUS_KEY_FILES", &settings.previous_key_files),
        ];
        for (var, files) in others {
            for file in files {
                let key = load_public(file).with_context(|| format!("{var}: {}", file.display()))?;
                if published.iter().all(|k| k.kid != key.kid) {
                    published.push(key);
                }
            }
        }
        Ok(Self { active_kid: active.kid, encoding, published })
    }

    pub fn active_kid(&self) -> &str {
        &self.active_kid
    }

    /// The JWKS document of every published key.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self
            .published
            .iter()
            .map(|k| json!({"kty": "OKP", "crv": "Ed25519", "x": k.x, "kid": k.kid, "alg": "EdDSA", "use": "sig"}))
            .collect();
        json!({ "keys": keys })
    }

    /// Signs `claims` with the active key, `typ: at+jwt`.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.active_kid.clone());
        header.typ = Some(common::auth::ACCESS_TOKEN_TYP.to_owned());
        jsonwebtoken::encode(&header, claims, &self.encoding)
    }
}

/// A fresh PKCS#8 PEM Ed25519 private key.
pub fn generate_pem() -> anyhow::Result<String> {
    let der = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| anyhow::anyhow!("key generation"))?;
    Ok(to_pem(der.as_ref(), "PRIVATE KEY"))
}

/// The SPKI PEM of a private key PEM (what a verifier-only deployment would hold).
pub fn public_pem(private_pem: &str) -> anyhow::Result<String> {
    let der = pem_der(private_pem, "PRIVATE KEY")?;
    let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| anyhow::anyhow!("not an Ed25519 key"))?;
    let mut spki = ED25519_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok(to_pem(&spki, "PUBLIC KEY"))
}

/// Writes a new key next to `path`, then links it into place: a reader never sees
/// a half-written file, and when two starts race the first key wins for both.
fn write_new_key(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let staging = dir.join(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&staging)?, generate_pem()?.as_bytes())?;
    let linked = std::fs::hard_link(&staging, path);
    std::fs::remove_file(&staging)?;
    match linked {
        Err(err) if err.kind() != std::io::ErrorKind::AlreadyExists => Err(err.into()),
        _ => Ok(()),
    }
}

fn load_public(path: &Path) -> anyhow::Result<PublicKey> {
    let pem = std::fs::read_to_string(path).context("cannot read")?;
    if pem.contains("PRIVATE KEY") {
        let der = pem_der(&pem, "PRIVATE KEY")?;
        let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|_| anyhow::anyhow!("not an Ed25519 private key"))?;
        return Ok(public_key(pair.public_key().as_ref()));
    }
    let der = pem_der(&pem, "PUBLIC KEY")?;
    let raw = der.strip_prefix(&ED25519_SPKI_PREFIX[..]).filter(|k| k.len() == 32);
    raw.map(public_key).ok_or_else(|| anyhow::anyhow!("not an Ed25519 public key"))
}

/// The RFC 7638 thumbprint is the `kid`: stable, and derived from the key alone.
fn public_key(raw: &[u8]) -> PublicKey {
    let x = URL_SAFE_NO_PAD.encode(raw);
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    let kid = URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()));
    PublicKey { kid, x }
}

fn pem_der(pem: &str, label: &str) -> anyhow::Result<Vec<u8>> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem.find(&begin).ok_or_else(|| anyhow::anyhow!("no {begin} block"))? + begin.len();
    let stop = pem[start..].find(&end).ok_or_else(|| anyhow::anyhow!("no {end} line"))? + start;
    let body: String = pem[start..stop].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).context("PEM body is not base64")
}

fn to_pem(der: &[u8], label: &str) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys signing from `signing` (created if `generate`), publishing `previous` and `next`.
    fn settings(signing: PathBuf, previous: Vec<PathBuf>, next: Vec<PathBuf>, generate: bool) -> KeySettings {
        KeySettings {
            signing_key_file: signing,
            previous_key_files: previous,
            next_key_files: next,
            generate_missing: generate,
        }
    }

    fn ring(dir: &Path, previous: Vec<PathBuf>) -> KeyRing {
        KeyRing::load(&settings(dir.join("active.pem"), previous, vec![], true)).unwrap()
    }

    #[test]
    fn a_generated_key_is_persisted_and_reloads_with_the_same_kid() {
        let dir = tempfile::tempdir().unwrap();
        let first = ring(dir.path(), vec![]);
        let second = ring(dir.path(), vec![]);
        assert_eq!(first.active_kid(), second.active_kid());
        assert_eq!(first.jwks()["keys"].as_array().unwrap().len(), 1);
    }

    #[test]
    fn previous_keys_are_published_from_private_or_public_pems() {
        let dir = tempfile::tempdir().unwrap();
        let old_private = generate_pem().unwrap();
        let old_public = public_pem(&generate_pem().unwrap()).unwrap();
        std::fs::write(dir.path().join("old1.pem"), &old_private).unwrap();
        std::fs::write(dir.path().join("old2.pem"), &old_public).unwrap();
        let ring = ring(dir.path(), vec![dir.path().join("old1.pem"), dir.path().join("old2.pem")]);
        let keys = ring.jwks()["keys"].as_array().unwrap().clone();
        assert_eq!(keys.len(), 3);
        assert!(keys.iter().all(|k| k["alg"] == "EdDSA" && k["kty"] == "OKP"));
    }

    #[test]
    fn a_next_key_is_published_but_never_signs() {
        let dir = tempfile::tempdir().unwrap();
        let next_file = dir.path().join("next.pem");
        std::fs::write(&next_file, generate_pem().unwrap()).unwrap();
        let ring =
            KeyRing::load(&settings(dir.path().join("active.pem"), vec![], vec![next_file.clone()], true)).unwrap();
        let next = KeyRing::load(&settings(next_file, vec![], vec![], false)).unwrap();
        let kids: Vec<String> =
            ring.jwks()["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
        assert_eq!(kids, [ring.active_kid(), next.active_kid()]);
        let token = ring.sign(&serde_json::json!({"sub": "x"})).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(ring.active_kid()));
    }

    #[test]
    fn a_missing_next_key_names_its_variable() {
        let dir = tempfile::tempdir().unwrap();
        let next = vec![dir.path().join("gone.pem")];
        let err = KeyRing::load(&settings(dir.path().join("active.pem"), vec![], next, true)).unwrap_err();
        assert!(format!("{err:#}").contains("ECOM_JWT_NEXT_KEY_FILES"), "{err:#}");
    }

    #[test]
    fn a_missing_key_without_generation_names_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let err = KeyRing::load(&settings(dir.path().join("none.pem"), vec![], vec![], false)).unwrap_err();
        assert!(err.to_string().contains("ECOM_JWT_SIGNING_KEY_FILE"));
    }
}
