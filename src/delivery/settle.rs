//! Settling deliveries: ACK, NACK, and the fencing that refuses a
//! delivery id that lost its lease.

use std::collections::HashSet;

use rusqlite::params;

use super::NackAction;
use crate::group::{self, pending, ranges};
use crate::storage::tx::Ctx;
use crate::topic::{self, TopicsById};
use crate::units::ms;
use crate::{Error, Result, dlq};

/// Refuses a list that names a delivery twice.
fn check_distinct(ids: &[u64]) -> Result<()> {
    let mut seen = HashSet::with_capacity(ids.len());
    for &id in ids {
        if !seen.insert(id) {
            return Err(Error::DuplicateDelivery(id));
        }
    }
    Ok(())
}

/// ACK: the messages are done for their groups. Fails as a whole on any bad
/// id (the caller's transaction rolls back what was deleted before it).
pub(crate) fn ack(ctx: &Ctx<'_>, ids: &[u64]) -> Result<()> {
    check_distinct(ids)?;
    // Range leases first (the usual case: a whole batch in one row), then
    // per-message pending rows.
    let (ids, mut touched) = ranges::ack(ctx, ids)?;
    if !ids.is_empty() {
        touched.extend(pending::settle(ctx, &ids)?);
    }
    trim_touched(ctx, touched)
}

/// Drops what every group has settled from the partitions an ACK or NACK
/// touched (topics retained UNTIL CONSUMED).
fn trim_touched(ctx: &Ctx<'_>, touched: HashSet<(i64, u32)>) -> Result<()> {
    let mut topics = TopicsById::new(ctx);
    for (tid, part) in touched {
        if let Some(t) = topics.get(tid)?.cloned() {
            group::trim_consumed(ctx, &t, part)?;
        }
    }
    Ok(())
}

/// NACK: redeliver now, after a delay, or dead-letter at once. Each
/// delivery's attempt is remembered as ended by this NACK, with `reason`
/// (for DEAD, its own reason comes first).
pub(crate) fn nack(
    ctx: &Ctx<'_>,
    ids: &[u64],
    action: &NackAction,
    reason: Option<&str>,
) -> Result<()> {
    check_distinct(ids)?;
    let now = ctx.now;
    let mut touched: HashSet<(i64, u32)> = HashSet::new();
    for &id in ids {
        let l = pending::find(ctx, id)?;
        let sid = i64::try_from(id).unwrap_or(i64::MAX);
        match action {
            NackAction::Now | NackAction::Delay(_) => {
                let delay_ms = match action {
                    NackAction::Delay(d) => Some(ms(*d)),
                    _ => None,
                };
                let ended = pending::Ended::Nack { delay_ms, reason };
                pending::record_nack(ctx, sid, now, ended)?;
                let at = now.saturating_add(delay_ms.unwrap_or(0));
                ctx.prepare_cached("UPDATE mq_pending SET visible_at = ?2, last_error = NULL WHERE delivery_id = ?1")?
                    .execute(params![sid, at])?;
            }
            NackAction::Dead(own) => {
                let t = topic::by_id(ctx, l.topic_id)?.ok_or(Error::UnknownDelivery(id))?;
                let g = group::by_id(ctx, l.group_id)?;
                let given = own.as_deref().or(reason);
                pending::record_nack(ctx, sid, now, pending::Ended::Dead(given))?;
                let reason = given.unwrap_or("dead-lettered by NACK");
                dlq::insert(ctx, &t, &g, (l.partition, l.offset), l.attempt, reason)?;
                pending::forget(ctx, l.group_id, l.topic_id, l.partition, l.offset)?;
                touched.insert((l.topic_id, l.partition));
            }
        }
    }
    ctx.made_deliverable();
    trim_touched(ctx, touched)
}
