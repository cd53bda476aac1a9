//! The processed table: keys a group has handled, remembered for a while,
//! so a consumer can skip work it already did (exactly-once effects on top
//! of at-least-once delivery).

use std::time::Duration;

use rusqlite::{OptionalExtension, params};

use crate::storage::tx::Ctx;
use crate::units::ms;
use crate::{Error, Result};

/// How long `mark_processed` remembers a key by default.
pub const DEFAULT_PROCESSED_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Marks a processed key; true when it was not already marked (or had expired).
pub(crate) fn mark(c: &Ctx<'_>, group: &str, key: &str, ttl: Duration) -> Result<bool> {
    let now = c.now;
    if group.is_empty() || key.is_empty() {
        return Err(Error::Incomplete {
            statement: "mark_processed".into(),
            needs: "a group and a key".into(),
        });
    }
    // Forget a bounded number of expired keys (never a full scan).
    c.prepare_cached(
        "DELETE FROM mq_processed WHERE (group_name, key) IN
           (SELECT group_name, key FROM mq_processed WHERE expires_at <= ?1 LIMIT 64)",
    )?
    .execute([now])?;
    let live: Option<i64> = c
        .prepare_cached("SELECT expires_at FROM mq_processed WHERE group_name = ?1 AND key = ?2 AND expires_at > ?3")?
        .query_row(params![group, key, now], |r| r.get(0))
        .optional()?;
    if live.is_some() {
        return Ok(false);
    }
    c.prepare_cached(
        "INSERT OR REPLACE INTO mq_processed (group_name, key, processed_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![group, key, now, now.saturating_add(ms(ttl))])?;
    Ok(true)
}
