//! Consumer groups: subscriptions, cursors, leased deliveries, ack and nack.
//!
//! A group's state per partition is its cursor (the next offset to hand out)
//! and its pending rows (`mq_pending`): messages the cursor has passed that
//! are not acked. A pending row is in flight while `visible_at > now`, and
//! (re)deliverable once `visible_at <= now`. Its `delivery_id` is the id of
//! the latest delivery; older ids of the same message are kept in `mq_stale`
//! so a late ACK is refused with the id it lost to.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::dlq;
use crate::lang::ast::{NackAction, ReplayFrom, Retention, StartFrom, TimeSpec, TopicKind};
use crate::lease;
use crate::topic::{self, TopicInfo};
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

/// A message leased to a consumer.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// Unique id of this delivery: ACK/NACK take it.
    pub id: u64,
    /// Topic name.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// Key.
    pub key: Option<String>,
    /// 1 for the first delivery, 2 for the first redelivery...
    pub attempt: u32,
    /// Append time, ms since the epoch.
    pub timestamp: i64,
    /// Headers.
    pub headers: BTreeMap<String, String>,
    /// Payload.
    pub payload: Vec<u8>,
}

impl Delivery {
    /// The payload as text (invalid UTF-8 replaced).
    pub fn payload_str(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.payload)
    }
}

/// A CONSUME request, already resolved to ids.
#[derive(Debug, Clone)]
pub(crate) struct ConsumeSpec<'a> {
    pub group: &'a GroupInfo,
    /// Only this topic; None: every topic of the group.
    pub topic_id: Option<i64>,
    pub max: usize,
    pub member: Option<&'a str>,
    pub ack_wait: Option<Duration>,
    /// Where delivery ids come from.
    pub ids: &'a std::sync::Mutex<IdBlock>,
}

/// A block of delivery ids reserved by a committed transaction of its own,
/// so ids handed out inside a transaction that rolls back are never issued
/// again. `next..end` are free.
#[derive(Debug, Default)]
pub(crate) struct IdBlock {
    pub next: i64,
    pub end: i64,
}

/// How many delivery ids one reservation takes.
pub(crate) const ID_BLOCK: i64 = 65_536;

fn take_id(conn: &Connection, ids: &std::sync::Mutex<IdBlock>) -> Result<i64> {
    let mut b = ids.lock().unwrap_or_else(|p| p.into_inner());
    if b.next < b.end {
        b.next += 1;
        return Ok(b.next - 1);
    }
    // Only a transaction that leased more than a block lands here: take ids
    // from the counter inside it (they roll back with it).
    topic::next_counter(conn, "next_delivery_id")
}

/// `n` consecutive delivery ids from the reserved block, if it has them.
fn take_ids(ids: &std::sync::Mutex<IdBlock>, n: usize) -> Option<i64> {
    let mut b = ids.lock().unwrap_or_else(|p| p.into_inner());
    let n = i64::try_from(n).ok()?;
    if b.end - b.next < n {
        return None;
    }
    b.next += n;
    Some(b.next - n)
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
        ack_wait: r.get::<_, Option<i64>>(5)?.map(topic::dur),
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

/// The implicit group of a queue.
pub(crate) fn queue_group(conn: &Connection, t: &TopicInfo) -> Result<GroupInfo> {
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

pub(crate) fn create_queue_group(
    conn: &Connection,
    now: i64,
    topic_id: i64,
    name: &str,
) -> Result<()> {
    let id = topic::next_counter(conn, "next_group_id")?;
    conn.execute(
        "INSERT INTO mq_groups (id, name, queue_topic_id, start, created_at) VALUES (?1, ?2, ?3, 'beginning', ?4)",
        params![id, name, topic_id, now],
    )?;
    conn.execute(
        "INSERT INTO mq_subscriptions (group_id, target, is_pattern) VALUES (?1, ?2, 0)",
        params![id, name],
    )?;
    conn.execute(
        "INSERT INTO mq_cursors (group_id, topic_id, partition, next_offset) VALUES (?1, ?2, 0, 0)",
        params![id, topic_id],
    )?;
    Ok(())
}

pub(crate) fn drop_queue_group(conn: &Connection, topic_id: i64) -> Result<()> {
    if let Some(id) = conn
        .query_row(
            "SELECT id FROM mq_groups WHERE queue_topic_id = ?1",
            [topic_id],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
    {
        delete_group(conn, id)?;
    }
    Ok(())
}

fn delete_group(conn: &Connection, id: i64) -> Result<()> {
    for sql in [
        "DELETE FROM mq_subscriptions WHERE group_id = ?1",
        "DELETE FROM mq_cursors WHERE group_id = ?1",
        "DELETE FROM mq_pending WHERE group_id = ?1",
        "DELETE FROM mq_stale WHERE group_id = ?1",
        "DELETE FROM mq_requeued WHERE group_id = ?1",
        "DELETE FROM mq_leases WHERE group_id = ?1",
        "DELETE FROM mq_groups WHERE id = ?1",
    ] {
        conn.execute(sql, [id])?;
    }
    Ok(())
}

/// Gives a newly created topic to every group whose names or patterns match it;
/// they read it from its first message.
pub(crate) fn attach_new_topic(
    conn: &Connection,
    topic_id: i64,
    name: &str,
    partitions: u32,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT s.group_id, s.target, s.is_pattern FROM mq_subscriptions s
         JOIN mq_groups g ON g.id = s.group_id WHERE g.queue_topic_id IS NULL",
    )?;
    let subs: Vec<(i64, String, bool)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut groups = HashSet::new();
    for (g, target, is_pattern) in subs {
        let hit = if is_pattern {
            pattern_matches(&target, name)
        } else {
            target == name
        };
        if hit {
            groups.insert(g);
        }
    }
    for g in groups {
        for p in 0..partitions {
            conn.execute(
                "INSERT OR IGNORE INTO mq_cursors (group_id, topic_id, partition, next_offset) VALUES (?1, ?2, ?3, 0)",
                params![g, topic_id, p],
            )?;
        }
    }
    Ok(())
}

/// RabbitMQ topic-exchange matching: words split on `.`, `*` is exactly one
/// word, `#` is zero or more words.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    fn go(p: &[&str], n: &[&str]) -> bool {
        match p.split_first() {
            None => n.is_empty(),
            Some((&"#", rest)) => (0..=n.len()).any(|i| go(rest, &n[i..])),
            Some((&w, rest)) => match n.split_first() {
                Some((&nw, nrest)) => (w == "*" || w == nw) && go(rest, nrest),
                None => false,
            },
        }
    }
    let p: Vec<&str> = pattern.split('.').collect();
    let n: Vec<&str> = name.split('.').collect();
    go(&p, &n)
}

