//! Explicit transactions: consume, publish, ack, nack, replay, offset commits,
//! processed marks, topic and group changes, and the application's own SQL,
//! all or nothing.

use std::cell::Cell;
use std::thread::ThreadId;
use std::time::Duration;

use rusqlite::Connection;

use crate::db::{GroupStats, TopicSummary, api};
use crate::delivery::{self, ConsumeRequest, Delivery, NackAction};
use crate::dlq::{Orphan, Requeued};
use crate::group::{self, PendingDelivery, ReplayFrom, Subscription};
use crate::processed::{self, DEFAULT_PROCESSED_TTL};
use crate::publish::{self, Message, Published};
use crate::storage::app_sql::TxConn;
use crate::storage::tx::{Ctx, Effects, rollback, run_cached};
use crate::topic::{self, PartitionInfo, TopicKind, TopicOptions};
use crate::{Database, Error, Result, catalog, dlq, storage};

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
    /// What the operations so far ask for after the commit.
    effects: Effects,
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
        let conn = self.pool().take()?;
        run_cached(conn.own(), "BEGIN IMMEDIATE")
            .map_err(|e| Error::begin_failed("BEGIN", e.into()))?;
        Ok(Transaction {
            db: self.clone(),
            conn: Some(conn),
            thread: self.transaction_started(),
            failed: None,
            effects: Effects::default(),
            lent: Cell::new(false),
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
    pub(crate) fn step<T>(&mut self, f: impl FnOnce(&Ctx<'_>) -> Result<T>) -> Result<T> {
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
        match f(&Ctx::new(c, now, &self.effects)) {
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
                    self.finish();
                }
                Err(e)
            }
        }
    }

    /// Runs `f` as one step of the transaction made of several: if it
    /// fails, everything it did is undone (IMPORT publishes in chunks).
    pub(crate) fn atomically<T>(&mut self, f: impl FnOnce(&mut Self) -> Result<T>) -> Result<T> {
        if let Some(why) = &self.failed {
            return Err(Error::TransactionAborted(why.clone()));
        }
        let c = self.conn()?;
        if c.is_autocommit() {
            self.failed = Some(ENDED.into());
            return Err(Error::TransactionAborted(ENDED.into()));
        }
        run_cached(c, "SAVEPOINT mq_group")?;
        match f(self) {
            Ok(v) => {
                run_cached(self.conn()?, "RELEASE mq_group")?;
                Ok(v)
            }
            Err(e) => {
                if let Ok(c) = self.conn()
                    && !c.is_autocommit()
                {
                    let _ = run_cached(c, "ROLLBACK TO mq_group");
                    let _ = run_cached(c, "RELEASE mq_group");
                }
                Err(e)
            }
        }
    }

    /// The database this transaction writes.
    pub(crate) fn database(&self) -> &Database {
        &self.db
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
        self.db.check_disk_reserve("PUBLISH")?;
        let max = self.db.max_payload();
        self.step(|c| {
            let t = topic::get(c, topic)?;
            publish::append_one(c, &t, &message, max)
        })
    }

    /// Publishes messages in this transaction.
    ///
    /// # Errors
    /// As [`Database::publish`].
    pub fn publish_batch(&mut self, topic: &str, messages: Vec<Message>) -> Result<Vec<Published>> {
        self.db.check_disk_reserve("PUBLISH")?;
        let max = self.db.max_payload();
        self.step(|c| {
            let t = topic::get(c, topic)?;
            publish::append(c, &t, &messages, max)
        })
    }

    /// Leases messages in this transaction (never blocks: a WAIT is refused).
    ///
    /// # Errors
    /// As [`Database::consume`]; `NotAllowedInTransaction` for a WAIT.
    pub fn consume(&mut self, request: &ConsumeRequest) -> Result<Vec<Delivery>> {
        request.check()?;
        if request.waits().is_some() {
            return Err(Error::NotAllowedInTransaction {
                statement: "CONSUME ... WAIT".into(),
            });
        }
        let db = self.db.clone();
        self.step(|c| delivery::consume_once(c, request, db.ids()))
    }

    /// Acknowledges deliveries in this transaction.
    ///
    /// # Errors
    /// `StaleDelivery`/`UnknownDelivery`, which also make the transaction unable to commit.
    pub fn ack(&mut self, ids: &[u64]) -> Result<()> {
        self.step(|c| delivery::ack(c, ids))
    }

    /// Negatively acknowledges deliveries in this transaction.
    ///
    /// # Errors
    /// As [`Transaction::ack`].
    pub fn nack(&mut self, ids: &[u64], action: &NackAction) -> Result<()> {
        self.step(|c| delivery::nack(c, ids, action, None))
    }

    /// As [`Database::nack_with_reason`], in this transaction.
    ///
    /// # Errors
    /// As [`Transaction::ack`].
    pub fn nack_with_reason(
        &mut self,
        ids: &[u64],
        action: &NackAction,
        reason: &str,
    ) -> Result<()> {
        self.step(|c| delivery::nack(c, ids, action, Some(reason)))
    }

    /// Moves a group's cursor in this transaction.
    ///
    /// # Errors
    /// As [`Database::replay`].
    pub fn replay(&mut self, topic: &str, group: &str, from: ReplayFrom) -> Result<()> {
        self.step(|c| group::replay(c, topic, group, from))
    }

    /// Kafka-style offset commit: everything of `group` in `topic`/`partition`
    /// below `offset` is done (acked), and `offset` is the next to deliver.
    ///
    /// # Errors
    /// `TopicNotFound`, `GroupNotFound`, `NotSubscribed`,
    /// `PartitionOutOfRange`, `PastEnd`.
    pub fn commit_offset(
        &mut self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> Result<()> {
        self.step(|c| group::commit_offset(c, group, topic, partition, offset))
    }

    /// As [`Database::mark_processed`], inside this transaction: if the
    /// transaction rolls back, the key is not marked.
    ///
    /// # Errors
    /// As [`Database::mark_processed`].
    pub fn mark_processed(&mut self, group: &str, key: &str) -> Result<bool> {
        self.mark_processed_for(group, key, DEFAULT_PROCESSED_TTL)
    }

    /// As [`Transaction::mark_processed`], remembering the key for `ttl`.
    ///
    /// # Errors
    /// As [`Database::mark_processed`].
    pub fn mark_processed_for(&mut self, group: &str, key: &str, ttl: Duration) -> Result<bool> {
        self.step(|c| processed::mark(c, group, key, ttl))
    }

    /// As [`Database::create`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::create`].
    pub fn create(
        &mut self,
        kind: TopicKind,
        name: &str,
        if_not_exists: bool,
        options: &TopicOptions,
    ) -> Result<bool> {
        self.step(|c| catalog::create(c, kind, name, if_not_exists, options))
    }

    /// As [`Database::alter`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::alter`].
    pub fn alter(&mut self, kind: TopicKind, name: &str, options: &TopicOptions) -> Result<()> {
        self.step(|c| catalog::alter(c, kind, name, options))
    }

    /// As [`Database::drop_topic`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::drop_topic`].
    pub fn drop_topic(&mut self, kind: TopicKind, name: &str, if_exists: bool) -> Result<bool> {
        self.step(|c| catalog::drop(c, kind, name, if_exists))
    }

    /// As [`Database::purge`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::purge`].
    pub fn purge(&mut self, topic: &str) -> Result<u64> {
        self.step(|c| catalog::purge(c, topic))
    }

    /// As [`Database::subscribe`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::subscribe`].
    pub fn subscribe(&mut self, group: &str, subscription: &Subscription) -> Result<()> {
        self.step(|c| group::subscribe(c, c.now, group, subscription))
    }

    /// As [`Database::unsubscribe`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::unsubscribe`].
    pub fn unsubscribe(&mut self, group: &str, from: Option<&str>) -> Result<()> {
        self.step(|c| group::unsubscribe(c, group, from))
    }

    /// As [`Database::requeue_dlq`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::requeue_dlq`].
    pub fn requeue_dlq(&mut self, ids: &[i64]) -> Result<Requeued> {
        self.step(|c| dlq::requeue(c, ids))
    }

    /// As [`Database::dlq_orphans`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::dlq_orphans`].
    pub fn dlq_orphans(&mut self, ids: &[i64]) -> Result<Vec<Orphan>> {
        self.step(|c| dlq::orphans(c, ids))
    }

    /// As [`Database::purge_dlq`], in this transaction.
    ///
    /// # Errors
    /// As [`Database::purge_dlq`].
    pub fn purge_dlq(&mut self, ids: &[i64]) -> Result<u64> {
        self.step(|c| dlq::purge(c, ids))
    }

    /// As [`Database::topic_summaries`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::topic_summaries`].
    pub fn topic_summaries(&mut self) -> Result<Vec<TopicSummary>> {
        self.step(|c| api::topic_summaries(c))
    }

    /// As [`Database::group_stats`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::group_stats`].
    pub fn group_stats(&mut self, topic: Option<&str>) -> Result<Vec<GroupStats>> {
        self.step(|c| api::group_stats(c, topic))
    }

    /// As [`Database::deliveries`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::deliveries`].
    pub fn deliveries(&mut self, group: Option<&str>) -> Result<Vec<PendingDelivery>> {
        self.step(|c| api::deliveries(c, c.now, group))
    }

    /// As [`Database::partitions`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::partitions`].
    pub fn partitions(&mut self, topic: &str) -> Result<Vec<PartitionInfo>> {
        self.step(|c| topic::partitions(c, topic))
    }

    /// As [`Database::topic`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::topic`].
    pub fn topic(&mut self, name: &str) -> Result<topic::TopicInfo> {
        self.step(|c| topic::get(c, name))
    }

    /// As [`Database::groups`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::groups`].
    pub fn groups(&mut self) -> Result<Vec<group::GroupInfo>> {
        self.step(|c| group::list(c))
    }

    /// As [`Database::topic_stats`], seeing this transaction's changes.
    ///
    /// # Errors
    /// As [`Database::topic_stats`].
    pub fn topic_stats(&mut self, name: &str) -> Result<topic::TopicStats> {
        self.step(|c| topic::stats(c, topic::get(c, name)?.id))
    }

    /// As [`Database::check`], inside this transaction.
    ///
    /// # Errors
    /// As [`Database::check`].
    pub fn check(&mut self) -> Result<()> {
        let problems = self.step(|c| api::problems(c))?;
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::CheckFailed { problems })
        }
    }

    /// Commits. Durable (per the database's durability) when it returns Ok.
    ///
    /// # Errors
    /// `TransactionAborted` after a fenced ACK/NACK (rolled back then);
    /// `CommitAmbiguous` when the commit itself failed.
    pub fn commit(mut self) -> Result<()> {
        if let Some(why) = self.failed.take() {
            self.finish();
            return Err(Error::TransactionAborted(why));
        }
        if self.conn()?.is_autocommit() {
            self.finish();
            return Err(Error::TransactionAborted(ENDED.into()));
        }
        let Some(tx_conn) = self.take_conn() else {
            return Err(self.over());
        };
        let conn = tx_conn.own();
        match run_cached(conn, "COMMIT") {
            Ok(()) => {
                storage::after_commit(conn);
                self.db.committed(conn, &self.effects);
                if !self.lent.get() || tx_conn.reset().is_ok() {
                    self.db.pool().put_back(tx_conn);
                }
                Ok(())
            }
            Err(e) => {
                // Outcome unknown: roll back what may be left and never reuse
                // this connection (after an fsync error it cannot be trusted).
                rollback(conn);
                Err(Error::commit_failed("COMMIT", &e))
            }
        }
    }

    /// Rolls back.
    ///
    /// # Errors
    /// Storage errors.
    pub fn rollback(mut self) -> Result<()> {
        self.finish();
        Ok(())
    }

    /// Rolls back and returns a healthy connection to the pool.
    fn finish(&mut self) {
        if let Some(conn) = self.take_conn()
            && run_cached(conn.own(), "ROLLBACK").is_ok()
            && (!self.lent.get() || conn.reset().is_ok())
        {
            self.db.pool().put_back(conn);
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        self.finish();
    }
}
