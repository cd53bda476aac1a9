//! Group commit: concurrent writers in one process share one transaction and
//! one fsync, and each is told its result only after that commit returned.
//!
//! Callers queue a job; whoever finds no leader becomes the leader, takes
//! every queued job, runs them in one `BEGIN IMMEDIATE` transaction, commits
//! once, and hands out the results, waking each caller on its own
//! condition variable. Jobs queued while a leader is committing form the
//! next batch, led by the caller of the first of them.
//!
//! A batch first runs its jobs without savepoints (two statements less per
//! write). If one fails, the transaction is rolled back and the batch runs
//! again with a savepoint per job, so the failing job changes nothing for
//! the others. Jobs are therefore `FnMut` and touch only the database.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Longest a leader waits for other active writers to queue their writes.
const GATHER: Duration = Duration::from_micros(250);

use super::tx::Ctx;
use crate::sync::{lock, wait, wait_timeout};
use crate::{Error, Result};

/// A queued write, type-erased.
trait Job: Send {
    /// Runs inside the batch transaction, replacing any earlier result;
    /// returns whether it succeeded. With `savepoint` false a failure leaves
    /// its partial writes: the caller must roll back the whole transaction.
    fn run(&mut self, c: &Ctx<'_>, savepoint: bool) -> bool;
    /// The commit failed: a success becomes this error.
    fn fail(&mut self, e: &Error);
    /// Hands the result to the waiting caller and wakes it.
    fn finish(self: Box<Self>);
    /// Wakes the waiting caller to lead the next batch (its job is queued).
    fn wake_to_lead(&self);
    /// Whether other connections may see this write before it is durable
    /// (see `GroupCommit::run`).
    fn early_visible(&self) -> bool;
}

/// Where a waiting caller gets its result, or is told to lead. Each caller
/// sleeps on its own condition variable, so a finished batch wakes exactly
/// its callers, one by one, and they do not queue up on one lock.
struct Slot<T> {
    state: Mutex<SlotState<T>>,
    wake: Condvar,
}

struct SlotState<T> {
    result: Option<Result<T>>,
    lead: bool,
}

impl<T> Slot<T> {
    /// Sleeps until there is a result or a call to lead (which it takes).
    fn wait(&self) {
        let mut st = lock(&self.state);
        while st.result.is_none() && !std::mem::take(&mut st.lead) {
            st = wait(&self.wake, st);
        }
    }
}

struct TypedJob<T, F> {
    f: Option<F>,
    result: Option<Result<T>>,
    slot: Arc<Slot<T>>,
    early_visible: bool,
    /// The statement, for its error if the batch's commit fails.
    what: &'static str,
}

impl<T, F> Job for TypedJob<T, F>
where
    T: Send,
    F: FnMut(&Ctx<'_>) -> Result<T> + Send,
{
    fn run(&mut self, c: &Ctx<'_>, savepoint: bool) -> bool {
        let Some(f) = self.f.as_mut() else {
            return false;
        };
        // A panicking write must not take the leader down with it: every
        // other writer waits for the leader to hand out results.
        let what = self.what;
        let mut f = |c: &Ctx<'_>| {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(c)))
                .unwrap_or_else(|_| {
                    Err(Error::Transaction(
                        "internal error: a write panicked".into(),
                    ))
                })
                .map_err(|e| Error::write_failed(what, e))
        };
        if !savepoint {
            let r = f(c);
            let ok = r.is_ok();
            self.result = Some(r);
            return ok;
        }
        let r = super::tx::savepoint(c, "mq_job", || f(c));
        let ok = r.is_ok();
        self.result = Some(r);
        ok
    }

    fn fail(&mut self, e: &Error) {
        if matches!(self.result, Some(Ok(_)) | None) {
            self.result = Some(Err(e.for_statement(self.what)));
        }
    }

    fn finish(self: Box<Self>) {
        let r = self
            .result
            .unwrap_or_else(|| Err(Error::ambiguous(self.what, "the write was not run")));
        lock(&self.slot.state).result = Some(r);
        self.slot.wake.notify_one();
    }

    fn wake_to_lead(&self) {
        lock(&self.slot.state).lead = true;
        self.slot.wake.notify_one();
    }

    fn early_visible(&self) -> bool {
        self.early_visible
    }
}

/// Runs the jobs it is given (`&mut dyn FnMut(ctx) -> keep`) in one
/// transaction and returns the commit's outcome; `keep` false means roll back.
/// With `defer_sync` true it may commit without its fsync and leave that to
/// the `sync` given to `GroupCommit::run`, called after the runner returned
/// (and released the connection).
pub(crate) type BatchRunner<'a> = dyn Fn(&mut dyn FnMut(&Ctx<'_>) -> bool, bool) -> Result<()> + 'a;

#[derive(Default)]
struct State {
    queue: Vec<Box<dyn Job>>,
    leading: bool,
    /// Callers inside `run` (queued, or just handed a result).
    active: usize,
}