fn validate_pattern(p: &str) -> Result<()> {
    if p.is_empty() {
        return Err(Error::invalid("a pattern must not be empty"));
    }
    for w in p.split('.') {
        if w.is_empty() {
            return Err(Error::invalid(format!(
                "pattern '{p}' has an empty word (two dots in a row?)"
            )));
        }
        if w != "*" && w != "#" && (w.contains('*') || w.contains('#')) {
            return Err(Error::invalid(format!(
                "pattern '{p}': '*' and '#' must stand alone between dots (like 'order.*' or 'order.#')"
            )));
        }
    }
    Ok(())
}

/// Resolves a timestamp spec to ms since the epoch.
pub(crate) fn resolve_time(now: i64, t: TimeSpec) -> i64 {
    match t {
        TimeSpec::Absolute(ms) => ms,
        TimeSpec::Ago(d) => now.saturating_sub(topic::ms(d)),
    }
}

/// The offset a cursor starts at in one partition.
fn start_offset(
    conn: &Connection,
    now: i64,
    topic_id: i64,
    partition: u32,
    from: StartFrom,
) -> Result<i64> {
    let (next, low): (i64, i64) = conn
        .prepare_cached("SELECT next_offset, low_offset FROM mq_partition_state WHERE topic_id = ?1 AND partition = ?2")?
        .query_row(params![topic_id, partition], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(match from {
        StartFrom::Beginning => low,
        StartFrom::Latest => next,
        StartFrom::Offset(n) => i64::try_from(n).unwrap_or(i64::MAX).min(next),
        StartFrom::Timestamp(t) => {
            let at = resolve_time(now, t);
            conn.prepare_cached(
                "SELECT MIN(offset) FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND ts >= ?3",
            )?
            .query_row(params![topic_id, partition, at], |r| r.get::<_, Option<i64>>(0))?
            .unwrap_or(next)
        }
    })
}

/// SUBSCRIBE: creates the group or adds to it. Options given change the group.
pub(crate) fn subscribe(conn: &Connection, now: i64, group: &str, s: &Subscription) -> Result<()> {
    topic::validate_name("group", group)?;
    if s.topics.is_empty() && s.patterns.is_empty() {
        return Err(Error::invalid(
            "SUBSCRIBE needs at least one topic or pattern",
        ));
    }
    if s.max_deliveries == Some(0) {
        return Err(Error::invalid("MAX DELIVERIES must be at least 1"));
    }
    if s.ack_wait.is_some_and(|d| d.is_zero()) {
        return Err(Error::invalid("ACK WAIT must be longer than 0"));
    }
    let mut named = Vec::new();
    for name in &s.topics {
        let t = topic::get(conn, name)?;
        if t.kind == TopicKind::Queue {
            return Err(Error::invalid(format!(
                "'{name}' is a queue: it has its own group; consume it with CONSUME FROM {name}"
            )));
        }
        named.push(t);
    }
    for p in &s.patterns {
        validate_pattern(p)?;
    }
    let existing = conn
        .prepare_cached(select_group!("WHERE name = ?1"))?
        .query_row([group], group_from_row)
        .optional()?;
    let from = s.from.unwrap_or(StartFrom::Latest);
    let gid = match existing {
        Some(g) if g.queue_topic_id.is_some() => {
            return Err(Error::invalid(format!(
                "'{group}' is the implicit group of queue '{group}'; choose another group name"
            )));
        }
        Some(g) => {
            if s.ordered {
                conn.execute("UPDATE mq_groups SET ordered = 1 WHERE id = ?1", [g.id])?;
            }
            if let Some(m) = s.max_deliveries {
                conn.execute(
                    "UPDATE mq_groups SET max_deliveries = ?2 WHERE id = ?1",
                    params![g.id, m],
                )?;
            }
            if let Some(d) = s.ack_wait {
                conn.execute(
                    "UPDATE mq_groups SET ack_wait_ms = ?2 WHERE id = ?1",
                    params![g.id, topic::ms(d)],
                )?;
            }
            g.id
        }
        None => {
            if topic::find(conn, group)?.is_some_and(|t| t.kind == TopicKind::Queue) {
                return Err(Error::invalid(format!(
                    "'{group}' is the name of a queue (its implicit group); choose another group name"
                )));
            }
            let id = topic::next_counter(conn, "next_group_id")?;
            let (start, start_value) = match from {
                StartFrom::Beginning => ("beginning", None),
                StartFrom::Latest => ("latest", None),
                StartFrom::Offset(n) => ("offset", Some(i64::try_from(n).unwrap_or(i64::MAX))),
                StartFrom::Timestamp(t) => ("timestamp", Some(resolve_time(now, t))),
            };
            conn.execute(
                "INSERT INTO mq_groups (id, name, ordered, max_deliveries, ack_wait_ms, start, start_value, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    id,
                    group,
                    s.ordered,
                    s.max_deliveries,
                    s.ack_wait.map(topic::ms),
                    start,
                    start_value,
                    now
                ],
            )?;
            id
        }
    };
    let mut targets: Vec<(String, bool)> = s.topics.iter().map(|t| (t.clone(), false)).collect();
    targets.extend(s.patterns.iter().map(|p| (p.clone(), true)));
    for (target, is_pattern) in &targets {
        conn.execute(
            "INSERT OR IGNORE INTO mq_subscriptions (group_id, target, is_pattern) VALUES (?1, ?2, ?3)",
            params![gid, target, is_pattern],
        )?;
    }
    // Existing topics the subscription covers get cursors at the start position.
    let mut topics = named;
    if !s.patterns.is_empty() {
        for t in topic::list(conn)? {
            if t.kind == TopicKind::Topic && s.patterns.iter().any(|p| pattern_matches(p, &t.name))
            {
                topics.push(t);
            }
        }
    }
    for t in topics {
        if reads_topic(conn, gid, t.id)? {
            continue;
        }
        for p in 0..t.partitions {
            let off = start_offset(conn, now, t.id, p, from)?;
            conn.execute(
                "INSERT INTO mq_cursors (group_id, topic_id, partition, next_offset) VALUES (?1, ?2, ?3, ?4)",
                params![gid, t.id, p, off],
            )?;
        }
    }
    Ok(())
}

