//! Running statements: `Database::execute`, `Transaction::execute`, and a
//! `Session` that runs them one by one with BEGIN/COMMIT/ROLLBACK.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::ast::Statement;
use super::exec::{self, Progress};
use crate::{Database, Error, Result, ResultSet, Transaction};

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
pub struct Session {
    db: Database,
    interrupt: Arc<AtomicBool>,
    /// The transaction BEGIN opened; dropped (rolled back) with the session.
    tx: Option<Transaction>,
    /// Told how long statements (BENCH) progress.
    progress: Option<Box<Progress<'static>>>,
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
            (_, Some(tx)) => exec::run_in(tx, stmt, out),
            (_, None) => {
                let progress = self.progress.as_deref_mut();
                exec::run(&self.db, &self.interrupt, progress, stmt, out)
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
