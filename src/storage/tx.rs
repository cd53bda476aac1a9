//! Transaction primitives every write path uses, and the context a write
//! runs in: its connection, its time, and what it asks for after commit.

use std::cell::Cell;
use std::ops::Deref;

use rusqlite::Connection;

use crate::{Error, Result};

/// What a write asks to happen once its transaction has committed. Domain
/// code records it on the [`Ctx`]; the write path acts on it after the
/// commit (a `VACUUM` cannot run inside a transaction, and waiters must not
/// look before the commit is visible).
#[derive(Debug, Default)]
pub(crate) struct Effects {
    /// A partition was drained while the file had free pages: give them back.
    shrink: Cell<bool>,
    /// Something became deliverable (a publish, a NACK, a REPLAY, a
    /// requeued dead letter), or when something becomes due changed (a
    /// lease was granted): wake waiting consumers, here and in other
    /// processes.
    deliverable: Cell<bool>,
}

impl Effects {
    /// Whether a shrink was asked for; clears the request.
    pub(crate) fn take_shrink(&self) -> bool {
        self.shrink.take()
    }

    /// Whether something became deliverable; clears the flag.
    pub(crate) fn take_deliverable(&self) -> bool {
        self.deliverable.take()
    }

    /// Forgets everything (the transaction rolled back).
    pub(crate) fn clear(&self) {
        self.shrink.set(false);
        self.deliverable.set(false);
    }
}

/// A statement in progress inside a transaction: the connection (the
/// context dereferences to it), the time it runs at, and where it records
/// its [`Effects`].
pub(crate) struct Ctx<'a> {
    conn: &'a Connection,
    /// Now, by the database's clock (ms since the epoch).
    pub(crate) now: i64,
    effects: &'a Effects,
}

impl<'a> Ctx<'a> {
    pub(crate) fn new(conn: &'a Connection, now: i64, effects: &'a Effects) -> Ctx<'a> {
        Ctx { conn, now, effects }
    }

    /// Asks for the file's free pages to be given back after the commit.
    pub(crate) fn want_shrink(&self) {
        self.effects.shrink.set(true);
    }

    /// Records that waiting consumers should look again after the commit.
    pub(crate) fn made_deliverable(&self) {
        self.effects.deliverable.set(true);
    }

    /// Records that when something becomes due changed (a lease was
    /// granted, whose expiry a waiter elsewhere must now wake for): waiting
    /// consumers recompute their timers after the commit.
    pub(crate) fn due_changed(&self) {
        self.effects.deliverable.set(true);
    }
}

impl Deref for Ctx<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

/// Runs a statement that returns no rows through the statement cache
/// (transaction control and pragmas run on every write: parsing them each
/// time shows in profiles).
pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Rolls back whatever transaction is open; errors only mean there was none.
pub(crate) fn rollback(conn: &Connection) {
    if !conn.is_autocommit() {
        let _ = run_cached(conn, "ROLLBACK");
    }
}

/// `BEGIN IMMEDIATE`: takes the write lock, waiting for other writers (the
/// busy timeout, then a few tries more for long writers).
pub(crate) fn begin_immediate(conn: &Connection) -> Result<()> {
    // A transaction left open (a panic in a writer) must not swallow this one.
    rollback(conn);
    let mut tries = 0;
    loop {
        match run_cached(conn, "BEGIN IMMEDIATE") {
            Ok(()) => return Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(
                    e.code,
                    rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked
                ) && tries < 3 =>
            {
                tries += 1;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Runs `f` inside `SAVEPOINT name`: on error, everything `f` did is undone
/// and the enclosing transaction goes on.
pub(crate) fn savepoint<T>(
    conn: &Connection,
    name: &str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    run_cached(conn, &format!("SAVEPOINT {name}"))?;
    match f() {
        Ok(v) => {
            run_cached(conn, &format!("RELEASE {name}"))?;
            Ok(v)
        }
        Err(e) if conn.is_autocommit() => Err(e),
        Err(e) => {
            run_cached(conn, &format!("ROLLBACK TO {name}"))?;
            run_cached(conn, &format!("RELEASE {name}"))?;
            Err(e)
        }
    }
}

/// Takes the next value of a named counter in `mq_meta` (topic, group and
/// delivery ids: never rowids).
pub(crate) fn next_counter(conn: &Connection, name: &str) -> Result<i64> {
    let mut st = conn.prepare_cached(
        "UPDATE mq_meta SET value = value + 1 WHERE name = ?1 RETURNING value - 1",
    )?;
    Ok(st.query_row([name], |r| r.get(0))?)
}

/// True for SQLite's "another connection holds the lock" (BUSY or LOCKED).
pub(crate) fn is_busy(e: &Error) -> bool {
    matches!(e, Error::Sqlite(e) if matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    ))
}
