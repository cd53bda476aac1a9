//! Idle connections for explicit transactions.

use std::path::PathBuf;
use std::sync::Mutex;

use super::Durability;
use super::app_sql::TxConn;
use crate::Result;
use crate::sync::lock;

/// Most idle connections kept.
const MAX_IDLE: usize = 4;

/// The connections explicit transactions run on: an idle one is reused, a
/// new one is opened (with the authorizer for application SQL installed
/// once, in [`TxConn::new`]).
#[derive(Debug)]
pub(crate) struct Pool {
    path: PathBuf,
    durability: Durability,
    idle: Mutex<Vec<TxConn>>,
}

impl Pool {
    pub(crate) fn new(path: PathBuf, durability: Durability) -> Pool {
        Pool {
            path,
            durability,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle connection, or a new one.
    pub(crate) fn take(&self) -> Result<TxConn> {
        if let Some(c) = lock(&self.idle).pop() {
            return Ok(c);
        }
        TxConn::new(super::open(&self.path, self.durability, false)?)
    }

    /// Returns a healthy connection to the idle list. Only connections the
    /// application never held, or that were reset, come back (see
    /// `Transaction::finish`).
    pub(crate) fn put_back(&self, conn: TxConn) {
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }
}