/// UNSUBSCRIBE: drops one target of the group (and its cursors on topics no
/// longer covered), or the whole group.
pub(crate) fn unsubscribe(conn: &Connection, group: &str, from: Option<&str>) -> Result<()> {
    let g = get(conn, group)?;
    if g.queue_topic_id.is_some() {
        return Err(Error::invalid(format!(
            "'{group}' is the implicit group of a queue; DROP QUEUE {group} removes it"
        )));
    }
    let Some(target) = from else {
        return delete_group(conn, g.id);
    };
    let n = conn.execute(
        "DELETE FROM mq_subscriptions WHERE group_id = ?1 AND target = ?2",
        params![g.id, target],
    )?;
    if n == 0 {
        return Err(Error::NotSubscribed {
            group: group.to_string(),
            topic: target.to_string(),
        });
    }
    let subs: Vec<(String, bool)> = conn
        .prepare_cached("SELECT target, is_pattern FROM mq_subscriptions WHERE group_id = ?1")?
        .query_map([g.id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))?
        .collect::<rusqlite::Result<_>>()?;
    let read: Vec<i64> = conn
        .prepare_cached("SELECT DISTINCT topic_id FROM mq_cursors WHERE group_id = ?1")?
        .query_map([g.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for tid in read {
        let Some(t) = topic::by_id(conn, tid)? else {
            continue;
        };
        let covered = subs.iter().any(|(s, pat)| {
            if *pat {
                pattern_matches(s, &t.name)
            } else {
                *s == t.name
            }
        });
        if !covered {
            for sql in [
                "DELETE FROM mq_cursors WHERE group_id = ?1 AND topic_id = ?2",
                "DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2",
                "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2",
                "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2",
                "DELETE FROM mq_leases WHERE group_id = ?1 AND topic_id = ?2",
            ] {
                conn.execute(sql, params![g.id, tid])?;
            }
            for p in 0..t.partitions {
                trim_consumed(conn, &t, p)?;
            }
        }
    }
    Ok(())
}

struct TopicCache<'c> {
    conn: &'c Connection,
    map: HashMap<i64, Option<TopicInfo>>,
}

impl TopicCache<'_> {
    fn get(&mut self, id: i64) -> Result<Option<&TopicInfo>> {
        if !self.map.contains_key(&id) {
            let t = topic::by_id(self.conn, id)?;
            self.map.insert(id, t);
        }
        Ok(self.map.get(&id).and_then(Option::as_ref))
    }
}

