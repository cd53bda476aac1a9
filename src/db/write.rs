//! The write paths of the handle: one transaction per call (`write`),
//! group commit (`write_grouped`), leases without their own fsync
//! (`write_lease`), reads, and what a commit's effects ask for.

use std::sync::MutexGuard;
use std::sync::atomic::Ordering;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use rusqlite::Connection;

use super::Database;
use crate::delivery::{MAX_CONSUME, ids};
use crate::storage::tx::{Ctx, Effects, begin_immediate, rollback, run_cached};
use crate::storage::{self, Durability, space, watch};
use crate::sync::lock;
use crate::topic::TopicDefs;
use crate::{Error, Result};

impl Database {
    /// Now, for a write: `ClockSkew` when this handle's wall clock is off
    /// (see `clock::now_for_write`).
    pub(crate) fn now_for_write(&self) -> Result<i64> {
        let mut checked = lock(&self.inner.clock_checked);
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
        lock(&self.inner.conn)
    }

    /// Refuses a write on a read-only handle, and on a thread whose own
    /// transaction holds the write lock (see `refuse_self_wait`).
    fn writable(&self, what: &str) -> Result<()> {
        if self.inner.read_only {
            return Err(Error::ReadOnly(what.to_string()));
        }
        self.refuse_self_wait(what)
    }

    /// `WouldDeadlock` when this thread opened an explicit transaction of
    /// this handle that still holds the write lock: a write on the handle
    /// would wait for a lock only this thread can release. A transaction
    /// moved to another thread still counts for the thread that opened it
    /// (a write there is refused although the other thread could commit);
    /// a transaction opened on another handle of the same file is not seen
    /// (its write waits out the busy timeout and fails with `LockTimeout`).
    pub(crate) fn refuse_self_wait(&self, what: &str) -> Result<()> {
        // Lock-free when no transaction is open (every publish passes here).
        if self.inner.open_transactions.load(Ordering::Relaxed) == 0 {
            return Ok(());
        }
        let me = std::thread::current().id();
        if lock(&self.inner.tx_threads).contains(&me) {
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
        let mut threads = lock(&self.inner.tx_threads);
        threads.push(me);
        self.inner
            .open_transactions
            .store(threads.len(), Ordering::Relaxed);
        me
    }

    /// The explicit transaction opened on `thread` released the write lock.
    pub(crate) fn transaction_ended(&self, thread: ThreadId) {
        let mut threads = lock(&self.inner.tx_threads);
        if let Some(i) = threads.iter().position(|&t| t == thread) {
            threads.swap_remove(i);
        }
        self.inner
            .open_transactions
            .store(threads.len(), Ordering::Relaxed);
    }

    /// Runs `f` in one `BEGIN IMMEDIATE` transaction; commits on Ok, rolls back on Err.
    pub(crate) fn write<T>(&self, what: &str, f: impl FnOnce(&Ctx<'_>) -> Result<T>) -> Result<T> {
        self.writable(what)?;
        let mut conn = self.lock();
        let effects = Effects::default();
        let v = self.transact(what, &mut conn, &effects, f)?;
        self.committed(&conn, &effects);
        Ok(v)
    }

    /// Acts on what a committed transaction's effects ask for: gives file
    /// space back, wakes waiting consumers.
    pub(crate) fn committed(&self, conn: &Connection, effects: &Effects) {
        if effects.take_shrink() {
            space::shrink(conn);
        }
        if effects.take_deliverable() {
            self.wake_waiters();
            watch::signal(&self.inner.dir);
        }
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
        effects: &Effects,
        f: impl FnOnce(&Ctx<'_>) -> Result<T>,
    ) -> Result<T> {
        begin_immediate(conn).map_err(|e| Error::begin_failed(what, e))?;
        let run = |now| f(&Ctx::new(conn, now, effects));
        let v = match self.now_for_write().and_then(run) {
            Ok(v) => v,
            Err(e) => {
                rollback(conn);
                effects.clear();
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
                effects.clear();
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
    pub(crate) fn write_lease<T>(&self, f: impl FnOnce(&Ctx<'_>) -> Result<T>) -> Result<T> {
        self.writable("CONSUME")?;
        let mut conn = self.lock();
        let relax = self.inner.durability == Durability::Full;
        let effects = Effects::default();
        let v = self.unsynced(&mut conn, relax, |db, conn| {
            db.transact("CONSUME", conn, &effects, f)
        })?;
        self.committed(&conn, &effects);
        Ok(v)
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
        F: FnMut(&Ctx<'_>) -> Result<T> + Send + 'static,
    {
        self.writable(what)?;
        let full = self.inner.durability == Durability::Full;
        self.inner.group_commit.run(
            what,
            f,
            early_visible,
            &|jobs, defer_sync| {
                let mut conn = self.lock();
                self.topic_defs().begin();
                let effects = Effects::default();
                let r = self.unsynced(&mut conn, full && defer_sync, |db, conn| {
                    db.transact(what, conn, &effects, |c| {
                        if jobs(c) {
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
                    self.topic_defs().committed(&conn);
                    self.committed(&conn, &effects);
                } else {
                    self.topic_defs().clear();
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

    /// The topic definitions grouped publishes read (see `TopicDefs`).
    pub(crate) fn topic_defs(&self) -> MutexGuard<'_, TopicDefs> {
        lock(&self.inner.topics)
    }

    /// Runs `f` on the handle's connection for reading (no transaction: each
    /// statement reads its own snapshot).
    pub(crate) fn read<T>(&self, f: impl FnOnce(&Connection, i64) -> Result<T>) -> Result<T> {
        let conn = self.lock();
        let now = self.inner.clock.now_ms();
        f(&conn, now)
    }

    /// Makes sure this handle holds enough reserved delivery ids for one
    /// CONSUME, reserving a new block in a transaction of its own if not.
    pub(crate) fn reserve_ids(&self) -> Result<()> {
        let want = MAX_CONSUME as i64;
        if self.inner.read_only || !ids::low(&self.inner.ids, want) {
            return Ok(());
        }
        self.write("CONSUME", |c| ids::refill(c, &self.inner.ids, want))
    }
}
