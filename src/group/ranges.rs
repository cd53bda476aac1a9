//! Range leases: the fast path of a consume.
//!
//! When a consume hands out a run of new messages of one partition (offsets
//! `first .. first + count`), it records one `mq_leases` row instead of one
//! `mq_pending` row per message. The deliveries get the consecutive ids
//! `lease_id .. lease_id + count`, and ACKs set bits in the row's bitmap; the
//! row goes when every message is settled. Anything that needs one message's
//! own state (a NACK, a lease running out, REPLAY, an offset commit) first
//! *explodes* the lease: its unsettled messages become ordinary pending rows
//! that carry their delivery ids, and the per-message rules take over. Ordered
//! groups and delayed messages never use range leases.

use std::collections::{HashMap, HashSet};

use rusqlite::{Connection, OptionalExtension, params};

use crate::{Error, Result};

/// Offsets of `topic_id` that `group_id` holds under range leases and has
/// not acked yet (SELECT on a queue shows them; the acked ones of a lease
/// are gone for the reader even though the ack floor still waits).
pub(crate) fn unacked_offsets(
    conn: &Connection,
    group_id: i64,
    topic_id: i64,
) -> Result<Vec<(u32, i64)>> {
    let mut st = conn.prepare_cached(
        "SELECT partition, first_offset, count, acked FROM mq_leases WHERE group_id = ?1 AND topic_id = ?2",
    )?;
    let rows = st.query_map([group_id, topic_id], |r| {
        Ok((
            r.get::<_, u32>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, i64>(2)?,
            r.get::<_, Vec<u8>>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (partition, first, count, acked) = row?;
        out.extend(
            (0..count)
                .filter(|&i| !bit(&acked, i))
                .map(|i| (partition, first + i)),
        );
    }
    Ok(out)
}

/// Records a range lease for offsets `first .. first + count` of one partition
/// with delivery ids `first_id ..`, leased at `now` until `visible_at`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert(
    conn: &Connection,
    group_id: i64,
    topic_id: i64,
    partition: u32,
    first: i64,
    count: usize,
    first_id: i64,
    member: Option<&str>,
    (now, visible_at): (i64, i64),
) -> Result<()> {
    let bits = vec![0u8; count.div_ceil(8)];
    conn.prepare_cached(
        "INSERT INTO mq_leases (lease_id, group_id, topic_id, partition, first_offset, count, member, visible_at,
                                acked, settled, leased_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0, ?10)",
    )?
    .execute(params![first_id, group_id, topic_id, partition, first, count as i64, member, visible_at, bits, now])?;
    Ok(())
}

/// True when a pending row already exists for an offset in the range (then
/// the range cannot be leased as a whole).
pub(crate) fn pending_in_range(
    conn: &Connection,
    group_id: i64,
    topic_id: i64,
    partition: u32,
    first: i64,
    last: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3
             AND offset BETWEEN ?4 AND ?5 LIMIT 1",
        )?
        .query_row(params![group_id, topic_id, partition, first, last], |_| {
            Ok(())
        })
        .optional()?
        .is_some())
}

struct Row {
    lease_id: i64,
    group_id: i64,
    topic_id: i64,
    partition: u32,
    first: i64,
    count: i64,
    member: Option<String>,
    visible_at: i64,
    acked: Vec<u8>,
    settled: i64,
    leased_at: Option<i64>,
}

/// Builds each lease query at compile time (a `format!` per ACK showed as
/// an allocation per call).
macro_rules! select_lease {
    ($tail:literal) => {
        concat!(
            "SELECT lease_id, group_id, topic_id, partition, first_offset, count, member, visible_at, acked, settled,
                    leased_at FROM mq_leases ",
            $tail
        )
    };
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        lease_id: r.get(0)?,
        group_id: r.get(1)?,
        topic_id: r.get(2)?,
        partition: r.get(3)?,
        first: r.get(4)?,
        count: r.get(5)?,
        member: r.get(6)?,
        visible_at: r.get(7)?,
        acked: r.get(8)?,
        settled: r.get(9)?,
        leased_at: r.get(10)?,
    })
}

/// Whether message `i` of a lease is acked: bit `i % 8` of byte `i / 8`.
fn bit(acked: &[u8], i: i64) -> bool {
    let i = usize::try_from(i).unwrap_or(0);
    acked.get(i / 8).is_some_and(|b| b & (1 << (i % 8)) != 0)
}

/// Marks message `i` of a lease acked (a bit past the bitmap is ignored:
/// the bitmap is made with one bit per message).
fn set_bit(acked: &mut [u8], i: i64) {
    let i = usize::try_from(i).unwrap_or(0);
    if let Some(b) = acked.get_mut(i / 8) {
        *b |= 1 << (i % 8);
    }
}

/// The lease holding delivery `id`, if any.
fn covering(conn: &Connection, id: i64) -> Result<Option<Row>> {
    let row = conn
        .prepare_cached(select_lease!(
            "WHERE lease_id <= ?1 ORDER BY lease_id DESC LIMIT 1"
        ))?
        .query_row([id], from_row)
        .optional()?;
    Ok(row.filter(|r| id < r.lease_id + r.count))
}

