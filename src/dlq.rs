//! The dead-letter queue: one table of dead letters, each a copy of the message.

use rusqlite::{Connection, params};

use crate::Result;
use crate::group::GroupInfo;
use crate::topic::TopicInfo;

/// Copies a message into the dead-letter table. Does nothing if the message
/// is gone (trimmed by retention).
#[allow(clippy::too_many_arguments)]
pub(crate) fn insert(
    conn: &Connection,
    now: i64,
    t: &TopicInfo,
    g: &GroupInfo,
    partition: u32,
    offset: i64,
    attempts: u32,
    reason: &str,
) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mq_dlq (topic_id, topic, group_id, group_name, partition, offset, ts, key, headers, payload,
                             attempts, reason, failed_at)
         SELECT * FROM (
           SELECT topic_id, ?4, ?5, ?6, partition, offset, ts, key, headers, payload, ?7, ?8, ?9
           FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset = ?3
           UNION ALL
           SELECT topic_id, ?4, ?5, ?6, partition, offset, ts, key, headers, payload, ?7, ?8, ?9
           FROM mq_requeued WHERE group_id = ?5 AND topic_id = ?1 AND partition = ?2 AND offset = ?3
         ) LIMIT 1",
    )?
    .execute(params![t.id, partition, offset, t.name, g.id, g.name, attempts, reason, now])?;
    Ok(())
}
