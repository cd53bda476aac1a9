//! `Database::backup`: an online, consistent copy of the file.

use std::path::Path;

use super::Database;
use crate::Result;
use crate::storage::{self, BackupStats, files};

impl Database {
    /// Copies the whole database (messages, groups, cursors, leases, dead
    /// letters, dedup ids, processed keys) into a new file at `path`, as it
    /// was at one commit, while other threads and processes keep
    /// publishing and consuming. The copy is created 0600 and opens as an
    /// ordinary mqlite database. `progress` is told (pages copied, pages in
    /// all) as the copy goes.
    ///
    /// The copy reads one snapshot from start to end: while it runs, the
    /// write-ahead log cannot be emptied (see docs/design.md, "Backup").
    ///
    /// # Errors
    /// `OutputFile` when `path` exists (a backup never replaces a file),
    /// is the database's own file or one of its -wal/-shm/-journal files,
    /// or cannot be created; storage errors (the partial copy is removed).
    pub fn backup(
        &self,
        path: impl AsRef<Path>,
        mut progress: impl FnMut(u64, u64),
    ) -> Result<BackupStats> {
        let dest = path.as_ref();
        files::refuse_database_files(&self.inner.path, dest)?;
        let src = storage::open(
            &self.inner.path,
            self.inner.durability,
            self.inner.read_only,
        )?;
        let copied = storage::backup::copy(&src, dest, &mut progress);
        if self.inner.read_only {
            storage::release_read_only(&src, &self.inner.wal);
        }
        copied
    }
}
