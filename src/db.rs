//! The database handle: opening, the write path, and the typed API.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use crate::app_sql::TxConn;
use crate::commit::GroupCommit;
use crate::group::{self, ConsumeSpec, Delivery, GroupInfo, IdBlock, Subscription};
use crate::lang::ast::{NackAction, Statement, TopicKind};
use crate::publish::{self, Message, Published};
use crate::topic::{self, TopicCache, TopicInfo, TopicOptions, TopicStats};
use crate::txn::Transaction;
use crate::{Clock, Error, Result, ResultSet, SystemClock, storage};

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

impl std::str::FromStr for Durability {
    type Err = Error;
    fn from_str(s: &str) -> Result<Durability> {
        match s.to_ascii_lowercase().as_str() {
            "full" => Ok(Durability::Full),
            "normal" => Ok(Durability::Normal),
            "off" => Ok(Durability::Off),
            _ => Err(Error::invalid(format!(
                "unknown durability '{s}': expected full, normal or off"
            ))),
        }
    }
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Full => "full",
            Durability::Normal => "normal",
            Durability::Off => "off",
        })
    }
}

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

/// Space on the file's disk that publishing leaves free by default: 16 MiB.
pub const DEFAULT_DISK_RESERVE: u64 = 16 << 20;

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
        let mut wal = conn
            .path()
            .map_or_else(|| self.path.clone().into_os_string(), Into::into);
        wal.push("-wal");
        Ok(Database {
            inner: Arc::new(Inner {
                conn: Mutex::new(conn),
                wal: wal.into(),
                deferred_syncs: AtomicU64::new(0),
                path: self.path,
                clock: self.clock,
                read_only: self.read_only,
                durability: self.durability,
                max_payload: self.max_payload,
                disk_reserve: self.disk_reserve,
                disk_ok_until: AtomicU64::new(0),
                opened: Instant::now(),
                clock_checked: Mutex::new(None),
                notify: Notify::default(),
                ids: Mutex::new(IdBlock::default()),
                spare: Mutex::new(Vec::new()),
                tx_threads: Mutex::new(Vec::new()),
                group_commit: GroupCommit::default(),
                topics: Mutex::default(),
            }),
        })
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.read_only {
            let conn = self.conn.get_mut().unwrap_or_else(|p| p.into_inner());
            storage::release_read_only(conn, &self.wal);
        }
    }
}

#[derive(Default)]
struct Notify {
    seq: Mutex<u64>,
    cv: Condvar,
}

struct Inner {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// The write-ahead log, fsynced by `Database::sync_wal`.
    wal: PathBuf,
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
    notify: Notify,
    /// Delivery ids reserved for this handle.
    ids: Mutex<IdBlock>,
    /// Idle connections for explicit transactions.
    spare: Mutex<Vec<TxConn>>,
    /// The threads that opened the explicit transactions now holding the
    /// write lock, one entry per transaction (see `refuse_self_wait`).
    tx_threads: Mutex<Vec<ThreadId>>,
    /// Concurrent publishers share commits.
    group_commit: GroupCommit,
    /// Topic definitions for grouped publishes; locked only by a
    /// group-commit leader, which holds `conn`.
    topics: Mutex<TopicCache>,
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

/// What to consume: a queue, a topic through a group, or every topic of a group.
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeRequest {
    pub(crate) topic: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) max: usize,
    pub(crate) member: Option<String>,
    pub(crate) wait: Option<Duration>,
    pub(crate) ack_wait: Option<Duration>,
}

