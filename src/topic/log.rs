//! A topic's log: its messages per partition, trimmed from the front,
//! read in pages.

use rusqlite::{Connection, params};

use crate::Result;
use crate::storage::space::give_back_free_pages;
use crate::storage::tx::Ctx;
use crate::units::Offset;

/// Deletes the messages of a partition below `below`, keeping `low_offset` and `bytes` true.
/// Returns how many were deleted.
/// `drained`: whether this empties the partition, if the caller knows
/// (None: look it up when something was deleted).
pub(crate) fn trim_partition(
    conn: &Ctx<'_>,
    topic_id: i64,
    partition: u32,
    below: i64,
    drained: Option<bool>,
) -> Result<u64> {
    sync_partition(conn, topic_id, partition)?;
    // Sum the sizes first, then delete: DELETE ... RETURNING materializes
    // every deleted row, about 6,000 instructions per message (callgrind);
    // the separate SELECT costs about 1,200.
    let bytes: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(octet_length(payload)), 0) FROM mq_messages
             WHERE topic_id = ?1 AND partition = ?2 AND offset < ?3",
        )?
        .query_row(params![topic_id, partition, below], |r| r.get(0))?;
    let n = conn
        .prepare_cached(
            "DELETE FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset < ?3",
        )?
        .execute(params![topic_id, partition, below])? as u64;
    conn.prepare_cached(
        "UPDATE mq_partitions SET low_offset = MAX(low_offset, MIN(?3, next_offset)), bytes = bytes - ?4
         WHERE topic_id = ?1 AND partition = ?2",
    )?
    .execute(params![topic_id, partition, below, bytes])?;
    if n > 0 && drained != Some(false) {
        give_back_space_if_drained(conn, topic_id, partition, drained)?;
    }
    Ok(n)
}

/// Brings a partition's `mq_partitions` checkpoint up to date with the
/// messages appended after it (see `storage::schema`). Every write that
/// removes messages calls this first, so the lagging messages are never
/// ones it removes.
pub(crate) fn sync_partition(conn: &Connection, topic_id: i64, partition: u32) -> Result<()> {
    conn.prepare_cached(
        "UPDATE mq_partitions SET next_offset = s.next_offset, last_ts = s.last_ts, bytes = s.bytes
         FROM (SELECT next_offset, last_ts, bytes FROM mq_partition_state
               WHERE topic_id = ?1 AND partition = ?2) AS s
         WHERE mq_partitions.topic_id = ?1 AND mq_partitions.partition = ?2
           AND mq_partitions.next_offset < s.next_offset",
    )?
    .execute(params![topic_id, partition])?;
    Ok(())
}

/// When a partition has just been emptied and the file has free pages,
/// asks for `shrink` after the commit (a `VACUUM` cannot run inside a
/// transaction). Steady traffic reuses free pages by itself; this is for
/// the drain after a burst.
fn give_back_space_if_drained(
    conn: &Ctx<'_>,
    topic_id: i64,
    partition: u32,
    known: Option<bool>,
) -> Result<()> {
    let empty: bool = match known {
        Some(k) => k,
        None => conn
        .prepare_cached("SELECT low_offset >= next_offset FROM mq_partitions WHERE topic_id = ?1 AND partition = ?2")?
        .query_row(params![topic_id, partition], |r| r.get(0))?,
    };
    if !empty {
        return Ok(());
    }
    give_back_free_pages(conn)
}

/// A stored message, borrowed while a scan runs. Fields are read from the
/// row only when asked for, so a scan pays only for what it uses.
pub struct Record<'a> {
    row: &'a rusqlite::Row<'a>,
    partition: u32,
    offset: u64,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Record<'_> {
    /// Partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// Offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Append time, ms since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.row.get(1).unwrap_or(0)
    }
    /// Key.
    pub fn key(&self) -> Option<&str> {
        self.text(2)
    }
    /// Headers as a JSON object text, if any.
    pub fn headers(&self) -> Option<&str> {
        self.text(3)
    }
    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        use rusqlite::types::ValueRef;
        match self.row.get_ref(4) {
            Ok(ValueRef::Text(t) | ValueRef::Blob(t)) => t,
            _ => &[],
        }
    }
    fn text(&self, i: usize) -> Option<&str> {
        match self.row.get_ref(i) {
            Ok(rusqlite::types::ValueRef::Text(t)) => std::str::from_utf8(t).ok(),
            _ => None,
        }
    }
}

/// What one page of a scan did: the last offset read, how many rows, and
/// whether the callback asked to stop.
pub(crate) type ScanPage = (i64, usize, bool);

/// Reads up to `limit` messages of one partition after `after` (exclusive;
/// -1 starts at the beginning) in offset order, handing each to `f` (false
/// stops). Returns the last offset read and whether `f` asked to stop.
pub(crate) fn scan_page(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    after: i64,
    limit: i64,
    f: &mut dyn FnMut(&Record<'_>) -> bool,
) -> Result<ScanPage> {
    let mut st = conn.prepare_cached(
        "SELECT offset, ts, key, headers, payload FROM mq_messages
         WHERE topic_id = ?1 AND partition = ?2 AND offset > ?3 ORDER BY offset LIMIT ?4",
    )?;
    let mut rows = st.query(params![topic_id, partition, after, limit])?;
    let mut last = after;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let offset: Offset = r.get(0)?;
        last = offset.0 as i64;
        n += 1;
        let rec = Record {
            row: r,
            partition,
            offset: offset.0,
        };
        if !f(&rec) {
            return Ok((last, n, true));
        }
    }
    Ok((last, n, false))
}

/// Reads up to `limit` messages of a partition from offset `from` (BENCH
/// replay): (rows, payload bytes, last offset).
pub(crate) fn page_sizes(
    c: &Connection,
    topic_id: i64,
    partition: u32,
    from: i64,
    limit: i64,
) -> Result<(u64, u64, Option<i64>)> {
    let mut st = c.prepare_cached(
        "SELECT offset, payload FROM mq_messages
         WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
    )?;
    let mut rows = st.query(params![topic_id, partition, from, limit])?;
    let (mut count, mut bytes, mut last) = (0u64, 0u64, None);
    while let Some(r) = rows.next()? {
        last = Some(r.get::<_, i64>(0)?);
        bytes += match r.get_ref(1)? {
            rusqlite::types::ValueRef::Text(b) | rusqlite::types::ValueRef::Blob(b) => {
                b.len() as u64
            }
            _ => 0,
        };
        count += 1;
    }
    Ok((count, bytes, last))
}
