//! Topics and queues: creation, options, listing.

use std::collections::HashMap;
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};

use crate::group;
use crate::lang::ast::{Overflow, Retention, TopicKind};
use crate::{Error, Result};

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

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

pub(crate) fn dur(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// Checks a topic or group name.
pub(crate) fn validate_name(what: &str, name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid(format!("{what} name must not be empty")));
    }
    if name.len() > 249 {
        return Err(Error::invalid(format!(
            "{what} name '{name}' is longer than 249 bytes"
        )));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(format!(
            "{what} name {name:?} contains a control character"
        )));
    }
    Ok(())
}

fn retention_to_sql(r: Retention) -> (&'static str, Option<i64>) {
    match r {
        Retention::Age(d) => ("age", Some(ms(d))),
        Retention::Size(b) => ("size", Some(i64::try_from(b).unwrap_or(i64::MAX))),
        Retention::Messages(n) => ("messages", Some(i64::try_from(n).unwrap_or(i64::MAX))),
        Retention::UntilConsumed => ("until_consumed", None),
        Retention::Forever => ("forever", None),
    }
}

fn retention_from_sql(kind: &str, value: Option<i64>) -> Retention {
    let v = value.unwrap_or(0);
    match kind {
        "age" => Retention::Age(dur(v)),
        "size" => Retention::Size(u64::try_from(v).unwrap_or(0)),
        "messages" => Retention::Messages(u64::try_from(v).unwrap_or(0)),
        "until_consumed" => Retention::UntilConsumed,
        _ => Retention::Forever,
    }
}

fn check_options(kind: TopicKind, o: &TopicOptions) -> Result<()> {
    if let Some(p) = o.partitions {
        if p == 0 || p > MAX_PARTITIONS {
            return Err(Error::invalid(format!(
                "PARTITIONS must be between 1 and {MAX_PARTITIONS}, got {p}"
            )));
        }
        if kind == TopicKind::Queue && p != 1 {
            return Err(Error::invalid(
                "a queue has exactly one partition; use a topic for more",
            ));
        }
    }
    if kind == TopicKind::Queue
        && let Some(r) = o.retention
        && r != Retention::UntilConsumed
    {
        return Err(Error::invalid(
            "a queue's retention is always UNTIL CONSUMED; use a topic for other retention",
        ));
    }
    match o.retention {
        Some(Retention::Messages(0)) => {
            return Err(Error::invalid("RETENTION must keep at least 1 message"));
        }
        Some(Retention::Size(0)) => {
            return Err(Error::invalid("RETENTION size must be at least 1 byte"));
        }
        Some(Retention::Age(d)) if d.is_zero() => {
            return Err(Error::invalid("RETENTION age must be longer than 0"));
        }
        _ => {}
    }
    if o.max_length == Some(0) {
        return Err(Error::invalid("MAX LENGTH must be at least 1"));
    }
    if o.max_deliveries == Some(0) {
        return Err(Error::invalid("MAX DELIVERIES must be at least 1"));
    }
    if o.ack_wait.is_some_and(|d| d.is_zero()) {
        return Err(Error::invalid("ACK WAIT must be longer than 0"));
    }
    check_fits_i64(o)
}

/// Durations (in ms), sizes and counts are stored as SQLite's i64: refuse,
/// never clamp, what does not fit.
fn check_fits_i64(o: &TopicOptions) -> Result<()> {
    let too_large = |what: &str| {
        Err(Error::invalid(format!(
            "{what} is too large: at most {} (2^63 - 1)",
            i64::MAX
        )))
    };
    let ms_over = |d: Option<Duration>| d.is_some_and(|d| i64::try_from(d.as_millis()).is_err());
    let over = |n: Option<u64>| n.is_some_and(|n| i64::try_from(n).is_err());
    match o.retention {
        Some(Retention::Age(d)) if ms_over(Some(d)) => return too_large("RETENTION (in ms)"),
        Some(Retention::Size(n)) if over(Some(n)) => return too_large("RETENTION (in bytes)"),
        Some(Retention::Messages(n)) if over(Some(n)) => return too_large("RETENTION MESSAGES"),
        _ => {}
    }
    if over(o.max_length) {
        return too_large("MAX LENGTH");
    }
    if ms_over(o.dedup_window) {
        return too_large("DEDUP WINDOW (in ms)");
    }
    if ms_over(o.ack_wait) {
        return too_large("ACK WAIT (in ms)");
    }
    Ok(())
}