struct StoredMessage {
    ts: i64,
    key: Option<String>,
    headers: Option<String>,
    payload: Vec<u8>,
}

fn load_message(
    conn: &Connection,
    group_id: i64,
    topic_id: i64,
    partition: u32,
    offset: i64,
) -> Result<Option<StoredMessage>> {
    Ok(conn
        .prepare_cached(
            "SELECT ts, key, headers, payload FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset = ?3
             UNION ALL
             SELECT ts, key, headers, payload FROM mq_requeued
             WHERE group_id = ?4 AND topic_id = ?1 AND partition = ?2 AND offset = ?3
             LIMIT 1",
        )?
        .query_row(params![topic_id, partition, offset, group_id], |r| {
            Ok(StoredMessage { ts: r.get(0)?, key: r.get(1)?, headers: r.get(2)?, payload: blob(r, 3)? })
        })
        .optional()?)
}

/// Reads a payload column whether it was stored as TEXT or BLOB.
pub(crate) fn blob(r: &rusqlite::Row<'_>, i: usize) -> rusqlite::Result<Vec<u8>> {
    use rusqlite::types::ValueRef;
    Ok(match r.get_ref(i)? {
        ValueRef::Text(t) | ValueRef::Blob(t) => t.to_vec(),
        ValueRef::Null => Vec::new(),
        ValueRef::Integer(i) => i.to_string().into_bytes(),
        ValueRef::Real(f) => f.to_string().into_bytes(),
    })
}

pub(crate) fn parse_headers(h: Option<&str>) -> BTreeMap<String, String> {
    h.and_then(|s| serde_json::from_str(s).ok())
        .unwrap_or_default()
}

/// A due pending row: topic, partition, offset, key, current delivery id, attempt, last error.
struct DueRow(
    i64,
    u32,
    i64,
    Option<String>,
    Option<i64>,
    u32,
    Option<String>,
);

/// A message past a cursor: offset, ts, visible_at, key, headers, payload.
struct ScanRow(
    i64,
    i64,
    Option<i64>,
    Option<String>,
    Option<String>,
    Vec<u8>,
);

