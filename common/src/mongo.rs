//! MongoDB client set-up and readiness.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};

use crate::settings::SecretUrl;

/// Connects to `url` and checks the server answers; the database is the URL's path
/// (or `default_db`). TLS is the URL's: `tls=true&tlsCAFile=/path/ca.pem` (and
/// `tlsCertificateKeyFile` for a client certificate), or `mongodb+srv://`.
pub async fn connect(var: &str, url: &SecretUrl, app_name: &str, default_db: &str) -> anyhow::Result<Database> {
    let mut options = ClientOptions::parse(url.expose().as_str())
        .await
        .map_err(|e| anyhow::anyhow!("{var}: not a valid MongoDB URL ({url}): {}", e.kind))?;
    options.app_name = Some(app_name.to_owned());
    options.server_selection_timeout = Some(options.server_selection_timeout.unwrap_or(Duration::from_secs(5)));
    options.connect_timeout = Some(options.connect_timeout.unwrap_or(Duration::from_secs(5)));
    let name = options.default_database.clone().unwrap_or_else(|| default_db.to_owned());
    let client = Client::with_options(options).with_context(|| format!("{var}: invalid MongoDB options"))?;
    let db = client.database(&name);
    if let Err(err) = db.run_command(doc! {"ping": 1}).await {
        let text = err.kind.to_string();
        let hint = crate::tls::diagnose(&text, &format!("the tlsCAFile of {var}"), var).or_else(|| {
            (matches!(*err.kind, mongodb::error::ErrorKind::Authentication { .. })
                || text.contains("uthentication failed")
                || text.contains("AuthenticationFailed"))
            .then(|| format!("the user or password in {var} (or ECOM_DB_PASSWORD) is refused"))
        });
        match hint {
            Some(hint) => anyhow::bail!("{var}: cannot connect to MongoDB at {url}: {hint}: {text}"),
            None => anyhow::bail!("{var}: cannot reach MongoDB at {url}: {text}"),
        }
    }
    Ok(db)
}

/// A round trip to the server, for readiness.
pub async fn ping(db: &Database) -> Result<(), String> {
    db.run_command(doc! {"ping": 1}).await.map(drop).map_err(|e| match *e.kind {
        mongodb::error::ErrorKind::ServerSelection { .. } => "server unreachable".to_owned(),
        _ => "command failed".to_owned(),
    })
}
