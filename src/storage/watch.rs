//! Wake-up across processes without polling.
//!
//! A commit that makes something deliverable, or changes when something
//! becomes due (a lease granted, a NACK DELAY), is followed by a *signal*:
//! the committing handle sets the times of the file's write-ahead log to
//! now (`utimensat`, one system call). Setting times is an attribute change
//! (`IN_ATTRIB` on Linux), which a waiting handle in any process sees through
//! its [`Watch`] of the file's directory. The signal comes after the commit
//! returned, so a waiter it wakes sees the commit: watching the log's
//! writes instead would wake waiters before the commit is visible (the
//! frames are written before the fsync and the index update), and the
//! commit they then missed would announce itself no more.

use std::path::{Path, PathBuf};

use notify::event::{EventKind, ModifyKind};
use notify::{RecommendedWatcher, RecursiveMode, Watcher};

/// Tells waiting handles in every process to look again.
pub(crate) fn signal(wal: &Path) {
    use rustix::fs::{AtFlags, CWD, Timespec, Timestamps, UTIME_NOW};
    // Both times: Linux reports a change of both as IN_ATTRIB, of the
    // modification time alone as IN_MODIFY, which every write of the log
    // also causes (and which waiters therefore ignore).
    let now = Timespec {
        tv_sec: 0,
        tv_nsec: UTIME_NOW,
    };
    let times = Timestamps {
        last_access: now,
        last_modification: now,
    };
    // Best effort: without the signal, waiters fall back to their slow poll.
    let _ = rustix::fs::utimensat(CWD, wal, &times, AtFlags::empty());
}

/// A watch of the directory holding the write-ahead log: calls `on_signal`
/// (on the watcher's own thread) for every attribute change of the log.
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
    /// Starts watching, or None where the system offers no watch (too many
    /// watches, an unsupported file system): the caller polls instead.
    pub(crate) fn start(wal: &Path, on_signal: impl Fn() + Send + 'static) -> Option<Watch> {
        let wal: PathBuf = wal.to_path_buf();
        let name = wal.file_name()?.to_os_string();
        let dir = match wal.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let Ok(event) = event else {
                    // An overflowed queue may have dropped a signal: look again.
                    on_signal();
                    return;
                };
                let attrib = matches!(event.kind, EventKind::Modify(ModifyKind::Metadata(_)));
                if attrib && event.paths.iter().any(|p| p.file_name() == Some(&name)) {
                    on_signal();
                }
            })
            .ok()?;
        watcher.watch(&dir, RecursiveMode::NonRecursive).ok()?;
        Some(Watch { _watcher: watcher })
    }
}
