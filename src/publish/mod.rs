//! Publishing: appending messages to a topic's log, with its parts: the
//! partitions a batch touches (`parts`), dedup ids (`dedup`), what a full
//! topic does (`overflow`) and trimming by retention (`retention`).

mod dedup;
mod overflow;
mod parts;
mod retention;

use std::collections::BTreeMap;
use std::time::Duration;

use rusqlite::{CachedStatement, params};

use self::parts::{CHECKPOINT_EVERY, Parts};
use crate::storage::tx::Ctx;
use crate::topic::{self, Retention, TopicInfo};
use crate::units::ms;
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
    pub(crate) timestamp: Option<i64>,
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
    /// The message's timestamp (ms since the Unix epoch) instead of now, to
    /// copy messages with their times (IMPORT does). Timestamps never go
    /// back within a partition and never pass now: a time before the
    /// partition's latest is raised to it, one after now is lowered to now.
    pub fn timestamp(mut self, ms: i64) -> Message {
        self.timestamp = Some(ms);
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

/// The timestamp of a message appended to a partition whose latest is
/// `last`: now, or the time it asked for, but never before `last` (they are
/// monotonic per partition) and never after now (a time in the future would
/// hold every later message of the partition at it).
fn stamp(asked: Option<i64>, last: i64, now: i64) -> i64 {
    let latest = now.max(last);
    asked.map_or(latest, |t| t.clamp(last, latest))
}

/// Refuses a batch with a message no topic could take, before anything is
/// written.
fn check_messages(t: &TopicInfo, msgs: &[Message], max_payload: usize) -> Result<()> {
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
            return Err(Error::PartitionOutOfRange {
                topic: t.name.clone(),
                partition: p,
                partitions: t.partitions,
                statement: "PUBLISH".into(),
            });
        }
        if m.headers.keys().any(|k| k.is_empty()) {
            return Err(Error::EmptyValue {
                what: "header name".into(),
            });
        }
        if m.dedup_id.as_deref() == Some("") {
            return Err(Error::EmptyValue {
                what: "dedup id".into(),
            });
        }
    }
    Ok(())
}

/// One append in progress: the topic, the partitions it touched, and the
/// statements it reuses.
struct Append<'a, 'c> {
    ctx: &'a Ctx<'c>,
    t: &'a TopicInfo,
    parts: Parts,
    /// Whether the partitions' checkpoints may lag (see `append`).
    lazy: bool,
    /// Messages stored in the topic, when it has a MAX LENGTH.
    total: Option<i64>,
    /// The next round-robin partition, once read.
    rr: Option<u32>,
    dedup: dedup::Batch<'a>,
    insert: CachedStatement<'a>,
    plain: CachedStatement<'a>,
    /// The partition whose topic id, partition and timestamp are bound on
    /// `plain` (a statement comes out of the cache with no bindings).
    plain_bound: Option<u32>,
}

/// Appends messages to a topic inside the caller's write transaction.
pub(crate) fn append<'a>(
    ctx: &'a Ctx<'_>,
    t: &'a TopicInfo,
    msgs: &'a [Message],
    max_payload: usize,
) -> Result<Vec<Published>> {
    let mut a = Append::start(ctx, t, msgs, max_payload)?;
    let mut out = Vec::with_capacity(msgs.len());
    for m in msgs {
        out.push(a.one(m)?);
    }
    a.finish()?;
    ctx.made_deliverable();
    Ok(out)
}

/// Appends one message, as [`append`].
pub(crate) fn append_one<'a>(
    ctx: &'a Ctx<'_>,
    t: &'a TopicInfo,
    m: &'a Message,
    max_payload: usize,
) -> Result<Published> {
    let mut a = Append::start(ctx, t, std::slice::from_ref(m), max_payload)?;
    let published = a.one(m)?;
    a.finish()?;
    ctx.made_deliverable();
    Ok(published)
}

