//! The per-message state of groups: pending deliveries (`mq_pending`),
//! ids they lost to a redelivery (`mq_stale`), copies of requeued dead
//! letters (`mq_requeued`), attempts that did not end in an ACK
//! (`mq_attempts`) and range leases (`mq_leases`, see `ranges`).
//! Every "forget these deliveries" goes through this module, so no list of
//! these tables is written twice.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::ranges;
use crate::units::DeliveryId;
use crate::{Error, Result};

/// Forgets one message of a group: its pending row, stale ids, requeued
/// copy and attempt history.
pub(crate) fn forget(conn: &Connection, gid: i64, tid: i64, part: u32, off: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4")?
        .execute(params![gid, tid, part, off])?;
    conn.prepare_cached("DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4")?
        .execute(params![gid, tid, part, off])?;
    conn.prepare_cached(
        "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
    )?
    .execute(params![gid, tid, part, off])?;
    forget_attempts(conn, gid, tid, part, off)
}

/// Forgets one message's attempt history.
fn forget_attempts(conn: &Connection, gid: i64, tid: i64, part: u32, off: i64) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM mq_attempts WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
    )?
    .execute(params![gid, tid, part, off])?;
    Ok(())
}

/// Forgets every delivery of a group (the group is deleted).
pub(crate) fn forget_group(conn: &Connection, gid: i64) -> Result<()> {
    for sql in [
        "DELETE FROM mq_pending WHERE group_id = ?1",
        "DELETE FROM mq_stale WHERE group_id = ?1",
        "DELETE FROM mq_requeued WHERE group_id = ?1",
        "DELETE FROM mq_attempts WHERE group_id = ?1",
        "DELETE FROM mq_leases WHERE group_id = ?1",
    ] {
        conn.execute(sql, [gid])?;
    }
    Ok(())
}

/// Forgets every delivery of a group on one topic (it no longer reads it).
pub(crate) fn forget_group_topic(conn: &Connection, gid: i64, tid: i64) -> Result<()> {
    for sql in [
        "DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2",
        "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2",
        "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2",
        "DELETE FROM mq_attempts WHERE group_id = ?1 AND topic_id = ?2",
        "DELETE FROM mq_leases WHERE group_id = ?1 AND topic_id = ?2",
    ] {
        conn.execute(sql, params![gid, tid])?;
    }
    Ok(())
}

/// Forgets every group's deliveries of a topic (PURGE, DROP).
pub(crate) fn forget_topic(conn: &Connection, tid: i64) -> Result<()> {
    for sql in [
        "DELETE FROM mq_pending WHERE topic_id = ?1",
        "DELETE FROM mq_stale WHERE topic_id = ?1",
        "DELETE FROM mq_requeued WHERE topic_id = ?1",
        "DELETE FROM mq_attempts WHERE topic_id = ?1",
        "DELETE FROM mq_leases WHERE topic_id = ?1",
    ] {
        conn.execute(sql, [tid])?;
    }
    Ok(())
}

/// Which side of an offset [`forget_partition`] forgets.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Side {
    /// Offsets at or past it (REPLAY moved the cursor back to it).
    From,
    /// Offsets below it (an offset commit settled them).
    Below,
}

/// Forgets a group's deliveries in one partition on one side of `off`.
/// Range leases there become per-message rows first.
pub(crate) fn forget_partition(
    conn: &Connection,
    gid: i64,
    tid: i64,
    part: u32,
    side: Side,
    off: i64,
) -> Result<()> {
    ranges::explode_partition(conn, gid, tid, part)?;
    let sqls = match side {
        Side::From => [
            "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
            "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
            "DELETE FROM mq_attempts WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
            "DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
        ],
        Side::Below => [
            "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
            "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
            "DELETE FROM mq_attempts WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
            "DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
        ],
    };
    for sql in sqls {
        conn.execute(sql, params![gid, tid, part, off])?;
    }
    Ok(())
}

