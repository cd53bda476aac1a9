//! The one error type of mqlite.

use std::path::{Path, PathBuf};

use crate::kind::{MAX_NAME_BYTES, TopicKind};

/// Everything that can go wrong in mqlite. `Display` is meant for people.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A statement of the command language did not parse.
    #[error("{0}")]
    Syntax(#[from] ParseError),
    /// The named topic or queue does not exist (a statement that names a
    /// queue gets [`Error::QueueNotFound`]).
    #[error("topic '{0}' does not exist")]
    TopicNotFound(String),
    /// A statement that names a queue (DROP QUEUE, ALTER QUEUE, CONSUME FROM
    /// without GROUP) found nothing by that name.
    #[error("queue '{0}' does not exist")]
    QueueNotFound(String),
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
    /// The name is a topic where a queue was expected, or the other way
    /// round (DROP QUEUE of a topic, CONSUME FROM a topic without a group,
    /// SUBSCRIBE to a queue, ALTER of the other kind).
    #[error("{}", wrong_kind(name, *is, *expected, statement))]
    WrongKind {
        /// The topic or queue named.
        name: String,
        /// What it is.
        is: TopicKind,
        /// What the statement needs.
        expected: TopicKind,
        /// The statement (or API call) refused: `DROP`, `ALTER`, `CONSUME`
        /// or `SUBSCRIBE`; it picks the advice of the message.
        statement: String,
    },
    /// A partition number the topic does not have.
    #[error("{}", partition_out_of_range(topic, *partition, *partitions, statement))]
    PartitionOutOfRange {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has (numbered from 0).
        partitions: u32,
        /// The statement (or API call) refused: `PUBLISH`, `REPLAY` or
        /// `commit_offset`; it picks the wording of the message.
        statement: String,
    },
    /// An offset commit past the end of the partition's log.
    #[error(
        "offset {offset} is past the end of '{topic}' partition {partition} (next offset {next})"
    )]
    PastEnd {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        offset: u64,
        /// The partition's next offset, the largest that may be committed.
        next: u64,
    },
    /// An option is out of range, given twice, too large to store, or does
    /// not apply (a queue's PARTITIONS or RETENTION).
    #[error("{message}")]
    InvalidOption {
        /// The option as the language spells it: `PARTITIONS`, `RETENTION`,
        /// `MAX LENGTH`, `OVERFLOW`, `DEDUP WINDOW`, `MAX DELIVERIES`,
        /// `ACK WAIT`, the count of `CONSUME`, BENCH's `MESSAGES`, `SIZE`,
        /// `BATCH` and `PRODUCERS`, or `durability`.
        option: String,
        /// The whole message, which names the option.
        message: String,
    },
    /// A topic, queue or group name that cannot be used.
    #[error("{}", invalid_name(what, name, *problem))]
    InvalidName {
        /// `topic`, `queue` or `group`.
        what: String,
        /// The name given.
        name: String,
        /// What is wrong with it.
        problem: NameProblem,
    },
    /// A subscription pattern that cannot be used.
    #[error("{}", invalid_pattern(pattern, *problem))]
    InvalidPattern {
        /// The pattern given.
        pattern: String,
        /// What is wrong with it.
        problem: PatternProblem,
    },
    /// A message to publish has an empty header name or an empty dedup id.
    #[error("a {what} must not be empty")]
    EmptyValue {
        /// `header name` or `dedup id`.
        what: String,
    },
    /// ACK or NACK lists the same delivery id twice.
    #[error("delivery {0} is listed twice")]
    DuplicateDelivery(u64),
    /// A queue and a group would share a name: a queue's implicit group
    /// takes the queue's name, so CREATE QUEUE refuses the name of a group
    /// and SUBSCRIBE creates no group with the name of a queue.
    #[error("{}", name_taken(name, statement))]
    NameTaken {
        /// The name.
        name: String,
        /// The statement (or API call) refused: `CREATE QUEUE` or `SUBSCRIBE`.
        statement: String,
    },
    /// SUBSCRIBE or UNSUBSCRIBE named a queue's implicit group, which only
    /// CREATE and DROP QUEUE change.
    #[error("{}", implicit_group(queue, statement))]
    ImplicitGroup {
        /// The queue (and its group's name).
        queue: String,
        /// The statement (or API call) refused: `SUBSCRIBE` or `UNSUBSCRIBE`.
        statement: String,
    },
    /// A statement that cannot run inside an explicit transaction: BENCH,
    /// TAIL, BACKUP, SET CLOCK, ADVANCE, or a CONSUME that would WAIT
    /// holding the write lock.
    #[error(
        "{statement} is not allowed inside a transaction{}",
        not_in_transaction_why(statement)
    )]
    NotAllowedInTransaction {
        /// `BENCH`, `TAIL` or `CONSUME ... WAIT`.
        statement: String,
    },
    /// A request that lacks what it needs: a CONSUME with neither topic nor
    /// group, a SUBSCRIBE without targets, an ALTER without options,
    /// `mark_processed` with an empty group or key.
    #[error("{statement} needs {needs}")]
    Incomplete {
        /// The statement (or API call), e.g. `SUBSCRIBE`.
        statement: String,
        /// What it needs, e.g. `at least one topic or pattern`.
        needs: String,
    },
    /// A statement of the command language that parsed but cannot run as
    /// written: an unknown column or a misplaced aggregate in SELECT, a
    /// header given twice, DEDUP with several payloads, a statement over
    /// the planner's limits, a BENCH workload listed twice.
    #[error("{0}")]
    InvalidStatement(String),
    /// EXPORT or BACKUP cannot write its file; nothing was written to the target.
    #[error("{}", output_file(path, problem))]
    OutputFile {
        /// The file named by the statement.
        path: PathBuf,
        /// Why it cannot be written.
        problem: FileProblem,
    },
    /// IMPORT cannot open its file.
    #[error("cannot read '{}': {source}", path.display())]
    ImportFile {
        /// The file named by the statement.
        path: PathBuf,
        /// What the system reported.
        source: std::io::Error,
    },
    /// A line of an IMPORT file cannot be read or is not a message;
    /// nothing of the file was imported.
    #[error("{} line {line}: {reason}", path.display())]
    ImportLine {
        /// The file named by the statement.
        path: PathBuf,
        /// The 1-based line number.
        line: usize,
        /// What is wrong with the line, e.g. `not UTF-8 text`.
        reason: String,
    },
    /// BENCH could not run a workload, or a workload read back other than
    /// what it wrote. Its scratch topic was dropped.
    #[error("{0}")]
    BenchFailed(String),
    /// SQLite did not switch the file to WAL journal mode, which mqlite
    /// needs (e.g. a file system without shared memory).
    #[error("could not switch {} to WAL journal mode (got {journal_mode})", path.display())]
    WalUnavailable {
        /// The database file.
        path: PathBuf,
        /// The journal mode SQLite kept.
        journal_mode: String,
    },
    /// A read-only open found a write-ahead log that SQLite cannot use
    /// here: the -wal is unreadable, or the -shm is neither readable nor
    /// creatable.
    #[error(
        "cannot read {} read-only: it has a write-ahead log, and SQLite needs {}-wal readable and {}-shm readable or creatable, which here they are not ({cause}); open it read-write once, or read it where the directory is writable",
        path.display(),
        path.display(),
        path.display()
    )]
    WalUnreadable {
        /// The database file.
        path: PathBuf,
        /// What SQLite reported.
        cause: String,
    },
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
    /// The topic or queue is at its MAX LENGTH and its overflow policy is
    /// REJECT.
    #[error("{} '{topic}' is full ({max} messages, OVERFLOW REJECT)", kind.noun())]
    TopicFull {
        /// The topic or queue.
        topic: String,
        /// Which of the two it is.
        kind: TopicKind,
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
    /// The error for a `kind` named `name` that does not exist.
    pub(crate) fn not_found(kind: TopicKind, name: &str) -> Error {
        match kind {
            TopicKind::Topic => Error::TopicNotFound(name.to_string()),
            TopicKind::Queue => Error::QueueNotFound(name.to_string()),
        }
    }

    /// An [`Error::InvalidOption`] for `option`.
    pub(crate) fn option(option: &str, message: impl Into<String>) -> Error {
        Error::InvalidOption {
            option: option.to_string(),
            message: message.into(),
        }
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

/// What is wrong with a topic, queue or group name ([`Error::InvalidName`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameProblem {
    /// The name is empty.
    Empty,
    /// The name is longer than 249 bytes.
    TooLong,
    /// The name contains a control character.
    ControlCharacter,
    /// The name is one of SELECT's system sources (TOPICS, GROUPS, ...),
    /// in any case.
    Reserved,
}

/// What is wrong with a subscription pattern ([`Error::InvalidPattern`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PatternProblem {
    /// The pattern is empty.
    Empty,
    /// A word between dots is empty (`a..b`).
    EmptyWord,
    /// `*` or `#` is part of a word instead of the whole word (`order.*x`).
    EmbeddedWildcard,
}

