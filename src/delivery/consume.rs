//! The consume engine: leases up to `max` messages of a group, due
//! redeliveries first (expired leases, NACKs, delays, ORDERED waiters),
//! then new messages past the cursors. A run of consecutive, due messages
//! of one partition is leased as one range (`group::ranges`).

use std::collections::HashSet;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use super::ids::{take_id, take_ids};
use super::{ConsumeSpec, Delivery, blob, parse_headers};
use crate::group::{self, pending, ranges};
use crate::storage::tx::Ctx;
use crate::topic::{TopicInfo, TopicsById};
use crate::units::ms;
use crate::{Result, dlq};

/// A due pending row: topic, partition, offset, key, current delivery id, attempt, last error.
struct DueRow(
    i64,
    u32,
    i64,
    Option<String>,
    Option<i64>,
    u32,
    Option<String>,
);

/// A message past a cursor: offset, ts, visible_at, key, headers, payload.
struct ScanRow(
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Vec<u8>,
);

struct StoredMessage {
    ts: i64,
    key: Option<String>,
    headers: Option<String>,
    payload: Vec<u8>,
}

/// What one consume has handed out so far.
struct Batch<'c> {
    out: Vec<Delivery>,
    /// Keys handed out in this call (ORDERED groups hand out one per key).
    keys_out: HashSet<(i64, u32, String)>,
    topics: TopicsById<'c>,
}

impl Batch<'_> {
    fn room(&self, spec: &ConsumeSpec<'_>) -> usize {
        spec.max.saturating_sub(self.out.len())
    }

    /// True when an ORDERED group must hold this message back: an earlier
    /// message of its key is in flight or waiting.
    fn key_blocked(
        &self,
        conn: &Connection,
        spec: &ConsumeSpec<'_>,
        (tid, part, off): (i64, u32, i64),
        key: Option<&String>,
    ) -> Result<bool> {
        let Some(k) = key.filter(|_| spec.group.ordered) else {
            return Ok(false);
        };
        Ok(self.keys_out.contains(&(tid, part, k.clone()))
            || earlier_pending_same_key(conn, spec.group.id, tid, part, k, off)?)
    }
}

/// The lease length for a delivery of topic `t`.
fn lease_for(spec: &ConsumeSpec<'_>, t: &TopicInfo) -> Duration {
    spec.ack_wait.or(spec.group.ack_wait).unwrap_or(t.ack_wait)
}

/// Leases up to `spec.max` messages: due redeliveries first, then new messages.
pub(crate) fn consume(ctx: &Ctx<'_>, spec: &ConsumeSpec<'_>) -> Result<Vec<Delivery>> {
    let mut b = Batch {
        out: Vec::new(),
        keys_out: HashSet::new(),
        topics: TopicsById::new(ctx),
    };
    // Range leases that ran out become per-message pending rows, due now.
    ranges::explode_expired(ctx, spec.group.id, spec.topic_id, ctx.now)?;
    redeliver_due(ctx, spec, &mut b)?;
    if b.room(spec) > 0 {
        deliver_new(ctx, spec, &mut b)?;
    }
    Ok(b.out)
}