/// The queue of writes waiting for a commit.
#[derive(Default)]
pub(crate) struct GroupCommit {
    state: Mutex<State>,
    /// Signalled when a job is queued, for a leader gathering its batch.
    arrived: Condvar,
    /// Batches committed (one fsync each under durability full).
    pub(crate) batches: AtomicU64,
    /// Writes that went through the queue.
    pub(crate) writes: AtomicU64,
}

impl GroupCommit {
    /// Wakes a gathering leader once every active writer has queued; waking
    /// it on each arrival cost a context switch per write (perf: most of
    /// the time of 8 publishing threads went to task switching).
    fn wake_gatherer(&self, st: &State) {
        if st.leading && st.queue.len() >= st.active {
            self.arrived.notify_one();
        }
    }

    /// Runs `f` in a shared write transaction. `batch` runs a list of jobs
    /// in one transaction: it must begin, call each job, and commit,
    /// returning the commit's error if any.
    ///
    /// `early_visible`: the write may be seen by other connections before
    /// it is durable (an ACK: if power fails before the fsync, the message
    /// is delivered again, which at-least-once allows). A batch of only
    /// such writes is committed with `defer_sync`, and the leader calls
    /// `sync` after the connection is released, so other work on the
    /// connection (a CONSUME of another thread) runs during the fsync. Every
    /// caller still gets its result only after the fsync. A publish is not
    /// early-visible: another process could consume a message whose publish
    /// a power failure then undoes.
    pub(crate) fn run<T, F>(
        &self,
        what: &'static str,
        f: F,
        early_visible: bool,
        batch: &BatchRunner<'_>,
        sync: &dyn Fn() -> Result<()>,
    ) -> Result<T>
    where
        T: Send + 'static,
        F: FnMut(&Ctx<'_>) -> Result<T> + Send + 'static,
    {
        let slot = Arc::new(Slot {
            state: Mutex::new(SlotState {
                result: None,
                lead: false,
            }),
            wake: Condvar::new(),
        });
        let job: Box<dyn Job> = Box::new(TypedJob {
            f: Some(f),
            result: None,
            slot: Arc::clone(&slot),
            early_visible,
            what,
        });
        let mut st = lock(&self.state);
        st.queue.push(job);
        st.active += 1;
        self.wake_gatherer(&st);
        loop {
            // Done: by a batch this caller or another leader ran.
            let done = lock(&slot.state).result.take();
            if let Some(r) = done {
                st.active -= 1;
                self.wake_gatherer(&st);
                return r;
            }
            if st.leading {
                // Until a result, or a call to lead (another caller may take
                // the lead, and this job, before this one gets there).
                drop(st);
                slot.wait();
                st = lock(&self.state);
                continue;
            }
            st.leading = true;
            let jobs = self.gather(st);
            if !jobs.is_empty() {
                self.commit_batch(jobs, batch, sync);
            }
            st = lock(&self.state);
            st.leading = false;
            // Jobs queued during this commit: their first caller leads next.
            if let Some(next) = st.queue.first() {
                next.wake_to_lead();
            }
        }
    }

    /// As the leader: waits a moment for every active writer to queue, then
    /// takes the queue. Writers that just got their results usually come
    /// back at once; the wait (far less than an fsync) lets one commit serve
    /// them all.
    fn gather(&self, mut st: MutexGuard<'_, State>) -> Vec<Box<dyn Job>> {
        let until = Instant::now() + GATHER;
        while st.queue.len() < st.active {
            let now = Instant::now();
            if now >= until {
                break;
            }
            st = wait_timeout(&self.arrived, st, until - now);
        }
        std::mem::take(&mut st.queue)
    }

    /// Runs a batch in one transaction and hands every job its result.
    /// Optimistic: no savepoints. A failing job rolls the whole transaction
    /// back; then, if it had company, the batch runs again with a savepoint
    /// each so the others still commit.
    fn commit_batch(
        &self,
        mut jobs: Vec<Box<dyn Job>>,
        batch: &BatchRunner<'_>,
        sync: &dyn Fn() -> Result<()>,
    ) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.writes.fetch_add(jobs.len() as u64, Ordering::Relaxed);
        let defer_sync = jobs.iter().all(|j| j.early_visible());
        let mut failed = false;
        let mut outcome = batch(
            &mut |c| {
                for j in jobs.iter_mut() {
                    if !j.run(c, false) {
                        failed = true;
                        return false;
                    }
                }
                true
            },
            defer_sync,
        );
        if failed && jobs.len() > 1 {
            outcome = batch(
                &mut |c| {
                    for j in jobs.iter_mut() {
                        j.run(c, true);
                    }
                    true
                },
                defer_sync,
            );
        }
        if defer_sync && outcome.is_ok() {
            outcome = sync();
        }
        if let Err(e) = outcome {
            for j in jobs.iter_mut() {
                j.fail(&e);
            }
        }
        for j in jobs {
            j.finish();
        }
    }
}