/// Puts a dead letter back in front of its group (REQUEUE DLQ): its copy
/// goes to `mq_requeued` (the log may have dropped the message) and a
/// pending row, due now at attempt 0, replaces any stale ids and attempt
/// history (attempts start again at 1; the dead letter's history goes
/// with the DLQ row).
pub(crate) fn restore_dead_letter(
    conn: &Connection,
    now: i64,
    dlq_id: i64,
    (gid, tid, part, off): (i64, i64, u32, i64),
) -> Result<()> {
    // A range lease may cover this offset again (after a replay).
    ranges::explode_partition(conn, gid, tid, part)?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO mq_requeued (group_id, topic_id, partition, offset, ts, key, headers, payload)
         SELECT group_id, topic_id, partition, offset, ts, key, headers, payload FROM mq_dlq WHERE id = ?1",
    )?
    .execute([dlq_id])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id, attempt,
                                            member, visible_at)
         SELECT group_id, topic_id, partition, offset, key, NULL, 0, NULL, ?2 FROM mq_dlq WHERE id = ?1",
    )?
    .execute(params![dlq_id, now])?;
    conn.prepare_cached("DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4")?
        .execute(params![gid, tid, part, off])?;
    forget_attempts(conn, gid, tid, part, off)
}

/// How an attempt that was not acked ended, for [`record_nack`].
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ended<'a> {
    /// NACK, to be redelivered after `delay_ms` (None: now), with the
    /// caller's reason.
    Nack {
        delay_ms: Option<i64>,
        reason: Option<&'a str>,
    },
    /// NACK ... DEAD, with the caller's reason.
    Dead(Option<&'a str>),
}

/// Remembers that the current attempt of delivery `id` ended by a NACK at
/// `now`. A later NACK of the same delivery (before it is redelivered)
/// replaces it: the attempt ended the way the last call said.
pub(crate) fn record_nack(conn: &Connection, id: i64, now: i64, ended: Ended<'_>) -> Result<()> {
    let (outcome, reason, delay) = match ended {
        Ended::Nack { delay_ms, reason } => ("nack", reason, delay_ms),
        Ended::Dead(reason) => ("dead", reason, None),
    };
    conn.prepare_cached(
        "INSERT OR REPLACE INTO mq_attempts (group_id, topic_id, partition, offset, attempt, member, leased_at,
                                             ended_at, outcome, reason, delay_ms)
         SELECT group_id, topic_id, partition, offset, attempt, member, leased_at, ?2, ?3, ?4, ?5
         FROM mq_pending WHERE delivery_id = ?1",
    )?
    .execute(params![id, now, outcome, reason, delay])?;
    Ok(())
}

/// Remembers that a message's current lease ran out (its end is
/// `visible_at`), unless that attempt already ended by a NACK or the
/// message was never delivered. The consume engine calls it when it takes
/// the message up again (redelivery or MAX DELIVERIES).
pub(crate) fn record_expired(
    conn: &Connection,
    gid: i64,
    tid: i64,
    part: u32,
    off: i64,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO mq_attempts (group_id, topic_id, partition, offset, attempt, member, leased_at,
                                            ended_at, outcome)
         SELECT group_id, topic_id, partition, offset, attempt, member, leased_at, visible_at, 'expired'
         FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4
                           AND delivery_id IS NOT NULL",
    )?
    .execute(params![gid, tid, part, off])?;
    Ok(())
}

/// The lowest offset of a partition that some group reading it has not
/// settled (its ack floor), or None when no group reads it.
pub(crate) fn ack_floor_and_range(
    conn: &Connection,
    tid: i64,
    part: u32,
) -> Result<(Option<i64>, i64, i64)> {
    Ok(conn
        .prepare_cached(
            "SELECT (SELECT MIN(min(
                      COALESCE((SELECT MIN(q.offset) FROM mq_pending q WHERE q.group_id = c.group_id
                                AND q.topic_id = c.topic_id AND q.partition = c.partition), c.next_offset),
                      COALESCE((SELECT MIN(l.first_offset) FROM mq_leases l WHERE l.group_id = c.group_id
                                AND l.topic_id = c.topic_id AND l.partition = c.partition), c.next_offset)))
                     FROM mq_cursors c WHERE c.topic_id = ?1 AND c.partition = ?2),
                    p.low_offset, p.next_offset
             FROM mq_partition_state p WHERE p.topic_id = ?1 AND p.partition = ?2",
        )?
        .query_row(params![tid, part], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?)
}

