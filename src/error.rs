//! The one error type of mqlite.

use std::path::PathBuf;

use crate::lang::ParseError;

/// Everything that can go wrong in mqlite. `Display` is meant for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement of the command language did not parse.
    #[error("{0}")]
    Syntax(#[from] ParseError),
    /// The named topic or queue does not exist.
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    /// A topic or queue with that name already exists.
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    /// The named consumer group does not exist.
    #[error("group '{0}' does not exist")]
    GroupNotFound(String),
    /// The group exists but does not read the topic.
    #[error("group '{group}' is not subscribed to '{topic}'")]
    NotSubscribed {
        /// The group.
        group: String,
        /// The topic.
        topic: String,
    },
    /// A value given by the caller is out of range or does not fit.
    #[error("{0}")]
    InvalidArgument(String),
    /// No delivery with this id is in flight (never issued, already acked or dead-lettered).
    #[error("delivery {0} is unknown: it was never issued, or was already acked or dead-lettered")]
    UnknownDelivery(u64),
    /// The delivery's lease expired and the message was delivered again under a new id.
    #[error("delivery {id} expired: the message was redelivered as {redelivered_as}")]
    StaleDelivery {
        /// The id the caller used.
        id: u64,
        /// The id of the current delivery of the same message.
        redelivered_as: u64,
    },
    /// A payload is larger than the database's limit.
    #[error("payload of {size} bytes is over the limit of {limit} bytes")]
    PayloadTooLarge {
        /// The payload's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The topic is at its MAX LENGTH and its overflow policy is REJECT.
    #[error("topic '{topic}' is full ({max} messages, OVERFLOW REJECT)")]
    TopicFull {
        /// The topic.
        topic: String,
        /// Its max length.
        max: u64,
    },
    /// The file exists but is not an mqlite database.
    #[error("{} is not an mqlite database: {reason}", path.display())]
    NotADatabase {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The file was written by a newer mqlite.
    #[error(
        "{} was written by a newer mqlite (schema version {found}; this build reads up to {supported})",
        path.display()
    )]
    NewerSchema {
        /// The file.
        path: PathBuf,
        /// Its schema version.
        found: i64,
        /// The newest this build knows.
        supported: i64,
    },
    /// The database was opened read-only.
    #[error("the database is open read-only: {0} needs to write")]
    ReadOnly(String),
    /// The statement is part of the language but not implemented yet.
    #[error("{0} is not supported yet")]
    NotSupported(String),
    /// A commit failed; whether it took effect is unknown. Retry with a dedup id.
    #[error("commit outcome unknown ({0}); retry publishes with a dedup id")]
    CommitAmbiguous(String),
    /// An earlier operation of the transaction failed in a way that forbids
    /// committing it (a fenced ACK/NACK); the transaction was rolled back.
    #[error("the transaction cannot commit: {0}; it was rolled back")]
    TransactionAborted(String),
    /// BEGIN inside a transaction, or COMMIT/ROLLBACK outside one.
    #[error("{0}")]
    Transaction(String),
    /// The application's SQL on [`Transaction::connection`](crate::Transaction::connection)
    /// tried something that would break mqlite (names what); nothing was done.
    #[error("application SQL inside a transaction may not {0}")]
    Forbidden(String),
    /// CHECK found the file damaged or mqlite's tables inconsistent; one
    /// line per problem, as SQLite's integrity check or mqlite reports it.
    #[error("CHECK found {} problem(s) in the database:\n{}", problems.len(), problems.join("\n"))]
    CheckFailed {
        /// What was found.
        problems: Vec<String>,
    },
    /// SQLite reported an error.
    #[error("storage error: {0}")]
    Sqlite(rusqlite::Error),
    /// The operating system reported an error.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl From<rusqlite::Error> for Error {
    /// A statement the transaction's authorizer refused becomes `Forbidden`
    /// with the reason it recorded on this thread (SQLite itself only says
    /// "not authorized").
    fn from(e: rusqlite::Error) -> Error {
        if e.sqlite_error_code() == Some(rusqlite::ErrorCode::AuthorizationForStatementDenied)
            && let Some(why) = crate::app_sql::take_refusal()
        {
            return Error::Forbidden(why);
        }
        Error::Sqlite(e)
    }
}

/// The result type of mqlite.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }
}
