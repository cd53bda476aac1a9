//! The database handle: opening a file, and the typed API every caller —
//! a Rust program, the command language, the shell — goes through.
//!
//! Parts: `write` (the write paths: one transaction per call, group commit,
//! leases without their own fsync, and what a commit's effects ask for),
//! `wait` (CONSUME that blocks until something is deliverable), `api` (the
//! typed operations), `backup` (an online copy of the file) and `disk` (the
//! space publishing leaves free).

pub(crate) mod api;
mod backup;
mod disk;
mod wait;
mod write;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::thread::ThreadId;
use std::time::Instant;

use rusqlite::Connection;

use crate::delivery::ids::IdBlock;
use crate::storage::group_commit::GroupCommit;
use crate::storage::watch::{self, Watch};
use crate::storage::{self, Durability, Pool};
use crate::sync::lock;
use crate::topic::TopicDefs;
use crate::{Clock, Result, SystemClock, publish};

pub use self::api::{GroupStats, TopicSummary};
pub(crate) use self::api::{group_stats, topic_summaries};
pub use crate::delivery::MAX_CONSUME;

/// Space on the file's disk that publishing leaves free by default: 16 MiB.
pub const DEFAULT_DISK_RESERVE: u64 = 16 << 20;

/// Options for opening a database.
#[derive(Debug)]
pub struct DatabaseBuilder {
    path: PathBuf,
    durability: Durability,
    read_only: bool,
    clock: Arc<dyn Clock>,
    max_payload: usize,
    disk_reserve: u64,
}

impl DatabaseBuilder {
    /// How much free space on the file's disk publishing leaves alone
    /// (default [`DEFAULT_DISK_RESERVE`], at most a quarter of the disk's
    /// size; 0 turns the check off). A publish that finds less free (the
    /// file's own free pages count) is refused with `DiskFull`, so that
    /// PURGE, DROP, ACK and the VACUUM that gives space back can still run
    /// on a disk that messages filled.
    pub fn disk_reserve(mut self, bytes: u64) -> Self {
        self.disk_reserve = bytes;
        self
    }
    /// Sets the durability (default full).
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
    /// The largest payload accepted, in bytes (default 1 MB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }
    /// Opens the database, creating and initialising the file if missing (unless read-only).
    ///
    /// # Errors
    /// `NotADatabase` for a file that is not an mqlite database (it is left
    /// unchanged), `NewerSchema` for a file from a newer mqlite, `Io`/`Sqlite`
    /// when the file cannot be opened.
    pub fn open(self) -> Result<Database> {
        let conn = storage::open(&self.path, self.durability, self.read_only)?;
        // The absolute name SQLite resolved, so a later change of the
        // working directory cannot point the fsync at another file.
        let file = conn
            .path()
            .map_or_else(|| self.path.clone().into_os_string(), Into::into);
        let mut wal = file.clone();
        wal.push("-wal");
        let dir = watch::directory_of(Path::new(&file));
        Ok(Database {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                wal: wal.into(),
                dir,
                deferred_syncs: AtomicU64::new(0),
                pool: Pool::new(self.path.clone(), self.durability),
                tx_threads: Mutex::new(Vec::new()),
                open_transactions: AtomicUsize::new(0),
                path: self.path,
                clock: self.clock,
                read_only: self.read_only,
                durability: self.durability,
                max_payload: self.max_payload,
                disk_reserve: self.disk_reserve,
                disk_ok_until: AtomicU64::new(0),
                opened: Instant::now(),
                clock_checked: Mutex::new(None),
                notify: Arc::default(),
                watch: OnceLock::new(),
                ids: Mutex::new(IdBlock::default()),
                group_commit: GroupCommit::default(),
                topics: Mutex::default(),
            }),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.read_only {
            let conn = self
                .conn
                .get_mut()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            storage::release_read_only(conn, &self.wal);
        }
    }
}

/// Wakes consumers of this handle waiting in CONSUME ... WAIT: a count of
/// wake-ups and a condition variable to sleep on.
#[derive(Default)]
struct Notify {
    seq: Mutex<u64>,
    cv: Condvar,
}

