//! Topics and queues: what they are (kind, partitions, retention, limits),
//! their rows in `mq_topics`, and, in parts, their log of messages
//! (`log`) and the definitions a write connection remembers (`defs`).
//! Creating and dropping a topic with its groups is `catalog`'s.

mod defs;
mod log;

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

pub(crate) use defs::{TopicDefs, definitions_changed};
pub use log::Record;
pub(crate) use log::{page_sizes, scan_page, trim_partition};

pub use crate::kind::TopicKind;

use crate::kind::MAX_NAME_BYTES;
use crate::storage::tx::next_counter;
use crate::units::{Count, Millis, Offset};
use crate::{Error, NameProblem, Result};

/// How long a topic keeps messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retention {
    /// `RETENTION 7d`: by age.
    Age(Duration),
    /// `RETENTION 10MB`: by total payload size in bytes.
    Size(u64),
    /// `RETENTION n MESSAGES`: by count.
    Messages(u64),
    /// `RETENTION UNTIL CONSUMED`: below every group's ack floor.
    UntilConsumed,
    /// `RETENTION FOREVER`.
    Forever,
}

/// What a full topic does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overflow {
    /// The publish fails.
    Reject,
    /// The oldest messages are dropped.
    DropOldest,
}

/// Default ack wait (visibility timeout) of a topic's groups.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);

/// Default number of deliveries before a message is dead-lettered.
pub const DEFAULT_MAX_DELIVERIES: u32 = 5;

/// Default window in which a dedup id is remembered.
pub const DEFAULT_DEDUP_WINDOW: Duration = Duration::from_secs(24 * 3600);

/// Most partitions a topic may have.
pub const MAX_PARTITIONS: u32 = 1024;

/// Options of a topic or queue. `None` keeps the default (or, in ALTER, the current value).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TopicOptions {
    /// Number of partitions (default 1; a queue has 1).
    pub partitions: Option<u32>,
    /// Retention (default FOREVER for topics, UNTIL CONSUMED for queues).
    pub retention: Option<Retention>,
    /// MAX LENGTH: most messages stored at once.
    pub max_length: Option<u64>,
    /// What happens at MAX LENGTH (default REJECT).
    pub overflow: Option<Overflow>,
    /// DEDUP WINDOW.
    pub dedup_window: Option<Duration>,
    /// MAX DELIVERIES (default for the topic's groups).
    pub max_deliveries: Option<u32>,
    /// ACK WAIT (default for the topic's groups).
    pub ack_wait: Option<Duration>,
}

/// A stored topic or queue.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicInfo {
    /// Internal id (never reused).
    pub id: i64,
    /// Name.
    pub name: String,
    /// Topic or queue.
    pub kind: TopicKind,
    /// Partitions.
    pub partitions: u32,
    /// Retention.
    pub retention: Retention,
    /// MAX LENGTH.
    pub max_length: Option<u64>,
    /// OVERFLOW.
    pub overflow: Overflow,
    /// DEDUP WINDOW.
    pub dedup_window: Duration,
    /// MAX DELIVERIES.
    pub max_deliveries: u32,
    /// ACK WAIT.
    pub ack_wait: Duration,
}

/// Counts of a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopicStats {
    /// Messages stored.
    pub messages: u64,
    /// Payload bytes stored.
    pub bytes: u64,
    /// Messages ever appended (sum of next offsets).
    pub appended: u64,
}

/// Checks a topic or group name.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    let problem = if name.is_empty() {
        NameProblem::Empty
    } else if name.len() > MAX_NAME_BYTES {
        NameProblem::TooLong
    } else if name.chars().any(|c| c.is_control()) {
        NameProblem::ControlCharacter
    } else {
        return Ok(());
    };
    Err(invalid_name(what, name, problem))
}

/// An [`Error::InvalidName`].
fn invalid_name(what: &str, name: &str, problem: NameProblem) -> Error {
    Error::InvalidName {
        what: what.to_string(),
        name: name.to_string(),
        problem,
    }
}

