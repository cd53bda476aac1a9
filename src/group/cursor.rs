//! Cursors: where a group is in each partition, moved by REPLAY and by
//! Kafka-style offset commits, and the ack floor below which a topic
//! retained UNTIL CONSUMED drops its messages.

use rusqlite::{Connection, params};

use super::pending::{self, Side};
use super::{ReplayFrom, StartFrom, TimeSpec, get, reads_topic};
use crate::storage::tx::Ctx;
use crate::topic::{self, Retention, TopicInfo};
use crate::units::ms;
use crate::{Error, Result};

/// Resolves a timestamp spec to ms since the epoch.
pub(crate) fn resolve_time(now: i64, t: TimeSpec) -> i64 {
    match t {
        TimeSpec::Absolute(ms) => ms,
        TimeSpec::Ago(d) => now.saturating_sub(ms(d)),
    }
}

/// The offset a cursor starts at in one partition.
pub(super) fn start_offset(
    conn: &Connection,
    now: i64,
    topic_id: i64,
    partition: u32,
    from: StartFrom,
) -> Result<i64> {
    let (next, low): (i64, i64) = conn
        .prepare_cached("SELECT next_offset, low_offset FROM mq_partition_state WHERE topic_id = ?1 AND partition = ?2")?
        .query_row(params![topic_id, partition], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match from {
        StartFrom::Beginning => low,
        StartFrom::Latest => next,
        StartFrom::Offset(n) => i64::try_from(n).unwrap_or(i64::MAX).min(next),
        StartFrom::Timestamp(t) => {
            let at = resolve_time(now, t);
            conn.prepare_cached(
                "SELECT MIN(offset) FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND ts >= ?3",
            )?
            .query_row(params![topic_id, partition, at], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(next)
        }
    })
}

/// For a topic retained UNTIL CONSUMED, deletes the messages of a partition
/// below every group's ack floor.
pub(crate) fn trim_consumed(conn: &Ctx<'_>, t: &TopicInfo, part: u32) -> Result<()> {
    if t.retention != Retention::UntilConsumed {
        return Ok(());
    }
    // The floor, with the partition's stored range in the same query.
    let (floor, low, next) = pending::ack_floor_and_range(conn, t.id, part)?;
    if let Some(floor) = floor
        && floor > low
    {
        topic::trim_partition(conn, t.id, part, floor, Some(floor >= next))?;
    }
    Ok(())
}

/// REPLAY: moves a group's cursor on one topic. In-flight and waiting
/// deliveries at or past the new position are dropped (they will be
/// delivered again from the log, attempt 1).
pub(crate) fn replay(
    conn: &Ctx<'_>,
    topic_name: &str,
    group: &str,
    from: ReplayFrom,
) -> Result<()> {
    let t = topic::get(conn, topic_name)?;
    let g = get(conn, group)?;
    if !reads_topic(conn, g.id, t.id)? {
        return Err(Error::NotSubscribed {
            group: group.to_string(),
            topic: topic_name.to_string(),
        });
    }
    let (start, only): (StartFrom, Option<u32>) = match from {
        ReplayFrom::Beginning => (StartFrom::Beginning, None),
        ReplayFrom::Latest => (StartFrom::Latest, None),
        ReplayFrom::Offset { offset, partition } => (StartFrom::Offset(offset), partition),
        ReplayFrom::Timestamp(ts) => (StartFrom::Timestamp(ts), None),
    };
    if let Some(p) = only
        && p >= t.partitions
    {
        return Err(Error::PartitionOutOfRange {
            topic: t.name.clone(),
            partition: p,
            partitions: t.partitions,
            statement: "REPLAY".into(),
        });
    }
    for p in 0..t.partitions {
        if only.is_some_and(|o| o != p) {
            continue;
        }
        let off = start_offset(conn, conn.now, t.id, p, start)?;
        pending::forget_partition(conn, g.id, t.id, p, Side::From, off)?;
        conn.execute(
            "UPDATE mq_cursors SET next_offset = ?4 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
            params![g.id, t.id, p, off],
        )?;
        trim_consumed(conn, &t, p)?;
    }
    conn.made_deliverable();
    Ok(())
}

/// Kafka-style offset commit: the group is done with everything below
/// `offset` in one partition, and `offset` is the next to deliver.
pub(crate) fn commit_offset(
    conn: &Ctx<'_>,
    group: &str,
    topic_name: &str,
    partition: u32,
    offset: u64,
) -> Result<()> {
    let t = topic::get(conn, topic_name)?;
    let g = get(conn, group)?;
    if !reads_topic(conn, g.id, t.id)? {
        return Err(Error::NotSubscribed {
            group: group.to_string(),
            topic: topic_name.to_string(),
        });
    }
    if partition >= t.partitions {
        return Err(Error::PartitionOutOfRange {
            topic: topic_name.to_string(),
            partition,
            partitions: t.partitions,
            statement: "commit_offset".into(),
        });
    }
    let next: i64 = conn.query_row(
        "SELECT next_offset FROM mq_partition_state WHERE topic_id = ?1 AND partition = ?2",
        params![t.id, partition],
        |r| r.get(0),
    )?;
    let off = i64::try_from(offset).unwrap_or(i64::MAX);
    if off > next {
        return Err(Error::PastEnd {
            topic: topic_name.to_string(),
            partition,
            offset,
            next: u64::try_from(next).unwrap_or(0),
        });
    }
    pending::forget_partition(conn, g.id, t.id, partition, Side::Below, off)?;
    conn.execute(
        "UPDATE mq_cursors SET next_offset = MAX(next_offset, ?4) WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
        params![g.id, t.id, partition, off],
    )?;
    trim_consumed(conn, &t, partition)
}
