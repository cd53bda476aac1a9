//! The WAL checkpoint policy: a background thread per open handle runs
//! `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own, so writers
//! never pay for a checkpoint inside their commit (autocheckpoint is off on
//! mqlite's connections). PASSIVE never waits for readers or writers; the
//! WAL is reused from its start once fully checkpointed and is truncated to
//! `journal_size_limit` when it restarts, so it stays bounded.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

/// How often the checkpointer runs.
const EVERY: Duration = Duration::from_millis(100);

/// Stops and joins its thread when dropped.
pub(crate) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing `path`; None if the thread or its connection
    /// could not be made (the handle then checkpoints at close only, which
    /// is still correct).
    pub(crate) fn start(path: &Path) -> Option<Checkpointer> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .ok()?;
        conn.execute_batch("PRAGMA mmap_size = 0; PRAGMA wal_autocheckpoint = 0;")
            .ok()?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let flag = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("mqlite-checkpoint".into())
            .spawn(move || run(&conn, &flag))
            .ok()?;
        Some(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

fn run(conn: &Connection, stop: &(Mutex<bool>, Condvar)) {
    let (lock, cv) = stop;
    let mut stopped = lock.lock().unwrap_or_else(|p| p.into_inner());
    while !*stopped {
        stopped = cv
            .wait_timeout(stopped, EVERY)
            .unwrap_or_else(|p| p.into_inner())
            .0;
        if *stopped {
            break;
        }
        // Busy or locked only means: try again next time.
        let _ = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        *self.stop.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.stop.1.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
