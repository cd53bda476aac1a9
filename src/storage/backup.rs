//! Online backup: a consistent copy of the whole file (every table, so
//! messages, groups, cursors, leases, dead letters, dedup ids and processed
//! keys) while other connections and processes keep writing.
//!
//! SQLite's backup API copies pages in steps; a step that finds the source
//! changed by another connection starts the copy over, so under steady
//! writes a stepwise copy might never end. The copy therefore runs inside
//! one read transaction on its own source connection: every step reads the
//! same snapshot (WAL readers do not block writers), nothing starts over,
//! and the copy is the database as it was at one commit.

use std::path::Path;
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags};

use super::BUSY_TIMEOUT;
use super::files::create_private;
use crate::{Error, FileProblem, Result};

/// Pages copied per step (1 MB at 4 KB pages): the progress callback's grain.
const PAGES_PER_STEP: i32 = 256;

/// What a backup copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupStats {
    /// Database pages copied.
    pub pages: u64,
    /// Bytes copied (pages times the page size): the copy's size.
    pub bytes: u64,
}

/// The new file a backup writes; removed (with a journal SQLite may have
/// left beside it) unless the copy completes.
struct Target<'a> {
    path: &'a Path,
    done: bool,
}

impl Drop for Target<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(self.path);
            let mut journal = self.path.as_os_str().to_owned();
            journal.push("-journal");
            let _ = std::fs::remove_file(journal);
        }
    }
}

/// Copies the database `src` reads into a new file at `dest`, created 0600
/// (an existing file is refused), telling `progress` (pages done, pages in
/// all) after each step.
///
/// # Errors
/// `OutputFile` when `dest` exists or cannot be created; storage errors
/// (the partial copy is removed).
pub(crate) fn copy(
    src: &Connection,
    dest: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupStats> {
    create_private(dest).map_err(|err| Error::OutputFile {
        path: dest.to_path_buf(),
        problem: if err.kind() == std::io::ErrorKind::AlreadyExists {
            FileProblem::BackupExists
        } else {
            FileProblem::Io(err)
        },
    })?;
    let mut target = Target {
        path: dest,
        done: false,
    };
    let mut to = Connection::open_with_flags(
        dest,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    src.execute_batch("BEGIN")?;
    let copied = snapshot_copy(src, &mut to, progress);
    // Ends the read transaction (nothing was written in it).
    let ended = src.execute_batch("COMMIT");
    let stats = copied?;
    ended?;
    to.close().map_err(|(_, e)| e)?;
    std::fs::File::open(dest)?.sync_all()?;
    if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
        // The new name must last too; a directory that cannot be opened
        // for syncing (some file systems) is not an error.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    target.done = true;
    Ok(stats)
}

/// The copy itself, inside the read transaction `src` has begun.
fn snapshot_copy(
    src: &Connection,
    to: &mut Connection,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<BackupStats> {
    // The first read fixes the snapshot every step then reads.
    let page_size: i64 = src.query_row("PRAGMA page_size", [], |r| r.get(0))?;
    src.query_row("SELECT count(*) FROM sqlite_schema", [], |r| {
        r.get::<_, i64>(0)
    })?;
    let backup = Backup::new(src, to)?;
    let started = Instant::now();
    loop {
        match backup.step(PAGES_PER_STEP)? {
            StepResult::Done => break,
            StepResult::More => {}
            // The destination is ours alone and the source is read in a
            // snapshot, so this is rare; wait as a busy handler would.
            StepResult::Busy | StepResult::Locked if started.elapsed() < BUSY_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(1));
            }
            _ => {
                return Err(Error::LockTimeout {
                    statement: "BACKUP".into(),
                });
            }
        }
        let p = backup.progress();
        let total = u64::try_from(p.pagecount).unwrap_or(0);
        let left = u64::try_from(p.remaining).unwrap_or(0);
        progress(total.saturating_sub(left), total);
    }
    let p = backup.progress();
    let pages = u64::try_from(p.pagecount).unwrap_or(0);
    progress(pages, pages);
    Ok(BackupStats {
        pages,
        bytes: pages * u64::try_from(page_size).unwrap_or(0),
    })
}