/// A pending delivery found by its id.
pub(crate) struct InFlight {
    pub(crate) group_id: i64,
    pub(crate) topic_id: i64,
    pub(crate) partition: u32,
    pub(crate) offset: i64,
    pub(crate) attempt: u32,
}

/// The pending delivery `id`, or why there is none: `StaleDelivery` when
/// its message was delivered again under a newer id (the fence),
/// `UnknownDelivery` otherwise.
pub(crate) fn find(conn: &Connection, id: u64) -> Result<InFlight> {
    let sid = i64::try_from(id).map_err(|_| Error::UnknownDelivery(id))?;
    // A delivery of a range lease gets its own pending row first.
    ranges::explode_id(conn, sid)?;
    if let Some(l) = conn
        .prepare_cached("SELECT group_id, topic_id, partition, offset, attempt FROM mq_pending WHERE delivery_id = ?1")?
        .query_row([sid], |r| {
            Ok(InFlight { group_id: r.get(0)?, topic_id: r.get(1)?, partition: r.get(2)?, offset: r.get(3)?, attempt: r.get(4)? })
        })
        .optional()?
    {
        return Ok(l);
    }
    let current: Option<Option<DeliveryId>> = conn
        .prepare_cached(
            "SELECT p.delivery_id FROM mq_stale s JOIN mq_pending p ON p.group_id = s.group_id
             AND p.topic_id = s.topic_id AND p.partition = s.partition AND p.offset = s.offset
             WHERE s.delivery_id = ?1",
        )?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    match current {
        Some(Some(now_id)) => Err(Error::StaleDelivery {
            id,
            redelivered_as: now_id.0,
        }),
        _ => Err(Error::UnknownDelivery(id)),
    }
}

/// Which side tables hold rows at all: they are usually empty, and then the
/// per-message deletes from them are skipped.
struct SideTables {
    stale: bool,
    requeued: bool,
    attempts: bool,
}

impl SideTables {
    fn probe(conn: &Connection) -> Result<SideTables> {
        Ok(conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM mq_stale), EXISTS (SELECT 1 FROM mq_requeued),
                        EXISTS (SELECT 1 FROM mq_attempts)",
            )?
            .query_row([], |r| {
                Ok(SideTables {
                    stale: r.get(0)?,
                    requeued: r.get(1)?,
                    attempts: r.get(2)?,
                })
            })?)
    }

    /// Forgets one message's stale ids, requeued copy and attempt history
    /// (its pending row is already gone).
    fn forget(&self, conn: &Connection, gid: i64, tid: i64, part: u32, off: i64) -> Result<()> {
        if self.stale {
            conn.prepare_cached(
                "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
            )?
            .execute(params![gid, tid, part, off])?;
        }
        if self.requeued {
            conn.prepare_cached(
                "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
            )?
            .execute(params![gid, tid, part, off])?;
        }
        if self.attempts {
            forget_attempts(conn, gid, tid, part, off)?;
        }
        Ok(())
    }
}

/// Settles (ACK) per-message deliveries by id, in one statement for the
/// whole batch. Fails on the first id not in flight, saying why (the
/// caller's transaction rolls back what was deleted). Returns the
/// partitions touched.
pub(crate) fn settle(conn: &Connection, ids: &[u64]) -> Result<HashSet<(i64, u32)>> {
    // The ids travel as a JSON array.
    let list = serde_json::to_string(ids).map_err(|e| Error::Io(e.into()))?;
    let taken: Vec<(i64, i64, i64, u32, i64)> = conn
        .prepare_cached(
            "DELETE FROM mq_pending WHERE delivery_id IN (SELECT value FROM json_each(?1))
             RETURNING delivery_id, group_id, topic_id, partition, offset",
        )?
        .query_map([&list], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if taken.len() != ids.len() {
        // Some id is not in flight: say which and why.
        let found: HashSet<i64> = taken.iter().map(|t| t.0).collect();
        for &id in ids {
            if i64::try_from(id).map_or(true, |i| !found.contains(&i)) {
                return Err(find(conn, id).err().unwrap_or(Error::UnknownDelivery(id)));
            }
        }
    }
    let side = SideTables::probe(conn)?;
    let mut touched = HashSet::new();
    for (_, gid, tid, part, off) in taken {
        side.forget(conn, gid, tid, part, off)?;
        touched.insert((tid, part));
    }
    Ok(touched)
}
