//! CONSUME, and CONSUME ... WAIT: blocking until something is deliverable.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Database;
use crate::Result;
use crate::delivery::{self, ConsumeRequest, Delivery};
use crate::sync::{lock, wait_timeout};

/// Longest a waiting consumer sleeps before it looks again for leases and
/// delays that ran out (nothing announces those).
const RECHECK: Duration = Duration::from_millis(500);

impl Database {
    /// Leases messages. With a wait, blocks until one arrives or the wait ends.
    ///
    /// # Errors
    /// `TopicNotFound`, `GroupNotFound`, `NotSubscribed`; `QueueNotFound`
    /// for a missing name without a group, `WrongKind` for a topic; `InvalidOption` for a count or ACK
    /// WAIT out of range; `Incomplete` with neither topic nor group.
    pub fn consume(&self, request: &ConsumeRequest) -> Result<Vec<Delivery>> {
        self.consume_until(request, None)
    }

    /// One CONSUME attempt (no waiting).
    fn consume_now(&self, req: &ConsumeRequest) -> Result<Vec<Delivery>> {
        self.reserve_ids()?;
        self.write_lease(|c| delivery::consume_once(c, req, self.ids()))
    }

    /// As `consume`; a WAIT ends early when `interrupt` is set.
    pub(crate) fn consume_until(
        &self,
        req: &ConsumeRequest,
        interrupt: Option<&AtomicBool>,
    ) -> Result<Vec<Delivery>> {
        req.check()?;
        let Some(wait) = req.waits() else {
            // No WAIT: one attempt, none of the wake-up bookkeeping below.
            return self.consume_now(req);
        };
        let deadline = Instant::now() + wait;
        let mut backoff = Duration::from_micros(250);
        loop {
            let seq = *lock(&self.inner.notify.seq);
            let version = self.commits_by_others()?;
            let got = self.consume_now(req)?;
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
                self.sleep_unless_woken(seq, backoff.min(deadline - now));
                backoff = (backoff * 2).min(Duration::from_millis(100));
                let changed =
                    *lock(&self.inner.notify.seq) != seq || self.commits_by_others()? != version;
                if changed || tried.elapsed() >= RECHECK {
                    if changed {
                        backoff = Duration::from_micros(250);
                    }
                    break;
                }
            }
        }
    }

    /// Sleeps up to `step`, or until this handle wakes its waiters (if it
    /// has not since `seq`).
    fn sleep_unless_woken(&self, seq: u64, step: Duration) {
        let guard = lock(&self.inner.notify.seq);
        if *guard == seq {
            drop(wait_timeout(&self.inner.notify.cv, guard, step));
        }
    }

    /// SQLite's count of commits other connections made to the file, as
    /// this connection sees it (`PRAGMA data_version`).
    fn commits_by_others(&self) -> Result<i64> {
        self.read(|c, _| Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?))
    }
}
