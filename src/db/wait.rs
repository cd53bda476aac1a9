//! CONSUME, and CONSUME ... WAIT: blocking until something is deliverable.
//!
//! A waiter sleeps on its handle's condition variable until the earliest of:
//! a wake-up (a commit of this handle that made something deliverable, or a
//! signal from another process seen by the handle's [`Watch`]), the next
//! moment something of its group becomes due by itself (a lease or a delay
//! running out, in any process: `delivery::next_due`), and its deadline. It
//! burns no CPU in between. Without a watch (a system that offers none) it
//! polls `PRAGMA data_version` with a backoff, as before.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::Database;
use crate::Result;
use crate::delivery::{self, ConsumeRequest, Delivery};
use crate::storage::watch::Watch;
use crate::sync::{lock, wait_timeout};

/// Longest a waiter with a watch sleeps before it checks for commits
/// anyway: a safety net for a signal that never came (a writer that
/// crashed between its commit and its signal), cheap enough to keep.
const SAFETY_NET: Duration = Duration::from_secs(1);

/// Longest sleep while an interrupt flag (Ctrl-C in the shell) may end the
/// wait: the flag is a plain atomic, nothing wakes the sleeper for it.
const INTERRUPT_CHECK: Duration = Duration::from_millis(50);

/// Margin after a due time before looking: leases and delays are due at
/// `visible_at <= now` in whole milliseconds.
const DUE_MARGIN: Duration = Duration::from_millis(1);

impl Database {
    /// Leases messages. With a wait, blocks until one arrives or the wait ends.
    ///
    /// # Errors
    /// `TopicNotFound`, `GroupNotFound`, `NotSubscribed`; `QueueNotFound`
    /// for a missing name without a group, `WrongKind` for a topic;
    /// `InvalidOption` for a count or ACK WAIT out of range; `Incomplete`
    /// with neither topic nor group.
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
        let watched = self.watch();
        let mut backoff = Duration::from_micros(250);
        loop {
            // Read before the attempt: a wake-up after it is not lost.
            let seq = *lock(&self.inner.notify.seq);
            // Polling compares the commit count from before the attempt.
            // A watching waiter needs it only for its safety net, and reads
            // it after the attempt, off the path from wake-up to delivery:
            // a commit in between is signalled anyway.
            let version = if watched {
                None
            } else {
                Some(self.commits_by_others()?)
            };
            let got = self.consume_now(req)?;
            if !got.is_empty() {
                return Ok(got);
            }
            let due = self.read(|c, now| Ok(delivery::next_due(c, req, now)?.map(|t| (t, now))))?;
            let until = due.map_or(deadline, |(t, now)| {
                let ms = u64::try_from(t.saturating_sub(now)).unwrap_or(0);
                (Instant::now() + Duration::from_millis(ms) + DUE_MARGIN).min(deadline)
            });
            let woke = match version {
                None => self.sleep_watched(seq, until, interrupt)?,
                Some(v) => self.sleep_polling(seq, v, until, interrupt, &mut backoff)?,
            };
            if !woke && (Instant::now() >= deadline || interrupted(interrupt)) {
                return Ok(Vec::new());
            }
        }
    }

    /// Starts this handle's watch if it has none yet; false when the system
    /// offers none.
    fn watch(&self) -> bool {
        self.inner
            .watch
            .get_or_init(|| {
                let notify = Arc::clone(&self.inner.notify);
                Watch::start(&self.inner.dir, move || notify.bump())
            })
            .is_some()
    }

    /// Sleeps until a wake-up (true), `until`, or an interrupt. Every
    /// `SAFETY_NET` it checks for other processes' commits anyway.
    fn sleep_watched(
        &self,
        seq: u64,
        until: Instant,
        interrupt: Option<&AtomicBool>,
    ) -> Result<bool> {
        let version = self.commits_by_others()?;
        let mut net = Instant::now() + SAFETY_NET;
        loop {
            let now = Instant::now();
            if now >= until || interrupted(interrupt) {
                return Ok(false);
            }
            let mut step = until.min(net) - now;
            if interrupt.is_some() {
                step = step.min(INTERRUPT_CHECK);
            }
            if self.sleep_unless_woken(seq, step) {
                return Ok(true);
            }
            if Instant::now() >= net {
                if self.commits_by_others()? != version {
                    return Ok(true);
                }
                net = Instant::now() + SAFETY_NET;
            }
        }
    }

    /// Without a watch: polls for other processes' commits (`PRAGMA
    /// data_version`) with a backoff from 250 µs to 100 ms.
    fn sleep_polling(
        &self,
        seq: u64,
        version: i64,
        until: Instant,
        interrupt: Option<&AtomicBool>,
        backoff: &mut Duration,
    ) -> Result<bool> {
        loop {
            let now = Instant::now();
            if now >= until || interrupted(interrupt) {
                return Ok(false);
            }
            let woken = self.sleep_unless_woken(seq, (*backoff).min(until - now));
            *backoff = (*backoff * 2).min(Duration::from_millis(100));
            if woken || self.commits_by_others()? != version {
                *backoff = Duration::from_micros(250);
                return Ok(true);
            }
        }
    }

    /// Sleeps up to `step`, or until this handle's waiters are woken; true
    /// when they were (since `seq`).
    fn sleep_unless_woken(&self, seq: u64, step: Duration) -> bool {
        let guard = lock(&self.inner.notify.seq);
        if *guard != seq {
            return true;
        }
        let guard = wait_timeout(&self.inner.notify.cv, guard, step);
        *guard != seq
    }

    /// SQLite's count of commits other connections made to the file, as
    /// this connection sees it (`PRAGMA data_version`).
    fn commits_by_others(&self) -> Result<i64> {
        self.read(|c, _| Ok(c.query_row("PRAGMA data_version", [], |r| r.get(0))?))
    }
}

fn interrupted(flag: Option<&AtomicBool>) -> bool {
    flag.is_some_and(|f| f.load(Ordering::Relaxed))
}