/// Names of the language's system sources (and one planned); a topic named
/// so could not be read with SELECT ... FROM, so they are refused at CREATE.
pub(crate) const RESERVED_NAMES: &[&str] = &["TOPICS", "GROUPS", "PROCESSED", "DLQ", "DELIVERIES"];

/// Creates a topic or queue. Returns false if it existed and `if_not_exists`.
pub(crate) fn create(
    conn: &Connection,
    now: i64,
    kind: TopicKind,
    name: &str,
    if_not_exists: bool,
    o: &TopicOptions,
) -> Result<bool> {
    validate_name(
        if kind == TopicKind::Queue {
            "queue"
        } else {
            "topic"
        },
        name,
    )?;
    if let Some(r) = RESERVED_NAMES.iter().find(|r| r.eq_ignore_ascii_case(name)) {
        return Err(Error::invalid(format!(
            "'{name}' is a reserved name ({r} is a system source of SELECT): choose another name"
        )));
    }
    check_options(kind, o)?;
    if let Some(existing) = find(conn, name)? {
        if if_not_exists {
            return Ok(false);
        }
        let _ = existing;
        return Err(Error::TopicExists(name.to_string()));
    }
    if kind == TopicKind::Queue && group::find_id(conn, name)?.is_some() {
        return Err(Error::invalid(format!(
            "a group named '{name}' already exists; a queue's implicit group takes the queue's name"
        )));
    }
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
            o.max_length.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
            overflow_str(o.overflow.unwrap_or(Overflow::Reject)),
            ms(o.dedup_window.unwrap_or(DEFAULT_DEDUP_WINDOW)),
            o.max_deliveries.unwrap_or(DEFAULT_MAX_DELIVERIES),
            ms(o.ack_wait.unwrap_or(DEFAULT_ACK_WAIT)),
            now,
        ],
    )?;
    for p in 0..partitions {
        conn.execute(
            "INSERT INTO mq_partitions (topic_id, partition) VALUES (?1, ?2)",
            params![id, p],
        )?;
    }
    match kind {
        TopicKind::Queue => group::create_queue_group(conn, now, id, name)?,
        TopicKind::Topic => group::attach_new_topic(conn, id, name, partitions)?,
    }
    definitions_changed(conn)?;
    Ok(true)
}

/// Changes options of an existing topic or queue.
pub(crate) fn alter(
    conn: &Connection,
    kind: TopicKind,
    name: &str,
    o: &TopicOptions,
) -> Result<()> {
    let t = get(conn, name)?;
    if t.kind != kind {
        return Err(Error::invalid(format!(
            "'{name}' is a {}, not a {}",
            kind_str(t.kind),
            kind_str(kind)
        )));
    }
    check_options(kind, o)?;
    definitions_changed(conn)?;
    if let Some(p) = o.partitions {
        if p < t.partitions {
            return Err(Error::invalid(format!(
                "PARTITIONS can only grow ('{name}' has {}; keyed messages would move)",
                t.partitions
            )));
        }
        for part in t.partitions..p {
            conn.execute(
                "INSERT INTO mq_partitions (topic_id, partition) VALUES (?1, ?2)",
                params![t.id, part],
            )?;
            // Groups reading this topic read the new partition from its start.
            conn.execute(
                "INSERT OR IGNORE INTO mq_cursors (group_id, topic_id, partition, next_offset)
                 SELECT DISTINCT group_id, topic_id, ?2, 0 FROM mq_cursors WHERE topic_id = ?1",
                params![t.id, part],
            )?;
        }
        conn.execute(
            "UPDATE mq_topics SET partitions = ?2 WHERE id = ?1",
            params![t.id, p],
        )?;
    }
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
            params![t.id, i64::try_from(m).unwrap_or(i64::MAX)],
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
            params![t.id, ms(d)],
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
            params![t.id, ms(d)],
        )?;
    }
    Ok(())
}