/// Why EXPORT or BACKUP cannot write its file ([`Error::OutputFile`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum FileProblem {
    /// The file exists and the statement does not say OVERWRITE.
    Exists,
    /// BACKUP's file exists: a backup never replaces a file.
    BackupExists,
    /// The path is (or resolves to) the database file or one of its
    /// -wal, -shm or -journal files.
    DatabaseFile,
    /// The path names no file (it ends in `..` or is a root).
    NotAFileName,
    /// The system refused to create the file.
    Io(std::io::Error),
}

/// The message of [`Error::WrongKind`]; `statement` picks the advice.
fn wrong_kind(name: &str, is: TopicKind, expected: TopicKind, statement: &str) -> String {
    let (is, expected) = (is.noun(), expected.noun());
    match statement {
        "CONSUME" => {
            format!("'{name}' is a {is}: consume it through a group (CONSUME FROM {name} GROUP g)")
        }
        "SUBSCRIBE" => {
            format!("'{name}' is a {is}: it has its own group; consume it with CONSUME FROM {name}")
        }
        "DROP" => format!(
            "'{name}' is a {is}, not a {expected}: use DROP {}",
            is.to_uppercase()
        ),
        _ => format!("'{name}' is a {is}, not a {expected}"),
    }
}

/// The message of [`Error::PartitionOutOfRange`]; `statement` picks the
/// wording.
fn partition_out_of_range(topic: &str, partition: u32, partitions: u32, statement: &str) -> String {
    match statement {
        "PUBLISH" => format!(
            "partition {partition} does not exist: '{topic}' has {partitions} partition{} (0..{})",
            if partitions == 1 { "" } else { "s" },
            partitions.saturating_sub(1)
        ),
        "REPLAY" => {
            format!("partition {partition} does not exist: '{topic}' has {partitions} partition(s)")
        }
        _ => format!("partition {partition} does not exist in '{topic}'"),
    }
}

