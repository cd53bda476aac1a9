//! The state of the partitions a publish touches, read once and saved at
//! the end (see `storage::schema` on the partition checkpoint).

use rusqlite::{Connection, params};

use crate::Result;

/// The partitions a batch touches, indexed by partition number.
pub(super) struct Parts(Vec<Option<PartState>>);

impl Parts {
    pub(super) fn new(partitions: u32) -> Parts {
        Parts(vec![None; partitions as usize])
    }
    pub(super) fn get(&self, p: &u32) -> Option<&PartState> {
        self.0.get(*p as usize).and_then(Option::as_ref)
    }
    pub(super) fn insert(&mut self, p: u32, s: PartState) {
        if let Some(slot) = self.0.get_mut(p as usize) {
            *slot = Some(s);
        }
    }
    pub(super) fn iter(&self) -> impl Iterator<Item = (u32, &PartState)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s)))
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) struct PartState {
    pub(super) next: i64,
    pub(super) low: i64,
    pub(super) last_ts: i64,
    pub(super) bytes: i64,
    /// The checkpoint's next offset in `mq_partitions` (see `storage::schema`).
    pub(super) synced: i64,
    /// `bytes` leaves out the messages in `synced..unsummed` (stored before
    /// this call, after the checkpoint): summed only when the row is saved.
    pub(super) unsummed: i64,
}

/// Most messages a partition's `mq_partitions` checkpoint may lag behind.
/// A single publish skips rewriting the row (one page less to write and
/// fsync: single publish went from 0.89-0.92 to 0.95-1.02 of raw SQLite in the
/// ratios bench) until the lag reaches this; reading the true state sums
/// the lagging messages' sizes, so it must stay small.
pub(crate) const CHECKPOINT_EVERY: i64 = 64;

/// A partition's true state (checkpoint plus the messages after it). With
/// `sum_bytes` false, `bytes` is the checkpoint's, and the messages after it
/// are left for `tail_bytes` (summing up to CHECKPOINT_EVERY payload sizes
/// on every single publish would cost more than it saves).
pub(super) fn load(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    sum_bytes: bool,
) -> Result<PartState> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<PartState> {
        let next = r.get(0)?;
        let synced = r.get(4)?;
        Ok(PartState {
            next,
            low: r.get(1)?,
            last_ts: r.get(2)?,
            bytes: r.get(3)?,
            synced,
            unsummed: if sum_bytes { synced } else { next },
        })
    };
    let mut st = if sum_bytes {
        conn.prepare_cached(
            "SELECT next_offset, low_offset, last_ts, bytes, synced_offset FROM mq_partition_state
             WHERE topic_id = ?1 AND partition = ?2",
        )?
    } else {
        conn.prepare_cached(
            "SELECT next_offset, low_offset, last_ts, synced_bytes, synced_offset FROM mq_partition_state
             WHERE topic_id = ?1 AND partition = ?2",
        )?
    };
    Ok(st.query_row(params![topic_id, partition], row)?)
}

/// Payload bytes of a partition's messages at offsets `from..to`.
pub(super) fn tail_bytes(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    from: i64,
    to: i64,
) -> Result<i64> {
    if from >= to {
        return Ok(0);
    }
    let mut st = conn.prepare_cached(
        "SELECT COALESCE(SUM(octet_length(payload)), 0) FROM mq_messages
         WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4",
    )?;
    Ok(st.query_row(params![topic_id, partition, from, to], |r| r.get(0))?)
}