/// Drops a topic or queue with its messages and group state. Returns false if missing and `if_exists`.
pub(crate) fn drop(
    conn: &Connection,
    kind: TopicKind,
    name: &str,
    if_exists: bool,
) -> Result<bool> {
    let Some(t) = find(conn, name)? else {
        if if_exists {
            return Ok(false);
        }
        return Err(Error::TopicNotFound(name.to_string()));
    };
    if t.kind != kind {
        return Err(Error::invalid(format!(
            "'{name}' is a {}, not a {}: use DROP {}",
            kind_str(t.kind),
            kind_str(kind),
            kind_str(t.kind).to_uppercase()
        )));
    }
    for sql in [
        "DELETE FROM mq_messages WHERE topic_id = ?1",
        "DELETE FROM mq_partitions WHERE topic_id = ?1",
        "DELETE FROM mq_dedup WHERE topic_id = ?1",
        "DELETE FROM mq_cursors WHERE topic_id = ?1",
        "DELETE FROM mq_pending WHERE topic_id = ?1",
        "DELETE FROM mq_stale WHERE topic_id = ?1",
        "DELETE FROM mq_requeued WHERE topic_id = ?1",
        "DELETE FROM mq_leases WHERE topic_id = ?1",
        "DELETE FROM mq_topics WHERE id = ?1",
    ] {
        conn.execute(sql, [t.id])?;
    }
    if t.kind == TopicKind::Queue {
        group::drop_queue_group(conn, t.id)?;
    }
    definitions_changed(conn)?;
    give_back_free_pages(conn)?;
    Ok(true)
}

pub(crate) fn kind_str(k: TopicKind) -> &'static str {
    match k {
        TopicKind::Topic => "topic",
        TopicKind::Queue => "queue",
    }
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
        max_length: r
            .get::<_, Option<i64>>(6)?
            .map(|v| u64::try_from(v).unwrap_or(0)),
        overflow: if overflow == "drop_oldest" {
            Overflow::DropOldest
        } else {
            Overflow::Reject
        },
        dedup_window: dur(r.get(8)?),
        max_deliveries: r.get(9)?,
        ack_wait: dur(r.get(10)?),
    })
}

/// The topic or queue named `name`, if any.
pub(crate) fn find(conn: &Connection, name: &str) -> Result<Option<TopicInfo>> {
    let mut st = conn.prepare_cached(select_topic!("WHERE name = ?1"))?;
    Ok(st.query_row([name], from_row).optional()?)
}

/// Counts changes to topic definitions: CREATE, ALTER and DROP bump it in
/// their own transaction, so a `TopicCache` in any process sees them.
/// A file without the row (none was ever changed by a build that counts)
/// reads as 0.
fn definitions_changed(conn: &Connection) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO mq_meta (name, value) VALUES ('topics_version', 1)
         ON CONFLICT (name) DO UPDATE SET value = value + 1",
    )?
    .execute([])?;
    Ok(())
}

fn definitions_version(conn: &Connection) -> Result<i64> {
    let mut st = conn.prepare_cached("SELECT value FROM mq_meta WHERE name = 'topics_version'")?;
    Ok(st.query_row([], |r| r.get(0)).optional()?.unwrap_or(0))
}

/// Topic definitions a write connection remembers between transactions, so
/// a publish does not look its topic up every time (an 11-column lookup by
/// name was about 8,400 of a single publish's 57,000 instructions,
/// callgrind). The first lookup in each write transaction compares
/// `definitions_version` with the one the entries were read at and forgets
/// them all if it moved; the transaction holds the write lock, so nothing
/// changes under it.
///
/// The check itself (a query, about 2,500 instructions) is skipped when the
/// file has not changed since this connection's last grouped commit that
/// checked: SQLite's data version (`SQLITE_FCNTL_DATA_VERSION`) moves with
/// every commit of this connection and, at the next `BEGIN`, with every
/// commit another connection made in between.
#[derive(Debug, Default)]
pub(crate) struct TopicCache {
    version: i64,
    checked: bool,
    /// The data version right after the last commit of a transaction that
    /// checked `version`.
    synced: Option<u32>,
    by_name: HashMap<String, TopicInfo>,
}