/// The message of [`Error::InvalidName`].
fn invalid_name(what: &str, name: &str, problem: NameProblem) -> String {
    match problem {
        NameProblem::Empty => format!("{what} name must not be empty"),
        NameProblem::TooLong => {
            format!("{what} name '{name}' is longer than {MAX_NAME_BYTES} bytes")
        }
        NameProblem::ControlCharacter => {
            format!("{what} name {name:?} contains a control character")
        }
        NameProblem::Reserved => format!(
            "'{name}' is a reserved name ({} is a system source of SELECT): choose another name",
            name.to_ascii_uppercase()
        ),
    }
}

/// The message of [`Error::InvalidPattern`].
fn invalid_pattern(pattern: &str, problem: PatternProblem) -> String {
    match problem {
        PatternProblem::Empty => "a pattern must not be empty".into(),
        PatternProblem::EmptyWord => {
            format!("pattern '{pattern}' has an empty word (two dots in a row?)")
        }
        PatternProblem::EmbeddedWildcard => format!(
            "pattern '{pattern}': '*' and '#' must stand alone between dots (like 'order.*' or 'order.#')"
        ),
    }
}

/// The message of [`Error::NameTaken`]; `statement` says which way the
/// names clash.
fn name_taken(name: &str, statement: &str) -> String {
    match statement {
        "CREATE QUEUE" => format!(
            "a group named '{name}' already exists; a queue's implicit group takes the queue's name"
        ),
        _ => format!(
            "'{name}' is the name of a queue (its implicit group); choose another group name"
        ),
    }
}

