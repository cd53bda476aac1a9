//! Consumer groups: which topics a group reads (names and patterns), where
//! it is in each partition (cursors), and its per-message state (pending
//! deliveries, range leases). Leasing and settling messages is
//! `delivery`'s; this module keeps the state they work on.
//!
//! A group's state per partition is its cursor (the next offset to hand out)
//! and its pending rows (`mq_pending`): messages the cursor has passed that
//! are not acked. A pending row is in flight while `visible_at > now`, and
//! (re)deliverable once `visible_at <= now`. Its `delivery_id` is the id of
//! the latest delivery; older ids of the same message are kept in `mq_stale`
//! so a late ACK is refused with the id it lost to.

mod cursor;
pub(crate) mod deliveries;
mod pattern;
pub(crate) mod pending;
pub(crate) mod ranges;
pub(crate) mod rotation;
mod stats;
mod subscription;

use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

pub(crate) use cursor::{commit_offset, replay, trim_consumed};
pub use deliveries::{Attempt, AttemptOutcome, DeliveryState, PendingDelivery};
pub use pattern::pattern_matches;
pub(crate) use stats::{readers, stats};
pub(crate) use subscription::{
    add_partitions, attach_new_topic, create_queue_group, drop_queue_group, forget_topic,
    subscribe, unsubscribe,
};

use crate::units::Millis;
use crate::{Error, Result};

/// A stored consumer group.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupInfo {
    /// Internal id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Set for a queue's implicit group.
    pub queue_topic_id: Option<i64>,
    /// ORDERED: one message per key in flight.
    pub ordered: bool,
    /// Overrides the topics' MAX DELIVERIES.
    pub max_deliveries: Option<u32>,
    /// Overrides the topics' ACK WAIT.
    pub ack_wait: Option<Duration>,
}

/// What SUBSCRIBE asks for.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Subscription {
    /// Topic names.
    pub topics: Vec<String>,
    /// Patterns: `*` one dot-separated word, `#` zero or more.
    pub patterns: Vec<String>,
    /// Where a new group starts (default LATEST).
    pub from: Option<StartFrom>,
    /// One message per key in flight.
    pub ordered: bool,
    /// MAX DELIVERIES for this group.
    pub max_deliveries: Option<u32>,
    /// ACK WAIT for this group.
    pub ack_wait: Option<Duration>,
}

impl Subscription {
    /// Subscribes to one topic.
    pub fn topic(name: impl Into<String>) -> Subscription {
        Subscription {
            topics: vec![name.into()],
            ..Subscription::default()
        }
    }
    /// Subscribes to one pattern.
    pub fn pattern(p: impl Into<String>) -> Subscription {
        Subscription {
            patterns: vec![p.into()],
            ..Subscription::default()
        }
    }
    /// Adds a topic.
    pub fn and_topic(mut self, name: impl Into<String>) -> Subscription {
        self.topics.push(name.into());
        self
    }
    /// Sets the start position of a new group.
    pub fn from(mut self, from: StartFrom) -> Subscription {
        self.from = Some(from);
        self
    }
    /// ORDERED.
    pub fn ordered(mut self, ordered: bool) -> Subscription {
        self.ordered = ordered;
        self
    }
    /// MAX DELIVERIES.
    pub fn max_deliveries(mut self, n: u32) -> Subscription {
        self.max_deliveries = Some(n);
        self
    }
    /// ACK WAIT.
    pub fn ack_wait(mut self, d: Duration) -> Subscription {
        self.ack_wait = Some(d);
        self
    }
}

/// A point in time in the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeSpec {
    /// `'2024-01-15T10:30:00Z'`, as ms since the epoch.
    Absolute(i64),
    /// `'-1h'`: that long before now.
    Ago(Duration),
}

/// Where a new group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// FROM BEGINNING
    Beginning,
    /// FROM LATEST
    Latest,
    /// FROM OFFSET n
    Offset(u64),
    /// FROM TIMESTAMP 't'
    Timestamp(TimeSpec),
}

/// Where REPLAY moves a cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayFrom {
    /// FROM BEGINNING
    Beginning,
    /// FROM LATEST
    Latest,
    /// FROM OFFSET n [PARTITION p]
    Offset {
        /// The offset.
        offset: u64,
        /// Only this partition; else every partition.
        partition: Option<u32>,
    },
    /// FROM TIMESTAMP 't'
    Timestamp(TimeSpec),
}

/// Builds each group query at compile time (see `select_topic!`).
macro_rules! select_group {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, queue_topic_id, ordered, max_deliveries, ack_wait_ms FROM mq_groups ",
            $tail
        )
    };
}

fn group_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<GroupInfo> {
    Ok(GroupInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        queue_topic_id: r.get(2)?,
        ordered: r.get::<_, i64>(3)? != 0,
        max_deliveries: r.get(4)?,
        ack_wait: r.get::<_, Option<Millis>>(5)?.map(|m| m.0),
    })
}

pub(crate) fn find_id(conn: &Connection, name: &str) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM mq_groups WHERE name = ?1")?
        .query_row([name], |r| r.get(0))
        .optional()?)
}

/// The group named `name`, or `GroupNotFound`.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<GroupInfo> {
    conn.prepare_cached(select_group!("WHERE name = ?1"))?
        .query_row([name], group_from_row)
        .optional()?
        .ok_or_else(|| Error::GroupNotFound(name.to_string()))
}

/// The group with this id.
pub(crate) fn by_id(conn: &Connection, id: i64) -> Result<GroupInfo> {
    Ok(conn
        .prepare_cached(select_group!("WHERE id = ?1"))?
        .query_row([id], group_from_row)?)
}

/// The group named `name`, if any.
pub(crate) fn find(conn: &Connection, name: &str) -> Result<Option<GroupInfo>> {
    Ok(conn
        .prepare_cached(select_group!("WHERE name = ?1"))?
        .query_row([name], group_from_row)
        .optional()?)
}

/// The implicit group of a queue.
pub(crate) fn queue_group(conn: &Connection, t: &crate::topic::TopicInfo) -> Result<GroupInfo> {
    conn.prepare_cached(select_group!("WHERE queue_topic_id = ?1"))?
        .query_row([t.id], group_from_row)
        .optional()?
        .ok_or_else(|| Error::GroupNotFound(t.name.clone()))
}

/// Every group, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<GroupInfo>> {
    let mut st = conn.prepare_cached(select_group!("ORDER BY name"))?;
    let rows = st.query_map([], group_from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// True when the group reads the topic.
pub(crate) fn reads_topic(conn: &Connection, group_id: i64, topic_id: i64) -> Result<bool> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM mq_cursors WHERE group_id = ?1 AND topic_id = ?2 LIMIT 1")?
        .query_row(params![group_id, topic_id], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The id of a queue's implicit group, if the queue has one.
pub(crate) fn queue_group_id(conn: &Connection, topic_id: i64) -> Result<Option<i64>> {
    Ok(conn
        .prepare_cached("SELECT id FROM mq_groups WHERE queue_topic_id = ?1")?
        .query_row([topic_id], |r| r.get(0))
        .optional()?)
}
