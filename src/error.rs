//! The one error type of mqlite.

use std::path::PathBuf;

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
    /// A commit failed and whether it took effect is unknown (an I/O error,
    /// a failed fsync). The message says how to find out for `statement`.
    #[error(
        "{statement}: commit outcome unknown ({cause}); {}",
        ambiguous_advice(statement)
    )]
    CommitAmbiguous {
        /// The statement (or API call) whose commit failed, e.g. `PUBLISH`.
        statement: String,
        /// What SQLite or the system reported.
        cause: String,
    },
    /// The disk is full, or publishing would eat into the space mqlite
    /// keeps free (`DatabaseBuilder::disk_reserve`). Nothing of the
    /// statement was applied: SQLite never commits part of a transaction.
    #[error(
        "{statement} was not applied: {reason}; free space (PURGE or DROP what is not needed, or delete other files) and retry"
    )]
    DiskFull {
        /// The statement (or API call) refused, e.g. `PUBLISH`.
        statement: String,
        /// What is full.
        reason: String,
    },
    /// This process's wall clock is more than `MAX_CLOCK_OFFSET` from the
    /// machine's kernel clock, so writing with it would damage leases,
    /// delays, dedup windows and retention for every process sharing the
    /// file. Nothing was written.
    #[error(
        "this process's clock is {} ms {} the system clock (more than the 1 s mqlite allows): it refuses to write with it, since leases, delays, dedup windows and retention of every process sharing the file follow the writer's clock; run without the faked time, or give the database an explicit clock (DatabaseBuilder::clock)",
        offset_ms.unsigned_abs(),
        if *offset_ms > 0 { "ahead of" } else { "behind" }
    )]
    ClockSkew {
        /// This clock minus the kernel's, in ms.
        offset_ms: i64,
    },
    /// An earlier operation of the transaction failed in a way that forbids
    /// committing it (a fenced ACK/NACK); the transaction was rolled back
    /// then, which released its write lock.
    #[error("the transaction cannot commit: {0}; it was rolled back and its write lock released")]
    TransactionAborted(String),
    /// The write would wait for the write lock held by an open
    /// [`Transaction`](crate::Transaction) of the same handle that this
    /// thread itself holds, and so wait forever. Nothing was written.
    #[error(
        "{statement} would wait forever: this thread holds an open transaction of this database, which has the write lock; do the write through the transaction, or commit or roll it back first"
    )]
    WouldDeadlock {
        /// The statement (or API call) refused, e.g. `PUBLISH`.
        statement: String,
    },
    /// Another writer (a transaction, another process) held the write lock
    /// for longer than the busy timeout, so the write never began. Nothing
    /// was written: unlike `CommitAmbiguous`, a retry is always safe.
    #[error(
        "{statement} was not applied: the database stayed locked by another writer for longer than the busy timeout; nothing was written, retry"
    )]
    LockTimeout {
        /// The statement (or API call) that could not begin, e.g. `PUBLISH`.
        statement: String,
    },
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
            && let Some(why) = take_refusal()
        {
            return Error::Forbidden(why);
        }
        Error::Sqlite(e)
    }
}

thread_local! {
    /// Why the transaction connection's authorizer last refused a statement
    /// on this thread: SQLite only says "not authorized", and the refusal
    /// is turned into an `Error` (`From<rusqlite::Error>`) on the thread
    /// that prepared the statement.
    static LAST_REFUSAL: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
}

/// Records why the authorizer refused a statement (see `LAST_REFUSAL`).
pub(crate) fn record_refusal(why: String) {
    LAST_REFUSAL.with(|r| *r.borrow_mut() = Some(why));
}

/// The reason of the last refusal on this thread, if any.
fn take_refusal() -> Option<String> {
    LAST_REFUSAL.with(|r| r.borrow_mut().take())
}