/// The connection's data version of the main database (see `TopicCache`).
fn data_version(conn: &Connection) -> Option<u32> {
    let mut v = 0;
    conn.file_control(
        Some(rusqlite::MAIN_DB),
        rusqlite::FileControl::DataVersion(&mut v),
    )
    .ok()?;
    Some(v)
}

impl TopicCache {
    /// A write transaction begins: the next lookup checks the version.
    pub(crate) fn begin(&mut self) {
        self.checked = false;
    }

    /// The write transaction committed. If it checked the version, nothing
    /// can have changed the definitions until the data version moves.
    pub(crate) fn committed(&mut self, conn: &Connection) {
        self.synced = if self.checked {
            data_version(conn)
        } else {
            None
        };
    }

    /// Forgets everything (after a rollback, in case entries were read
    /// from changes that were then undone).
    pub(crate) fn clear(&mut self) {
        self.by_name.clear();
        self.checked = false;
        self.synced = None;
    }

    /// As `get`, through the cache. Call only inside a write transaction
    /// that began with `begin`.
    pub(crate) fn get(&mut self, conn: &Connection, name: &str) -> Result<&TopicInfo> {
        if !self.checked {
            if self.synced.is_none() || data_version(conn) != self.synced {
                let version = definitions_version(conn)?;
                if version != self.version {
                    self.by_name.clear();
                    self.version = version;
                }
            }
            self.checked = true;
        }
        if !self.by_name.contains_key(name) {
            let t = get(conn, name)?;
            self.by_name.insert(name.to_string(), t);
        }
        self.by_name
            .get(name)
            .ok_or_else(|| Error::TopicNotFound(name.to_string()))
    }
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
            messages: u64::try_from(r.get::<_, i64>(0)?).unwrap_or(0),
            bytes: u64::try_from(r.get::<_, i64>(1)?).unwrap_or(0),
            appended: u64::try_from(r.get::<_, i64>(2)?).unwrap_or(0),
        })
    })?)
}

/// Takes the next value of a named counter in `mq_meta`.
pub(crate) fn next_counter(conn: &Connection, name: &str) -> Result<i64> {
    let mut st = conn.prepare_cached(
        "UPDATE mq_meta SET value = value + 1 WHERE name = ?1 RETURNING value - 1",
    )?;
    Ok(st.query_row([name], |r| r.get(0))?)
}

/// Deletes the messages of a partition below `below`, keeping `low_offset` and `bytes` true.
/// Returns how many were deleted.
/// `drained`: whether this empties the partition, if the caller knows
/// (None: look it up when something was deleted).
pub(crate) fn trim_partition(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    below: i64,
    drained: Option<bool>,
) -> Result<u64> {
    sync_partition(conn, topic_id, partition)?;
    // Sum the sizes first, then delete: DELETE ... RETURNING materializes
    // every deleted row, about 6,000 instructions per message (callgrind);
    // the separate SELECT costs about 1,200.
    let bytes: i64 = conn
        .prepare_cached(
            "SELECT COALESCE(SUM(octet_length(payload)), 0) FROM mq_messages
             WHERE topic_id = ?1 AND partition = ?2 AND offset < ?3",
        )?
        .query_row(params![topic_id, partition, below], |r| r.get(0))?;
    let n = conn
        .prepare_cached(
            "DELETE FROM mq_messages WHERE topic_id = ?1 AND partition = ?2 AND offset < ?3",
        )?
        .execute(params![topic_id, partition, below])? as u64;
    conn.prepare_cached(
        "UPDATE mq_partitions SET low_offset = MAX(low_offset, MIN(?3, next_offset)), bytes = bytes - ?4
         WHERE topic_id = ?1 AND partition = ?2",
    )?
    .execute(params![topic_id, partition, below, bytes])?;
    if n > 0 && drained != Some(false) {
        give_back_space_if_drained(conn, topic_id, partition, drained)?;
    }
    Ok(n)
}