impl Notify {
    fn bump(&self) {
        let mut seq = lock(&self.seq);
        *seq += 1;
        self.cv.notify_all();
    }
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The write-ahead log, fsynced by `Database::sync_wal`.
    wal: PathBuf,
    /// The directory holding the file: opening it is the wake-up signal
    /// (`storage::watch`).
    dir: PathBuf,
    /// Calls of `sync_wal`.
    deferred_syncs: AtomicU64,
    clock: Arc<dyn Clock>,
    read_only: bool,
    durability: Durability,
    max_payload: usize,
    /// Bytes of free disk space that publishing leaves alone.
    disk_reserve: u64,
    /// When the clock was last compared with the kernel's.
    clock_checked: Mutex<Option<Instant>>,
    /// Until when (ns after `opened`) free disk space need not be read
    /// again: the last read saw plenty. 0: read it.
    disk_ok_until: AtomicU64,
    /// When this handle was opened: the origin of `disk_ok_until`.
    opened: Instant,
    notify: Arc<Notify>,
    /// The watch of the file's directory that turns other processes'
    /// signals into wake-ups; started by the first CONSUME ... WAIT (None
    /// inside: the system offers none, waiters poll).
    watch: OnceLock<Option<Watch>>,
    /// Delivery ids reserved for this handle.
    ids: Mutex<IdBlock>,
    /// Connections for explicit transactions.
    pool: Pool,
    /// The threads that opened the explicit transactions now holding the
    /// write lock, one entry per transaction (see `refuse_self_wait`).
    tx_threads: Mutex<Vec<ThreadId>>,
    /// `tx_threads.len()`, read without the lock.
    open_transactions: AtomicUsize,
    /// Concurrent publishers share commits.
    group_commit: GroupCommit,
    /// Topic definitions for grouped publishes; locked only by a
    /// group-commit leader, which holds `conn`.
    topics: Mutex<TopicDefs>,
}

/// An open mqlite database. Cheap to clone (clones share one connection); `Send + Sync`.
///
/// ```
/// use mqlite::{Database, Message, ConsumeRequest};
/// let dir = tempfile::tempdir()?;
/// let db = Database::open(dir.path().join("shop.db"))?;
/// db.execute("CREATE QUEUE jobs")?;
/// db.publish("jobs", Message::new(r#"{"job": 1}"#))?;
/// let got = db.consume(&ConsumeRequest::queue("jobs"))?;
/// assert_eq!(got[0].payload_str(), r#"{"job": 1}"#);
/// db.ack(&[got[0].id])?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("path", &self.inner.path)
            .field("read_only", &self.inner.read_only)
            .field("durability", &self.inner.durability)
            .finish()
    }
}

/// Counters of the group-commit write path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteStats {
    /// Transactions committed for grouped writes.
    pub commits: u64,
    /// Grouped writes (each `publish`/`publish_batch`/`ack` call is one).
    pub writes: u64,
    /// Commits of ACK-only batches whose fsync ran after the connection was
    /// released (durability full only; see docs/design.md).
    pub deferred_syncs: u64,
}

