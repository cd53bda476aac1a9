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

/// NACK: redeliver now, after a delay, or dead-letter at once.
pub(crate) fn nack(ctx: &Ctx<'_>, ids: &[u64], action: &NackAction) -> Result<()> {
    check_distinct(ids)?;
    let now = ctx.now;
    let mut touched: HashSet<(i64, u32)> = HashSet::new();
    for &id in ids {
        let l = pending::find(ctx, id)?;
        match action {
            NackAction::Now | NackAction::Delay(_) => {
                let at = match action {
                    NackAction::Delay(d) => now.saturating_add(ms(*d)),
                    _ => now,
                };
                ctx.prepare_cached("UPDATE mq_pending SET visible_at = ?2, last_error = NULL WHERE delivery_id = ?1")?
                    .execute(params![i64::try_from(id).unwrap_or(i64::MAX), at])?;
            }
            NackAction::Dead(reason) => {
                let t = topic::by_id(ctx, l.topic_id)?.ok_or(Error::UnknownDelivery(id))?;
                let g = group::by_id(ctx, l.group_id)?;
                let reason = reason.as_deref().unwrap_or("dead-lettered by NACK");
                dlq::insert(ctx, &t, &g, (l.partition, l.offset), l.attempt, reason)?;
                pending::forget(ctx, l.group_id, l.topic_id, l.partition, l.offset)?;
                touched.insert((l.topic_id, l.partition));
            }
        }
    }
    ctx.made_deliverable();
    trim_touched(ctx, touched)
}