/// How a retention is stored: its kind, and its value (ms, bytes or a
/// message count; `check_options` refused what does not fit).
fn retention_to_sql(r: Retention) -> (&'static str, Option<Count>) {
    match r {
        Retention::Age(d) => (
            "age",
            Some(Count(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
        ),
        Retention::Size(b) => ("size", Some(Count(b))),
        Retention::Messages(n) => ("messages", Some(Count(n))),
        Retention::UntilConsumed => ("until_consumed", None),
        Retention::Forever => ("forever", None),
    }
}

fn retention_from_sql(kind: &str, value: Option<Count>) -> Retention {
    let v = value.map_or(0, |c| c.0);
    match kind {
        "age" => Retention::Age(std::time::Duration::from_millis(v)),
        "size" => Retention::Size(v),
        "messages" => Retention::Messages(v),
        "until_consumed" => Retention::UntilConsumed,
        _ => Retention::Forever,
    }
}

fn check_options(kind: TopicKind, o: &TopicOptions) -> Result<()> {
    if let Some(p) = o.partitions {
        if p == 0 || p > MAX_PARTITIONS {
            return Err(Error::option(
                "PARTITIONS",
                format!("PARTITIONS must be between 1 and {MAX_PARTITIONS}, got {p}"),
            ));
        }
        if kind == TopicKind::Queue && p != 1 {
            return Err(Error::option(
                "PARTITIONS",
                "a queue has exactly one partition; use a topic for more",
            ));
        }
    }
    if kind == TopicKind::Queue
        && let Some(r) = o.retention
        && r != Retention::UntilConsumed
    {
        return Err(Error::option(
            "RETENTION",
            "a queue's retention is always UNTIL CONSUMED; use a topic for other retention",
        ));
    }
    match o.retention {
        Some(Retention::Messages(0)) => {
            return Err(Error::option(
                "RETENTION",
                "RETENTION must keep at least 1 message",
            ));
        }
        Some(Retention::Size(0)) => {
            return Err(Error::option(
                "RETENTION",
                "RETENTION size must be at least 1 byte",
            ));
        }
        Some(Retention::Age(d)) if d.is_zero() => {
            return Err(Error::option(
                "RETENTION",
                "RETENTION age must be longer than 0",
            ));
        }
        _ => {}
    }
    if o.max_length == Some(0) {
        return Err(Error::option("MAX LENGTH", "MAX LENGTH must be at least 1"));
    }
    if o.max_deliveries == Some(0) {
        return Err(Error::option(
            "MAX DELIVERIES",
            "MAX DELIVERIES must be at least 1",
        ));
    }
    if o.ack_wait.is_some_and(|d| d.is_zero()) {
        return Err(Error::option("ACK WAIT", "ACK WAIT must be longer than 0"));
    }
    check_fits_i64(o)
}

/// Durations (in ms), sizes and counts are stored as SQLite's i64: refuse,
/// never clamp, what does not fit.
fn check_fits_i64(o: &TopicOptions) -> Result<()> {
    // `what` is the option, then what it counts when that is not plain.
    let too_large = |option: &str, what: &str| {
        Err(Error::option(
            option,
            format!("{what} is too large: at most {} (2^63 - 1)", i64::MAX),
        ))
    };
    let ms_over = |d: Option<Duration>| d.is_some_and(|d| i64::try_from(d.as_millis()).is_err());
    let over = |n: Option<u64>| n.is_some_and(|n| i64::try_from(n).is_err());
    match o.retention {
        Some(Retention::Age(d)) if ms_over(Some(d)) => {
            return too_large("RETENTION", "RETENTION (in ms)");
        }
        Some(Retention::Size(n)) if over(Some(n)) => {
            return too_large("RETENTION", "RETENTION (in bytes)");
        }
        Some(Retention::Messages(n)) if over(Some(n)) => {
            return too_large("RETENTION", "RETENTION MESSAGES");
        }
        _ => {}
    }
    if over(o.max_length) {
        return too_large("MAX LENGTH", "MAX LENGTH");
    }
    if ms_over(o.dedup_window) {
        return too_large("DEDUP WINDOW", "DEDUP WINDOW (in ms)");
    }
    if ms_over(o.ack_wait) {
        return too_large("ACK WAIT", "ACK WAIT (in ms)");
    }
    Ok(())
}

/// Names of the language's system sources (and one planned); a topic named
/// so could not be read with SELECT ... FROM, so they are refused at CREATE.
pub(crate) const RESERVED_NAMES: &[&str] = &["TOPICS", "GROUPS", "PROCESSED", "DLQ", "DELIVERIES"];

/// Checks a new topic's name and options (before anything is written).
pub(crate) fn check_new(kind: TopicKind, name: &str, o: &TopicOptions) -> Result<()> {
    validate_name(kind_str(kind), name)?;
    // The message names the source in upper case: the name, since every
    // reserved name is ASCII.
    if RESERVED_NAMES.iter().any(|r| r.eq_ignore_ascii_case(name)) {
        return Err(invalid_name(kind_str(kind), name, NameProblem::Reserved));
    }
    check_options(kind, o)
}

/// Stores a new topic or queue and its partitions; returns its id.
pub(crate) fn insert(
    conn: &Connection,
    now: i64,
    kind: TopicKind,
    name: &str,
    o: &TopicOptions,
) -> Result<i64> {
    let partitions = o.partitions.unwrap_or(1);
    let retention = o.retention.unwrap_or(match kind {
        TopicKind::Topic => Retention::Forever,
        TopicKind::Queue => Retention::UntilConsumed,
    });
    let (rk, rv) = retention_to_sql(retention);
    let id = next_counter(conn, "next_topic_id")?;
    conn.execute(
        "INSERT INTO mq_topics (id, name, kind, partitions, retention, retention_value, max_length, overflow,
                                dedup_window_ms, max_deliveries, ack_wait_ms, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
        params![
            id,
            name,
            kind_str(kind),
            partitions,
            rk,
            rv,
            o.max_length.map(Count),
            overflow_str(o.overflow.unwrap_or(Overflow::Reject)),
            Millis(o.dedup_window.unwrap_or(DEFAULT_DEDUP_WINDOW)),
            o.max_deliveries.unwrap_or(DEFAULT_MAX_DELIVERIES),
            Millis(o.ack_wait.unwrap_or(DEFAULT_ACK_WAIT)),
            now,
        ],
    )?;
    for p in 0..partitions {
        conn.execute(
            "INSERT INTO mq_partitions (topic_id, partition) VALUES (?1, ?2)",
            params![id, p],
        )?;
    }
    Ok(id)
}

/// Checks ALTER's options against the stored topic `t` (kind, and
/// partitions that may only grow).
pub(crate) fn check_alter(t: &TopicInfo, kind: TopicKind, o: &TopicOptions) -> Result<()> {
    if t.kind != kind {
        return Err(Error::WrongKind {
            name: t.name.clone(),
            is: t.kind,
            expected: kind,
            statement: "ALTER".into(),
        });
    }
    check_options(kind, o)?;
    if let Some(p) = o.partitions
        && p < t.partitions
    {
        return Err(Error::option(
            "PARTITIONS",
            format!(
                "PARTITIONS can only grow ('{}' has {}): stored messages cannot leave their partition",
                t.name, t.partitions
            ),
        ));
    }
    Ok(())
}

/// Adds partitions `t.partitions..to` (ALTER ... PARTITIONS).
pub(crate) fn add_partitions(conn: &Connection, t: &TopicInfo, to: u32) -> Result<()> {
    for part in t.partitions..to {
        conn.execute(
            "INSERT INTO mq_partitions (topic_id, partition) VALUES (?1, ?2)",
            params![t.id, part],
        )?;
    }
    conn.execute(
        "UPDATE mq_topics SET partitions = ?2 WHERE id = ?1",
        params![t.id, to],
    )?;
    Ok(())
}

/// Stores ALTER's options other than PARTITIONS.
pub(crate) fn update(conn: &Connection, t: &TopicInfo, o: &TopicOptions) -> Result<()> {
    if let Some(r) = o.retention {
        let (rk, rv) = retention_to_sql(r);
        conn.execute(
            "UPDATE mq_topics SET retention = ?2, retention_value = ?3 WHERE id = ?1",
            params![t.id, rk, rv],
        )?;
    }
    if let Some(m) = o.max_length {
        conn.execute(
            "UPDATE mq_topics SET max_length = ?2 WHERE id = ?1",
            params![t.id, Count(m)],
        )?;
    }
    if let Some(ov) = o.overflow {
        conn.execute(
            "UPDATE mq_topics SET overflow = ?2 WHERE id = ?1",
            params![t.id, overflow_str(ov)],
        )?;
    }
    if let Some(d) = o.dedup_window {
        conn.execute(
            "UPDATE mq_topics SET dedup_window_ms = ?2 WHERE id = ?1",
            params![t.id, Millis(d)],
        )?;
    }
    if let Some(m) = o.max_deliveries {
        conn.execute(
            "UPDATE mq_topics SET max_deliveries = ?2 WHERE id = ?1",
            params![t.id, m],
        )?;
    }
    if let Some(d) = o.ack_wait {
        conn.execute(
            "UPDATE mq_topics SET ack_wait_ms = ?2 WHERE id = ?1",
            params![t.id, Millis(d)],
        )?;
    }
    Ok(())
}

/// Deletes a topic's own rows: its messages, partitions, dedup ids and
/// definition (its groups' state is `group::pending`'s and `group`'s).
pub(crate) fn delete(conn: &Connection, topic_id: i64) -> Result<()> {
    for sql in [
        "DELETE FROM mq_messages WHERE topic_id = ?1",
        "DELETE FROM mq_partitions WHERE topic_id = ?1",
        "DELETE FROM mq_dedup WHERE topic_id = ?1",
        "DELETE FROM mq_topics WHERE id = ?1",
    ] {
        conn.execute(sql, [topic_id])?;
    }
    Ok(())
}

/// The kind as `mq_topics.kind` stores it (and DESCRIBE shows it).
pub(crate) fn kind_str(k: TopicKind) -> &'static str {
    k.noun()
}

fn overflow_str(o: Overflow) -> &'static str {
    match o {
        Overflow::Reject => "reject",
        Overflow::DropOldest => "drop_oldest",
    }
}

