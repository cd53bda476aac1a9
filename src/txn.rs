//! Explicit transactions: consume, publish, ack, nack, replay, offset commits,
//! processed marks and the application's own SQL, all or nothing.

use std::cell::Cell;
use std::thread::ThreadId;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::app_sql::TxConn;
use crate::db::{self, ConsumeRequest, run_cached};
use crate::group::{self, Delivery};
use crate::lang::ast::{NackAction, ReplayFrom};
use crate::publish::{self, Message, Published};
use crate::topic;
use crate::{Database, Error, Result, ResultSet};

/// How long `mark_processed` remembers a key by default.
pub const DEFAULT_PROCESSED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// A write transaction on its own connection (`BEGIN IMMEDIATE`): everything
/// done through it commits together or not at all. `commit` consumes it;
/// dropping it rolls back. A delivery leased in a transaction that rolls
/// back was never leased: the message is deliverable again at the same attempt.
///
/// A fenced ACK/NACK (stale or unknown delivery id) inside the transaction
/// makes it unable to commit: it is rolled back at once, releasing the
/// write lock, and later operations and `commit` fail. Other failed
/// operations change nothing and the transaction goes on.
///
/// While it holds the write lock, a write through the [`Database`] handle
/// on the thread that opened it fails at once with
/// [`Error::WouldDeadlock`] instead of waiting for the lock.
#[derive(Debug)]
pub struct Transaction {
    db: Database,
    /// None once rolled back or committed: the write lock is released.
    conn: Option<TxConn>,
    /// The thread that opened it, registered with the handle while `conn` is held.
    thread: ThreadId,
    failed: Option<String>,
    published: bool,
    /// The application was handed the connection: it may carry state no
    /// authorizer sees (`set_db_config`, `busy_timeout`), undone by
    /// `TxConn::reset` before the connection goes back to the idle list.
    lent: Cell<bool>,
}

/// Why a transaction whose connection is no longer in a transaction fails.
const ENDED: &str = "the transaction was ended inside SQLite (INSERT OR ROLLBACK, RAISE(ROLLBACK) \
                     or an error after which SQLite rolls back)";

impl Database {
    /// Starts an explicit write transaction. It holds the database's write
    /// lock until it commits or rolls back: keep it short.
    ///
    /// # Errors
    /// `ReadOnly`; `WouldDeadlock` when this thread already holds a
    /// transaction of this handle; `LockTimeout` when another writer kept
    /// the lock past the busy timeout; storage errors.
    pub fn transaction(&self) -> Result<Transaction> {
        if self.is_read_only() {
            return Err(Error::ReadOnly("BEGIN".into()));
        }
        self.refuse_self_wait("BEGIN")?;
        self.reserve_ids()?;
        let conn = self.take_connection()?;
        run_cached(conn.own(), "BEGIN IMMEDIATE")
            .map_err(|e| Error::begin_failed("BEGIN", e.into()))?;
        Ok(Transaction {
            db: self.clone(),
            conn: Some(conn),
            thread: self.transaction_started(),
            failed: None,
            published: false,
            lent: Cell::new(false),
        })
    }

    /// Marks `key` as handled by `group`: true the first time (do the work),
    /// false while it is remembered (skip it). Remembered for 7 days.
    ///
    /// # Errors
    /// Storage errors.
    pub fn mark_processed(&self, group: &str, key: &str) -> Result<bool> {
        self.write("MARK PROCESSED", |c, now| {
            mark(c, now, group, key, DEFAULT_PROCESSED_TTL)
        })
    }
}

fn fenced(e: &Error) -> bool {
    matches!(e, Error::StaleDelivery { .. } | Error::UnknownDelivery(_))
}

impl Transaction {
    /// The connection for mqlite's own statements (application checks off).
    fn conn(&self) -> Result<&Connection> {
        self.conn
            .as_ref()
            .map(TxConn::own)
            .ok_or_else(|| self.over())
    }

    /// Why there is no connection: rolled back at a fence, or ended.
    fn over(&self) -> Error {
        match &self.failed {
            Some(why) => Error::TransactionAborted(why.clone()),
            None => Error::Transaction("the transaction is over".into()),
        }
    }

    /// Takes the connection to end the transaction with it; the thread may
    /// write through the handle again (the caller rolls back or commits now).
    fn take_conn(&mut self) -> Option<TxConn> {
        let conn = self.conn.take();
        if conn.is_some() {
            self.db.transaction_ended(self.thread);
        }
        conn
    }

