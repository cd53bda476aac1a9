//! The dead-letter queue: one table of dead letters, each a copy of the
//! message with the group it failed in, its attempts and why.

use std::fmt;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use crate::group::{self, GroupInfo, pending};
use crate::storage::tx::Ctx;
use crate::topic::{self, TopicInfo};
use crate::units::Count;

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

/// What REQUEUE DLQ did: how many dead letters went back to their groups,
/// and those it left in the DLQ because their group cannot read their
/// topic any more.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Requeued {
    /// Dead letters given back to their groups (and gone from the DLQ).
    pub requeued: u64,
    /// Dead letters left in the DLQ, in the order asked; `PURGE DLQ`
    /// removes them.
    pub skipped: Vec<Orphan>,
}

/// A dead letter that cannot be requeued: its group no longer reads its
/// topic. It stays in the DLQ (listed, purgeable) until purged.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Orphan {
    /// Its DLQ id.
    pub id: i64,
    /// The topic it was dead-lettered on.
    pub topic: String,
    /// The group it was dead-lettered by.
    pub group: String,
    /// Why it cannot go back.
    pub reason: OrphanReason,
}

/// Why a dead letter cannot be requeued ([`Orphan`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum OrphanReason {
    /// Its topic was dropped (a topic created since under the same name is
    /// another topic).
    TopicDropped,
    /// Its group no longer exists (it unsubscribed from everything, or its
    /// queue was dropped; a group created since under the same name is
    /// another group).
    GroupGone,
    /// Its group exists but no longer reads its topic.
    NotSubscribed,
}

impl Orphan {
    /// Why, in words: "topic 'orders' was dropped".
    pub fn why(&self) -> String {
        let (t, g) = (&self.topic, &self.group);
        match self.reason {
            OrphanReason::TopicDropped => format!("topic '{t}' was dropped"),
            OrphanReason::GroupGone => format!("group '{g}' no longer exists"),
            OrphanReason::NotSubscribed => format!("group '{g}' no longer reads '{t}'"),
        }
    }
}

impl fmt::Display for Orphan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dead letter {} was not requeued: {}; PURGE DLQ removes it",
            self.id,
            self.why()
        )
    }
}

/// A dead letter's place, as REQUEUE needs it.
struct DeadLetter {
    group_id: i64,
    group: String,
    topic_id: i64,
    topic: String,
    partition: u32,
    offset: i64,
}

/// The dead letter `id`; None when it is no longer in the table.
fn find(conn: &Connection, id: i64) -> Result<Option<DeadLetter>> {
    Ok(conn
        .prepare_cached(
            "SELECT group_id, group_name, topic_id, topic, partition, offset FROM mq_dlq WHERE id = ?1",
        )?
        .query_row([id], |r| {
            Ok(DeadLetter {
                group_id: r.get(0)?,
                group: r.get(1)?,
                topic_id: r.get(2)?,
                topic: r.get(3)?,
                partition: r.get(4)?,
                offset: r.get(5)?,
            })
        })
        .optional()?)
}

/// Why `d` cannot be requeued, if it cannot. Groups and topics are matched
/// by id, which is never reused.
fn orphan_reason(conn: &Connection, d: &DeadLetter) -> Result<Option<OrphanReason>> {
    if topic::by_id(conn, d.topic_id)?.is_none() {
        return Ok(Some(OrphanReason::TopicDropped));
    }
    if group::find_id(conn, &d.group)? != Some(d.group_id) {
        return Ok(Some(OrphanReason::GroupGone));
    }
    if !group::reads_topic(conn, d.group_id, d.topic_id)? {
        return Ok(Some(OrphanReason::NotSubscribed));
    }
    Ok(None)
}

fn orphan(id: i64, d: DeadLetter, reason: OrphanReason) -> Orphan {
    Orphan {
        id,
        topic: d.topic,
        group: d.group,
        reason,
    }
}

/// Of the dead letters `ids`, those [`requeue`] would leave where they are.
pub(crate) fn orphans(conn: &Connection, ids: &[i64]) -> Result<Vec<Orphan>> {
    let mut out = Vec::new();
    for &id in ids {
        if let Some(d) = find(conn, id)?
            && let Some(reason) = orphan_reason(conn, &d)?
        {
            out.push(orphan(id, d, reason));
        }
    }
    Ok(out)
}

/// Puts dead letters back in front of their group: each is delivered again
/// to that group only, attempts reset. Ids no longer in the table (another
/// REQUEUE or PURGE took them) are skipped silently; dead letters whose
/// group no longer reads their topic stay in the table and are reported.
pub(crate) fn requeue(ctx: &Ctx<'_>, ids: &[i64]) -> Result<Requeued> {
    let mut done = Requeued::default();
    for &id in ids {
        let Some(d) = find(ctx, id)? else { continue };
        if let Some(reason) = orphan_reason(ctx, &d)? {
            done.skipped.push(orphan(id, d, reason));
            continue;
        }
        pending::restore_dead_letter(
            ctx,
            ctx.now,
            id,
            (d.group_id, d.topic_id, d.partition, d.offset),
        )?;
        ctx.prepare_cached("DELETE FROM mq_dlq WHERE id = ?1")?
            .execute([id])?;
        done.requeued += 1;
    }
    if done.requeued > 0 {
        ctx.made_deliverable();
    }
    Ok(done)
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