/// Leases up to `spec.max` messages: due redeliveries first, then new messages.
pub(crate) fn consume(
    conn: &Connection,
    now: i64,
    spec: &ConsumeSpec<'_>,
) -> Result<Vec<Delivery>> {
    let g = spec.group;
    let mut topics = TopicCache {
        conn,
        map: HashMap::new(),
    };
    let mut out: Vec<Delivery> = Vec::new();
    let first_id = spec.ids.lock().unwrap_or_else(|p| p.into_inner()).next;
    // Keys handed out in this call (ORDERED groups hand out one per key).
    let mut keys_out: HashSet<(i64, u32, String)> = HashSet::new();
    let filter = spec.topic_id;

    // Range leases that ran out become per-message pending rows, due now.
    lease::explode_expired(conn, g.id, filter, now)?;

    // 1. Due redeliveries (expired leases, nacks, delays, ordered waiters).
    let mut rounds = 0;
    while out.len() < spec.max && rounds < 16 {
        rounds += 1;
        let want = i64::try_from(spec.max - out.len())
            .unwrap_or(i64::MAX)
            .saturating_add(32);
        let due: Vec<DueRow> = conn
            .prepare_cached(
                "SELECT topic_id, partition, offset, key, delivery_id, attempt, last_error FROM mq_pending
                 WHERE group_id = ?1 AND visible_at <= ?2 AND (?3 IS NULL OR topic_id = ?3)
                 ORDER BY visible_at, topic_id, partition, offset LIMIT ?4",
            )?
            .query_map(params![g.id, now, filter, want], |r| {
                Ok(DueRow(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
            })?
            .collect::<rusqlite::Result<_>>()?;
        if due.is_empty() {
            break;
        }
        let mut removed = false;
        for DueRow(tid, part, off, key, old_id, attempt, last_error) in due {
            if out.len() >= spec.max {
                break;
            }
            let Some(t) = topics.get(tid)?.cloned() else {
                delete_pending(conn, g.id, tid, part, off)?;
                removed = true;
                continue;
            };
            if g.ordered
                && let Some(k) = &key
                && (keys_out.contains(&(tid, part, k.clone()))
                    || earlier_pending_same_key(conn, g.id, tid, part, k, off)?)
            {
                continue;
            }
            let Some(msg) = load_message(conn, g.id, tid, part, off)? else {
                // Trimmed by retention while pending: nothing left to deliver.
                delete_pending(conn, g.id, tid, part, off)?;
                removed = true;
                continue;
            };
            let max_del = g.max_deliveries.unwrap_or(t.max_deliveries);
            if attempt >= max_del {
                let reason =
                    last_error.unwrap_or_else(|| format!("exceeded MAX DELIVERIES ({max_del})"));
                dlq::insert(conn, now, &t, g, part, off, attempt, &reason)?;
                delete_pending(conn, g.id, tid, part, off)?;
                trim_consumed(conn, &t, part)?;
                removed = true;
                continue;
            }
            let id = take_id(conn, spec.ids)?;
            if let Some(old) = old_id {
                conn.prepare_cached(
                    "INSERT OR REPLACE INTO mq_stale (delivery_id, group_id, topic_id, partition, offset)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![old, g.id, tid, part, off])?;
            }
            let wait = spec.ack_wait.or(g.ack_wait).unwrap_or(t.ack_wait);
            conn.prepare_cached(
                "UPDATE mq_pending SET delivery_id = ?5, attempt = attempt + 1, member = ?6, visible_at = ?7
                 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
            )?
            .execute(params![g.id, tid, part, off, id, spec.member, now.saturating_add(topic::ms(wait))])?;
            if let Some(k) = &key {
                keys_out.insert((tid, part, k.clone()));
            }
            out.push(delivery(id, &t, part, off, attempt + 1, msg));
        }
        if !removed {
            break;
        }
    }

    // 2. New messages past the cursors.
    if out.len() < spec.max {
        let cursors: Vec<(i64, u32, i64, i64)> = conn
            .prepare_cached(
                "SELECT c.topic_id, c.partition, c.next_offset, p.low_offset FROM mq_cursors c
                 JOIN mq_partition_state p ON p.topic_id = c.topic_id AND p.partition = c.partition
                 WHERE c.group_id = ?1 AND c.next_offset < p.next_offset AND (?2 IS NULL OR c.topic_id = ?2)
                 ORDER BY c.topic_id, c.partition",
            )?
            .query_map(params![g.id, filter], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        // Rotate the starting partition so competing members spread over partitions.
        let n = cursors.len();
        let start = if n == 0 {
            0
        } else {
            usize::try_from(first_id).unwrap_or(0) % n
        };
        for i in 0..n {
            if out.len() >= spec.max {
                break;
            }
            let (tid, part, cursor, low) = cursors[(start + i) % n];
            let Some(t) = topics.get(tid)?.cloned() else {
                continue;
            };
            let wait = spec.ack_wait.or(g.ack_wait).unwrap_or(t.ack_wait);
            let remaining = spec.max - out.len();
            let scan = if g.ordered { remaining + 64 } else { remaining };
            let rows: Vec<ScanRow> = conn
                .prepare_cached(
                    "SELECT offset, ts, visible_at, key, headers, payload FROM mq_messages
                     WHERE topic_id = ?1 AND partition = ?2 AND offset >= ?3 ORDER BY offset LIMIT ?4",
                )?
                .query_map(params![tid, part, cursor.max(low), i64::try_from(scan).unwrap_or(i64::MAX)], |r| {
                    Ok(ScanRow(r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, blob(r, 5)?))
                })?
                .collect::<rusqlite::Result<_>>()?;
            // Fast path: a run of consecutive, due messages leased as one range.
            if !g.ordered && !rows.is_empty() && rows.iter().all(|r| r.2.is_none_or(|v| v <= now)) {
                let n = rows.len().min(spec.max - out.len());
                let first = rows[0].0;
                let last = rows[n - 1].0;
                if last - first + 1 == n as i64
                    && !lease::pending_in_range(conn, g.id, tid, part, first, last)?
                    && let Some(first_id) = take_ids(spec.ids, n)
                {
                    lease::insert(
                        conn,
                        g.id,
                        tid,
                        part,
                        first,
                        n,
                        first_id,
                        spec.member,
                        now.saturating_add(topic::ms(wait)),
                    )?;
                    for (k, ScanRow(off, ts, _, key, headers, payload)) in
                        rows.into_iter().take(n).enumerate()
                    {
                        out.push(delivery(
                            first_id + k as i64,
                            &t,
                            part,
                            off,
                            1,
                            StoredMessage {
                                ts,
                                key,
                                headers,
                                payload,
                            },
                        ));
                    }
                    conn.prepare_cached(
                        "UPDATE mq_cursors SET next_offset = ?4 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
                    )?
                    .execute(params![g.id, tid, part, last + 1])?;
                    continue;
                }
            }
            let mut new_cursor = cursor;
            let mut lease_new = conn.prepare_cached(
                "INSERT OR IGNORE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id, attempt,
                                                   member, visible_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, 1, ?7, ?8)",
            )?;
            for ScanRow(off, ts, visible_at, key, headers, payload) in rows {
                if out.len() >= spec.max {
                    break;
                }
                new_cursor = off + 1;
                let delayed = visible_at.is_some_and(|v| v > now);
                let blocked = g.ordered
                    && match &key {
                        Some(k) => {
                            keys_out.contains(&(tid, part, k.clone()))
                                || earlier_pending_same_key(conn, g.id, tid, part, k, off)?
                        }
                        None => false,
                    };
                if delayed || blocked {
                    // Waits in mq_pending until due (delay) or unblocked (ordered).
                    conn.prepare_cached(
                        "INSERT OR REPLACE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id,
                                                            attempt, member, visible_at)
                         VALUES (?1, ?2, ?3, ?4, ?5, NULL, 0, NULL, ?6)",
                    )?
                    .execute(params![g.id, tid, part, off, key, visible_at.unwrap_or(now).max(now)])?;
                    continue;
                }
                let id = take_id(conn, spec.ids)?;
                let leased = lease_new.execute(params![
                    g.id,
                    tid,
                    part,
                    off,
                    key,
                    id,
                    spec.member,
                    now.saturating_add(topic::ms(wait))
                ])?;
                if leased == 0 {
                    // Already pending (a requeued dead letter past a replayed
                    // cursor): it is delivered from mq_pending instead.
                    continue;
                }
                if let Some(k) = &key {
                    keys_out.insert((tid, part, k.clone()));
                }
                out.push(delivery(
                    id,
                    &t,
                    part,
                    off,
                    1,
                    StoredMessage {
                        ts,
                        key,
                        headers,
                        payload,
                    },
                ));
            }
            if new_cursor != cursor {
                conn.prepare_cached(
                    "UPDATE mq_cursors SET next_offset = ?4 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
                )?
                .execute(params![g.id, tid, part, new_cursor])?;
            }
        }
    }
    Ok(out)
}

fn delivery(
    id: i64,
    t: &TopicInfo,
    part: u32,
    off: i64,
    attempt: u32,
    m: StoredMessage,
) -> Delivery {
    Delivery {
        id: u64::try_from(id).unwrap_or(0),
        topic: t.name.clone(),
        partition: part,
        offset: u64::try_from(off).unwrap_or(0),
        key: m.key,
        attempt,
        timestamp: m.ts,
        headers: parse_headers(m.headers.as_deref()),
        payload: m.payload,
    }
}

fn earlier_pending_same_key(
    conn: &Connection,
    gid: i64,
    tid: i64,
    part: u32,
    key: &str,
    off: i64,
) -> Result<bool> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND key = ?3 AND offset < ?4
             AND partition = ?5 LIMIT 1",
        )?
        .query_row(params![gid, tid, key, off, part], |_| Ok(()))
        .optional()?
        .is_some())
}