    /// Runs one operation inside a savepoint: a failed operation leaves no trace.
    pub(crate) fn step<T>(&mut self, f: impl FnOnce(&Connection, i64) -> Result<T>) -> Result<T> {
        if let Some(why) = &self.failed {
            return Err(Error::TransactionAborted(why.clone()));
        }
        let now = self.db.now_for_write()?;
        let c = self.conn()?;
        // Out of its transaction, SAVEPOINT would start one and RELEASE commit it.
        if c.is_autocommit() {
            self.failed = Some(ENDED.into());
            return Err(Error::TransactionAborted(ENDED.into()));
        }
        run_cached(c, "SAVEPOINT mq_step")?;
        match f(c, now) {
            Ok(v) => {
                run_cached(c, "RELEASE mq_step")?;
                Ok(v)
            }
            Err(e) if c.is_autocommit() => {
                self.failed = Some(ENDED.into());
                Err(e)
            }
            Err(e) => {
                run_cached(c, "ROLLBACK TO mq_step")?;
                run_cached(c, "RELEASE mq_step")?;
                if fenced(&e) {
                    // Nothing can commit now: release the write lock at
                    // once rather than at the caller's ROLLBACK.
                    self.failed = Some(e.to_string());
                    self.finish(false);
                }
                Err(e)
            }
        }
    }

    pub(crate) fn database(&self) -> &Database {
        &self.db
    }

    pub(crate) fn note_published(&mut self) {
        self.published = true;
    }

    /// The transaction's connection, for the application's own tables: what
    /// it does commits or rolls back with the rest of the transaction.
    ///
    /// The application may create, alter, drop, read and write its own
    /// tables, views, indexes and triggers, read every table (`mq_` ones
    /// included), call functions, and run reporting pragmas
    /// (`table_info`, `index_list`, `foreign_key_check`, ...), read settings
    /// (`PRAGMA user_version` without a value) and set `defer_foreign_keys`.
    ///
    /// It may not (the statement fails to prepare; converted into
    /// [`Error`] it is [`Error::Forbidden`] naming what was refused):
    /// write, create, drop, alter, index or put triggers on `mq_` and
    /// `sqlite_` tables and views (also from its own triggers); run
    /// BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE; create or drop TEMP objects;
    /// ATTACH/DETACH; set any other pragma or run pragmas that act
    /// (`optimize`, `wal_checkpoint`, ...).
    ///
    /// If its SQL makes SQLite roll the transaction back (`INSERT OR
    /// ROLLBACK`, `RAISE(ROLLBACK)`), every later operation and `commit`
    /// fail with [`Error::TransactionAborted`].
    ///
    /// The `Connection` API is not SQL and not checked: mqlite restores the
    /// busy timeout and the `set_db_config` flags before the connection
    /// serves another transaction, but cannot undo functions, collations
    /// or modules registered on it; do not register any.
    ///
    /// # Errors
    /// `TransactionAborted` after a fenced ACK/NACK rolled it back.
    pub fn connection(&self) -> Result<&Connection> {
        let conn = self.conn.as_ref().ok_or_else(|| self.over())?;
        self.lent.set(true);
        Ok(conn.lend())
    }

    /// Publishes one message in this transaction.
    ///
    /// # Errors
    /// As [`Database::publish`].
    pub fn publish(&mut self, topic: &str, message: Message) -> Result<Published> {
        let mut v = self.publish_batch(topic, vec![message])?;
        v.pop()
            .ok_or_else(|| Error::invalid("nothing was published"))
    }

    /// Publishes messages in this transaction.
    ///
    /// # Errors
    /// As [`Database::publish`].
    pub fn publish_batch(&mut self, topic: &str, messages: Vec<Message>) -> Result<Vec<Published>> {
        self.db.check_disk_reserve("PUBLISH")?;
        let max = self.db.max_payload();
        let out = self.step(|c, now| {
            let t = topic::get(c, topic)?;
            publish::append(c, now, &t, &messages, max)
        })?;
        self.published = true;
        Ok(out)
    }

    /// Leases messages in this transaction (never blocks: a WAIT is refused).
    ///
    /// # Errors
    /// As [`Database::consume`]; `InvalidArgument` for a WAIT.
    pub fn consume(&mut self, request: &ConsumeRequest) -> Result<Vec<Delivery>> {
        db::check_consume(request)?;
        if request.wait.is_some() {
            return Err(Error::invalid(
                "CONSUME ... WAIT is not allowed inside a transaction: it would hold the write lock while waiting",
            ));
        }
        let db = self.db.clone();
        self.step(|c, now| db::consume_once(c, now, request, db.ids()))
    }

    /// Acknowledges deliveries in this transaction.
    ///
    /// # Errors
    /// `StaleDelivery`/`UnknownDelivery`, which also make the transaction unable to commit.
    pub fn ack(&mut self, ids: &[u64]) -> Result<()> {
        self.step(|c, _| group::ack(c, ids))
    }

    /// Negatively acknowledges deliveries in this transaction.
    ///
    /// # Errors
    /// As [`Transaction::ack`].
    pub fn nack(&mut self, ids: &[u64], action: &NackAction) -> Result<()> {
        self.step(|c, now| group::nack(c, now, ids, action))?;
        self.published = true;
        Ok(())
    }