impl Database {
    /// Opens or creates the database at `path` with default options.
    ///
    /// # Errors
    /// As [`DatabaseBuilder::open`].
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
            max_payload: publish::DEFAULT_MAX_PAYLOAD,
            disk_reserve: DEFAULT_DISK_RESERVE,
        }
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// True when opened read-only.
    pub fn is_read_only(&self) -> bool {
        self.inner.read_only
    }

    /// Now, by the database's clock (ms since the epoch).
    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// True when this handle's clock stands for the machine's (see
    /// [`Clock::is_wall_clock`]).
    pub(crate) fn has_wall_clock(&self) -> bool {
        self.inner.clock.is_wall_clock()
    }

    /// Another handle on the same file, opened with this handle's options
    /// (durability, read-only, payload limit, disk reserve) and `clock`.
    /// It has its own connections, as another process would: its writes
    /// are judged by `clock`, and a publish's timestamp still never goes
    /// back within a partition (see docs/design.md, "Clocks").
    ///
    /// # Errors
    /// As [`DatabaseBuilder::open`].
    pub fn with_clock(&self, clock: impl Clock + 'static) -> Result<Database> {
        let i = &self.inner;
        Database::builder(&i.path)
            .durability(i.durability)
            .read_only(i.read_only)
            .max_payload(i.max_payload)
            .disk_reserve(i.disk_reserve)
            .clock(clock)
            .open()
    }

    /// How many grouped writes (publishes, ACKs) this handle made, and in
    /// how many commits: `writes / commits` is the group-commit batch size.
    pub fn write_stats(&self) -> WriteStats {
        use std::sync::atomic::Ordering::Relaxed;
        WriteStats {
            commits: self.inner.group_commit.batches.load(Relaxed),
            writes: self.inner.group_commit.writes.load(Relaxed),
            deferred_syncs: self.inner.deferred_syncs.load(Relaxed),
        }
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    pub(crate) fn ids(&self) -> &Mutex<IdBlock> {
        &self.inner.ids
    }

    pub(crate) fn pool(&self) -> &Pool {
        &self.inner.pool
    }

    /// Wakes this handle's consumers waiting in CONSUME ... WAIT.
    pub(crate) fn wake_waiters(&self) {
        self.inner.notify.bump();
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::storage::app_sql::TxConn;
    use crate::{ConsumeRequest, Error, Message};

    /// A write that cannot get the lock within the busy timeout began
    /// nothing: `LockTimeout` on every write path, never `CommitAmbiguous`.
    /// Here, not in `tests/`, because the test shortens the 10 s timeout on
    /// the handle's connections, which the public API cannot.
    #[test]
    fn a_write_that_never_got_the_lock_is_a_lock_timeout() {
        let short = Duration::from_millis(20);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("locked.db");
        let db = Database::builder(&path)
            .durability(Durability::Off)
            .open()
            .unwrap();
        db.execute("CREATE QUEUE t").unwrap();
        db.reserve_ids().unwrap();
        lock(&db.inner.conn).busy_timeout(short).unwrap();
        let spare = storage::open(&path, Durability::Off, false).unwrap();
        spare.busy_timeout(short).unwrap();
        db.pool().put_back(TxConn::new(spare).unwrap());

        // Another writer: a transaction of another handle (as another process's).
        let other = Database::open(&path).unwrap();
        let holder = other.transaction().unwrap();

        let timed_out = |r: Result<()>, what: &str| match r {
            Err(Error::LockTimeout { statement }) => assert_eq!(statement, what),
            other => panic!("{what}: expected LockTimeout, got {other:?}"),
        };
        // Group commit, one writer and several sharing a batch.
        timed_out(db.publish("t", Message::new("x")).map(|_| ()), "PUBLISH");
        timed_out(db.ack(&[1]), "ACK");
        let writers: Vec<_> = (0..4)
            .map(|_| {
                let db = db.clone();
                std::thread::spawn(move || db.publish("t", Message::new("y")).map(|_| ()))
            })
            .collect();
        for w in writers {
            timed_out(w.join().unwrap(), "PUBLISH");
        }
        timed_out(db.execute("CREATE QUEUE u").map(|_| ()), "CREATE");
        timed_out(
            db.consume(&ConsumeRequest::queue("t")).map(|_| ()),
            "CONSUME",
        );
        timed_out(db.transaction().map(|_| ()), "BEGIN");
        let e = db.publish("t", Message::new("x")).unwrap_err();
        assert!(matches!(e, Error::LockTimeout { .. }), "{e:?}");
        assert!(e.to_string().contains("nothing was written"), "{e}");

        holder.rollback().unwrap();
        db.publish("t", Message::new("z")).unwrap();
        assert_eq!(db.topic_stats("t").unwrap().messages, 1);
        assert_eq!(db.topic_names().unwrap(), ["t"]);
    }
}