fn delete_pending(conn: &Connection, gid: i64, tid: i64, part: u32, off: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4")?
        .execute(params![gid, tid, part, off])?;
    conn.prepare_cached("DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4")?
        .execute(params![gid, tid, part, off])?;
    conn.prepare_cached(
        "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
    )?
    .execute(params![gid, tid, part, off])?;
    Ok(())
}

/// For a topic retained UNTIL CONSUMED, deletes the messages of a partition
/// below every group's ack floor.
pub(crate) fn trim_consumed(conn: &Connection, t: &TopicInfo, part: u32) -> Result<()> {
    if t.retention != Retention::UntilConsumed {
        return Ok(());
    }
    // The floor, with the partition's stored range in the same query.
    let (floor, low, next): (Option<i64>, i64, i64) = conn
        .prepare_cached(
            "SELECT (SELECT MIN(min(
                      COALESCE((SELECT MIN(q.offset) FROM mq_pending q WHERE q.group_id = c.group_id
                                AND q.topic_id = c.topic_id AND q.partition = c.partition), c.next_offset),
                      COALESCE((SELECT MIN(l.first_offset) FROM mq_leases l WHERE l.group_id = c.group_id
                                AND l.topic_id = c.topic_id AND l.partition = c.partition), c.next_offset)))
                     FROM mq_cursors c WHERE c.topic_id = ?1 AND c.partition = ?2),
                    p.low_offset, p.next_offset
             FROM mq_partition_state p WHERE p.topic_id = ?1 AND p.partition = ?2",
        )?
        .query_row(params![t.id, part], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?;
    if let Some(floor) = floor
        && floor > low
    {
        topic::trim_partition(conn, t.id, part, floor, Some(floor >= next))?;
    }
    Ok(())
}

/// A pending row found by delivery id.
struct Lease {
    group_id: i64,
    topic_id: i64,
    partition: u32,
    offset: i64,
    attempt: u32,
}

fn find_lease(conn: &Connection, id: u64) -> Result<Lease> {
    let sid = i64::try_from(id).map_err(|_| Error::UnknownDelivery(id))?;
    // A delivery of a range lease gets its own pending row first.
    lease::explode_id(conn, sid)?;
    if let Some(l) = conn
        .prepare_cached("SELECT group_id, topic_id, partition, offset, attempt FROM mq_pending WHERE delivery_id = ?1")?
        .query_row([sid], |r| {
            Ok(Lease { group_id: r.get(0)?, topic_id: r.get(1)?, partition: r.get(2)?, offset: r.get(3)?, attempt: r.get(4)? })
        })
        .optional()?
    {
        return Ok(l);
    }
    let current: Option<Option<i64>> = conn
        .prepare_cached(
            "SELECT p.delivery_id FROM mq_stale s JOIN mq_pending p ON p.group_id = s.group_id
             AND p.topic_id = s.topic_id AND p.partition = s.partition AND p.offset = s.offset
             WHERE s.delivery_id = ?1",
        )?
        .query_row([sid], |r| r.get(0))
        .optional()?;
    match current {
        Some(Some(now_id)) => Err(Error::StaleDelivery {
            id,
            redelivered_as: u64::try_from(now_id).unwrap_or(0),
        }),
        _ => Err(Error::UnknownDelivery(id)),
    }
}

