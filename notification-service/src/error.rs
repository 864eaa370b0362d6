//! How handling an event or sending an email fails, by what retrying can do for it: the
//! one error type of this service (it answers no request that could fail, so it has no
//! problem+json rendering; its failures go to retries, the dead-letter topic and logs).

/// The error a failure carries, whatever its kind.
pub type Cause = Box<dyn std::error::Error + Send + Sync>;

/// A failure, by what retrying can do for it: what the mailer answers with and what
/// the consumer retries by (as `MailError` and `HandleError`).
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Not the event's or the message's fault: the mail server or the database cannot
    /// be reached, the server is not accepting mail (421, 4.3.x, 4.4.x) or a connection
    /// could not be set up. Retried for as long as it takes, since giving up would
    /// dead-letter every event of an outage.
    #[error("transient: {0}")]
    Transient(#[source] Cause),
    /// The mail server refused this email for now (a 4xx reply during the mail
    /// transaction): retried a few times, then dead-lettered, so that one recipient
    /// cannot hold back everyone else's email.
    #[error("deferred: {0}")]
    Deferred(#[source] Cause),
    /// Retrying cannot help (a malformed event, a rejected address or message):
    /// dead-letter it.
    #[error("permanent: {0}")]
    Permanent(#[source] Cause),
}