/// Turns a lease into ordinary pending rows (unsettled messages only, with
/// their delivery ids, attempt 1, the lease's start and expiry) and deletes it.
fn explode_row(conn: &Connection, l: &Row) -> Result<()> {
    let mut ins = conn.prepare_cached(
        "INSERT OR IGNORE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id, attempt, member,
                                           visible_at, leased_at)
         SELECT ?1, ?2, ?3, ?4, (SELECT key FROM mq_messages WHERE topic_id = ?2 AND partition = ?3 AND offset = ?4),
                ?5, 1, ?6, ?7, ?8",
    )?;
    for i in 0..l.count {
        if !bit(&l.acked, i) {
            ins.execute(params![
                l.group_id,
                l.topic_id,
                l.partition,
                l.first + i,
                l.lease_id + i,
                l.member,
                l.visible_at,
                l.leased_at
            ])?;
        }
    }
    conn.prepare_cached("DELETE FROM mq_leases WHERE lease_id = ?1")?
        .execute([l.lease_id])?;
    Ok(())
}

/// Explodes the lease holding delivery `id`; false if there is none.
pub(crate) fn explode_id(conn: &Connection, id: i64) -> Result<bool> {
    match covering(conn, id)? {
        Some(l) => {
            explode_row(conn, &l)?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Explodes a group's leases that ran out (optionally of one topic), so
/// their messages are redelivered by the per-message rules.
pub(crate) fn explode_expired(
    conn: &Connection,
    group_id: i64,
    topic_id: Option<i64>,
    now: i64,
) -> Result<()> {
    let rows: Vec<Row> = conn
        .prepare_cached(select_lease!(
            "WHERE group_id = ?1 AND visible_at <= ?2 AND (?3 IS NULL OR topic_id = ?3)"
        ))?
        .query_map(params![group_id, now, topic_id], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for l in &rows {
        explode_row(conn, l)?;
    }
    Ok(())
}

/// Explodes every lease of a group on a topic partition (before REPLAY or an
/// offset commit rewrites per-message state there).
pub(crate) fn explode_partition(
    conn: &Connection,
    group_id: i64,
    topic_id: i64,
    partition: u32,
) -> Result<()> {
    let rows: Vec<Row> = conn
        .prepare_cached(select_lease!(
            "WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3"
        ))?
        .query_map(params![group_id, topic_id, partition], from_row)?
        .collect::<rusqlite::Result<_>>()?;
    for l in &rows {
        explode_row(conn, l)?;
    }
    Ok(())
}

/// Topic partitions whose ack floor may have moved.
pub(crate) type Touched = HashSet<(i64, u32)>;

/// Acks the ids that belong to range leases. Returns the ids it did not
/// find in any lease and the partitions it touched. A second ACK of a
/// settled id in a lease is `UnknownDelivery`.
pub(crate) fn ack(conn: &Connection, ids: &[u64]) -> Result<(Vec<u64>, Touched)> {
    let mut leases: HashMap<i64, Row> = HashMap::new();
    let mut rest = Vec::new();
    let mut touched = HashSet::new();
    for &id in ids {
        let sid = i64::try_from(id).map_err(|_| Error::UnknownDelivery(id))?;
        let hit = leases
            .values()
            .find(|l| sid >= l.lease_id && sid < l.lease_id + l.count)
            .map(|l| l.lease_id);
        let key = match hit {
            Some(k) => k,
            None => match covering(conn, sid)? {
                Some(l) => {
                    let k = l.lease_id;
                    leases.insert(k, l);
                    k
                }
                None => {
                    rest.push(id);
                    continue;
                }
            },
        };
        let Some(l) = leases.get_mut(&key) else {
            continue;
        };
        let i = sid - l.lease_id;
        if bit(&l.acked, i) {
            return Err(Error::UnknownDelivery(id));
        }
        set_bit(&mut l.acked, i);
        l.settled += 1;
        touched.insert((l.topic_id, l.partition));
    }
    for l in leases.values() {
        if l.settled >= l.count {
            conn.prepare_cached("DELETE FROM mq_leases WHERE lease_id = ?1")?
                .execute([l.lease_id])?;
        } else {
            conn.prepare_cached(
                "UPDATE mq_leases SET acked = ?2, settled = ?3 WHERE lease_id = ?1",
            )?
            .execute(params![l.lease_id, l.acked, l.settled])?;
        }
    }
    Ok((rest, touched))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bitmap_has_one_bit_per_message_lowest_first() {
        let mut acked = vec![0u8; 2]; // a lease of up to 16 messages
        for i in [0, 3, 8, 15] {
            assert!(!bit(&acked, i));
            set_bit(&mut acked, i);
            assert!(bit(&acked, i));
        }
        assert_eq!(acked, [0b0000_1001, 0b1000_0001]);
        assert!(!bit(&acked, 1));
        // Past the bitmap: never set, never read as set.
        set_bit(&mut acked, 16);
        assert!(!bit(&acked, 16));
        assert_eq!(acked, [0b0000_1001, 0b1000_0001]);
    }
}
