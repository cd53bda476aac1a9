//! The dead-letter queue: one table of dead letters, each a copy of the
//! message with the group it failed in, its attempts and why.

use rusqlite::params;

use crate::group::{self, GroupInfo, pending};
use crate::storage::tx::Ctx;
use crate::topic::TopicInfo;
use crate::units::Count;
use crate::{Error, Result};

/// Copies a message into the dead-letter table, with its attempt history
/// (record the attempt that ends here first). Does nothing if the message
/// is gone (trimmed by retention).
pub(crate) fn insert(
    ctx: &Ctx<'_>,
    t: &TopicInfo,
    g: &GroupInfo,
    (partition, offset): (u32, i64),
    attempts: u32,
    reason: &str,
) -> Result<()> {
    ctx.prepare_cached(
        "INSERT INTO mq_dlq (topic_id, topic, group_id, group_name, partition, offset, ts, key, headers, payload,
                             attempts, reason, failed_at, history, history_json)
         SELECT m.*, h.history, h.history_json FROM (
           SELECT topic_id, ?4, ?5, ?6, partition, offset, ts, key, headers, payload, ?7, ?8, ?9
           FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset = ?3
           UNION ALL
           SELECT topic_id, ?4, ?5, ?6, partition, offset, ts, key, headers, payload, ?7, ?8, ?9
           FROM mq_requeued WHERE group_id = ?5 AND topic_id = ?1 AND partition = ?2 AND offset = ?3
           LIMIT 1
         ) m LEFT JOIN mq_attempt_history h
           ON h.group_id = ?5 AND h.topic_id = ?1 AND h.partition = ?2 AND h.offset = ?3",
    )?
    .execute(params![t.id, partition, offset, t.name, g.id, g.name, attempts, reason, ctx.now])?;
    Ok(())
}

/// Puts dead letters back in front of their group: each is delivered again
/// to that group only, attempts reset. Ids no longer in the table (another
/// REQUEUE or PURGE took them) are skipped. Returns how many were requeued.
///
/// # Errors
/// `DeadLetterOrphaned` for a dead letter whose group no longer reads its topic.
pub(crate) fn requeue(ctx: &Ctx<'_>, ids: &[i64]) -> Result<u64> {
    let mut n = 0;
    for &id in ids {
        let found = ctx
            .prepare_cached("SELECT group_id, group_name, topic_id, topic, partition, offset FROM mq_dlq WHERE id = ?1")?
            .query_row([id], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, r.get::<_, i64>(2)?, r.get::<_, String>(3)?,
                    r.get::<_, u32>(4)?, r.get::<_, i64>(5)?))
            });
        let (gid, gname, tid, tname, part, off) = match found {
            Ok(row) => row,
            Err(rusqlite::Error::QueryReturnedNoRows) => continue,
            Err(e) => return Err(e.into()),
        };
        if !group::reads_topic(ctx, gid, tid)? {
            return Err(Error::DeadLetterOrphaned {
                id,
                group: gname,
                topic: tname,
            });
        }
        pending::restore_dead_letter(ctx, ctx.now, id, (gid, tid, part, off))?;
        ctx.prepare_cached("DELETE FROM mq_dlq WHERE id = ?1")?
            .execute([id])?;
        n += 1;
    }
    if n > 0 {
        ctx.made_deliverable();
    }
    Ok(n)
}

/// Deletes dead letters by id; returns how many were there.
pub(crate) fn purge(ctx: &Ctx<'_>, ids: &[i64]) -> Result<u64> {
    let mut st = ctx.prepare_cached("DELETE FROM mq_dlq WHERE id = ?1")?;
    let mut n = 0;
    for id in ids {
        n += st.execute([id])? as u64;
    }
    Ok(n)
}

/// How many dead letters a group has of a topic.
pub(crate) fn count(conn: &rusqlite::Connection, group_id: i64, topic_id: i64) -> Result<u64> {
    let n: Count = conn
        .prepare_cached("SELECT COUNT(*) FROM mq_dlq WHERE group_id = ?1 AND topic_id = ?2")?
        .query_row(params![group_id, topic_id], |r| r.get(0))?;
    Ok(n.0)
}
