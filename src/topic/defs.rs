//! Topic definitions a write connection remembers between transactions.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension};

use super::{TopicInfo, get};
use crate::{Error, Result};

/// Counts changes to topic definitions: CREATE, ALTER and DROP bump it in
/// their own transaction, so a `TopicDefs` in any process sees them.
/// A file without the row (none was ever changed by a build that counts)
/// reads as 0.
pub(crate) fn definitions_changed(conn: &Connection) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mq_meta (name, value) VALUES ('topics_version', 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
    )?
    .execute([])?;
    Ok(())
}

fn definitions_version(conn: &Connection) -> Result<i64> {
    let mut st = conn.prepare_cached("SELECT value FROM mq_meta WHERE name = 'topics_version'")?;
    Ok(st.query_row([], |r| r.get(0)).optional()?.unwrap_or(0))
}

/// Topic definitions a write connection remembers between transactions, so
/// a publish does not look its topic up every time (an 11-column lookup by
/// name was about 8,400 of a single publish's 57,000 instructions,
/// callgrind). The first lookup in each write transaction compares
/// `definitions_version` with the one the entries were read at and forgets
/// them all if it moved; the transaction holds the write lock, so nothing
/// changes under it.
///
/// The check itself (a query, about 2,500 instructions) is skipped when the
/// file has not changed since this connection's last grouped commit that
/// checked: SQLite's data version (`SQLITE_FCNTL_DATA_VERSION`) moves with
/// every commit of this connection and, at the next `BEGIN`, with every
/// commit another connection made in between.
#[derive(Debug, Default)]
pub(crate) struct TopicDefs {
    version: i64,
    checked: bool,
    /// The data version right after the last commit of a transaction that
    /// checked `version`.
    synced: Option<u32>,
    by_name: HashMap<String, TopicInfo>,
}

/// How often the main database file changed, by this connection or another (`SQLITE_FCNTL_DATA_VERSION`; see `TopicDefs`).
fn file_version(conn: &Connection) -> Option<u32> {
    let mut v = 0;
    conn.file_control(
        Some(rusqlite::MAIN_DB),
        rusqlite::FileControl::DataVersion(&mut v),
    )
    .ok()?;
    Some(v)
}

impl TopicDefs {
    /// A write transaction begins: the next lookup checks the version.
    pub(crate) fn begin(&mut self) {
        self.checked = false;
    }

    /// The write transaction committed. If it checked the version, nothing
    /// can have changed the definitions until the data version moves.
    pub(crate) fn committed(&mut self, conn: &Connection) {
        self.synced = if self.checked {
            file_version(conn)
        } else {
            None
        };
    }

    /// Forgets everything (after a rollback, in case entries were read
    /// from changes that were then undone).
    pub(crate) fn clear(&mut self) {
        self.by_name.clear();
        self.checked = false;
        self.synced = None;
    }

    /// As `get`, through the cache. Call only inside a write transaction
    /// that began with `begin`.
    pub(crate) fn get(&mut self, conn: &Connection, name: &str) -> Result<&TopicInfo> {
        if !self.checked {
            if self.synced.is_none() || file_version(conn) != self.synced {
                let version = definitions_version(conn)?;
                if version != self.version {
                    self.by_name.clear();
                    self.version = version;
                }
            }
            self.checked = true;
        }
        if !self.by_name.contains_key(name) {
            let t = get(conn, name)?;
            self.by_name.insert(name.to_string(), t);
        }
        self.by_name
            .get(name)
            .ok_or_else(|| Error::TopicNotFound(name.to_string()))
    }
}
