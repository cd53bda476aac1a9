//! Appending messages to topics.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::lang::ast::{Overflow, Retention};
use crate::topic::{self, TopicInfo};
use crate::{Error, Result};

/// Default largest payload, in bytes (a database setting).
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;

/// A message to publish. Build with [`Message::new`] and the setters.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Message {
    pub(crate) payload: Vec<u8>,
    pub(crate) key: Option<String>,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) partition: Option<u32>,
    pub(crate) dedup_id: Option<String>,
    pub(crate) delay: Option<Duration>,
}

impl Message {
    /// A message with this payload (usually JSON text).
    pub fn new(payload: impl Into<Vec<u8>>) -> Message {
        Message {
            payload: payload.into(),
            ..Message::default()
        }
    }
    /// The key: picks the partition (stable hash) and orders per key.
    pub fn key(mut self, key: impl Into<String>) -> Message {
        self.key = Some(key.into());
        self
    }
    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Message {
        self.headers.insert(name.into(), value.into());
        self
    }
    /// Publishes to this partition instead of the key's.
    pub fn partition(mut self, partition: u32) -> Message {
        self.partition = Some(partition);
        self
    }
    /// A producer id for dedup: a second publish with it inside the topic's dedup window stores nothing.
    pub fn dedup_id(mut self, id: impl Into<String>) -> Message {
        self.dedup_id = Some(id.into());
        self
    }
    /// Makes the message deliverable only after this delay.
    pub fn delay(mut self, delay: Duration) -> Message {
        self.delay = Some(delay);
        self
    }
}

/// Where a published message was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// True when the dedup id was seen inside the window: nothing was stored,
    /// and partition/offset are those of the original.
    pub duplicate: bool,
}

/// The stable partition of a key: FNV-1a 64 of its UTF-8 bytes, modulo partitions.
/// Never change this: keyed messages must keep landing where their key's earlier ones are.
pub fn partition_for_key(key: &str, partitions: u32) -> u32 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    u32::try_from(h % u64::from(partitions.max(1))).unwrap_or(0)
}

/// The partitions a batch touches, indexed by partition number.
struct Parts(Vec<Option<PartState>>);

impl Parts {
    fn get(&self, p: &u32) -> Option<&PartState> {
        self.0.get(*p as usize).and_then(Option::as_ref)
    }
    fn insert(&mut self, p: u32, s: PartState) {
        if let Some(slot) = self.0.get_mut(p as usize) {
            *slot = Some(s);
        }
    }
    fn iter(&self) -> impl Iterator<Item = (u32, &PartState)> {
        self.0
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i as u32, s)))
    }
}

#[derive(Debug, Clone, Copy)]
struct PartState {
    next: i64,
    low: i64,
    last_ts: i64,
    bytes: i64,
    /// The checkpoint's next offset in `mq_partitions` (see `storage::schema`).
    synced: i64,
    /// `bytes` leaves out the messages in `synced..unsummed` (stored before
    /// this call, after the checkpoint): summed only when the row is saved.
    unsummed: i64,
}

/// Most messages a partition's `mq_partitions` checkpoint may lag behind.
/// A single publish skips rewriting the row (one page less to write and
/// fsync: single publish went from 0.89-0.92 to 0.95-1.02 of raw SQLite in the
/// ratios bench) until the lag reaches this; reading the true state sums
/// the lagging messages' sizes, so it must stay small.
pub(crate) const CHECKPOINT_EVERY: i64 = 64;

