//! The database handle. (stub signatures; engine being written)

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crate::lang::ast::Statement;
use crate::{Clock, Error, Result, ResultSet, SystemClock};

/// How hard a commit is pushed to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// fsync on every commit (`synchronous=FULL`): a returned publish/ack survives power loss.
    #[default]
    Full,
    /// Survives a process crash; the last commits may be lost on power loss.
    Normal,
    /// No fsync: for tests and bulk loads.
    Off,
}

/// Options for opening a database.
#[derive(Debug)]
pub struct DatabaseBuilder {
    path: PathBuf,
    durability: Durability,
    read_only: bool,
    clock: Arc<dyn Clock>,
}

impl DatabaseBuilder {
    /// Sets the durability.
    pub fn durability(mut self, d: Durability) -> Self {
        self.durability = d;
        self
    }
    /// Opens read-only: never writes, never creates the file.
    pub fn read_only(mut self, ro: bool) -> Self {
        self.read_only = ro;
        self
    }
    /// Uses this clock for timestamps, leases and delays.
    pub fn clock(mut self, clock: impl Clock + 'static) -> Self {
        self.clock = Arc::new(clock);
        self
    }
    /// Opens (creating if missing and not read-only).
    pub fn open(self) -> Result<Database> {
        let _ = (&self.path, self.durability, self.read_only, &self.clock);
        Err(Error::NotSupported("open".into()))
    }
}

/// An open mqlite database. Cheap to clone; `Send + Sync`.
#[derive(Debug, Clone)]
pub struct Database {
    _inner: Arc<()>,
}

impl Database {
    /// Opens or creates the database at `path` with default options.
    pub fn open(path: impl AsRef<Path>) -> Result<Database> {
        Database::builder(path).open()
    }
    /// A builder for options.
    pub fn builder(path: impl AsRef<Path>) -> DatabaseBuilder {
        DatabaseBuilder {
            path: path.as_ref().to_path_buf(),
            durability: Durability::Full,
            read_only: false,
            clock: Arc::new(SystemClock),
        }
    }
    /// Runs statements of the command language; returns the last statement's result.
    pub fn execute(&self, text: &str) -> Result<ResultSet> {
        let _ = text;
        Err(Error::NotSupported("execute".into()))
    }
    /// A session: runs statements one by one and keeps an open transaction between them.
    pub fn session(&self) -> Session {
        Session { db: self.clone(), interrupt: Arc::new(AtomicBool::new(false)) }
    }
    /// Names of all topics and queues (for completion).
    pub fn topic_names(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Names of all groups (for completion).
    pub fn group_names(&self) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
}

/// Runs statements of the language against a database, one after another.
#[derive(Debug)]
pub struct Session {
    db: Database,
    interrupt: Arc<AtomicBool>,
}

impl Session {
    /// A flag that, set to true, stops a running TAIL or CONSUME ... WAIT (which then return what they have).
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }
    /// Runs one statement. `out` is called with each result; TAIL calls it once per batch of new rows.
    pub fn run(&mut self, stmt: &Statement, out: &mut dyn FnMut(ResultSet) -> Result<()>) -> Result<()> {
        let _ = (stmt, out, &self.db);
        Err(Error::NotSupported("run".into()))
    }
    /// Runs one statement and returns its whole result.
    pub fn execute_statement(&mut self, stmt: &Statement) -> Result<ResultSet> {
        let mut result = ResultSet::empty();
        self.run(stmt, &mut |rs| {
            if result.columns.is_empty() {
                result = rs;
            } else {
                result.rows.extend(rs.rows);
            }
            Ok(())
        })?;
        Ok(result)
    }
}
