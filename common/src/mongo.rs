//! MongoDB client set-up and readiness.

use std::time::Duration;

use anyhow::Context as _;
use mongodb::bson::doc;
use mongodb::options::ClientOptions;
use mongodb::{Client, Database};
use url::Url;

/// Connects to `url` and checks the server answers; the database is the URL's path
/// (or `default_db`).
pub async fn connect(var: &str, url: &Url, app_name: &str, default_db: &str) -> anyhow::Result<Database> {
    let mut options =
        ClientOptions::parse(url.as_str()).await.with_context(|| format!("{var}: not a valid MongoDB URL"))?;
    options.app_name = Some(app_name.to_owned());
    options.server_selection_timeout = Some(options.server_selection_timeout.unwrap_or(Duration::from_secs(5)));
    options.connect_timeout = Some(options.connect_timeout.unwrap_or(Duration::from_secs(5)));
    let name = options.default_database.clone().unwrap_or_else(|| default_db.to_owned());
    let client = Client::with_options(options).with_context(|| format!("{var}: invalid MongoDB options"))?;
    let db = client.database(&name);
    ping(&db).await.map_err(|reason| {
        anyhow::anyhow!("{var}: cannot reach MongoDB at {}: {reason}", crate::settings::redact_url(url))
    })?;
    Ok(db)
}

/// A round trip to the server, for readiness.
pub async fn ping(db: &Database) -> Result<(), String> {
    db.run_command(doc! {"ping": 1}).await.map(drop).map_err(|e| match *e.kind {
        mongodb::error::ErrorKind::ServerSelection { .. } => "server unreachable".to_owned(),
        _ => "command failed".to_owned(),
    })
}