/// Appends messages to a topic inside the caller's write transaction.
pub(crate) fn append(
    conn: &Connection,
    now: i64,
    t: &TopicInfo,
    msgs: &[Message],
    max_payload: usize,
) -> Result<Vec<Published>> {
    for m in msgs {
        if m.payload.len() > max_payload {
            return Err(Error::PayloadTooLarge {
                size: m.payload.len(),
                limit: max_payload,
            });
        }
        if let Some(p) = m.partition
            && p >= t.partitions
        {
            return Err(Error::invalid(format!(
                "partition {p} does not exist: '{}' has {} partition{} (0..{})",
                t.name,
                t.partitions,
                if t.partitions == 1 { "" } else { "s" },
                t.partitions - 1
            )));
        }
        if m.headers.keys().any(|k| k.is_empty()) {
            return Err(Error::invalid("a header name must not be empty"));
        }
        if m.dedup_id.as_deref() == Some("") {
            return Err(Error::invalid("a dedup id must not be empty"));
        }
    }

    // One message to a topic without MAX LENGTH or a trimming retention:
    // nothing in this call needs the stored bytes, and the checkpoint may
    // lag (up to CHECKPOINT_EVERY messages).
    let lazy = msgs.len() == 1
        && t.max_length.is_none()
        && matches!(t.retention, Retention::Forever | Retention::UntilConsumed);
    let mut parts = Parts(vec![None; t.partitions as usize]);
    let mut total: Option<i64> = None;
    if t.max_length.is_some() {
        total = Some(i64::try_from(topic::stats(conn, t.id)?.messages).unwrap_or(i64::MAX));
    }
    let mut rr: Option<u32> = None;
    let mut out = Vec::with_capacity(msgs.len());
    let mut pruned_dedup = false;
    let mut batch_dedup: HashMap<&str, (u32, i64)> = HashMap::new();

    let mut insert = conn.prepare_cached(
        "INSERT INTO mq_messages (topic_id, partition, offset, ts, visible_at, key, headers, payload, dedup_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
    )?;
    let mut plain = conn.prepare_cached(
        "INSERT INTO mq_messages (topic_id, partition, offset, ts, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    // The partition whose topic id, partition and timestamp are bound on
    // `plain` (a statement comes out of the cache with no bindings).
    let mut plain_bound: Option<u32> = None;
    for m in msgs {
        if let Some(id) = m.dedup_id.as_deref() {
            if !pruned_dedup {
                prune_dedup(conn, now)?;
                pruned_dedup = true;
            }
            let seen = match batch_dedup.get(id) {
                Some(&(p, o)) => Some((p, o)),
                None => conn
                    .prepare_cached(
                        "SELECT partition, offset FROM mq_dedup WHERE topic_id = ?1 AND dedup_id = ?2 AND expires_at > ?3",
                    )?
                    .query_row(params![t.id, id, now], |r| Ok((r.get(0)?, r.get(1)?)))
                    .optional()?,
            };
            if let Some((partition, offset)) = seen {
                out.push(Published {
                    topic: t.name.clone(),
                    partition,
                    offset: u64::try_from(offset).unwrap_or(0),
                    duplicate: true,
                });
                continue;
            }
        }

        let partition = match (m.partition, &m.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, t.partitions),
            (None, None) if t.partitions == 1 => 0,
            (None, None) => {
                let start = match rr {
                    Some(p) => p,
                    None => conn.query_row(
                        "SELECT next_partition FROM mq_topics WHERE id = ?1",
                        [t.id],
                        |r| r.get::<_, u32>(0),
                    )?,
                };
                let p = start % t.partitions;
                rr = Some((p + 1) % t.partitions);
                p
            }
        };
        let st = match parts.get(&partition) {
            Some(s) => *s,
            None => load_part(conn, t.id, partition, !lazy)?,
        };
        let mut st = st;

        if let (Some(max), Some(total)) = (t.max_length, total.as_mut()) {
            let max = i64::try_from(max).unwrap_or(i64::MAX);
            if *total >= max {
                match t.overflow {
                    Overflow::Reject => {
                        return Err(Error::TopicFull {
                            topic: t.name.clone(),
                            max: max as u64,
                        });
                    }
                    Overflow::DropOldest => {
                        // Drop the head of this partition, or of the fullest other one.
                        let victim = if st.next > st.low {
                            partition
                        } else {
                            fullest(conn, t, &parts)?
                        };
                        let mut vs = if victim == partition {
                            st
                        } else {
                            match parts.get(&victim) {
                                Some(s) => *s,
                                None => load_part(conn, t.id, victim, true)?,
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
                            st = vs;
                        } else {
                            parts.insert(victim, vs);
                        }
                    }
                }
            }
            *total += 1;
        }

        let offset = st.next;
        let ts = now.max(st.last_ts);
        let visible_at = m.delay.map(|d| ts.saturating_add(topic::ms(d)));
        let headers = if m.headers.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&m.headers).map_err(|e| Error::invalid(e.to_string()))?)
        };
        let payload_len = i64::try_from(m.payload.len()).unwrap_or(i64::MAX);
        // Valid UTF-8 is stored as TEXT so SQL's JSON functions read it.
        let text = std::str::from_utf8(&m.payload).ok();
        let payload: &dyn rusqlite::ToSql = match &text {
            Some(text) => text,
            None => &m.payload,
        };
        if visible_at.is_none() && m.key.is_none() && headers.is_none() && m.dedup_id.is_none() {
            // The common case binds 5 values instead of 9 (about 550
            // instructions less per message; callgrind), and of those only
            // the offset and payload per message: bindings stay on the
            // statement between executions, and topic, partition and
            // timestamp change only with the partition.
            if plain_bound != Some(partition) {
                plain.raw_bind_parameter(1, t.id)?;
                plain.raw_bind_parameter(2, partition)?;
                plain.raw_bind_parameter(4, ts)?;
                plain_bound = Some(partition);
            }
            plain.raw_bind_parameter(3, offset)?;
            plain.raw_bind_parameter(5, payload)?;
            plain.raw_execute()?;
        } else {
            insert.execute(params![
                t.id, partition, offset, ts, visible_at, m.key, headers, payload, m.dedup_id
            ])?;
        }
        if let Some(id) = m.dedup_id.as_deref() {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO mq_dedup (topic_id, dedup_id, partition, offset, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![t.id, id, partition, offset, now.saturating_add(topic::ms(t.dedup_window))])?;
            batch_dedup.insert(id, (partition, offset));
        }
        st.next += 1;
        st.last_ts = ts;
        st.bytes += payload_len;
        parts.insert(partition, st);
        out.push(Published {
            topic: t.name.clone(),
            partition,
            offset: u64::try_from(offset).unwrap_or(0),
            duplicate: false,
        });
    }

    let mut save = conn.prepare_cached(
        "UPDATE mq_partitions SET next_offset = ?3, low_offset = ?4, last_ts = ?5, bytes = ?6
         WHERE topic_id = ?1 AND partition = ?2",
    )?;
    for (p, s) in parts.iter() {
        if lazy && s.next - s.synced < CHECKPOINT_EVERY {
            continue;
        }
        let bytes = s.bytes + tail_bytes(conn, t.id, p, s.synced, s.unsummed)?;
        save.execute(params![t.id, p, s.next, s.low, s.last_ts, bytes])?;
    }
    if let Some(next) = rr {
        conn.execute(
            "UPDATE mq_topics SET next_partition = ?2 WHERE id = ?1",
            params![t.id, next],
        )?;
    }
    for (p, s) in parts.iter() {
        apply_retention(conn, now, t, p, s)?;
    }
    Ok(out)
}

