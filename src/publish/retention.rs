//! Trimming a partition by age, count or size after an append.

use rusqlite::params;

use super::parts::PartState;
use crate::Result;
use crate::storage::tx::Ctx;
use crate::topic::{self, Retention, TopicInfo};
use crate::units::ms;

/// Trims a partition by age, count or size after an append (retention is per partition).
pub(super) fn apply(conn: &Ctx<'_>, t: &TopicInfo, partition: u32, s: &PartState) -> Result<()> {
    let below = match t.retention {
        Retention::Forever | Retention::UntilConsumed => return Ok(()),
        Retention::Messages(n) => {
            let n = i64::try_from(n).unwrap_or(i64::MAX);
            if s.next - s.low <= n {
                return Ok(());
            }
            s.next - n
        }
        Retention::Age(d) => {
            let cutoff = conn.now.saturating_sub(ms(d));
            conn.prepare_cached(
                "SELECT MIN(offset) FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND ts >= ?3",
            )?
            .query_row(params![t.id, partition, cutoff], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(s.next)
        }
        Retention::Size(limit) => {
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            if s.bytes <= limit {
                return Ok(());
            }
            let mut excess = s.bytes - limit;
            let mut below = s.low;
            let mut st = conn.prepare_cached(
                "SELECT offset, octet_length(payload) FROM mq_messages WHERE topic_id = ?1 AND partition = ?2
                 ORDER BY offset",
            )?;
            let mut rows = st.query(params![t.id, partition])?;
            while excess > 0 {
                let Some(row) = rows.next()? else { break };
                let off: i64 = row.get(0)?;
                let len: i64 = row.get(1)?;
                excess -= len;
                below = off + 1;
            }
            below
        }
    };
    if below > s.low {
        topic::trim_partition(conn, t.id, partition, below, None)?;
    }
    Ok(())
}
