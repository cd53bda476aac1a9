//! Running statements: `Database::execute`, `Transaction::execute`, and a
//! `Session` that runs them one by one with BEGIN/COMMIT/ROLLBACK.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ast::{ClockSetting, Statement, TimeSpec};
use super::exec::{self, Progress};
use crate::value::{MAX_TIMESTAMP_MS, MIN_TIMESTAMP_MS};
use crate::{Database, Error, ManualClock, Result, ResultSet, Transaction, Value};

impl Database {
    /// Runs statements of the command language; returns the last statement's result.
    ///
    /// # Errors
    /// `Syntax` for a statement that does not parse (then nothing runs), else
    /// the first statement's error (statements before it have run).
    pub fn execute(&self, text: &str) -> Result<ResultSet> {
        Ok(self
            .execute_all(text)?
            .pop()
            .unwrap_or_else(ResultSet::empty))
    }

    /// Runs statements of the command language; returns every statement's
    /// result, in order.
    ///
    /// # Errors
    /// As [`Database::execute`].
    pub fn execute_all(&self, text: &str) -> Result<Vec<ResultSet>> {
        let stmts = super::parse_script(text)?;
        let mut session = self.session();
        let mut results = Vec::with_capacity(stmts.len());
        for s in &stmts {
            results.push(session.execute_statement(&s.statement)?);
        }
        if session.in_transaction() {
            drop(session);
            return Err(Error::Transaction(
                "BEGIN without COMMIT or ROLLBACK: the transaction was rolled back".into(),
            ));
        }
        Ok(results)
    }

    /// A session: runs statements one by one.
    pub fn session(&self) -> Session {
        Session {
            db: self.clone(),
            manual: None,
            interrupt: Arc::new(AtomicBool::new(false)),
            tx: None,
            progress: None,
        }
    }
}

impl Transaction {
    /// Runs statements of the language inside this transaction; returns the
    /// last result. BEGIN, COMMIT and ROLLBACK are refused here.
    ///
    /// # Errors
    /// As [`Database::execute`].
    pub fn execute(&mut self, text: &str) -> Result<ResultSet> {
        let stmts = super::parse_script(text)?;
        let mut last = ResultSet::empty();
        for s in &stmts {
            let mut result = ResultSet::empty();
            exec::run_in(self, &s.statement, &mut |rs| {
                result = rs;
                Ok(())
            })?;
            last = result;
        }
        Ok(last)
    }
}

/// Runs statements of the language against a database, one after another.
///
/// A session has its own clock: `SET CLOCK 'time'` and `ADVANCE d` put it on
/// a [`ManualClock`], and its statements then run on a second handle of the
/// same file opened with the same options and that clock
/// ([`Database::with_clock`]); `SET CLOCK SYSTEM` goes back to the handle
/// it was made with.
pub struct Session {
    db: Database,
    /// While SET CLOCK or ADVANCE hold: the session's clock and the handle
    /// that uses it.
    manual: Option<(ManualClock, Database)>,
    interrupt: Arc<AtomicBool>,
    /// The transaction BEGIN opened; dropped (rolled back) with the session.
    tx: Option<Transaction>,
    /// Told how long statements (BENCH, BACKUP) progress.
    progress: Option<Box<Progress<'static>>>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("db", &self.db)
            .field("manual_clock", &self.manual.as_ref().map(|(c, _)| c))
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
    /// (BENCH, BACKUP) runs, e.g. to draw a progress bar.
    pub fn set_progress(&mut self, progress: impl FnMut(&str, u64, u64) + Send + 'static) {
        self.progress = Some(Box::new(progress));
    }

    /// True between BEGIN and COMMIT/ROLLBACK.
    pub fn in_transaction(&self) -> bool {
        self.tx.is_some()
    }

    /// The database statements run on: the handle on the session's clock
    /// while SET CLOCK or ADVANCE hold, else the one the session was made with.
    pub fn database(&self) -> &Database {
        self.manual.as_ref().map_or(&self.db, |(_, db)| db)
    }

    /// SET CLOCK and ADVANCE: returns the session's clock afterwards (a
    /// SHOW CLOCK row). Refused inside BEGIN, whose transaction runs on the
    /// handle it began on.
    fn set_clock(&mut self, stmt: &Statement) -> Result<ResultSet> {
        let what = match stmt {
            Statement::Advance(_) => "ADVANCE",
            _ => "SET CLOCK",
        };
        if self.tx.is_some() {
            return Err(Error::NotAllowedInTransaction {
                statement: what.into(),
            });
        }
        let now = self.database().now_ms();
        let ms = |d: &std::time::Duration| i64::try_from(d.as_millis()).ok();
        let to = match stmt {
            Statement::SetClock(ClockSetting::At(TimeSpec::Absolute(t))) => Some(*t),
            Statement::SetClock(ClockSetting::At(TimeSpec::Ago(d))) => {
                Some(clock_time(what, ms(d).and_then(|d| now.checked_sub(d)))?)
            }
            Statement::Advance(d) => {
                Some(clock_time(what, ms(d).and_then(|d| now.checked_add(d)))?)
            }
            _ => None,
        };
        match (to, &self.manual) {
            (None, _) => self.manual = None,
            (Some(t), Some((clock, _))) => clock.set(t),
            (Some(t), None) => {
                let clock = ManualClock::new(t);
                let db = self.db.with_clock(clock.clone())?;
                self.manual = Some((clock, db));
            }
        }
        Ok(clock_row(self.database()))
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
        if matches!(stmt, Statement::SetClock(_) | Statement::Advance(_)) {
            return out(self.set_clock(stmt)?);
        }
        match (stmt, self.tx.as_mut()) {
            (Statement::Begin, None) => {
                let tx = self.database().transaction()?;
                self.tx = Some(tx);
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
            (_, Some(tx)) => exec::run_in(tx, stmt, out),
            (_, None) => {
                let db = self.manual.as_ref().map_or(&self.db, |(_, db)| db);
                let progress = self.progress.as_deref_mut();
                exec::run(db, &self.interrupt, progress, stmt, out)
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

/// The row SET CLOCK, ADVANCE and SHOW CLOCK return: the time statements on
/// `db` run at, and whose clock that is (`system`: the machine's; `manual`:
/// one the program or session set).
pub(super) fn clock_row(db: &Database) -> ResultSet {
    let source = if db.has_wall_clock() {
        "system"
    } else {
        "manual"
    };
    ResultSet {
        columns: vec!["clock".into(), "source".into()],
        rows: vec![vec![
            Value::Timestamp(db.now_ms()),
            Value::Text(source.into()),
        ]],
    }
}

/// A time SET CLOCK or ADVANCE (`what`) computed (None: it overflowed),
/// if the language can write it: 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z.
fn clock_time(what: &str, t: Option<i64>) -> Result<i64> {
    t.filter(|t| (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(t))
        .ok_or_else(|| {
            Error::option(
                what,
                format!(
                    "{what} would move the clock outside 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z"
                ),
            )
        })
}