/// A partition's true state (checkpoint plus the messages after it). With
/// `sum_bytes` false, `bytes` is the checkpoint's, and the messages after it
/// are left for `tail_bytes` (summing up to CHECKPOINT_EVERY payload sizes
/// on every single publish would cost more than it saves).
fn load_part(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    sum_bytes: bool,
) -> Result<PartState> {
    let row = |r: &rusqlite::Row<'_>| -> rusqlite::Result<PartState> {
        let next = r.get(0)?;
        let synced = r.get(4)?;
        Ok(PartState {
            next,
            low: r.get(1)?,
            last_ts: r.get(2)?,
            bytes: r.get(3)?,
            synced,
            unsummed: if sum_bytes { synced } else { next },
        })
    };
    let mut st = if sum_bytes {
        conn.prepare_cached(
            "SELECT next_offset, low_offset, last_ts, bytes, synced_offset FROM mq_partition_state
             WHERE topic_id = ?1 AND partition = ?2",
        )?
    } else {
        conn.prepare_cached(
            "SELECT next_offset, low_offset, last_ts, synced_bytes, synced_offset FROM mq_partition_state
             WHERE topic_id = ?1 AND partition = ?2",
        )?
    };
    Ok(st.query_row(params![topic_id, partition], row)?)
}

/// Payload bytes of a partition's messages at offsets `from..to`.
fn tail_bytes(conn: &Connection, topic_id: i64, partition: u32, from: i64, to: i64) -> Result<i64> {
    if from >= to {
        return Ok(0);
    }
    let mut st = conn.prepare_cached(
        "SELECT COALESCE(SUM(octet_length(payload)), 0) FROM mq_messages
         WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 AND offset < ?4",
    )?;
    Ok(st.query_row(params![topic_id, partition, from, to], |r| r.get(0))?)
}

fn fullest(conn: &Connection, t: &TopicInfo, parts: &Parts) -> Result<u32> {
    let mut best = (0u32, -1i64);
    for p in 0..t.partitions {
        let s = match parts.get(&p) {
            Some(s) => *s,
            None => load_part(conn, t.id, p, true)?,
        };
        if s.next - s.low > best.1 {
            best = (p, s.next - s.low);
        }
    }
    Ok(best.0)
}

/// Trims a partition by age, count or size after an append (retention is per partition).
fn apply_retention(
    conn: &Connection,
    now: i64,
    t: &TopicInfo,
    partition: u32,
    s: &PartState,
) -> Result<()> {
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
            let cutoff = now.saturating_sub(topic::ms(d));
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

/// Forgets a bounded number of expired dedup ids (never a full scan per publish).
fn prune_dedup(conn: &Connection, now: i64) -> Result<()> {
    conn.prepare_cached(
        "DELETE FROM mq_dedup WHERE (topic_id, dedup_id) IN
           (SELECT topic_id, dedup_id FROM mq_dedup WHERE expires_at <= ?1 LIMIT 64)",
    )?
    .execute([now])?;
    Ok(())
}
