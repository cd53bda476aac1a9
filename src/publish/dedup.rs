//! Dedup ids: a second publish with the same id inside the topic's dedup
//! window stores nothing and answers with the original's place.

use std::collections::HashMap;

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;
use crate::storage::tx::Ctx;
use crate::topic::TopicInfo;
use crate::units::ms;

/// The dedup ids one publish call has seen (a batch may repeat an id).
#[derive(Default)]
pub(super) struct Batch<'a> {
    pruned: bool,
    ids: HashMap<&'a str, (u32, i64)>,
}

impl<'a> Batch<'a> {
    /// Where an earlier message with this id was stored, if the window
    /// still remembers it.
    pub(super) fn seen(
        &mut self,
        ctx: &Ctx<'_>,
        t: &TopicInfo,
        id: &'a str,
    ) -> Result<Option<(u32, i64)>> {
        if !self.pruned {
            prune(ctx, ctx.now)?;
            self.pruned = true;
        }
        if let Some(&place) = self.ids.get(id) {
            return Ok(Some(place));
        }
        Ok(ctx
            .prepare_cached(
                "SELECT partition, offset FROM mq_dedup WHERE topic_id = ?1 AND dedup_id = ?2 AND expires_at > ?3",
            )?
            .query_row(params![t.id, id, ctx.now], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?)
    }

    /// Remembers the id of a message just stored.
    pub(super) fn remember(
        &mut self,
        ctx: &Ctx<'_>,
        t: &TopicInfo,
        id: &'a str,
        place: (u32, i64),
    ) -> Result<()> {
        ctx.prepare_cached(
            "INSERT OR REPLACE INTO mq_dedup (topic_id, dedup_id, partition, offset, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            t.id,
            id,
            place.0,
            place.1,
            ctx.now.saturating_add(ms(t.dedup_window))
        ])?;
        self.ids.insert(id, place);
        Ok(())
    }
}

/// Forgets a bounded number of expired dedup ids (never a full scan per publish).
fn prune(conn: &Connection, now: i64) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM mq_dedup WHERE (topic_id, dedup_id) IN
           (SELECT topic_id, dedup_id FROM mq_dedup WHERE expires_at <= ?1 LIMIT 64)",
    )?
    .execute([now])?;
    Ok(())
}
