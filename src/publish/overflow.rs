//! What a topic at its MAX LENGTH does with one more message.

use rusqlite::{Connection, OptionalExtension, params};

use super::parts::{self, PartState, Parts};
use crate::topic::{Overflow, TopicInfo};
use crate::{Error, Result};

/// Makes room for one message in `partition` (state `st`) of a topic with
/// MAX LENGTH `max` holding `total` messages: REJECT refuses it, DROP
/// OLDEST drops the head of this partition, or of the fullest other one.
pub(super) fn make_room(
    conn: &Connection,
    t: &TopicInfo,
    max: u64,
    total: &mut i64,
    partition: u32,
    st: &mut PartState,
    parts: &mut Parts,
) -> Result<()> {
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    if *total >= max {
        match t.overflow {
            Overflow::Reject => {
                return Err(Error::TopicFull {
                    topic: t.name.clone(),
                    kind: t.kind,
                    max: max as u64,
                });
            }
            Overflow::DropOldest => drop_oldest(conn, t, total, partition, st, parts)?,
        }
    }
    *total += 1;
    Ok(())
}

fn drop_oldest(
    conn: &Connection,
    t: &TopicInfo,
    total: &mut i64,
    partition: u32,
    st: &mut PartState,
    parts: &mut Parts,
) -> Result<()> {
    let victim = if st.next > st.low {
        partition
    } else {
        fullest(conn, t, parts)?
    };
    let mut vs = if victim == partition {
        *st
    } else {
        match parts.get(&victim) {
            Some(s) => *s,
            None => parts::load(conn, t.id, victim, true)?,
        }
    };
    if vs.next > vs.low {
        let len: i64 = conn
            .prepare_cached(
                "DELETE FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset = ?3
                 RETURNING octet_length(payload)",
            )?
            .query_row(params![t.id, victim, vs.low], |r| r.get(0))
            .optional()?
            .unwrap_or(0);
        vs.low += 1;
        vs.bytes -= len;
        *total -= 1;
    }
    if victim == partition {
        *st = vs;
    } else {
        parts.insert(victim, vs);
    }
    Ok(())
}

fn fullest(conn: &Connection, t: &TopicInfo, parts: &Parts) -> Result<u32> {
    let mut best = (0u32, -1i64);
    for p in 0..t.partitions {
        let s = match parts.get(&p) {
            Some(s) => *s,
            None => parts::load(conn, t.id, p, true)?,
        };
        if s.next - s.low > best.1 {
            best = (p, s.next - s.low);
        }
    }
    Ok(best.0)
}