impl<'a, 'c> Append<'a, 'c> {
    /// Checks the batch and prepares its statements; writes nothing.
    fn start(
        ctx: &'a Ctx<'c>,
        t: &'a TopicInfo,
        msgs: &[Message],
        max_payload: usize,
    ) -> Result<Self> {
        check_messages(t, msgs, max_payload)?;
        // One message to a topic without MAX LENGTH or a trimming retention:
        // nothing in this call needs the stored bytes, and the checkpoint may
        // lag (up to CHECKPOINT_EVERY messages).
        let lazy = msgs.len() == 1
            && t.max_length.is_none()
            && matches!(t.retention, Retention::Forever | Retention::UntilConsumed);
        let total = match t.max_length {
            Some(_) => Some(i64::try_from(topic::stats(ctx, t.id)?.messages).unwrap_or(i64::MAX)),
            None => None,
        };
        Ok(Append {
            ctx,
            t,
            parts: Parts::new(t.partitions),
            lazy,
            total,
            rr: None,
            dedup: dedup::Batch::default(),
            insert: ctx.prepare_cached(
                "INSERT INTO mq_messages (topic_id, partition, offset, ts, visible_at, key, headers, payload, dedup_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?,
            plain: ctx.prepare_cached(
                "INSERT INTO mq_messages (topic_id, partition, offset, ts, payload) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?,
            plain_bound: None,
        })
    }
}

impl<'a> Append<'a, '_> {
    /// Stores one message (or finds it a duplicate).
    fn one(&mut self, m: &'a Message) -> Result<Published> {
        let (ctx, t) = (self.ctx, self.t);
        if let Some(id) = m.dedup_id.as_deref()
            && let Some((partition, offset)) = self.dedup.seen(ctx, t, id)?
        {
            return Ok(Published {
                topic: t.name.clone(),
                partition,
                offset: u64::try_from(offset).unwrap_or(0),
                duplicate: true,
            });
        }
        let partition = self.partition_of(m)?;
        let mut st = match self.parts.get(&partition) {
            Some(s) => *s,
            None => parts::load(ctx, t.id, partition, !self.lazy)?,
        };
        if let (Some(max), Some(total)) = (t.max_length, self.total.as_mut()) {
            overflow::make_room(ctx, t, max, total, partition, &mut st, &mut self.parts)?;
        }
        let offset = st.next;
        let ts = stamp(m.timestamp, st.last_ts, ctx.now);
        self.insert_row(m, partition, offset, ts)?;
        if let Some(id) = m.dedup_id.as_deref() {
            self.dedup.remember(ctx, t, id, (partition, offset))?;
        }
        st.next += 1;
        st.last_ts = ts;
        st.bytes += i64::try_from(m.payload.len()).unwrap_or(i64::MAX);
        self.parts.insert(partition, st);
        Ok(Published {
            topic: t.name.clone(),
            partition,
            offset: u64::try_from(offset).unwrap_or(0),
            duplicate: false,
        })
    }

    /// The partition a message goes to: the one it names, its key's, or the
    /// next in round-robin order.
    fn partition_of(&mut self, m: &Message) -> Result<u32> {
        let t = self.t;
        Ok(match (m.partition, &m.key) {
            (Some(p), _) => p,
            (None, Some(k)) => partition_for_key(k, t.partitions),
            (None, None) if t.partitions == 1 => 0,
            (None, None) => {
                let start = match self.rr {
                    Some(p) => p,
                    None => self.ctx.query_row(
                        "SELECT next_partition FROM mq_topics WHERE id = ?1",
                        [t.id],
                        |r| r.get::<_, u32>(0),
                    )?,
                };
                let p = start % t.partitions;
                self.rr = Some((p + 1) % t.partitions);
                p
            }
        })
    }

    /// Inserts the message's row.
    fn insert_row(&mut self, m: &Message, partition: u32, offset: i64, ts: i64) -> Result<()> {
        let t = self.t;
        let visible_at = m.delay.map(|d| ts.saturating_add(ms(d)));
        let headers = if m.headers.is_empty() {
            None
        } else {
            Some(serde_json::to_string(&m.headers).map_err(|e| Error::Io(e.into()))?)
        };
        // Valid UTF-8 is stored as TEXT so SQL's JSON functions read it.
        let text = std::str::from_utf8(&m.payload).ok();
        let payload: &dyn rusqlite::ToSql = match &text {
            Some(text) => text,
            None => &m.payload,
        };
        if visible_at.is_none()
            && m.key.is_none()
            && headers.is_none()
            && m.dedup_id.is_none()
            && m.timestamp.is_none()
        {
            // The common case binds 5 values instead of 9 (about 550
            // instructions less per message; callgrind), and of those only
            // the offset and payload per message: bindings stay on the
            // statement between executions, and topic, partition and
            // timestamp change only with the partition.
            if self.plain_bound != Some(partition) {
                self.plain.raw_bind_parameter(1, t.id)?;
                self.plain.raw_bind_parameter(2, partition)?;
                self.plain.raw_bind_parameter(4, ts)?;
                self.plain_bound = Some(partition);
            }
            self.plain.raw_bind_parameter(3, offset)?;
            self.plain.raw_bind_parameter(5, payload)?;
            self.plain.raw_execute()?;
        } else {
            self.insert.execute(params![
                t.id, partition, offset, ts, visible_at, m.key, headers, payload, m.dedup_id
            ])?;
        }
        Ok(())
    }

    /// Saves the partitions' checkpoints and the round-robin position, then
    /// trims by retention.
    fn finish(self) -> Result<()> {
        let (ctx, t) = (self.ctx, self.t);
        let mut save = ctx.prepare_cached(
            "UPDATE mq_partitions SET next_offset = ?3, low_offset = ?4, last_ts = ?5, bytes = ?6
             WHERE topic_id = ?1 AND partition = ?2",
        )?;
        for (p, s) in self.parts.iter() {
            if self.lazy && s.next - s.synced < CHECKPOINT_EVERY {
                continue;
            }
            let bytes = s.bytes + parts::tail_bytes(ctx, t.id, p, s.synced, s.unsummed)?;
            save.execute(params![t.id, p, s.next, s.low, s.last_ts, bytes])?;
        }
        if let Some(next) = self.rr {
            ctx.execute(
                "UPDATE mq_topics SET next_partition = ?2 WHERE id = ?1",
                params![t.id, next],
            )?;
        }
        for (p, s) in self.parts.iter() {
            retention::apply(ctx, t, p, s)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_stay_monotonic_and_not_past_now() {
        assert_eq!(stamp(None, 5, 10), 10);
        assert_eq!(stamp(None, 12, 10), 12);
        assert_eq!(stamp(Some(7), 5, 10), 7);
        assert_eq!(stamp(Some(3), 5, 10), 5);
        assert_eq!(stamp(Some(99), 5, 10), 10);
        assert_eq!(stamp(Some(99), 12, 10), 12);
        assert_eq!(stamp(Some(i64::MIN), 0, 10), 0);
    }

    /// Keyed messages must keep landing where their key's earlier ones
    /// are: these values may never change.
    #[test]
    fn key_partitions_are_stable() {
        let golden = [
            ("", 8, 5),
            ("ORD-1", 3, partition_for_key("ORD-1", 3)),
            ("a", 1, 0),
        ];
        for (key, parts, want) in golden {
            assert_eq!(partition_for_key(key, parts), want, "{key} over {parts}");
        }
        // FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c; of "" the offset basis.
        assert_eq!(
            partition_for_key("a", 1024),
            (0xaf63_dc4c_8601_ec8c_u64 % 1024) as u32
        );
        assert_eq!(
            partition_for_key("", 1024),
            (0xcbf2_9ce4_8422_2325_u64 % 1024) as u32
        );
        assert_eq!(partition_for_key("customer-42", 0), 0);
    }
}
