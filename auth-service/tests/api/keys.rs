use std::time::Duration;

use auth_service::keys;

use crate::support::{self, ADMIN_EMAIL, ADMIN_PASSWORD, Client};

async fn token_from(settings: auth_service::Settings) -> (String, common::test_util::Running) {
    let service = support::start(settings).await;
    let (_, tokens) = Client::new(&service).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (tokens["access_token"].as_str().unwrap().to_owned(), service)
}

#[tokio::test]
async fn after_a_key_rotation_old_tokens_verify_until_the_old_key_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let old_key = keys_dir.join("old.pem");
    let new_key = keys_dir.join("new.pem");
    std::fs::write(&old_key, keys::generate_pem().unwrap()).unwrap();
    std::fs::write(&new_key, keys::generate_pem().unwrap()).unwrap();
    let url = support::sqlite_url(dir.path());

    // Before the rotation: the old key signs.
    let mut before = support::settings(url.clone(), &keys_dir);
    before.keys.signing_key_file = old_key.clone();
    let (old_token, service) = token_from(before).await;
    service.stop().await.unwrap();

    // Rotated: the new key signs, the old one is still published.
    let mut rotated = support::settings(url.clone(), &keys_dir);
    rotated.keys.signing_key_file = new_key.clone();
    rotated.keys.previous_key_files = vec![old_key.clone()];
    let (new_token, service) = token_from(rotated).await;
    let client = Client::new(&service);
    let jwks: serde_json::Value = client.get("/.well-known/jwks.json", None).await.json().await.unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);
    assert_eq!(client.get("/api/auth/me", Some(&old_token)).await.status(), 200);
    assert_eq!(client.get("/api/auth/me", Some(&new_token)).await.status(), 200);
    service.stop().await.unwrap();

    // The old key removed: its tokens are refused.
    let mut removed = support::settings(url, &keys_dir);
    removed.keys.signing_key_file = new_key;
    let service = support::start(removed).await;
    let client = Client::new(&service);
    let response = client.get("/api/auth/me", Some(&old_token)).await;
    assert_eq!(response.status(), 401);
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_eq!(client.get("/api/auth/me", Some(&new_token)).await.status(), 200);
    service.stop().await.unwrap();
}