/// The result type of mqlite.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn invalid(msg: impl Into<String>) -> Error {
        Error::InvalidArgument(msg.into())
    }

    /// A commit of `statement` whose outcome is unknown.
    pub(crate) fn ambiguous(statement: &str, cause: impl std::fmt::Display) -> Error {
        Error::CommitAmbiguous {
            statement: statement.to_string(),
            cause: cause.to_string(),
        }
    }

    /// The error for a failed write of `statement` before its commit: a full
    /// disk says so; anything else is passed on.
    pub(crate) fn write_failed(statement: &str, e: Error) -> Error {
        match e {
            Error::Sqlite(s) if is_full(&s) => full(statement),
            other => other,
        }
    }

    /// The error for a failed `BEGIN IMMEDIATE` of `statement`: busy or
    /// locked past the busy timeout is `LockTimeout` (nothing was written);
    /// anything else as `write_failed`.
    pub(crate) fn begin_failed(statement: &str, e: Error) -> Error {
        match e {
            Error::Sqlite(s)
                if matches!(
                    s.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) =>
            {
                Error::LockTimeout {
                    statement: statement.to_string(),
                }
            }
            other => Error::write_failed(statement, other),
        }
    }

    /// The error for a failed COMMIT of `statement`: a full disk means
    /// nothing was applied (the commit frame was never written); anything
    /// else leaves the outcome unknown.
    pub(crate) fn commit_failed(statement: &str, e: &rusqlite::Error) -> Error {
        if is_full(e) {
            full(statement)
        } else {
            Error::ambiguous(statement, e)
        }
    }

    /// The same failure, reported for another statement of the same group
    /// commit.
    pub(crate) fn for_statement(&self, statement: &str) -> Error {
        match self {
            Error::DiskFull { reason, .. } => Error::DiskFull {
                statement: statement.to_string(),
                reason: reason.clone(),
            },
            Error::CommitAmbiguous { cause, .. } => Error::ambiguous(statement, cause),
            // The batch never began: nothing of any of its writes happened.
            Error::LockTimeout { .. } => Error::LockTimeout {
                statement: statement.to_string(),
            },
            other => Error::ambiguous(statement, other),
        }
    }
}

fn is_full(e: &rusqlite::Error) -> bool {
    e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull)
}

fn full(statement: &str) -> Error {
    Error::DiskFull {
        statement: statement.to_string(),
        reason: "the disk is full".into(),
    }
}

/// How to find out whether an ambiguous commit of `statement` landed.
fn ambiguous_advice(statement: &str) -> &'static str {
    match statement {
        "PUBLISH" | "IMPORT" => {
            "SELECT shows whether it landed, and a retry with the same DEDUP id stores it only once"
        }
        "ACK" | "NACK" => "a retry is safe: if it landed, the retry fails as an unknown delivery",
        "CONSUME" => {
            "if it landed, the leases run out after their ACK WAIT and the messages are delivered again"
        }
        _ => "check the state (SELECT, DESCRIBE, SHOW GROUPS) before retrying",
    }
}

/// A syntax error: where and what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("syntax error at line {line}, column {column}: {message}")]
pub struct ParseError {
    /// Byte offset in the input.
    pub position: usize,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// What was expected there, e.g. "expected a duration like 30s".
    pub message: String,
}

impl ParseError {
    /// An error at byte `position` of `source` (clamped to the text).
    pub(crate) fn at(source: &str, position: usize, message: String) -> Self {
        let mut position = position.min(source.len());
        while !source.is_char_boundary(position) {
            position -= 1;
        }
        let before = &source[..position];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |n| n + 1);
        let column = source[line_start..position].chars().count() + 1;
        ParseError {
            position,
            line,
            column,
            message,
        }
    }

    /// The message, then the offending line of `source`, then a caret under
    /// the column:
    ///
    /// ```text
    /// syntax error at line 1, column 38: expected a duration like 30s
    /// SUBSCRIBE GROUP g TO orders ACK WAIT forever
    ///                                      ^
    /// ```
    pub fn render(&self, source: &str) -> String {
        let line = source
            .lines()
            .nth(self.line.saturating_sub(1))
            .unwrap_or("");
        let line = line.strip_suffix('\r').unwrap_or(line);
        let pad: String = line
            .chars()
            .take(self.column.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        format!("{self}\n{line}\n{pad}^")
    }
}