impl ConsumeRequest {
    /// From a queue (its implicit group).
    pub fn queue(name: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest {
            topic: Some(name.into()),
            group: None,
            max: 1,
            member: None,
            wait: None,
            ack_wait: None,
        }
    }
    /// From one topic through a group.
    pub fn topic(name: impl Into<String>, group: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest {
            group: Some(group.into()),
            ..ConsumeRequest::queue(name)
        }
    }
    /// From every topic of a group (fan-in).
    pub fn group(group: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest {
            topic: None,
            group: Some(group.into()),
            ..ConsumeRequest::queue("")
        }
    }
    /// Up to `n` messages (default 1).
    pub fn max(mut self, n: usize) -> ConsumeRequest {
        self.max = n;
        self
    }
    /// The member (consumer) name, recorded on the deliveries.
    pub fn member(mut self, m: impl Into<String>) -> ConsumeRequest {
        self.member = Some(m.into());
        self
    }
    /// Blocks up to this long for the first message.
    pub fn wait(mut self, d: Duration) -> ConsumeRequest {
        self.wait = Some(d);
        self
    }
    /// Lease length for these deliveries.
    pub fn ack_wait(mut self, d: Duration) -> ConsumeRequest {
        self.ack_wait = Some(d);
        self
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

/// Most messages one CONSUME may lease.
pub const MAX_CONSUME: usize = 10_000;

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

    /// Now, for a write: `ClockSkew` when this handle's wall clock is off
    /// (see `clock::now_for_write`).
    pub(crate) fn now_for_write(&self) -> Result<i64> {
        let mut checked = self
            .inner
            .clock_checked
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Once a second at most: a faked clock is off from the start.
        if checked.is_some_and(|at| at.elapsed() < Duration::from_secs(1)) {
            return Ok(self.inner.clock.now_ms());
        }
        let now = crate::clock::now_for_write(self.inner.clock.as_ref(), || {
            crate::clock::kernel_ms(&self.inner.wal)
        })?;
        *checked = Some(Instant::now());
        Ok(now)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        self.inner.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits on Ok, rolls back on Err.
    pub(crate) fn write<T>(
        &self,
        what: &str,
        f: impl FnOnce(&Connection, i64) -> Result<T>,
    ) -> Result<T> {
        if self.inner.read_only {
            return Err(Error::ReadOnly(what.to_string()));
        }
        self.refuse_self_wait(what)?;
        let mut conn = self.lock();
        let v = self.transact(what, &mut conn, f)?;
        topic::shrink_if_drained(&conn);
        Ok(v)
    }

    /// `BEGIN IMMEDIATE`, `f`, `COMMIT` on the handle's connection. A COMMIT
    /// that fails has an unknown outcome: it is reported as `CommitAmbiguous`
    /// and the connection is replaced, since after an fsync error it cannot
    /// be trusted. An operation is never reported durable unless its commit
    /// returned success.
    fn transact<T>(
        &self,
        what: &str,
        conn: &mut MutexGuard<'_, Connection>,
        f: impl FnOnce(&Connection, i64) -> Result<T>,
    ) -> Result<T> {
        begin_immediate(conn).map_err(|e| Error::begin_failed(what, e))?;
        let v = match self.now_for_write().and_then(|now| f(conn, now)) {
            Ok(v) => v,
            Err(e) => {
                rollback(conn);
                return Err(Error::write_failed(what, e));
            }
        };
        match run_cached(conn, "COMMIT") {
            Ok(()) => {
                storage::after_commit(conn);
                Ok(v)
            }
            Err(e) => {
                rollback(conn);
                if let Ok(fresh) = storage::open(&self.inner.path, self.inner.durability, false) {
                    **conn = fresh;
                }
                Err(Error::commit_failed(what, &e))
            }
        }
    }

    /// A write whose loss on power failure is harmless (a lease: the message
    /// would just be delivered again at the same attempt). Under durability
    /// full it commits without its own fsync; the next full commit (an ACK,
    /// a PUBLISH) makes it durable together with its own changes.
    pub(crate) fn write_lease<T>(
        &self,
        f: impl FnOnce(&Connection, i64) -> Result<T>,
    ) -> Result<T> {
        if self.inner.read_only {
            return Err(Error::ReadOnly("CONSUME".into()));
        }
        self.refuse_self_wait("CONSUME")?;
        let mut conn = self.lock();
        let relax = self.inner.durability == Durability::Full;
        self.unsynced(&mut conn, relax, |db, conn| {
            let v = db.transact("CONSUME", conn, f)?;
            topic::shrink_if_drained(conn);
            Ok(v)
        })
    }

    /// Runs `f` with `synchronous=NORMAL` when `relax` (commits without
    /// their fsync), then puts FULL back. If FULL cannot be put back the
    /// connection is replaced, so no later write goes without its fsync.
    fn unsynced<T>(
        &self,
        conn: &mut MutexGuard<'_, Connection>,
        relax: bool,
        f: impl FnOnce(&Self, &mut MutexGuard<'_, Connection>) -> Result<T>,
    ) -> Result<T> {
        if !relax {
            return f(self, conn);
        }
        run_cached(conn, "PRAGMA synchronous = NORMAL")?;
        let r = f(self, conn);
        if let Err(e) = run_cached(conn, "PRAGMA synchronous = FULL") {
            let fresh = storage::open(&self.inner.path, self.inner.durability, false)?;
            **conn = fresh;
            return Err(Error::ambiguous(
                "the write",
                format!("could not restore synchronous = FULL: {e}"),
            ));
        }
        r
    }

    /// As `write`, but concurrent callers share one transaction and one
    /// commit (group commit); each gets its own result after the commit.
    /// `early_visible`: see `GroupCommit::run` (true for ACK only).
    pub(crate) fn write_grouped<T, F>(
        &self,
        what: &'static str,
        early_visible: bool,
        f: F,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Connection, i64) -> Result<T> + Send + 'static,
    {
        if self.inner.read_only {
            return Err(Error::ReadOnly(what.to_string()));
        }
        self.refuse_self_wait(what)?;
        let full = self.inner.durability == Durability::Full;
        self.inner.group_commit.run(
            what,
            f,
            early_visible,
            &|jobs, defer_sync| {
                let mut conn = self.lock();
                self.topic_cache().begin();
                let r = self.unsynced(&mut conn, full && defer_sync, |db, conn| {
                    db.transact(what, conn, |c, now| {
                        if jobs(c, now) {
                            Ok(())
                        } else {
                            // A write failed without a savepoint: roll back.
                            Err(Error::Transaction("the write failed".into()))
                        }
                    })
                });
                if r.is_ok() {
                    // Before a shrink, whose VACUUM would move the data
                    // version past commits of others nobody checked.
                    self.topic_cache().committed(&conn);
                    topic::shrink_if_drained(&conn);
                } else {
                    self.topic_cache().clear();
                }
                r
            },
            &|| if full { self.sync_wal() } else { Ok(()) },
        )
    }

    /// Makes every commit so far durable: fsyncs the WAL file (what
    /// `synchronous=FULL` does inside a commit), after a commit made with
    /// `synchronous=NORMAL`. The WAL exists while this handle's connection
    /// is open (SQLite removes it only when the last connection closes).
    fn sync_wal(&self) -> Result<()> {
        self.inner.deferred_syncs.fetch_add(1, Ordering::Relaxed);
        std::fs::File::open(&self.inner.wal)
            .and_then(|f| f.sync_data())
            .map_err(|e| {
                Error::ambiguous("ACK", format!("fsync of the write-ahead log failed: {e}"))
            })
    }

    /// The topic definitions grouped publishes read (see `TopicCache`).
    fn topic_cache(&self) -> MutexGuard<'_, TopicCache> {
        self.inner.topics.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// How many grouped writes (publishes) this handle made, and in how many
    /// commits: `writes / commits` is the group-commit batch size.
    pub fn write_stats(&self) -> WriteStats {
        use std::sync::atomic::Ordering::Relaxed;
        WriteStats {
            commits: self.inner.group_commit.batches.load(Relaxed),
            writes: self.inner.group_commit.writes.load(Relaxed),
            deferred_syncs: self.inner.deferred_syncs.load(Relaxed),
        }
    }

    /// Runs `f` on the connection for reading.
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection, i64) -> Result<T>) -> Result<T> {
        let conn = self.lock();
        let now = self.inner.clock.now_ms();
        f(&conn, now)
    }

    /// Makes sure this handle holds enough reserved delivery ids for one
    /// CONSUME, reserving a new block in a transaction of its own if not.
    pub(crate) fn reserve_ids(&self) -> Result<()> {
        let low = {
            let b = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
            b.end - b.next < MAX_CONSUME as i64
        };
        if !low || self.inner.read_only {
            return Ok(());
        }
        self.write("CONSUME", |c, _| {
            let mut b = self.inner.ids.lock().unwrap_or_else(|p| p.into_inner());
            if b.end - b.next < MAX_CONSUME as i64 {
                let start: i64 = c.query_row(
                    "UPDATE mq_meta SET value = value + ?1 WHERE name = 'next_delivery_id' RETURNING value - ?1",
                    [group::ID_BLOCK],
                    |r| r.get(0),
                )?;
                *b = IdBlock { next: start, end: start + group::ID_BLOCK };
            }
            Ok(())
        })
    }

    pub(crate) fn ids(&self) -> &Mutex<IdBlock> {
        &self.inner.ids
    }

    pub(crate) fn max_payload(&self) -> usize {
        self.inner.max_payload
    }

    /// Refuses a publish when the file's disk has less free space than the
    /// reserve (see `DatabaseBuilder::disk_reserve`). A `statvfs` costs
    /// 1-3 µs, a noticeable part of a grouped publish, so while the last
    /// one saw at least `DISK_RECHECK_MARGIN` above the reserve it is
    /// repeated at most once a second.
    pub(crate) fn check_disk_reserve(&self, what: &str) -> Result<()> {
        const DISK_RECHECK_MARGIN: u64 = 256 << 20;
        let reserve = self.inner.disk_reserve;
        if reserve == 0 {
            return Ok(());
        }
        // Lock-free: 8 publishing threads pass here per write.
        let since_open = |at: Instant| at.duration_since(self.inner.opened).as_nanos() as u64;
        if since_open(Instant::now()) < self.inner.disk_ok_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dir = self.inner.wal.parent().unwrap_or(Path::new("."));
        let Ok(st) = rustix::fs::statvfs(dir) else {
            return Ok(());
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let ok_until = if free >= reserve.saturating_add(DISK_RECHECK_MARGIN) {
            since_open(Instant::now() + Duration::from_secs(1))
        } else {
            0
        };
        self.inner.disk_ok_until.store(ok_until, Ordering::Relaxed);
        // On a small disk, a quarter of it. A PURGE on a full disk needs
        // room to checkpoint the WAL (up to 4 MB at the autocheckpoint of
        // 1,000 pages) into the file, then to write its own pages.
        let reserve = reserve.min(st.f_blocks.saturating_mul(st.f_frsize) / 4);
        if free >= reserve {
            return Ok(());
        }
        // Pages the file has free (after a PURGE, say) take messages first.
        let free = free.saturating_add(
            self.read(|c, _| {
                Ok(c.query_row(
                "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size",
                [],
                |r| r.get::<_, i64>(0),
            )?)
            })?
            .max(0) as u64,
        );
        if free >= reserve {
            return Ok(());
        }
        Err(Error::DiskFull {
            statement: what.to_string(),
            reason: format!(
                "the disk is nearly full: {} free, less than the {} that publishing leaves free so that PURGE, DROP and ACK still work",
                mib(free),
                mib(reserve)
            ),
        })
    }

    /// A connection for an explicit transaction: an idle one, or a new one
    /// (with the authorizer for application SQL installed once, here).
    pub(crate) fn take_connection(&self) -> Result<TxConn> {
        if let Some(c) = self
            .inner
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .pop()
        {
            return Ok(c);
        }
        TxConn::new(storage::open(
            &self.inner.path,
            self.inner.durability,
            false,
        )?)
    }

    /// `WouldDeadlock` when this thread opened an explicit transaction of
    /// this handle that still holds the write lock: a write on the handle
    /// would wait for a lock only this thread can release. A transaction
    /// moved to another thread still counts for the thread that opened it
    /// (a write there is refused although the other thread could commit);
    /// a transaction opened on another handle of the same file is not seen
    /// (its write waits out the busy timeout and fails with `LockTimeout`).
    pub(crate) fn refuse_self_wait(&self, what: &str) -> Result<()> {
        let me = std::thread::current().id();
        if self.tx_threads().contains(&me) {
            return Err(Error::WouldDeadlock {
                statement: what.to_string(),
            });
        }
        Ok(())
    }

    /// Records that this thread holds a new explicit transaction; returns
    /// the id that `transaction_ended` takes.
    pub(crate) fn transaction_started(&self) -> ThreadId {
        let me = std::thread::current().id();
        self.tx_threads().push(me);
        me
    }

    /// The explicit transaction opened on `thread` released the write lock.
    pub(crate) fn transaction_ended(&self, thread: ThreadId) {
        let mut threads = self.tx_threads();
        if let Some(i) = threads.iter().position(|&t| t == thread) {
            threads.swap_remove(i);
        }
    }

    fn tx_threads(&self) -> MutexGuard<'_, Vec<ThreadId>> {
        self.inner
            .tx_threads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Returns a healthy connection to the idle list. Only connections the
    /// application never held come back (see `Transaction::finish`).
    pub(crate) fn give_back(&self, conn: TxConn) {
        let mut spare = self.inner.spare.lock().unwrap_or_else(|p| p.into_inner());
        if spare.len() < 4 {
            spare.push(conn);
        }
    }

    pub(crate) fn wake_waiters(&self) {
        let mut seq = self
            .inner
            .notify
            .seq
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        *seq += 1;
        self.inner.notify.cv.notify_all();
    }

    /// Creates a topic (`TopicKind::Topic`) or queue. Returns false if it
    /// existed and `if_not_exists` is set.
    ///
    /// # Errors
    /// `TopicExists`, `InvalidArgument` for bad options.
    pub fn create(
        &self,
        kind: TopicKind,
        name: &str,
        if_not_exists: bool,
        options: &TopicOptions,
    ) -> Result<bool> {
        self.write("CREATE", |c, now| {
            topic::create(c, now, kind, name, if_not_exists, options)
        })
    }

    /// Creates a topic.
    ///
    /// # Errors
    /// As [`Database::create`].
    pub fn create_topic(&self, name: &str, options: &TopicOptions) -> Result<()> {
        self.create(TopicKind::Topic, name, false, options)
            .map(|_| ())
    }

    /// Creates a queue.
    ///
    /// # Errors
    /// As [`Database::create`].
    pub fn create_queue(&self, name: &str, options: &TopicOptions) -> Result<()> {
        self.create(TopicKind::Queue, name, false, options)
            .map(|_| ())
    }

    /// Changes options of a topic or queue.
    ///
    /// # Errors
    /// `TopicNotFound`, `InvalidArgument`.
    pub fn alter(&self, kind: TopicKind, name: &str, options: &TopicOptions) -> Result<()> {
        self.write("ALTER", |c, _| topic::alter(c, kind, name, options))
    }

    /// Drops a topic or queue and everything in it. Returns false if it was
    /// missing and `if_exists` is set.
    ///
    /// # Errors
    /// `TopicNotFound`.
    pub fn drop_topic(&self, kind: TopicKind, name: &str, if_exists: bool) -> Result<bool> {
        self.write("DROP", |c, _| topic::drop(c, kind, name, if_exists))
    }

    /// Every topic and queue.
    ///
    /// # Errors
    /// Storage errors only.
    pub fn topics(&self) -> Result<Vec<TopicInfo>> {
        self.read(|c, _| topic::list(c))
    }

    /// One topic or queue.
    ///
    /// # Errors
    /// `TopicNotFound`.
    pub fn topic(&self, name: &str) -> Result<TopicInfo> {
        self.read(|c, _| topic::get(c, name))
    }

    /// Message and byte counts of a topic.
    ///
    /// # Errors
    /// `TopicNotFound`.
    pub fn topic_stats(&self, name: &str) -> Result<TopicStats> {
        self.read(|c, _| {
            let t = topic::get(c, name)?;
            topic::stats(c, t.id)
        })
    }

    /// Every consumer group (queues' implicit groups included).
    ///
    /// # Errors
    /// Storage errors only.
    pub fn groups(&self) -> Result<Vec<GroupInfo>> {
        self.read(|c, _| group::list(c))
    }

    /// Names of all topics and queues (for completion).
    ///
    /// # Errors
    /// Storage errors only.
    pub fn topic_names(&self) -> Result<Vec<String>> {
        Ok(self.topics()?.into_iter().map(|t| t.name).collect())
    }

    /// Names of all groups (for completion).
    ///
    /// # Errors
    /// Storage errors only.
    pub fn group_names(&self) -> Result<Vec<String>> {
        Ok(self.groups()?.into_iter().map(|g| g.name).collect())
    }

    /// Publishes one message; returns where it was stored.
    ///
    /// # Errors
    /// `TopicNotFound`, `PayloadTooLarge`, `TopicFull`, `InvalidArgument`
    /// (partition out of range), `CommitAmbiguous`.
    pub fn publish(&self, topic: &str, message: Message) -> Result<Published> {
        let mut v = self.publish_batch(topic, vec![message])?;
        v.pop()
            .ok_or_else(|| Error::invalid("nothing was published"))
    }

    /// Publishes several messages in one transaction: all or none.
    ///
    /// # Errors
    /// As [`Database::publish`].
    pub fn publish_batch(&self, topic: &str, messages: Vec<Message>) -> Result<Vec<Published>> {
        if messages.is_empty() {
            return Ok(Vec::new());
        }
        self.check_disk_reserve("PUBLISH")?;
        let max = self.inner.max_payload;
        let topic = topic.to_string();
        let db = self.clone();
        let out = self.write_grouped("PUBLISH", false, move |c, now| {
            let mut topics = db.topic_cache();
            let t = topics.get(c, &topic)?;
            publish::append(c, now, t, &messages, max)
        })?;
        self.wake_waiters();
        Ok(out)
    }

    /// Reads a topic's stored messages in partition, offset order without any
    /// group (changes nothing), handing each to `f`; `f` returns false to stop.
    /// Reads in pages, so no read transaction stays open for long. Returns
    /// how many messages `f` saw.
    ///
    /// # Errors
    /// `TopicNotFound`.
    pub fn scan(&self, topic: &str, mut f: impl FnMut(&topic::Record<'_>) -> bool) -> Result<u64> {
        const PAGE: i64 = 1000;
        let t = self.read(|c, _| topic::get(c, topic))?;
        let mut seen = 0u64;
        // Partition by partition: an equality on the partition lets SQLite
        // walk the position index without re-testing a row-value bound on
        // every row (measured: about 220 fewer instructions per message).
        for partition in 0..t.partitions {
            let mut after = -1;
            loop {
                let (last, n, stopped) =
                    self.read(|c, _| topic::scan_page(c, t.id, partition, after, PAGE, &mut f))?;
                seen += n as u64;
                if stopped {
                    return Ok(seen);
                }
                if (n as i64) < PAGE {
                    break;
                }
                after = last;
            }
        }
        Ok(seen)
    }

    /// Subscribes a group (created if new) to topics and patterns.
    ///
    /// # Errors
    /// `TopicNotFound` for a named topic, `InvalidArgument`.
    pub fn subscribe(&self, group: &str, subscription: &Subscription) -> Result<()> {
        self.write("SUBSCRIBE", |c, now| {
            group::subscribe(c, now, group, subscription)
        })
    }

    /// Removes one topic or pattern from a group, or (None) the whole group.
    ///
    /// # Errors
    /// `GroupNotFound`, `NotSubscribed`.
    pub fn unsubscribe(&self, group: &str, from: Option<&str>) -> Result<()> {
        self.write("UNSUBSCRIBE", |c, _| group::unsubscribe(c, group, from))
    }

    /// Leases messages. With a wait, blocks until one arrives or the wait ends.
    ///
    /// # Errors
    /// `TopicNotFound`, `GroupNotFound`, `NotSubscribed`, `InvalidArgument`.
    pub fn consume(&self, request: &ConsumeRequest) -> Result<Vec<Delivery>> {
        self.consume_until(request, None)
    }

    pub(crate) fn consume_until(
        &self,
        req: &ConsumeRequest,
        interrupt: Option<&AtomicBool>,
    ) -> Result<Vec<Delivery>> {
        check_consume(req)?;
        let deadline = req.wait.map(|w| Instant::now() + w);
        let Some(deadline) = deadline else {
            // No WAIT: one attempt, none of the wake-up bookkeeping below.
            self.reserve_ids()?;
            return self.write_lease(|c, now| consume_once(c, now, req, &self.inner.ids));
        };
        let mut backoff = Duration::from_micros(250);
        loop {
            let seq = *self
                .inner
                .notify
                .seq
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            let version = self.data_version()?;
            self.reserve_ids()?;
            let got = self.write_lease(|c, now| consume_once(c, now, req, &self.inner.ids))?;
            if !got.is_empty() {
                return Ok(got);
            }
            // Wait for a publish in this process, a commit by another process
            // (PRAGMA data_version), or time passing (leases and delays expire).
            let tried = Instant::now();
            loop {
                let now = Instant::now();
                if now >= deadline || interrupt.is_some_and(|f| f.load(Ordering::Relaxed)) {
                    return Ok(Vec::new());
                }
                let step = backoff.min(deadline - now);
                {
                    let guard = self
                        .inner
                        .notify
                        .seq
                        .lock()
                        .unwrap_or_else(|p| p.into_inner());
                    if *guard == seq {
                        let _ = self.inner.notify.cv.wait_timeout(guard, step);
                    }
                }
                backoff = (backoff * 2).min(Duration::from_millis(100));
                let changed = *self
                    .inner
                    .notify
                    .seq
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    != seq
                    || self.data_version()? != version;
                if changed || tried.elapsed() >= Duration::from_millis(500) {
                    if changed {
                        backoff = Duration::from_micros(250);
                    }
                    break;
                }
            }
        }
    }

    fn data_version(&self) -> Result<i64> {
        Ok(self
            .lock()
            .query_row("PRAGMA data_version", [], |r| r.get(0))?)
    }

    /// Acknowledges deliveries: all or none.
    ///
    /// # Errors
    /// `UnknownDelivery`, `StaleDelivery` (the lease expired and the message was redelivered).
    pub fn ack(&self, ids: &[u64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids = ids.to_vec();
        self.write_grouped("ACK", true, move |c, _| group::ack(c, &ids))
    }

    /// Negatively acknowledges deliveries: redeliver now, later, or dead-letter.
    ///
    /// # Errors
    /// As [`Database::ack`].
    pub fn nack(&self, ids: &[u64], action: &NackAction) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        self.write("NACK", |c, now| group::nack(c, now, ids, action))?;
        self.wake_waiters();
        Ok(())
    }

    /// Moves a group's cursor on a topic (REPLAY). Deliveries in flight at or
    /// past the new position are dropped and delivered again from the log.
    ///
    /// # Errors
    /// `TopicNotFound`, `GroupNotFound`, `NotSubscribed`, `InvalidArgument`.
    pub fn replay(
        &self,
        topic: &str,
        group: &str,
        from: crate::lang::ast::ReplayFrom,
    ) -> Result<()> {
        self.write("REPLAY", |c, now| group::replay(c, now, topic, group, from))?;
        self.wake_waiters();
        Ok(())
    }

    /// Runs statements of the command language; returns the last statement's result.
    ///
    /// # Errors
    /// `Syntax` for a statement that does not parse (then nothing runs), else
    /// the first statement's error (statements before it have run).
    pub fn execute(&self, text: &str) -> Result<ResultSet> {
        let stmts = crate::lang::parse_script(text)?;
        let mut session = self.session();
        let mut last = ResultSet::empty();
        for s in &stmts {
            last = session.execute_statement(&s.statement)?;
        }
        if session.in_transaction() {
            drop(session);
            return Err(Error::Transaction(
                "BEGIN without COMMIT or ROLLBACK: the transaction was rolled back".into(),
            ));
        }
        Ok(last)
    }

    /// A session: runs statements one by one.
    pub fn session(&self) -> Session {
        Session {
            db: self.clone(),
            interrupt: Arc::new(AtomicBool::new(false)),
            tx: None,
            progress: None,
        }
    }
}

/// Runs a statement that returns no rows through the statement cache
/// (transaction control and pragmas run on every write: parsing them each
/// time shows in profiles).
/// Bytes as MiB for messages, e.g. "1.5 MiB".
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}

pub(crate) fn run_cached(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.prepare_cached(sql)?.execute([]).map(|_| ())
}

/// Rolls back whatever transaction is open; errors only mean there was none.
pub(crate) fn rollback(conn: &Connection) {
    topic::forget_shrink();
    if !conn.is_autocommit() {
        let _ = run_cached(conn, "ROLLBACK");
    }
}

fn begin_immediate(conn: &Connection) -> Result<()> {
    // A transaction left open (a panic in a writer) must not swallow this one.
    rollback(conn);
    // busy_timeout already waits; retry a few times beyond it for long writers.
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

pub(crate) fn check_consume(req: &ConsumeRequest) -> Result<()> {
    if req.max == 0 || req.max > MAX_CONSUME {
        return Err(Error::invalid(format!(
            "CONSUME takes between 1 and {MAX_CONSUME} messages, got {}",
            req.max
        )));
    }
    if req.ack_wait.is_some_and(|d| d.is_zero()) {
        return Err(Error::invalid("ACK WAIT must be longer than 0"));
    }
    Ok(())
}

/// One non-blocking CONSUME inside the caller's write transaction.
pub(crate) fn consume_once(
    c: &Connection,
    now: i64,
    req: &ConsumeRequest,
    ids: &Mutex<IdBlock>,
) -> Result<Vec<Delivery>> {
    let (g, topic_id) = resolve_consume(c, req)?;
    group::consume(
        c,
        now,
        &ConsumeSpec {
            group: &g,
            topic_id,
            max: req.max,
            member: req.member.as_deref(),
            ack_wait: req.ack_wait,
            ids,
        },
    )
}

fn resolve_consume(c: &Connection, req: &ConsumeRequest) -> Result<(GroupInfo, Option<i64>)> {
    match (&req.topic, &req.group) {
        (Some(name), None) => {
            let t = topic::get(c, name)?;
            if t.kind != TopicKind::Queue {
                return Err(Error::invalid(format!(
                    "'{name}' is a topic: consume it through a group (CONSUME FROM {name} GROUP g)"
                )));
            }
            Ok((group::queue_group(c, &t)?, Some(t.id)))
        }
        (Some(name), Some(gname)) => {
            let t = topic::get(c, name)?;
            let g = group::get(c, gname)?;
            if !group::reads_topic(c, g.id, t.id)? {
                return Err(Error::NotSubscribed {
                    group: gname.clone(),
                    topic: name.clone(),
                });
            }
            Ok((g, Some(t.id)))
        }
        (None, Some(gname)) => Ok((group::get(c, gname)?, None)),
        (None, None) => Err(Error::invalid("CONSUME needs a topic, a queue or a group")),
    }
}

/// Runs statements of the language against a database, one after another.
pub struct Session {
    db: Database,
    interrupt: Arc<AtomicBool>,
    /// The transaction BEGIN opened; dropped (rolled back) with the session.
    tx: Option<Transaction>,
    /// Told how long statements (BENCH) progress.
    progress: Option<Box<crate::lang::exec::Progress<'static>>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("db", &self.db)
            .field("in_transaction", &self.tx.is_some())
            .finish_non_exhaustive()
    }
}

impl Session {
    /// A flag that, set to true, stops a running TAIL or CONSUME ... WAIT
    /// (which then return what they have). Cleared when the next statement starts.
    pub fn interrupt_flag(&self) -> Arc<AtomicBool> {
        self.interrupt.clone()
    }

    /// Sets a callback told `(step, done, total)` while a long statement
    /// (BENCH) runs, e.g. to draw a progress bar.
    pub fn set_progress(&mut self, progress: impl FnMut(&str, u64, u64) + Send + 'static) {
        self.progress = Some(Box::new(progress));
    }

    /// True between BEGIN and COMMIT/ROLLBACK.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// The database.
    pub fn database(&self) -> &Database {
        &self.db
    }

    /// Runs one statement. `out` is called with each result; TAIL calls it once per batch of new rows.
    ///
    /// # Errors
    /// The statement's error; the database is unchanged by a failed statement.
    pub fn run(
        &mut self,
        stmt: &Statement,
        out: &mut dyn FnMut(ResultSet) -> Result<()>,
    ) -> Result<()> {
        self.interrupt.store(false, Ordering::Relaxed);
        match (stmt, self.tx.as_mut()) {
            (Statement::Begin, None) => {
                self.tx = Some(self.db.transaction()?);
                out(ResultSet::empty())
            }
            (Statement::Begin, Some(_)) => Err(Error::Transaction(
                "a transaction is already open: COMMIT or ROLLBACK it first".into(),
            )),
            (Statement::Commit | Statement::Rollback, None) => Err(Error::Transaction(
                "there is no open transaction (BEGIN starts one)".into(),
            )),
            (Statement::Commit, Some(_)) => {
                if let Some(tx) = self.tx.take() {
                    tx.commit()?;
                }
                out(ResultSet::empty())
            }
            (Statement::Rollback, Some(_)) => {
                if let Some(tx) = self.tx.take() {
                    tx.rollback()?;
                }
                out(ResultSet::empty())
            }
            (_, Some(tx)) => crate::lang::exec::run_in(tx, stmt, out),
            (_, None) => {
                let progress = self.progress.as_deref_mut();
                crate::lang::exec::run(&self.db, &self.interrupt, progress, stmt, out)
            }
        }
    }

    /// Runs one statement and returns its whole result.
    ///
    /// # Errors
    /// As [`Session::run`].
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

#[cfg(test)]
mod tests {
    use super::*;

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
        db.lock().busy_timeout(short).unwrap();
        let spare = storage::open(&path, Durability::Off, false).unwrap();
        spare.busy_timeout(short).unwrap();
        db.give_back(TxConn::new(spare).unwrap());

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
        assert!(e.to_string().contains("nothing was written"), "{e}");

        holder.rollback().unwrap();
        db.publish("t", Message::new("z")).unwrap();
        assert_eq!(db.topic_stats("t").unwrap().messages, 1);
        assert_eq!(db.topic_names().unwrap(), ["t"]);
    }
}