thread_local! {
    /// Set when a write on this thread emptied a partition while the file
    /// had free pages to give back; taken after its commit (`shrink`).
    static SHRINK_WANTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Free pages a file must have before a drained partition shrinks it.
const SHRINK_MIN_FREE_PAGES: i64 = 256;
/// Most bytes still in use for which `shrink` runs a `VACUUM`. It copies
/// them twice, holding the write lock: 0.06 s for 8 MB (0.28 s for 32 MB)
/// on the development machine, measured with Python's sqlite3 on a table
/// like `mq_messages`.
const SHRINK_MAX_LIVE_BYTES: i64 = 8 * 1024 * 1024;

/// Brings a partition's `mq_partitions` checkpoint up to date with the
/// messages appended after it (see `storage::schema`). Every write that
/// removes messages calls this first, so the lagging messages are never
/// ones it removes.
pub(crate) fn sync_partition(conn: &Connection, topic_id: i64, partition: u32) -> Result<()> {
    conn.prepare_cached(
        "UPDATE mq_partitions SET next_offset = s.next_offset, last_ts = s.last_ts, bytes = s.bytes
         FROM (SELECT next_offset, last_ts, bytes FROM mq_partition_state
               WHERE topic_id = ?1 AND partition = ?2) AS s
         WHERE mq_partitions.topic_id = ?1 AND mq_partitions.partition = ?2
           AND mq_partitions.next_offset < s.next_offset",
    )?
    .execute(params![topic_id, partition])?;
    Ok(())
}

/// When a partition has just been emptied and the file has free pages,
/// asks for `shrink` after the commit (a `VACUUM` cannot run inside a
/// transaction). Steady traffic reuses free pages by itself; this is for
/// the drain after a burst.
fn give_back_space_if_drained(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    known: Option<bool>,
) -> Result<()> {
    let empty: bool = match known {
        Some(k) => k,
        None => conn
        .prepare_cached("SELECT low_offset >= next_offset FROM mq_partitions WHERE topic_id = ?1 AND partition = ?2")?
        .query_row(params![topic_id, partition], |r| r.get(0))?,
    };
    if !empty {
        return Ok(());
    }
    give_back_free_pages(conn)
}

/// Asks for `shrink` after the commit when the file has free pages to give
/// back (after a drain, a PURGE or a DROP).
fn give_back_free_pages(conn: &Connection) -> Result<()> {
    let free: i64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get(0))?;
    if free > SHRINK_MIN_FREE_PAGES {
        SHRINK_WANTED.with(|w| w.set(true));
    }
    Ok(())
}

/// Forgets a shrink asked for by a transaction that rolled back.
pub(crate) fn forget_shrink() {
    SHRINK_WANTED.with(|w| w.set(false));
}

/// After a commit on this thread: if that transaction drained a partition
/// (`give_back_space_if_drained`), gives free pages back to the file system.
/// Files made before 2026-11 use `auto_vacuum = INCREMENTAL`, which costs
/// every page split a pointer-map update (about 670 instructions per
/// batched message); for them this runs `PRAGMA incremental_vacuum`. Newer
/// files have no auto-vacuum: when at most a quarter of the file and at
/// most `SHRINK_MAX_LIVE_BYTES` are in use, this rewrites the file with
/// `VACUUM`, which costs time in proportion to what is left, so usually
/// little after a drain. Otherwise the free pages stay for later writes.
/// Best effort: the commit already succeeded, so a failure here is not
/// reported.
pub(crate) fn shrink_if_drained(conn: &Connection) {
    if !SHRINK_WANTED.with(std::cell::Cell::take) {
        return;
    }
    let _ = shrink(conn);
}