/// Which side tables hold rows at all: they are usually empty, and then the
/// per-message deletes from them are skipped.
struct SideTables {
    stale: bool,
    requeued: bool,
}

impl SideTables {
    fn probe(conn: &Connection) -> Result<SideTables> {
        Ok(conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM mq_stale), EXISTS (SELECT 1 FROM mq_requeued)",
            )?
            .query_row([], |r| {
                Ok(SideTables {
                    stale: r.get(0)?,
                    requeued: r.get(1)?,
                })
            })?)
    }

    fn forget(&self, conn: &Connection, gid: i64, tid: i64, part: u32, off: i64) -> Result<()> {
        if self.stale {
            conn.prepare_cached(
                "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
            )?
            .execute(params![gid, tid, part, off])?;
        }
        if self.requeued {
            conn.prepare_cached(
                "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4",
            )?
            .execute(params![gid, tid, part, off])?;
        }
        Ok(())
    }
}

/// ACK: the messages are done for their groups. Fails as a whole on any bad
/// id (the caller's transaction rolls back what was deleted before it).
pub(crate) fn ack(conn: &Connection, ids: &[u64]) -> Result<()> {
    let mut seen = HashSet::with_capacity(ids.len());
    for &id in ids {
        if !seen.insert(id) {
            return Err(Error::invalid(format!("delivery {id} is listed twice")));
        }
    }
    // Range leases first (the usual case: a whole batch in one row), then
    // per-message pending rows.
    let (ids, mut touched) = lease::ack(conn, ids)?;
    let ids = ids.as_slice();
    if ids.is_empty() {
        return trim_touched(conn, touched);
    }
    // One statement for the whole batch: the ids travel as a JSON array.
    let list = serde_json::to_string(ids).map_err(|e| Error::invalid(e.to_string()))?;
    let taken: Vec<(i64, i64, i64, u32, i64)> = conn
        .prepare_cached(
            "DELETE FROM mq_pending WHERE delivery_id IN (SELECT value FROM json_each(?1))
             RETURNING delivery_id, group_id, topic_id, partition, offset",
        )?
        .query_map([&list], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    if taken.len() != ids.len() {
        // Some id is not in flight: say which and why (the caller rolls back).
        let found: HashSet<i64> = taken.iter().map(|t| t.0).collect();
        for &id in ids {
            if i64::try_from(id).map_or(true, |i| !found.contains(&i)) {
                return Err(find_lease(conn, id)
                    .err()
                    .unwrap_or(Error::UnknownDelivery(id)));
            }
        }
    }
    let side = SideTables::probe(conn)?;
    for (_, gid, tid, part, off) in taken {
        side.forget(conn, gid, tid, part, off)?;
        touched.insert((tid, part));
    }
    trim_touched(conn, touched)
}

fn trim_touched(conn: &Connection, touched: HashSet<(i64, u32)>) -> Result<()> {
    let mut cache = TopicCache {
        conn,
        map: HashMap::new(),
    };
    for (tid, part) in touched {
        if let Some(t) = cache.get(tid)?.cloned() {
            trim_consumed(conn, &t, part)?;
        }
    }
    Ok(())
}

/// NACK: redeliver now, after a delay, or dead-letter at once.
pub(crate) fn nack(conn: &Connection, now: i64, ids: &[u64], action: &NackAction) -> Result<()> {
    let mut touched: HashSet<(i64, u32)> = HashSet::new();
    let mut seen = HashSet::new();
    for &id in ids {
        if !seen.insert(id) {
            return Err(Error::invalid(format!("delivery {id} is listed twice")));
        }
        let l = find_lease(conn, id)?;
        match action {
            NackAction::Now | NackAction::Delay(_) => {
                let at = match action {
                    NackAction::Delay(d) => now.saturating_add(topic::ms(*d)),
                    _ => now,
                };
                conn.prepare_cached("UPDATE mq_pending SET visible_at = ?2, last_error = NULL WHERE delivery_id = ?1")?
                    .execute(params![i64::try_from(id).unwrap_or(i64::MAX), at])?;
            }
            NackAction::Dead(reason) => {
                let t = topic::by_id(conn, l.topic_id)?.ok_or(Error::UnknownDelivery(id))?;
                let g: GroupInfo = conn
                    .prepare_cached(select_group!("WHERE id = ?1"))?
                    .query_row([l.group_id], group_from_row)?;
                let reason = reason
                    .clone()
                    .unwrap_or_else(|| "dead-lettered by NACK".to_string());
                dlq::insert(conn, now, &t, &g, l.partition, l.offset, l.attempt, &reason)?;
                delete_pending(conn, l.group_id, l.topic_id, l.partition, l.offset)?;
                touched.insert((l.topic_id, l.partition));
            }
        }
    }
    trim_touched(conn, touched)
}

/// REPLAY: moves a group's cursor on one topic. In-flight and waiting
/// deliveries at or past the new position are dropped (they will be
/// delivered again from the log, attempt 1).
pub(crate) fn replay(
    conn: &Connection,
    now: i64,
    topic_name: &str,
    group: &str,
    from: ReplayFrom,
) -> Result<()> {
    let t = topic::get(conn, topic_name)?;
    let g = get(conn, group)?;
    if !reads_topic(conn, g.id, t.id)? {
        return Err(Error::NotSubscribed {
            group: group.to_string(),
            topic: topic_name.to_string(),
        });
    }
    let (start, only): (StartFrom, Option<u32>) = match from {
        ReplayFrom::Beginning => (StartFrom::Beginning, None),
        ReplayFrom::Latest => (StartFrom::Latest, None),
        ReplayFrom::Offset { offset, partition } => (StartFrom::Offset(offset), partition),
        ReplayFrom::Timestamp(ts) => (StartFrom::Timestamp(ts), None),
    };
    if let Some(p) = only
        && p >= t.partitions
    {
        return Err(Error::invalid(format!(
            "partition {p} does not exist: '{}' has {} partition(s)",
            t.name, t.partitions
        )));
    }
    for p in 0..t.partitions {
        if only.is_some_and(|o| o != p) {
            continue;
        }
        let off = start_offset(conn, now, t.id, p, start)?;
        lease::explode_partition(conn, g.id, t.id, p)?;
        for sql in [
            "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
            "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
            "DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset >= ?4",
            "UPDATE mq_cursors SET next_offset = ?4 WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
        ] {
            conn.execute(sql, params![g.id, t.id, p, off])?;
        }
        trim_consumed(conn, &t, p)?;
    }
    Ok(())
}

/// Puts dead letters back in front of their group: the message is delivered
/// again to that group only, attempts reset. Returns how many.
pub(crate) fn requeue(conn: &Connection, now: i64, dlq_ids: &[i64]) -> Result<u64> {
    let mut n = 0;
    for &id in dlq_ids {
        let (gid, gname, tid, tname, part, off): (i64, String, i64, String, u32, i64) = conn
            .prepare_cached("SELECT group_id, group_name, topic_id, topic, partition, offset FROM mq_dlq WHERE id = ?1")?
            .query_row([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?)))?;
        if !reads_topic(conn, gid, tid)? {
            return Err(Error::invalid(format!(
                "dead letter {id} belongs to group '{gname}' on '{tname}', which no longer exists or no longer reads it; \
                 PURGE DLQ removes it"
            )));
        }
        // A range lease may cover this offset again (after a replay).
        lease::explode_partition(conn, gid, tid, part)?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO mq_requeued (group_id, topic_id, partition, offset, ts, key, headers, payload)
             SELECT group_id, topic_id, partition, offset, ts, key, headers, payload FROM mq_dlq WHERE id = ?1",
        )?
        .execute([id])?;
        conn.prepare_cached(
            "INSERT OR REPLACE INTO mq_pending (group_id, topic_id, partition, offset, key, delivery_id, attempt,
                                                member, visible_at)
             SELECT group_id, topic_id, partition, offset, key, NULL, 0, NULL, ?2 FROM mq_dlq WHERE id = ?1",
        )?
        .execute(params![id, now])?;
        conn.prepare_cached("DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset = ?4")?
            .execute(params![gid, tid, part, off])?;
        conn.prepare_cached("DELETE FROM mq_dlq WHERE id = ?1")?
            .execute([id])?;
        n += 1;
    }
    Ok(n)
}

