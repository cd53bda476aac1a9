//! The SQLite file: opening, pragmas, schema and migrations, online backup,
//! and the files mqlite writes beside it.
//!
//! Invariants kept here:
//! - every write transaction is `BEGIN IMMEDIATE` (see `Database::write`);
//! - offsets and delivery ids come from explicit counters, never rowids;
//! - a file that is not an mqlite database, or is newer than this build, is
//!   refused before anything is written to it.

pub(crate) mod app_sql;
pub(crate) mod backup;
mod durability;
pub(crate) mod files;
pub(crate) mod group_commit;
mod pool;
mod schema;
pub(crate) mod space;
pub(crate) mod tx;
pub(crate) mod watch;

use std::cell::Cell;
use std::ffi::c_int;
use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::hooks::Wal;
use rusqlite::{Connection, OpenFlags, config::DbConfig};

use crate::{Error, Result};
pub use backup::BackupStats;
pub use durability::Durability;
pub(crate) use pool::Pool;

pub(crate) use schema::SCHEMA_VERSION;

/// `PRAGMA application_id` of mqlite files: "MQLT".
pub(crate) const APPLICATION_ID: i64 = 0x4D51_4C54;

/// How long a connection waits for another writer before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// WAL frames (pages) past which a commit is followed by a checkpoint that
/// waits for readers and empties the log (`after_commit`). SQLite's PASSIVE autocheckpoint (at `AUTOCHECKPOINT_FRAMES`)
/// copies frames but cannot rewind the log while readers hold snapshots in
/// it, which readers that read back to back always do: the log grew to
/// 436 MB for a 9 MB database. The WAL file stays under about this many
/// frames plus one transaction's (docs/design.md, "Storage").
pub(crate) const WAL_RESTART_FRAMES: i32 = 4096;

/// SQLite's default autocheckpoint threshold, kept by our WAL hook (which
/// replaces SQLite's own).
const AUTOCHECKPOINT_FRAMES: i32 = 1000;

/// Longest that checkpoint waits (busy handler) for a writer to finish
/// and for readers to finish their current read transaction. mqlite's own
/// reads are short (scans read in pages); a reader holding one snapshot
/// longer delays the restart to a later commit, never the commit itself by
/// more than this.
const WAL_RESTART_WAIT: Duration = Duration::from_secs(2);

thread_local! {
    /// Set by a connection's WAL hook (inside COMMIT, on the committing
    /// thread) when the log is over its limit; taken by `after_commit` on
    /// the same thread. A flag left by a commit that is not followed by
    /// `after_commit` (a migration) makes some later commit of this thread
    /// restart its log once too many: harmless.
    static RESTART_WANTED: Cell<bool> = const { Cell::new(false) };
}

/// Reads what identifies the file, in one statement and so in one read
/// transaction: another process initialising the file meanwhile is seen
/// either not at all or completely (three separate reads could see its
/// tables but not yet its application id).
const IDENTIFY: &str = "SELECT (SELECT application_id FROM pragma_application_id),
                               (SELECT user_version FROM pragma_user_version),
                               (SELECT count(*) FROM sqlite_schema)";

/// What `IDENTIFY` read: application id, schema version, schema objects.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Identity {
    app_id: i64,
    version: i64,
    tables: i64,
}

/// Opens (and, unless read-only, creates and migrates) the database file.
///
/// Several processes may open (and create) one file at once: an open that
/// meets a lock (SQLite returns BUSY without waiting in a few cases, e.g.
/// switching a new file to WAL) starts over until `BUSY_TIMEOUT`.
pub(crate) fn open(path: &Path, durability: Durability, read_only: bool) -> Result<Connection> {
    let existing = precheck(path, read_only)?;
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        let attempt = if read_only {
            open_read_only(path, existing)
        } else {
            open_read_write(path, durability, existing)
        };
        match attempt {
            Err(e) if tx::is_busy(&e) && started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(50));
            }
            r => return r,
        }
    }
}

fn open_read_write(path: &Path, durability: Durability, existing: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let mut conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    // Identify the file before changing anything in it.
    let id = identify(&conn, path)?;
    check_identity(path, existing, id)?;

    // mmap off: memory-mapped I/O turns a transient WAL race into corruption.
    conn.execute_batch(
        "PRAGMA mmap_size = 0;
         PRAGMA foreign_keys = OFF;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA cache_size = -16384;
         PRAGMA temp_store = MEMORY;",
    )?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::WalUnavailable {
            path: path.to_path_buf(),
            journal_mode: mode,
        });
    }
    bound_wal(&mut conn)?;
    set_durability(&conn, durability)?;
    schema::migrate(&conn, id.version, path)?;
    conn.execute_batch(&schema::temp_views(SCHEMA_VERSION))?;
    Ok(conn)
}

/// Settings every connection gets.
fn configure(conn: &Connection) -> Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(64);
    // Plans must not depend on bound values. Without this, SQLite 3.54
    // re-prepares a cached statement on every run whose `LIMIT ?` or
    // `group_id = ?` (bound to 0 or 1) gets a new binding: 18% of the
    // instructions of a consume + ack round (callgrind).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(())
}

