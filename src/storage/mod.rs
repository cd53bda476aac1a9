//! The SQLite file: opening, pragmas, schema and migrations.
//!
//! Invariants kept here:
//! - every write transaction is `BEGIN IMMEDIATE` (see `Database::write`);
//! - offsets and delivery ids come from explicit counters, never rowids;
//! - a file that is not an mqlite database, or is newer than this build, is
//!   refused before anything is written to it.

mod schema;

use std::fs::OpenOptions;
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, config::DbConfig};

use crate::db::Durability;
use crate::{Error, Result};

pub(crate) use schema::SCHEMA_VERSION;

/// `PRAGMA application_id` of mqlite files: "MQLT".
pub(crate) const APPLICATION_ID: i64 = 0x4D51_4C54;

/// How long a connection waits for another writer before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

/// Opens (and, unless read-only, creates and migrates) the database file.
pub(crate) fn open(path: &Path, durability: Durability, read_only: bool) -> Result<Connection> {
    let existing = precheck(path, read_only)?;
    // Read-only opens the file read-write at the OS level but refuses every
    // write with `query_only`: a connection opened SQLITE_OPEN_READ_ONLY on a
    // WAL file creates -wal/-shm and cannot remove them when it closes. The
    // file is never created here (no SQLITE_OPEN_CREATE; precheck refused a
    // missing file).
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(64);
    // Plans must not depend on bound values. Without this, SQLite 3.54
    // re-prepares a cached statement on every run whose `LIMIT ?` or
    // `group_id = ?` (bound to 0 or 1) gets a new binding: 18% of the
    // instructions of a consume + ack round (callgrind).
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;

    // Identify the file before changing anything in it.
    let identify = || -> rusqlite::Result<(i64, i64, i64)> {
        Ok((
            conn.query_row("PRAGMA application_id", [], |r| r.get(0))?,
            conn.query_row("PRAGMA user_version", [], |r| r.get(0))?,
            conn.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get(0))?,
        ))
    };
    let (app_id, version, tables) = identify().map_err(|e| match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt) => {
            Error::NotADatabase {
                path: path.to_path_buf(),
                reason: format!("it is damaged or not a database ({e})"),
            }
        }
        _ => Error::Sqlite(e),
    })?;
    if existing && (tables > 0 || app_id != 0) && app_id != APPLICATION_ID {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
            reason: "it is an SQLite database of another application".into(),
        });
    }
    if version > SCHEMA_VERSION {
        return Err(Error::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if read_only {
        if version == 0 {
            return Err(Error::NotADatabase {
                path: path.to_path_buf(),
                reason: "it is empty".into(),
            });
        }
        conn.execute_batch(schema::PARTITION_STATE_VIEW)?;
        conn.execute_batch("PRAGMA query_only = ON; PRAGMA mmap_size = 0;")?;
        return Ok(conn);
    }

    // mmap off: memory-mapped I/O turns a transient WAL race into corruption.
    conn.execute_batch(
        "PRAGMA mmap_size = 0;
         PRAGMA foreign_keys = OFF;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA wal_autocheckpoint = 1000;
         PRAGMA cache_size = -16384;
         PRAGMA temp_store = MEMORY;",
    )?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(Error::invalid(format!(
            "could not switch {} to WAL journal mode (got {mode})",
            path.display()
        )));
    }
    set_durability(&conn, durability)?;
    schema::migrate(&conn, version)?;
    conn.execute_batch(schema::PARTITION_STATE_VIEW)?;
    Ok(conn)
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