fn shrink(conn: &Connection) -> Result<()> {
    let pragma = |name: &str| -> Result<i64> {
        Ok(conn.query_row(&format!("PRAGMA {name}"), [], |r| r.get(0))?)
    };
    let free = pragma("freelist_count")?;
    if free <= SHRINK_MIN_FREE_PAGES {
        return Ok(());
    }
    if pragma("auto_vacuum")? == 2 {
        let mut st = conn.prepare("PRAGMA incremental_vacuum")?;
        let mut rows = st.query([])?;
        while rows.next()?.is_some() {}
        return Ok(());
    }
    let pages = pragma("page_count")?;
    let live = pages - free;
    if live * 4 > pages || live * pragma("page_size")? > SHRINK_MAX_LIVE_BYTES {
        return Ok(());
    }
    conn.execute_batch("VACUUM")?;
    // Copy the rewritten file back from the WAL now and empty the WAL, so
    // the space is given back at once: the WAL held the whole rewritten
    // file, and on a nearly full disk that is what a PURGE must free.
    crate::storage::truncate_wal(conn);
    Ok(())
}

/// Deletes every message of a topic; returns how many.
pub(crate) fn purge(conn: &Connection, name: &str) -> Result<u64> {
    let t = get(conn, name)?;
    let mut total = 0;
    for p in 0..t.partitions {
        total += trim_partition(conn, t.id, p, i64::MAX, Some(false))?;
    }
    conn.execute("DELETE FROM mq_pending WHERE topic_id = ?1", [t.id])?;
    conn.execute("DELETE FROM mq_stale WHERE topic_id = ?1", [t.id])?;
    conn.execute("DELETE FROM mq_requeued WHERE topic_id = ?1", [t.id])?;
    conn.execute("DELETE FROM mq_leases WHERE topic_id = ?1", [t.id])?;
    give_back_free_pages(conn)?;
    Ok(total)
}

/// A stored message, borrowed while a scan runs. Fields are read from the
/// row only when asked for, so a scan pays only for what it uses.
pub struct Record<'a> {
    row: &'a rusqlite::Row<'a>,
    partition: u32,
    offset: u64,
}

impl std::fmt::Debug for Record<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Record")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Record<'_> {
    /// Partition.
    pub fn partition(&self) -> u32 {
        self.partition
    }
    /// Offset.
    pub fn offset(&self) -> u64 {
        self.offset
    }
    /// Append time, ms since the epoch.
    pub fn timestamp(&self) -> i64 {
        self.row.get(1).unwrap_or(0)
    }
    /// Key.
    pub fn key(&self) -> Option<&str> {
        self.text(2)
    }
    /// Headers as a JSON object text, if any.
    pub fn headers(&self) -> Option<&str> {
        self.text(3)
    }
    /// Payload bytes.
    pub fn payload(&self) -> &[u8] {
        use rusqlite::types::ValueRef;
        match self.row.get_ref(4) {
            Ok(ValueRef::Text(t) | ValueRef::Blob(t)) => t,
            _ => &[],
        }
    }
    fn text(&self, i: usize) -> Option<&str> {
        match self.row.get_ref(i) {
            Ok(rusqlite::types::ValueRef::Text(t)) => std::str::from_utf8(t).ok(),
            _ => None,
        }
    }
}

/// What one page of a scan did: the last offset read, how many rows, and
/// whether the callback asked to stop.
pub(crate) type ScanPage = (i64, usize, bool);

/// Reads up to `limit` messages of one partition after `after` (exclusive;
/// -1 starts at the beginning) in offset order, handing each to `f` (false
/// stops). Returns the last offset read and whether `f` asked to stop.
pub(crate) fn scan_page(
    conn: &Connection,
    topic_id: i64,
    partition: u32,
    after: i64,
    limit: i64,
    f: &mut dyn FnMut(&Record<'_>) -> bool,
) -> Result<ScanPage> {
    let mut st = conn.prepare_cached(
        "SELECT offset, ts, key, headers, payload FROM mq_messages
         WHERE topic_id = ?1 AND partition = ?2 AND offset > ?3 ORDER BY offset LIMIT ?4",
    )?;
    let mut rows = st.query(params![topic_id, partition, after, limit])?;
    let mut last = after;
    let mut n = 0;
    while let Some(r) = rows.next()? {
        let offset: i64 = r.get(0)?;
        last = offset;
        n += 1;
        let rec = Record {
            row: r,
            partition,
            offset: u64::try_from(offset).unwrap_or(0),
        };
        if !f(&rec) {
            return Ok((last, n, true));
        }
    }
    Ok((last, n, false))
}