fn identify(conn: &Connection, path: &Path) -> Result<Identity> {
    conn.query_row(IDENTIFY, [], |r| {
        Ok(Identity {
            app_id: r.get(0)?,
            version: r.get(1)?,
            tables: r.get(2)?,
        })
    })
    .map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            Error::NotADatabase {
                path: path.to_path_buf(),
                reason: format!("it is damaged or not a database ({e})"),
            }
        }
        _ => Error::Sqlite(e),
    })
}

/// Refuses another application's file and a newer mqlite's. `existing`:
/// the file had content before this open (an empty one is ours to fill).
fn check_identity(path: &Path, existing: bool, id: Identity) -> Result<()> {
    if existing && (id.tables > 0 || id.app_id != 0) && id.app_id != APPLICATION_ID {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
            reason: "it is an SQLite database of another application".into(),
        });
    }
    if id.version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: id.version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(())
}

/// Replaces SQLite's autocheckpoint with a WAL hook that does the same
/// PASSIVE checkpoint and also asks for a truncating one once the log is over
/// `WAL_RESTART_FRAMES` (see `after_commit`). The hook costs a closure call
/// per commit and reads the frame count SQLite hands it: no I/O.
fn bound_wal(conn: &mut Connection) -> Result<()> {
    // Where the next truncating checkpoint is asked for. A request that did not rewind
    // the log (a reader held a snapshot past the wait) is asked again
    // `retry_after` frames later, a distance that doubles each time, so a
    // reader that keeps a snapshot for long costs a few bounded waits, not
    // one per commit.
    let mut restart_at = WAL_RESTART_FRAMES;
    let mut retry_after = WAL_RESTART_FRAMES / 4;
    conn.wal_hook(Some(move |wal: &mut Wal, frames: c_int| {
        if frames >= AUTOCHECKPOINT_FRAMES {
            // As SQLite's autocheckpoint: its errors are not the commit's.
            let _ = wal.checkpoint();
        }
        if frames < WAL_RESTART_FRAMES {
            restart_at = WAL_RESTART_FRAMES;
            retry_after = WAL_RESTART_FRAMES / 4;
        } else if frames >= restart_at {
            restart_at = frames.saturating_add(retry_after);
            // Doubling, but never past WAL_RESTART_FRAMES: with readers
            // that always overlap, the log still gets a try every 16 MB.
            retry_after = retry_after.saturating_mul(2).min(WAL_RESTART_FRAMES);
            RESTART_WANTED.set(true);
        }
        Ok(())
    }))?;
    Ok(())
}

/// Called after every successful COMMIT of a read-write connection: if the
/// commit left the WAL over its limit, runs a TRUNCATE checkpoint, which
/// holds the write lock, copies the log into the database, waits (at most
/// `WAL_RESTART_WAIT`) until no reader still reads from the log, and then
/// empties the log file itself. (RESTART would leave the rewind to the next
/// writer, which skips it when a reader began meanwhile: measured, the log
/// then grew on by another `retry_after`.) New readers meanwhile read the
/// database file. Failure only leaves the log as it was; the commit has
/// succeeded either way.
pub(crate) fn after_commit(conn: &Connection) {
    if !RESTART_WANTED.replace(false) {
        return;
    }
    truncate_wal(conn);
}

/// Checkpoints the whole WAL into the file and empties it, waiting up to
/// `WAL_RESTART_WAIT` for readers. Best effort: a reader that stays longer
/// leaves the WAL for a later checkpoint.
pub(crate) fn truncate_wal(conn: &Connection) {
    let start = Instant::now();
    if conn.busy_timeout(WAL_RESTART_WAIT).is_ok() {
        // SQLite answers BUSY at once, without the busy handler, while
        // another connection runs a checkpoint (with several writing
        // processes, their PASSIVE ones are frequent): try again until
        // the wait is used up.
        loop {
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get(0))
                .unwrap_or(1);
            if busy == 0 || start.elapsed() >= WAL_RESTART_WAIT {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let _ = conn.busy_timeout(BUSY_TIMEOUT);
}

/// Read-only: the file is opened read-write at the OS level (SQLite falls
/// back to a read-only descriptor where only reading is allowed) and every
/// write is refused with `query_only`. A connection opened
/// SQLITE_OPEN_READ_ONLY would leave -wal/-shm files behind on a cleanly
/// closed database; this one removes them when it closes if they are empty
/// (`release_read_only`). It never checkpoints: SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE.
/// Where SQLite cannot read through the WAL (no -wal, and it may not create
/// one), the file is read as immutable; a -wal it cannot use is an error
/// that says what is missing.
fn open_read_only(path: &Path, existing: bool) -> Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    configure(&conn)?;
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, true)?;
    let (conn, id) = match identify(&conn, path) {
        Ok(id) => (conn, id),
        Err(Error::Sqlite(e)) if cannot_use_wal(&e) => {
            drop(conn);
            let wal = sibling(path, "-wal");
            if wal.exists() {
                return Err(Error::WalUnreadable {
                    path: path.to_path_buf(),
                    cause: e.to_string(),
                });
            }
            let conn = open_immutable(path)?;
            let id = identify(&conn, path)?;
            (conn, id)
        }
        Err(e) => return Err(e),
    };
    check_identity(path, existing, id)?;
    if id.version == 0 {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
            reason: "it is empty".into(),
        });
    }
    // temp_store first: changing it drops temporary views.
    conn.execute_batch("PRAGMA temp_store = MEMORY; PRAGMA mmap_size = 0;")?;
    conn.execute_batch(&schema::temp_views(id.version))?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// SQLite could not open or create what reading through the WAL needs.
