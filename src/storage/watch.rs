//! Wake-up across processes without polling.
//!
//! A commit that makes something deliverable, or changes when something
//! becomes due (a lease granted, a NACK DELAY), is followed by a *signal*:
//! the committing handle opens the directory that holds the database and
//! closes it again (two system calls). Opening is an event (`IN_OPEN` on
//! Linux), which a waiting handle in any process sees through its [`Watch`]
//! of that directory. The signal comes after the commit returned, so a
//! waiter it wakes sees the commit: watching the log's writes instead
//! would wake waiters before the commit is visible (the frames are written
//! before the fsync and the index update), and the commit they then missed
//! would announce itself no more.
//!
//! Opening a directory changes nothing on disk. A signal that does was
//! measured to cost: setting the times of the log or of `-shm` made the
//! next fsync write the inode too, and single publishes fell from 0.93 to
//! 0.71-0.78 of raw SQLite (`cargo bench --bench ratios -- publish`).
//! Files of the directory are never opened for the signal: closing a
//! descriptor of a file would drop the POSIX locks SQLite holds on it.

use std::path::{Path, PathBuf};

use notify::event::{AccessKind, EventKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Tells waiting handles in every process to look again.
pub(crate) fn signal(dir: &Path) {
    use rustix::fs::{Mode, OFlags};
    // Best effort: without the signal, waiters fall back to their slow poll.
    let _ = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    );
}

/// The directory holding the database at `path` (its signals' address).
pub(crate) fn directory_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// A watch of the directory holding the database: calls `on_signal` (on
/// the watcher's own thread) whenever the directory itself is opened.
/// Dropping it stops the watching thread.
pub(crate) struct Watch {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for Watch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Watch")
    }
}

impl Watch {
    /// Starts watching `dir`, or None where the system offers no watch (too
    /// many watches, an unsupported file system): the caller polls instead.
    pub(crate) fn start(dir: &Path, on_signal: impl Fn() + Send + 'static) -> Option<Watch> {
        let watched = dir.to_path_buf();
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    // An overflowed queue may have dropped a signal: look again.
                    on_signal();
                    return;
                };
                let opened = matches!(event.kind, EventKind::Access(AccessKind::Open(_)));
                if opened && event.paths.contains(&watched) {
                    on_signal();
                }
            })
            .ok()?;
        watcher.watch(dir, RecursiveMode::NonRecursive).ok()?;
        Some(Watch { _watcher: watcher })
    }
}