/// A macro, not a const, so `concat!` builds each query at compile time
/// (a `format!` per lookup showed up in the publish profile).
macro_rules! select_topic {
    ($tail:literal) => {
        concat!(
            "SELECT id, name, kind, partitions, retention, retention_value, max_length, overflow,
             dedup_window_ms, max_deliveries, ack_wait_ms FROM mq_topics ",
            $tail
        )
    };
}

fn from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TopicInfo> {
    // Borrowed, not copied: every publish looks its topic up.
    let kind = r.get_ref(2)?.as_str()?;
    let rk = r.get_ref(4)?.as_str()?;
    let overflow = r.get_ref(7)?.as_str()?;
    Ok(TopicInfo {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: if kind == "queue" {
            TopicKind::Queue
        } else {
            TopicKind::Topic
        },
        partitions: r.get(3)?,
        retention: retention_from_sql(rk, r.get(5)?),
        max_length: r.get::<_, Option<Count>>(6)?.map(|c| c.0),
        overflow: if overflow == "drop_oldest" {
            Overflow::DropOldest
        } else {
            Overflow::Reject
        },
        dedup_window: r.get::<_, Millis>(8)?.0,
        max_deliveries: r.get(9)?,
        ack_wait: r.get::<_, Millis>(10)?.0,
    })
}