fn cannot_use_wal(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(rusqlite::ErrorCode::ReadOnly | rusqlite::ErrorCode::CannotOpen)
    )
}

/// Opens a database that has no -wal as immutable: SQLite reads the main
/// file only, takes no locks and creates nothing. Used only where no WAL
/// can be made (so, at open, no writer had the file open).
fn open_immutable(path: &Path) -> Result<Connection> {
    let mut uri = String::from("file:");
    for &b in path.as_os_str().as_bytes() {
        if b.is_ascii_alphanumeric() || b"/._-~".contains(&b) {
            uri.push(char::from(b));
        } else {
            uri.push_str(&format!("%{b:02X}"));
        }
    }
    uri.push_str("?immutable=1");
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_URI
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(uri, flags)?;
    configure(&conn)?;
    Ok(conn)
}

/// Before a read-only connection closes: lets SQLite's close checkpoint and
/// remove -wal/-shm only when the WAL is empty, i.e. there is nothing to
/// copy into the database and closing writes nothing to it (the files were
/// made by this open on a cleanly closed database). A WAL with content (a
/// crashed or running writer's) stays as it is.
pub(crate) fn release_read_only(conn: &Connection, wal: &Path) {
    let empty = std::fs::metadata(wal).is_ok_and(|m| m.len() == 0);
    let _ = conn.set_db_config(DbConfig::SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, !empty);
}

fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    s.into()
}

/// Applies a durability level to a connection.
pub(crate) fn set_durability(conn: &Connection, durability: Durability) -> Result<()> {
    let sync = match durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
        Durability::Off => "OFF",
    };
    conn.execute_batch(&format!("PRAGMA synchronous = {sync};"))?;
    Ok(())
}

/// Checks the file before SQLite opens it. Returns whether it already existed
/// with content. Creates a missing file with mode 0600 (unless read-only).
fn precheck(path: &Path, read_only: bool) -> Result<bool> {
    match std::fs::File::open(path) {
        Ok(mut f) => {
            let mut header = [0u8; 16];
            let mut n = 0;
            while n < header.len() {
                match f.read(&mut header[n..])? {
                    0 => break,
                    k => n += k,
                }
            }
            if n == 0 {
                return Ok(false);
            }
            if n < header.len() || &header != SQLITE_MAGIC {
                return Err(Error::NotADatabase {
                    path: path.to_path_buf(),
                    reason: "it is not an SQLite file".into(),
                });
            }
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if read_only {
                return Err(Error::Io(std::io::Error::new(
                    e.kind(),
                    format!(
                        "{} does not exist (read-only never creates a file)",
                        path.display()
                    ),
                )));
            }
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .or_else(|e| {
                    // Someone else created it between our two calls: fine.
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        OpenOptions::new().read(true).open(path)
                    } else {
                        Err(e)
                    }
                })?;
            Ok(false)
        }
        Err(e) => Err(Error::Io(e)),
    }
}

/// CHECK: SQLite's integrity check; every row but "ok" is a problem.
pub(crate) fn integrity(c: &Connection, problems: &mut Vec<String>) -> rusqlite::Result<()> {
    let mut st = c.prepare("PRAGMA integrity_check")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(())
}

/// The linked SQLite library version, e.g. "3.54.1".
pub fn sqlite_version() -> &'static str {
    rusqlite::version()
}

#[cfg(test)]
mod tests {
    use rusqlite::StatementStatus;

    use super::*;

    /// A cached statement with `LIMIT ?` and a bound 0/1 id must run again
    /// with new bindings without being compiled again (see `open`).
    #[test]
    fn new_bindings_do_not_reprepare_cached_statements() {
        let dir = tempfile::tempdir().unwrap();
        let conn = open(&dir.path().join("t.db"), Durability::Full, false).unwrap();
        let sql =
            "SELECT offset FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3
                   ORDER BY offset LIMIT ?4";
        for (topic, limit) in [(1, 10), (0, 20), (1, 30), (2, 1)] {
            let mut st = conn.prepare_cached(sql).unwrap();
            let n = st
                .query_map(rusqlite::params![topic, 0, 0, limit], |_| Ok(()))
                .unwrap()
                .count();
            assert_eq!(n, 0);
        }
        let st = conn.prepare_cached(sql).unwrap();
        assert_eq!(st.get_status(StatementStatus::RePrepare), 0);
        assert_eq!(st.get_status(StatementStatus::Run), 4);
    }
}