    /// Moves a group's cursor in this transaction.
    ///
    /// # Errors
    /// As [`Database::replay`].
    pub fn replay(&mut self, topic: &str, group: &str, from: ReplayFrom) -> Result<()> {
        self.step(|c, now| group::replay(c, now, topic, group, from))?;
        self.published = true;
        Ok(())
    }

    /// Kafka-style offset commit: everything of `group` in `topic`/`partition`
    /// below `offset` is done (acked), and `offset` is the next to deliver.
    ///
    /// # Errors
    /// `TopicNotFound`, `GroupNotFound`, `NotSubscribed`, `InvalidArgument`.
    pub fn commit_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<()> {
        self.step(|c, _| group::commit_offset(c, group, topic, partition, offset))
    }

    /// As [`Database::mark_processed`], inside this transaction: if the
    /// transaction rolls back, the key is not marked.
    ///
    /// # Errors
    /// Storage errors.
    pub fn mark_processed(&mut self, group: &str, key: &str) -> Result<bool> {
        self.mark_processed_for(group, key, DEFAULT_PROCESSED_TTL)
    }

    /// As [`Transaction::mark_processed`], remembering the key for `ttl`.
    ///
    /// # Errors
    /// Storage errors.
    pub fn mark_processed_for(&mut self, group: &str, key: &str, ttl: Duration) -> Result<bool> {
        self.step(|c, now| mark(c, now, group, key, ttl))
    }

    /// Runs statements of the language inside this transaction; returns the
    /// last result. BEGIN, COMMIT and ROLLBACK are refused here.
    ///
    /// # Errors
    /// As [`Database::execute`].
    pub fn execute(&mut self, text: &str) -> Result<ResultSet> {
        let stmts = crate::lang::parse_script(text)?;
        let mut last = ResultSet::empty();
        for s in &stmts {
            let mut result = ResultSet::empty();
            crate::lang::exec::run_in(self, &s.statement, &mut |rs| {
                result = rs;
                Ok(())
            })?;
            last = result;
        }
        Ok(last)
    }

    /// Commits. Durable (per the database's durability) when it returns Ok.
    ///
    /// # Errors
    /// `TransactionAborted` after a fenced ACK/NACK (rolled back then);
    /// `CommitAmbiguous` when the commit itself failed.
    pub fn commit(mut self) -> Result<()> {
        if let Some(why) = self.failed.take() {
            self.finish(false);
            return Err(Error::TransactionAborted(why));
        }
        if self.conn()?.is_autocommit() {
            self.finish(false);
            return Err(Error::TransactionAborted(ENDED.into()));
        }
        let Some(tx_conn) = self.take_conn() else {
            return Err(self.over());
        };
        let conn = tx_conn.own();
        match run_cached(conn, "COMMIT") {
            Ok(()) => {
                crate::storage::after_commit(conn);
                crate::topic::shrink_if_drained(conn);
                if !self.lent.get() || tx_conn.reset().is_ok() {
                    self.db.give_back(tx_conn);
                }
                if self.published {
                    self.db.wake_waiters();
                }
                Ok(())
            }
            Err(e) => {
                // Outcome unknown: roll back what may be left and never reuse
                // this connection (after an fsync error it cannot be trusted).
                crate::db::rollback(conn);
                Err(Error::commit_failed("COMMIT", &e))
            }
        }
    }

    /// Rolls back.
    ///
    /// # Errors
    /// Storage errors.
    pub fn rollback(mut self) -> Result<()> {
        self.finish(false);
        Ok(())
    }

    fn finish(&mut self, _commit: bool) {
        if let Some(conn) = self.take_conn()
            && run_cached(conn.own(), "ROLLBACK").is_ok()
            && (!self.lent.get() || conn.reset().is_ok())
        {
            self.db.give_back(conn);
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.finish(false);
    }
}

/// Marks a processed key; true when it was not already marked (or had expired).
pub(crate) fn mark(
    c: &Connection,
    now: i64,
    group: &str,
    key: &str,
    ttl: Duration,
) -> Result<bool> {
    if group.is_empty() || key.is_empty() {
        return Err(Error::invalid("mark_processed needs a group and a key"));
    }
    // Forget a bounded number of expired keys (never a full scan).
    c.prepare_cached(
        "DELETE FROM mq_processed WHERE (group_name, key) IN
           (SELECT group_name, key FROM mq_processed WHERE expires_at <= ?1 LIMIT 64)",
    )?
    .execute([now])?;
    let live: Option<i64> = c
        .prepare_cached("SELECT expires_at FROM mq_processed WHERE group_name = ?1 AND key = ?2 AND expires_at > ?3")?
        .query_row(params![group, key, now], |r| r.get(0))
        .optional()?;
    if live.is_some() {
        return Ok(false);
    }
    c.prepare_cached(
        "INSERT OR REPLACE INTO mq_processed (group_name, key, processed_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![group, key, now, now.saturating_add(topic::ms(ttl))])?;
    Ok(true)
}