/// The message of [`Error::ImplicitGroup`]; `statement` picks the advice.
fn implicit_group(queue: &str, statement: &str) -> String {
    match statement {
        "UNSUBSCRIBE" => {
            format!("'{queue}' is the implicit group of a queue; DROP QUEUE {queue} removes it")
        }
        _ => {
            format!("'{queue}' is the implicit group of queue '{queue}'; choose another group name")
        }
    }
}

/// Why `statement` may not run in a transaction, when the message says so.
fn not_in_transaction_why(statement: &str) -> &'static str {
    match statement {
        "CONSUME ... WAIT" => ": it would hold the write lock while waiting",
        "BACKUP" => ": it copies committed state; COMMIT first",
        "SET CLOCK" | "ADVANCE" => ": the transaction runs on the clock it began with",
        _ => "",
    }
}

/// The message of [`Error::OutputFile`].
fn output_file(path: &Path, problem: &FileProblem) -> String {
    let path = path.display();
    match problem {
        FileProblem::Exists => format!("'{path}' exists: add OVERWRITE to replace it"),
        FileProblem::BackupExists => {
            format!(
                "'{path}' exists: BACKUP never replaces a file; remove it or choose another name"
            )
        }
        FileProblem::DatabaseFile => {
            format!("'{path}' is the database file or one of its own files: choose another file")
        }
        FileProblem::NotAFileName => format!("'{path}' is not a file name"),
        FileProblem::Io(err) => format!("cannot write '{path}': {err}"),
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Messages the public API reaches only in states a test cannot make
    /// (a queue without its implicit group, a file system without WAL):
    /// their text is pinned here, as the shell prints it.
    #[test]
    fn rare_messages_keep_their_text() {
        let cases = [
            (
                Error::NameTaken {
                    name: "jobs".into(),
                    statement: "SUBSCRIBE".into(),
                },
                "'jobs' is the name of a queue (its implicit group); choose another group name",
            ),
            (
                Error::Incomplete {
                    statement: "CONSUME".into(),
                    needs: "a topic, a queue or a group".into(),
                },
                "CONSUME needs a topic, a queue or a group",
            ),
            (
                Error::WalUnavailable {
                    path: "/m/a.db".into(),
                    journal_mode: "delete".into(),
                },
                "could not switch /m/a.db to WAL journal mode (got delete)",
            ),
            (
                Error::WalUnreadable {
                    path: "/m/a.db".into(),
                    cause: "unable to open database file".into(),
                },
                "cannot read /m/a.db read-only: it has a write-ahead log, and SQLite needs \
                 /m/a.db-wal readable and /m/a.db-shm readable or creatable, which here they \
                 are not (unable to open database file); open it read-write once, or read it \
                 where the directory is writable",
            ),
            (
                Error::WrongKind {
                    name: "t".into(),
                    is: TopicKind::Topic,
                    expected: TopicKind::Queue,
                    statement: "ALTER".into(),
                },
                "'t' is a topic, not a queue",
            ),
        ];
        for (e, text) in cases {
            assert_eq!(e.to_string(), text);
        }
    }
}
