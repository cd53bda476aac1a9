//! Giving file space back after a drain, a PURGE or a DROP.
//!
//! A write that frees many pages asks for it on its [`Ctx`]; the write path
//! calls [`shrink`] after the commit (a `VACUUM` cannot run inside a
//! transaction).

use rusqlite::Connection;

use super::tx::Ctx;
use crate::Result;

/// Free pages a file must have before a drained partition shrinks it.
const SHRINK_MIN_FREE_PAGES: i64 = 256;
/// Most bytes still in use for which `shrink` runs a `VACUUM`. It copies
/// them twice, holding the write lock: 0.06 s for 8 MB (0.28 s for 32 MB)
/// on the development machine, measured with Python's sqlite3 on a table
/// like `mq_messages`.
const SHRINK_MAX_LIVE_BYTES: i64 = 8 * 1024 * 1024;

/// Asks for `shrink` after the commit when the file has free pages to give
/// back (after a drain, a PURGE or a DROP).
pub(crate) fn give_back_free_pages(ctx: &Ctx<'_>) -> Result<()> {
    let free: i64 = ctx.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    if free > SHRINK_MIN_FREE_PAGES {
        ctx.want_shrink();
    }
    Ok(())
}

/// After a commit that asked for it: gives free pages back to the file
/// system. Files made before 2026-11 use `auto_vacuum = INCREMENTAL`, which
/// costs every page split a pointer-map update (about 670 instructions per
/// batched message); for them this runs `PRAGMA incremental_vacuum`. Newer
/// files have no auto-vacuum: when at most a quarter of the file and at
/// most `SHRINK_MAX_LIVE_BYTES` are in use, this rewrites the file with
/// `VACUUM`, which costs time in proportion to what is left, so usually
/// little after a drain. Otherwise the free pages stay for later writes.
/// Best effort: the commit already succeeded, so a failure here is not
/// reported.
pub(crate) fn shrink(conn: &Connection) {
    let _ = try_shrink(conn);
}

fn try_shrink(conn: &Connection) -> Result<()> {
    let pragma = |name: &str| -> Result<i64> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    };
    let free = pragma("freelist_count")?;
    if free <= SHRINK_MIN_FREE_PAGES {
        return Ok(());
    }
    if pragma("auto_vacuum")? == 2 {
        let mut st = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        return Ok(());
    }
    let pages = pragma("page_count")?;
    let live = pages - free;
    if live * 4 > pages || live * pragma("page_size")? > SHRINK_MAX_LIVE_BYTES {
        return Ok(());
    }
    conn.execute_batch("VACUUM")?;
    // Copy the rewritten file back from the WAL now and empty the WAL, so
    // the space is given back at once: the WAL held the whole rewritten
    // file, and on a nearly full disk that is what a PURGE must free.
    super::truncate_wal(conn);
    Ok(())
}
