//! What each group holds of each topic it reads: partitions, deliveries in
//! flight, messages still to deliver.

use rusqlite::{Connection, params};

use crate::Result;
use crate::units::Count;

/// A group's counts on one topic (`SHOW GROUPS`, `SELECT ... FROM GROUPS`);
/// a group that reads no topic yet (its names and patterns match none) has
/// one row without topic and with zeros.
pub(crate) struct Row {
    pub(crate) group_id: i64,
    pub(crate) topic_id: Option<i64>,
    pub(crate) group: String,
    pub(crate) topic: Option<String>,
    pub(crate) partitions: u32,
    pub(crate) pending: u64,
    pub(crate) lag: u64,
    pub(crate) ordered: bool,
}

/// One row per group and topic it reads, by group and topic name (a group
/// that reads no topic first, without topic); only `only_topic`'s groups
/// when given.
pub(crate) fn stats(conn: &Connection, only_topic: Option<i64>) -> Result<Vec<Row>> {
    let mut out = topic_rows(conn, only_topic)?;
    if only_topic.is_none() {
        out.extend(reading_nothing(conn)?);
        out.sort_by(|a, b| (&a.group, &a.topic).cmp(&(&b.group, &b.topic)));
    }
    Ok(out)
}

/// Groups with no cursor: subscribed to names and patterns no topic has yet.
fn reading_nothing(conn: &Connection) -> Result<Vec<Row>> {
    let mut st = conn.prepare_cached(
        "SELECT g.id, g.name, g.ordered FROM mq_groups g
         WHERE NOT EXISTS (SELECT 1 FROM mq_cursors c WHERE c.group_id = g.id)",
    )?;
    let rows = st.query_map([], |r| {
        Ok(Row {
            group_id: r.get(0)?,
            topic_id: None,
            group: r.get(1)?,
            topic: None,
            partitions: 0,
            pending: 0,
            lag: 0,
            ordered: r.get(2)?,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The rows of groups on the topics they read.
fn topic_rows(conn: &Connection, only_topic: Option<i64>) -> Result<Vec<Row>> {
    let mut st = conn.prepare_cached(
        "SELECT g.name, t.name, COUNT(*), g.ordered, c.group_id, c.topic_id,
                SUM(MAX(p.next_offset - MAX(c.next_offset, p.low_offset), 0))
         FROM mq_cursors c
         JOIN mq_groups g ON g.id = c.group_id
         JOIN mq_topics t ON t.id = c.topic_id
         JOIN mq_partition_state p ON p.topic_id = c.topic_id AND p.partition = c.partition
         WHERE (?1 IS NULL OR c.topic_id = ?1)
         GROUP BY c.group_id, c.topic_id ORDER BY g.name, t.name",
    )?;
    let rows: Vec<(String, String, u32, bool, i64, i64, Count)> = st
        .query_map([only_topic], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
            ))
        })?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = Vec::with_capacity(rows.len());
    for (group, topic, partitions, ordered, group_id, topic_id, lag) in rows {
        let (pending, waiting): (Count, Count) = conn
            .prepare_cached(
                "SELECT COALESCE(SUM(attempt > 0), 0)
                        + (SELECT COALESCE(SUM(count - settled), 0) FROM mq_leases WHERE group_id = ?1 AND topic_id = ?2),
                        COALESCE(SUM(attempt = 0), 0)
                 FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2",
            )?
            .query_row(params![group_id, topic_id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        out.push(Row {
            group_id,
            topic_id: Some(topic_id),
            group,
            topic: Some(topic),
            partitions,
            pending: pending.0,
            lag: lag.0 + waiting.0,
            ordered,
        });
    }
    Ok(out)
}

/// How many groups read a topic.
pub(crate) fn readers(conn: &Connection, topic_id: i64) -> Result<u64> {
    let n: Count = conn.query_row(
        "SELECT COUNT(DISTINCT group_id) FROM mq_cursors WHERE topic_id = ?1",
        [topic_id],
        |r| r.get(0),
    )?;
    Ok(n.0)
}