/// The topic or queue named `name`, if any.
pub(crate) fn find(conn: &Connection, name: &str) -> Result<Option<TopicInfo>> {
    let mut st = conn.prepare_cached(select_topic!("WHERE name = ?1"))?;
    Ok(st.query_row([name], from_row).optional()?)
}

/// The topic or queue named `name`, or `TopicNotFound`.
pub(crate) fn get(conn: &Connection, name: &str) -> Result<TopicInfo> {
    find(conn, name)?.ok_or_else(|| Error::TopicNotFound(name.to_string()))
}

/// The topic with this id.
pub(crate) fn by_id(conn: &Connection, id: i64) -> Result<Option<TopicInfo>> {
    let mut st = conn.prepare_cached(select_topic!("WHERE id = ?1"))?;
    Ok(st.query_row([id], from_row).optional()?)
}

/// Every topic and queue, by name.
pub(crate) fn list(conn: &Connection) -> Result<Vec<TopicInfo>> {
    let mut st = conn.prepare_cached(select_topic!("ORDER BY name"))?;
    let rows = st.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Message and byte counts of a topic.
pub(crate) fn stats(conn: &Connection, topic_id: i64) -> Result<TopicStats> {
    let mut st = conn.prepare_cached(
        "SELECT COALESCE(SUM(next_offset - low_offset), 0), COALESCE(SUM(bytes), 0), COALESCE(SUM(next_offset), 0)
         FROM mq_partition_state WHERE topic_id = ?1",
    )?;
    Ok(st.query_row([topic_id], |r| {
        Ok(TopicStats {
            messages: r.get::<_, Count>(0)?.0,
            bytes: r.get::<_, Count>(1)?.0,
            appended: r.get::<_, Count>(2)?.0,
        })
    })?)
}

/// Topics looked up by id within one statement (a consume or an ACK
/// touches few topics, many times).
pub(crate) struct TopicsById<'c> {
    conn: &'c Connection,
    map: HashMap<i64, Option<TopicInfo>>,
}