/// The steps of a rolling key rotation with two replicas: each entry is the set of
/// replicas serving at that moment, as (signing key, previous keys, next keys), by name.
type Replica = (&'static str, &'static [&'static str], &'static [&'static str]);

/// The replicas of one auth-service sharing a database and a key directory.
struct Fleet {
    _dir: tempfile::TempDir,
    keys_dir: std::path::PathBuf,
    url: url::Url,
    live: Vec<(Replica, common::test_util::Running)>,
}

impl Fleet {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keys_dir = dir.path().join("keys");
        std::fs::create_dir_all(&keys_dir).unwrap();
        for name in ["old", "new"] {
            std::fs::write(keys_dir.join(format!("{name}.pem")), keys::generate_pem().unwrap()).unwrap();
        }
        let url = support::sqlite_url(dir.path());
        Self { _dir: dir, keys_dir, url, live: Vec::new() }
    }

    /// Stops the replicas `replicas` does not keep and starts those it adds; a token
    /// from each started one.
    async fn roll_to(&mut self, replicas: &[Replica]) -> Vec<(String, Replica)> {
        let wanted = |replica: &Replica| replicas.iter().filter(|r| *r == replica).count();
        let mut kept: Vec<(Replica, common::test_util::Running)> = Vec::new();
        for (replica, running) in self.live.drain(..) {
            if kept.iter().filter(|(r, _)| *r == replica).count() < wanted(&replica) {
                kept.push((replica, running));
            } else {
                running.stop().await.unwrap();
            }
        }
        let path = |name: &str| self.keys_dir.join(format!("{name}.pem"));
        let mut tokens = Vec::new();
        for replica in replicas {
            if kept.iter().filter(|(r, _)| r == replica).count() < wanted(replica) {
                let mut settings = support::settings(self.url.clone(), &self.keys_dir);
                settings.keys.signing_key_file = path(replica.0);
                settings.keys.previous_key_files = replica.1.iter().map(|k| path(k)).collect();
                settings.keys.next_key_files = replica.2.iter().map(|k| path(k)).collect();
                let (token, running) = token_from(settings).await;
                tokens.push((token, *replica));
                kept.push((*replica, running));
            }
        }
        self.live = kept;
        tokens
    }

    /// The replicas whose JWKS refuses a token, as a verifier that fetched it there would.
    async fn refusing(&self, token: &str) -> Vec<Replica> {
        let mut refusing = Vec::new();
        for (replica, running) in &self.live {
            let jwks = running.url("/.well-known/jwks.json").parse().unwrap();
            let expectations = support::settings(self.url.clone(), &self.keys_dir).expectations;
            let verifier = common::auth::Verifier::remote(jwks, expectations, Duration::ZERO, Duration::ZERO).unwrap();
            if verifier.verify(token).await.is_err() {
                refusing.push(*replica);
            }
        }
        refusing
    }

    async fn stop(self) {
        for (_, running) in self.live {
            running.stop().await.unwrap();
        }
    }
}

/// Rotates the signing key across replicas step by step, and checks at every moment
/// that every token issued so far (and not yet meant to have expired: the old key's,
/// from step `expire_old_at` on) verifies with the JWKS of every replica serving then:
/// a verifier may have last fetched its keys from any of them. Returns the refusals.
async fn roll(steps: &[&[Replica]], expire_old_at: usize) -> Vec<String> {
    let mut fleet = Fleet::new();
    let mut issued: Vec<(String, Replica, usize)> = Vec::new();
    let mut refusals = Vec::new();
    for (step, replicas) in steps.iter().enumerate() {
        issued.extend(fleet.roll_to(replicas).await.into_iter().map(|(token, from)| (token, from, step)));
        for (token, from, when) in &issued {
            if step >= expire_old_at && from.0 == "old" {
                continue;
            }
            for by in fleet.refusing(token).await {
                refusals.push(format!("step {step}: token from {from:?} (step {when}) refused by {by:?}"));
            }
        }
    }
    fleet.stop().await;
    refusals
}

const OLD: Replica = ("old", &[], &[]);
const OLD_NEXT_PUBLISHED: Replica = ("old", &[], &["new"]);
const NEW_OLD_PREVIOUS: Replica = ("new", &["old"], &[]);
const NEW: Replica = ("new", &[], &[]);

#[tokio::test]
async fn a_rotation_that_publishes_the_next_key_first_refuses_no_token_at_any_step() {
    let steps: &[&[Replica]] = &[
        &[OLD, OLD],
        // 1. Publish the next key: every replica still signs with the old one.
        &[OLD, OLD_NEXT_PUBLISHED],
        &[OLD_NEXT_PUBLISHED, OLD_NEXT_PUBLISHED],
        // 2. After ECOM_JWKS_MAX_AGE_MS every verifier holds it: sign with it.
        &[OLD_NEXT_PUBLISHED, NEW_OLD_PREVIOUS],
        &[NEW_OLD_PREVIOUS, NEW_OLD_PREVIOUS],
        // 3. After the access-token lifetime the old key's tokens have expired: drop it.
        &[NEW_OLD_PREVIOUS, NEW],
        &[NEW, NEW],
    ];
    let refusals = roll(steps, 5).await;
    assert!(refusals.is_empty(), "{refusals:#?}");
}

#[tokio::test]
async fn a_rotation_that_signs_with_a_key_not_yet_published_everywhere_refuses_tokens() {
    // The check above could not pass by accident: swapping the key in one rollout
    // leaves old replicas whose JWKS lacks the key the new ones sign with.
    let steps: &[&[Replica]] = &[&[OLD, OLD], &[OLD, NEW_OLD_PREVIOUS]];
    let refusals = roll(steps, usize::MAX).await;
    assert!(refusals.iter().any(|r| r.contains("refused by (\"old\", [], [])")), "{refusals:#?}");
}

#[tokio::test]
async fn a_verifier_refetches_a_key_set_older_than_its_maximum_age() {
    let dir = tempfile::tempdir().unwrap();
    let keys_dir = dir.path().join("keys");
    std::fs::create_dir_all(&keys_dir).unwrap();
    let (old, new) = (keys_dir.join("old.pem"), keys_dir.join("new.pem"));
    std::fs::write(&old, keys::generate_pem().unwrap()).unwrap();
    std::fs::write(&new, keys::generate_pem().unwrap()).unwrap();
    let url = support::sqlite_url(dir.path());
    let mut during = support::settings(url.clone(), &keys_dir);
    during.keys.signing_key_file = old.clone();
    during.keys.next_key_files = vec![new.clone()];
    let during = support::start(during).await;
    // Tokens of the old key, each verified at most once below (a verified token is
    // remembered, and a remembered one is not checked against the keys again).
    let mut tokens = Vec::new();
    for _ in 0..3 {
        let (_, body) = Client::new(&during).login(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        tokens.push(body["access_token"].as_str().unwrap().to_owned());
    }
    let mut after = support::settings(url.clone(), &keys_dir);
    after.keys.signing_key_file = new;
    let after = support::start(after).await;
    // One address for the key set, as a Service is; it moves from the first replica to
    // one that no longer publishes the old key.
    let balancer = common::test_util::TcpBalancer::start(&[during.addr]).await;
    let jwks: url::Url = balancer.url("/.well-known/jwks.json").parse().unwrap();
    let expectations = support::settings(url, &keys_dir).expectations;
    let max_age =
        |age| common::auth::Verifier::remote(jwks.clone(), expectations.clone(), Duration::ZERO, age).unwrap();
    let (fresh, stale) = (max_age(Duration::from_secs(3600)), max_age(Duration::ZERO));
    fresh.refresh().await.unwrap();
    stale.refresh().await.unwrap();
    // The stale verifier remembers a verified token: remembering must not outlive the keys.
    let remembered = &tokens[2];
    assert!(stale.verify(remembered).await.is_ok(), "a token of the published key");
    balancer.set_backend(0, after.addr);
    // The first replica stops, so no kept-alive connection leads to it any more.
    during.stop().await.unwrap();

    // A key set younger than its maximum age is used as it is; an older one is fetched
    // again first, from where the address now leads: a key set without the old key, and
    // the tokens remembered under the old one are checked again.
    assert!(fresh.verify(&tokens[0]).await.is_ok());
    // The first fetch may still meet the closed connection (the keys then stay).
    let mut forgotten = false;
    for _ in 0..3 {
        if stale.verify(remembered).await.is_err() {
            forgotten = true;
            break;
        }
    }
    assert!(forgotten, "a remembered token outlived the key set it was verified with");
    let mut refused = false;
    for token in &tokens {
        // The first fetch may still meet the closed connection (the keys then stay).
        if stale.verify(token).await.is_err() {
            refused = true;
            break;
        }
    }
    assert!(refused, "the stale key set was never fetched again");
    after.stop().await.unwrap();
}