/// 1. Due redeliveries (expired leases, nacks, delays, ordered waiters).
fn redeliver_due(ctx: &Ctx<'_>, spec: &ConsumeSpec<'_>, b: &mut Batch<'_>) -> Result<()> {
    let mut rounds = 0;
    while b.room(spec) > 0 && rounds < 16 {
        rounds += 1;
        let want = i64::try_from(b.room(spec))
            .unwrap_or(i64::MAX)
            .saturating_add(32);
        let due: Vec<DueRow> = ctx
            .prepare_cached(
                "SELECT topic_id, partition, offset, key, delivery_id, attempt, last_error FROM mq_pending
                 WHERE group_id = ?1 AND visible_at <= ?2 AND (?3 IS NULL OR topic_id = ?3)
                 ORDER BY visible_at, topic_id, partition, offset LIMIT ?4",
            )?
            .query_map(params![spec.group.id, ctx.now, spec.topic_id, want], |r| {
                Ok(DueRow(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if due.is_empty() {
            break;
        }
        let mut removed = false;
        for row in due {
            if b.room(spec) == 0 {
                break;
            }
            removed |= redeliver(ctx, spec, b, row)?;
        }
        if !removed {
            break;
        }
    }
    Ok(())
}

/// Delivers one due pending row again, or settles it for good (its topic
/// or message is gone, or it reached MAX DELIVERIES: dead-lettered).
/// Returns true when the row was removed.
fn redeliver(
    ctx: &Ctx<'_>,
    spec: &ConsumeSpec<'_>,
    b: &mut Batch<'_>,
    DueRow(tid, part, off, key, old_id, attempt, last_error): DueRow,
) -> Result<bool> {
    let g = spec.group;
    let Some(t) = b.topics.get(tid)?.cloned() else {
        pending::forget(ctx, g.id, tid, part, off)?;
        return Ok(true);
    };
    if b.key_blocked(ctx, spec, (tid, part, off), key.as_ref())? {
        return Ok(false);
    }
    let Some(msg) = load_message(ctx, g.id, tid, part, off)? else {
        // Trimmed by retention while pending: nothing left to deliver.
        pending::forget(ctx, g.id, tid, part, off)?;
        return Ok(true);
    };
    // The attempt it was leased for ran out (unless a NACK ended it).
    pending::record_expired(ctx, g.id, tid, part, off)?;
    let max_del = g.max_deliveries.unwrap_or(t.max_deliveries);
    if attempt >= max_del {
        let reason = last_error.unwrap_or_else(|| format!("exceeded MAX DELIVERIES ({max_del})"));
        dlq::insert(ctx, &t, g, (part, off), attempt, &reason)?;
        pending::forget(ctx, g.id, tid, part, off)?;
        group::trim_consumed(ctx, &t, part)?;
        return Ok(true);
    }
    let id = take_id(ctx, spec.ids)?;
    if let Some(old) = old_id {
        ctx.prepare_cached(
            "INSERT OR REPLACE INTO mq_stale (delivery_id, group_id, topic_id, partition, offset)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![old, g.id, tid, part, off])?;
    }
    let until = ctx.now.saturating_add(ms(lease_for(spec, &t)));
    ctx.prepare_cached(
        "UPDATE mq_pending SET delivery_id = ?5, attempt = attempt + 1, member = ?6, visible_at = ?7, leased_at = ?8
         WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
    )?
    .execute(params![g.id, tid, part, off, id, spec.member, until, ctx.now])?;
    if let Some(k) = &key {
        b.keys_out.insert((tid, part, k.clone()));
    }
    b.out.push(delivery(id, &t, part, off, attempt + 1, msg));
    Ok(false)
}

/// 2. New messages past the cursors.
fn deliver_new(ctx: &Ctx<'_>, spec: &ConsumeSpec<'_>, b: &mut Batch<'_>) -> Result<()> {
    let cursors: Vec<(i64, u32, i64, i64)> = ctx
        .prepare_cached(
            "SELECT c.topic_id, c.partition, c.next_offset, p.low_offset FROM mq_cursors c
             JOIN mq_partition_state p ON p.topic_id = c.topic_id AND p.partition = c.partition
             WHERE c.group_id = ?1 AND c.next_offset < p.next_offset AND (?2 IS NULL OR c.topic_id = ?2)
             ORDER BY c.topic_id, c.partition",
        )?
        .query_map(params![spec.group.id, spec.topic_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    // Rotate the starting partition so competing members spread over
    // partitions, in any process: the group's turn is kept in the file.
    let n = cursors.len();
    let waiting: Vec<(i64, u32)> = cursors.iter().map(|c| (c.0, c.1)).collect();
    let start = group::rotation::start(ctx, spec.group.id, &waiting)?;
    for i in 0..n {
        if b.room(spec) == 0 {
            break;
        }
        let (tid, part, cursor, low) = cursors[(start + i) % n];
        let Some(t) = b.topics.get(tid)?.cloned() else {
            continue;
        };
        let remaining = b.room(spec);
        let scan = if spec.group.ordered {
            remaining + 64
        } else {
            remaining
        };
        let rows: Vec<ScanRow> = ctx
            .prepare_cached(
                "SELECT offset, ts, visible_at, key, headers, payload FROM mq_messages
                 WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
            )?
            .query_map(
                params![
                    tid,
                    part,
                    cursor.max(low),
                    i64::try_from(scan).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(ScanRow(
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        blob(r, 5)?,
                    ))
                },
            )?
            .collect::<rusqlite::Result<_>>()?;
        let rows = match lease_range(ctx, spec, b, (&t, part), rows)? {
            Some(rows) => rows,
            None => continue,
        };
        let new_cursor = lease_each(ctx, spec, b, (&t, part), rows)?.unwrap_or(cursor);
        if new_cursor != cursor {
            set_cursor(ctx, spec.group.id, tid, part, new_cursor)?;
        }
    }
    Ok(())
}

fn set_cursor(conn: &Connection, gid: i64, tid: i64, part: u32, next: i64) -> Result<()> {
    conn.prepare_cached(
        "UPDATE mq_cursors SET next_offset = ?4 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
    )?
    .execute(params![gid, tid, part, next])?;
    Ok(())
}

/// The fast path: a run of consecutive, due messages leased as one range.
/// Returns None when it leased them, else gives the rows back.
fn lease_range(
    ctx: &Ctx<'_>,
    spec: &ConsumeSpec<'_>,
    b: &mut Batch<'_>,
    (t, part): (&TopicInfo, u32),
    rows: Vec<ScanRow>,
) -> Result<Option<Vec<ScanRow>>> {
    let g = spec.group;
    if g.ordered || rows.is_empty() || !rows.iter().all(|r| r.2.is_none_or(|v| v <= ctx.now)) {
        return Ok(Some(rows));
    }
    let n = rows.len().min(b.room(spec));
    let first = rows[0].0;
    let last = rows[n - 1].0;
    if last - first + 1 != n as i64 || ranges::pending_in_range(ctx, g.id, t.id, part, first, last)?
    {
        return Ok(Some(rows));
    }
    let Some(first_id) = take_ids(spec.ids, n) else {
        return Ok(Some(rows));
    };
    let until = ctx.now.saturating_add(ms(lease_for(spec, t)));
    ranges::insert(
        ctx,
        g.id,
        t.id,
        part,
        first,
        n,
        first_id,
        spec.member,
        (ctx.now, until),
    )?;
    for (k, ScanRow(off, ts, _, key, headers, payload)) in rows.into_iter().take(n).enumerate() {
        let m = StoredMessage {
            ts,
            key,
            headers,
            payload,
        };
        b.out
            .push(delivery(first_id + k as i64, t, part, off, 1, m));
    }
    set_cursor(ctx, g.id, t.id, part, last + 1)?;
    Ok(None)
}

/// Leases new messages one by one (ORDERED groups, delayed messages, runs
/// with gaps). Returns the new cursor position, if it moved.
fn lease_each(
    ctx: &Ctx<'_>,
    spec: &ConsumeSpec<'_>,
    b: &mut Batch<'_>,
    (t, part): (&TopicInfo, u32),
    rows: Vec<ScanRow>,
) -> Result<Option<i64>> {
    let (g, now, tid) = (spec.group, ctx.now, t.id);
    let mut new_cursor = None;
    let mut lease_new = ctx.prepare_cached(
        "INSERT OR IGNORE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id, attempt,
                                           member, visible_at, leased_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8, ?9)",
    )?;
    let until = now.saturating_add(ms(lease_for(spec, t)));
    for ScanRow(off, ts, visible_at, key, headers, payload) in rows {
        if b.room(spec) == 0 {
            break;
        }
        new_cursor = Some(off + 1);
        let delayed = visible_at.is_some_and(|v| v > now);
        if delayed || b.key_blocked(ctx, spec, (tid, part, off), key.as_ref())? {
            // Waits in mq_pending until due (delay) or unblocked (ordered).
            ctx.prepare_cached(
                "INSERT OR REPLACE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id,
                                                    attempt, member, visible_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, NULL, 0, NULL, ?6)",
            )?
            .execute(params![g.id, tid, part, off, key, visible_at.unwrap_or(now).max(now)])?;
            continue;
        }
        let id = take_id(ctx, spec.ids)?;
        let row = params![g.id, tid, part, off, key, id, spec.member, until, now];
        if lease_new.execute(row)? == 0 {
            // Already pending (a requeued dead letter past a replayed
            // cursor): it is delivered from mq_pending instead.
            continue;
        }
        if let Some(k) = &key {
            b.keys_out.insert((tid, part, k.clone()));
        }
        let m = StoredMessage {
            ts,
            key,
            headers,
            payload,
        };
        b.out.push(delivery(id, t, part, off, 1, m));
    }
    Ok(new_cursor)
}

fn load_message(
    conn: &Connection,
    group_id: i64,
    topic_id: i64,
    partition: u32,
    offset: i64,
) -> Result<Option<StoredMessage>> {
    Ok(conn
        .prepare_cached(
            "SELECT ts, key, headers, payload FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset = ?3
             UNION ALL
             SELECT ts, key, headers, payload FROM mq_requeued
             WHERE group_id = ?4 AND topic_id = ?1 AND partition = ?2 AND offset = ?3
             LIMIT 1",
        )?
        .query_row(params![topic_id, partition, offset, group_id], |r| {
            Ok(StoredMessage { ts: r.get(0)?, key: r.get(1)?, headers: r.get(2)?, payload: blob(r, 3)? })
        })
        .optional()?)
}

fn delivery(
    id: i64,
    t: &TopicInfo,
    part: u32,
    off: i64,
    attempt: u32,
    m: StoredMessage,
) -> Delivery {
    Delivery {
        id: u64::try_from(id).unwrap_or(0),
        topic: t.name.clone(),
        partition: part,
        offset: u64::try_from(off).unwrap_or(0),
        key: m.key,
        attempt,
        timestamp: m.ts,
        headers: parse_headers(m.headers.as_deref()),
        payload: m.payload,
    }
}

fn earlier_pending_same_key(
    conn: &Connection,
    gid: i64,
    tid: i64,
    part: u32,
    key: &str,
    off: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND key = ?3 AND offset < ?4
             AND partition = ?5 LIMIT 1",
        )?
        .query_row(params![gid, tid, key, off, part], |_| Ok(()))
        .optional()?
        .is_some())
}