impl<'c> TopicsById<'c> {
    pub(crate) fn new(conn: &'c Connection) -> TopicsById<'c> {
        TopicsById {
            conn,
            map: HashMap::new(),
        }
    }

    /// The topic with this id, if it still exists.
    pub(crate) fn get(&mut self, id: i64) -> Result<Option<&TopicInfo>> {
        if !self.map.contains_key(&id) {
            let t = by_id(self.conn, id)?;
            self.map.insert(id, t);
        }
        Ok(self.map.get(&id).and_then(Option::as_ref))
    }
}

/// The offsets a partition holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionInfo {
    /// The partition.
    pub partition: u32,
    /// The first offset still stored.
    pub low_offset: u64,
    /// The offset the next message gets.
    pub next_offset: u64,
}

/// The stored offsets of each partition of the topic `name`.
pub(crate) fn partitions(conn: &Connection, name: &str) -> Result<Vec<PartitionInfo>> {
    let t = get(conn, name)?;
    let mut st = conn.prepare_cached(
        "SELECT partition, low_offset, next_offset FROM mq_partition_state WHERE topic_id = ?1 ORDER BY partition",
    )?;
    let rows = st.query_map([t.id], |r| {
        Ok(PartitionInfo {
            partition: r.get(0)?,
            low_offset: r.get::<_, Offset>(1)?.0,
            next_offset: r.get::<_, Offset>(2)?.0,
        })
    })?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// CHECK: each partition's stored messages match its offsets.
pub(crate) fn check_offsets(c: &Connection, problems: &mut Vec<String>) -> rusqlite::Result<()> {
    let bad: i64 = c.query_row(
        "SELECT COUNT(*) FROM mq_partition_state p WHERE p.low_offset > p.next_offset
           OR (SELECT COUNT(*) FROM mq_messages m WHERE m.topic_id = p.topic_id AND m.partition = p.partition)
              != p.next_offset - p.low_offset",
        [],
        |r| r.get(0),
    )?;
    if bad > 0 {
        problems.push(format!(
            "{bad} partition(s) whose stored messages do not match their offsets"
        ));
    }
    Ok(())
}