/// Kafka-style offset commit: the group is done with everything below
/// `offset` in one partition, and `offset` is the next to deliver.
pub(crate) fn commit_offset(
    conn: &Connection,
    group: &str,
    topic_name: &str,
    partition: u32,
    offset: u64,
) -> Result<()> {
    let t = topic::get(conn, topic_name)?;
    let g = get(conn, group)?;
    if !reads_topic(conn, g.id, t.id)? {
        return Err(Error::NotSubscribed {
            group: group.to_string(),
            topic: topic_name.to_string(),
        });
    }
    if partition >= t.partitions {
        return Err(Error::invalid(format!(
            "partition {partition} does not exist in '{topic_name}'"
        )));
    }
    let next: i64 = conn.query_row(
        "SELECT next_offset FROM mq_partition_state WHERE topic_id = ?1 AND partition = ?2",
        params![t.id, partition],
        |r| r.get(0),
    )?;
    let off = i64::try_from(offset).unwrap_or(i64::MAX);
    lease::explode_partition(conn, g.id, t.id, partition)?;
    if off > next {
        return Err(Error::invalid(format!(
            "offset {offset} is past the end of '{topic_name}' partition {partition} (next offset {next})"
        )));
    }
    for sql in [
        "DELETE FROM mq_stale WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
        "DELETE FROM mq_requeued WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
        "DELETE FROM mq_pending WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3 AND offset < ?4",
        "UPDATE mq_cursors SET next_offset = MAX(next_offset, ?4) WHERE group_id = ?1 AND topic_id = ?2 AND partition = ?3",
    ] {
        conn.execute(sql, params![g.id, t.id, partition, off])?;
    }
    trim_consumed(conn, &t, partition)
}
