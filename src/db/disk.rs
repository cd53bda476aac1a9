//! The space on the file's disk that publishing leaves free.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::Database;
use crate::{Error, Result};

impl Database {
    /// Refuses a publish when the file's disk has less free space than the
    /// reserve (see `DatabaseBuilder::disk_reserve`). A `statvfs` costs
    /// 1-3 µs, a noticeable part of a grouped publish, so while the last
    /// one saw at least `DISK_RECHECK_MARGIN` above the reserve it is
    /// repeated at most once a second.
    pub(crate) fn check_disk_reserve(&self, what: &str) -> Result<()> {
        const DISK_RECHECK_MARGIN: u64 = 256 << 20;
        let reserve = self.inner.disk_reserve;
        if reserve == 0 {
            return Ok(());
        }
        // Lock-free: 8 publishing threads pass here per write.
        let since_open = |at: Instant| at.duration_since(self.inner.opened).as_nanos() as u64;
        if since_open(Instant::now()) < self.inner.disk_ok_until.load(Ordering::Relaxed) {
            return Ok(());
        }
        let dir = self.inner.wal.parent().unwrap_or(Path::new("."));
        let Ok(st) = rustix::fs::statvfs(dir) else {
            return Ok(());
        };
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        let ok_until = if free >= reserve.saturating_add(DISK_RECHECK_MARGIN) {
            since_open(Instant::now() + Duration::from_secs(1))
        } else {
            0
        };
        self.inner.disk_ok_until.store(ok_until, Ordering::Relaxed);
        // On a small disk, a quarter of it. A PURGE on a full disk needs
        // room to checkpoint the WAL (up to 4 MB at the autocheckpoint of
        // 1,000 pages) into the file, then to write its own pages.
        let reserve = reserve.min(st.f_blocks.saturating_mul(st.f_frsize) / 4);
        if free >= reserve {
            return Ok(());
        }
        // Pages the file has free (after a PURGE, say) take messages first.
        let free = free.saturating_add(
            self.read(|c, _| {
                Ok(c.query_row(
                "SELECT freelist_count * page_size FROM pragma_freelist_count, pragma_page_size",
                [],
                |r| r.get::<_, i64>(0),
            )?)
            })?
            .max(0) as u64,
        );
        if free >= reserve {
            return Ok(());
        }
        Err(Error::DiskFull {
            statement: what.to_string(),
            reason: format!(
                "the disk is nearly full: {} free, less than the {} that publishing leaves free so that PURGE, DROP and ACK still work",
                mib(free),
                mib(reserve)
            ),
        })
    }
}

/// Bytes as MiB for messages, e.g. "1.5 MiB".
fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / f64::from(1u32 << 20))
}
