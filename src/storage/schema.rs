//! The on-disk schema and its forward-only migrations.
//!
//! Tables (all prefixed `mq_` so applications may keep their own tables in
//! the same file):
//! - `mq_meta`: named counters (`next_delivery_id`, `next_topic_id`, ...,
//!   and `topics_version`, which CREATE/ALTER/DROP of a topic bump; absent
//!   until the first such change, read as 0), and `rotation.<group id>`,
//!   where the group's last consume with a choice of partitions started
//!   (`group::rotation`; no row until then).
//! - `mq_topics`: one row per topic or queue with its options.
//! - `mq_partitions`: per partition the lowest offset still stored, and a
//!   checkpoint of the next offset to assign, the last timestamp and the
//!   stored payload bytes. Messages of a partition are always the dense
//!   range [low, next). A single publish does not rewrite this row (one
//!   page less per commit): the messages at offsets >= the checkpoint's
//!   `next_offset` (at most `publish::CHECKPOINT_EVERY`) are not counted in
//!   it yet. Read the true values from the temporary view
//!   `mq_partition_state` (`PARTITION_STATE_VIEW`); every write that removes
//!   messages brings the checkpoint up to date first.
//! - `mq_messages`: the log. `(topic_id, partition, offset)` is unique.
//! - `mq_groups`, `mq_subscriptions`: consumer groups and what they read
//!   (names and patterns).
//! - `mq_cursors`: per group and partition, the next offset to deliver.
//! - `mq_pending`: every message a cursor has passed that is not acked yet:
//!   in flight (leased until `visible_at`), or waiting for (re)delivery.
//!   The ack floor of a partition is the smallest pending offset, else the
//!   cursor.
//! - `mq_leases`: range leases, the fast path of a consume: one row for a
//!   run of consecutive new messages of a partition with consecutive delivery
//!   ids and a bitmap of the acked ones (see src/lease.rs). The ack floor
//!   also counts their first offsets.
//! - `mq_stale`: delivery ids replaced by a redelivery (for fencing errors).
//! - `mq_dlq`: dead letters, each a copy of the message.
//! - `mq_processed`: keys idempotent consumers marked as handled, with expiry.
//! - `mq_requeued`: copies of dead letters sent back to their group by
//!   REQUEUE DLQ (the log may have trimmed the original); a pending row reads
//!   its message from the log first, then from here.
//! - `mq_attempts` (version 3): per pending message, every attempt that did
//!   not end in an ACK (its lease ran out, a NACK, a NACK DEAD), with member,
//!   times and outcome. A row exists only while its message has a pending
//!   row (`group::pending` forgets both together); a dead letter takes a
//!   rendering of them along (`mq_dlq.history`, `history_json`). A first
//!   attempt that is acked never writes here.

use rusqlite::Connection;

use std::path::Path;

use super::APPLICATION_ID;
use crate::{Error, Result};

/// The schema version this build writes.
///
/// - 1: the tables below.
/// - 2: the same tables, but `mq_partitions` may lag behind the messages
///   (see the module comment). A version 1 file is a version 2 file whose
///   checkpoints do not lag, so the migration only sets the number; it
///   exists so that a build that trusts `mq_partitions` as exact refuses a
///   version 2 file (`NewerSchema`) instead of reusing offsets.
/// - 3: attempt history and lease start times (`V3`), for the DELIVERIES
///   source and the DLQ's `history`. Leases taken before the upgrade have
///   no start time (NULL).
pub(crate) const SCHEMA_VERSION: i64 = 3;

const V1: &str = "
CREATE TABLE mq_meta (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO mq_meta (name, value) VALUES ('next_delivery_id', 1), ('next_topic_id', 1), ('next_group_id', 1);

CREATE TABLE mq_topics (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL UNIQUE,
    kind            TEXT NOT NULL CHECK (kind IN ('topic', 'queue')),
    partitions      INTEGER NOT NULL,
    retention       TEXT NOT NULL,
    retention_value INTEGER,
    max_length      INTEGER,
    overflow        TEXT NOT NULL DEFAULT 'reject',
    dedup_window_ms INTEGER NOT NULL,
    max_deliveries  INTEGER NOT NULL,
    ack_wait_ms     INTEGER NOT NULL,
    next_partition  INTEGER NOT NULL DEFAULT 0,
    created_at      INTEGER NOT NULL
);

CREATE TABLE mq_partitions (
    topic_id    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    low_offset  INTEGER NOT NULL DEFAULT 0,
    last_ts     INTEGER NOT NULL DEFAULT 0,
    bytes       INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (topic_id, partition)
) WITHOUT ROWID;

CREATE TABLE mq_messages (
    id         INTEGER PRIMARY KEY,
    topic_id   INTEGER NOT NULL,
    partition  INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    visible_at INTEGER,
    key        TEXT,
    headers    TEXT,
    payload    BLOB NOT NULL,
    dedup_id   TEXT
);
CREATE UNIQUE INDEX mq_messages_position ON mq_messages (topic_id, partition, offset);

CREATE TABLE mq_dedup (
    topic_id   INTEGER NOT NULL,
    dedup_id   TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (topic_id, dedup_id)
) WITHOUT ROWID;
CREATE INDEX mq_dedup_expiry ON mq_dedup (expires_at);

CREATE TABLE mq_groups (
    id             INTEGER PRIMARY KEY,
    name           TEXT NOT NULL UNIQUE,
    queue_topic_id INTEGER,
    ordered        INTEGER NOT NULL DEFAULT 0,
    max_deliveries INTEGER,
    ack_wait_ms    INTEGER,
    start          TEXT NOT NULL,
    start_value    INTEGER,
    created_at     INTEGER NOT NULL
);

CREATE TABLE mq_subscriptions (
    group_id   INTEGER NOT NULL,
    target     TEXT NOT NULL,
    is_pattern INTEGER NOT NULL,
    PRIMARY KEY (group_id, target)
) WITHOUT ROWID;

CREATE TABLE mq_cursors (
    group_id    INTEGER NOT NULL,
    topic_id    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic_id, partition)
) WITHOUT ROWID;
CREATE INDEX mq_cursors_topic ON mq_cursors (topic_id, partition);

CREATE TABLE mq_pending (
    group_id    INTEGER NOT NULL,
    topic_id    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    offset      INTEGER NOT NULL,
    key         TEXT,
    delivery_id INTEGER,
    attempt     INTEGER NOT NULL,
    member      TEXT,
    visible_at  INTEGER NOT NULL,
    last_error  TEXT,
    PRIMARY KEY (group_id, topic_id, partition, offset)
) WITHOUT ROWID;
CREATE UNIQUE INDEX mq_pending_delivery ON mq_pending (delivery_id) WHERE delivery_id IS NOT NULL;
CREATE INDEX mq_pending_visible ON mq_pending (group_id, visible_at);
CREATE INDEX mq_pending_key ON mq_pending (group_id, topic_id, key, offset) WHERE key IS NOT NULL;

CREATE TABLE mq_stale (
    delivery_id INTEGER PRIMARY KEY,
    group_id    INTEGER NOT NULL,
    topic_id    INTEGER NOT NULL,
    partition   INTEGER NOT NULL,
    offset      INTEGER NOT NULL
);
CREATE INDEX mq_stale_message ON mq_stale (group_id, topic_id, partition, offset);

CREATE TABLE mq_leases (
    lease_id     INTEGER PRIMARY KEY,
    group_id     INTEGER NOT NULL,
    topic_id     INTEGER NOT NULL,
    partition    INTEGER NOT NULL,
    first_offset INTEGER NOT NULL,
    count        INTEGER NOT NULL,
    member       TEXT,
    visible_at   INTEGER NOT NULL,
    acked        BLOB NOT NULL,
    settled      INTEGER NOT NULL
);
-- Only live batches are here (in-flight consumes), a small table: lookups
-- by group, partition or expiry scan it rather than keep an index current.

CREATE TABLE mq_requeued (
    group_id  INTEGER NOT NULL,
    topic_id  INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    key       TEXT,
    headers   TEXT,
    payload   BLOB NOT NULL,
    PRIMARY KEY (group_id, topic_id, partition, offset)
) WITHOUT ROWID;

CREATE TABLE mq_processed (
    group_name   TEXT NOT NULL,
    key          TEXT NOT NULL,
    processed_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL,
    PRIMARY KEY (group_name, key)
) WITHOUT ROWID;
CREATE INDEX mq_processed_expiry ON mq_processed (expires_at);

CREATE TABLE mq_dlq (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    topic_id   INTEGER NOT NULL,
    topic      TEXT NOT NULL,
    group_id   INTEGER NOT NULL,
    group_name TEXT NOT NULL,
    partition  INTEGER NOT NULL,
    offset     INTEGER NOT NULL,
    ts         INTEGER NOT NULL,
    key        TEXT,
    headers    TEXT,
    payload    BLOB NOT NULL,
    attempts   INTEGER NOT NULL,
    reason     TEXT NOT NULL,
    failed_at  INTEGER NOT NULL
);
CREATE INDEX mq_dlq_group ON mq_dlq (topic, group_name);
";

/// Version 3: when each lease began (`leased_at`, ms; NULL for leases
/// taken before the upgrade and for messages never delivered), the
/// attempts that did not end in an ACK, and the dead letters' history.
/// `outcome` is `expired` (the lease ran out: `ended_at` is its end),
/// `nack` (`delay_ms` set for NACK ... DELAY) or `dead` (NACK ... DEAD);
/// `reason` is the NACK's.
const V3: &str = "
ALTER TABLE mq_pending ADD COLUMN leased_at INTEGER;
ALTER TABLE mq_leases ADD COLUMN leased_at INTEGER;
ALTER TABLE mq_dlq ADD COLUMN history TEXT;
ALTER TABLE mq_dlq ADD COLUMN history_json TEXT;

CREATE TABLE mq_attempts (
    group_id  INTEGER NOT NULL,
    topic_id  INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    attempt   INTEGER NOT NULL,
    member    TEXT,
    leased_at INTEGER,
    ended_at  INTEGER NOT NULL,
    outcome   TEXT NOT NULL CHECK (outcome IN ('expired', 'nack', 'dead')),
    reason    TEXT,
    delay_ms  INTEGER,
    PRIMARY KEY (group_id, topic_id, partition, offset, attempt)
) WITHOUT ROWID;
";

/// The true state of every partition: `mq_partitions`' checkpoint plus the
/// messages appended since (see the module comment). A temporary view, made
/// on each connection, so files need no migration for it. `synced_offset`
/// and `synced_bytes` are the checkpoint's next offset and bytes.
const PARTITION_STATE_VIEW: &str = "
CREATE TEMP VIEW IF NOT EXISTS mq_partition_state AS
SELECT p.topic_id AS topic_id, p.partition AS partition, p.low_offset AS low_offset,
       COALESCE((SELECT m.offset + 1 FROM main.mq_messages m
                 WHERE m.topic_id = p.topic_id AND m.partition = p.partition AND m.offset >= p.next_offset
                 ORDER BY m.offset DESC LIMIT 1), p.next_offset) AS next_offset,
       COALESCE((SELECT m.ts FROM main.mq_messages m
                 WHERE m.topic_id = p.topic_id AND m.partition = p.partition AND m.offset >= p.next_offset
                 ORDER BY m.offset DESC LIMIT 1), p.last_ts) AS last_ts,
       p.bytes + COALESCE((SELECT SUM(octet_length(m.payload)) FROM main.mq_messages m
                 WHERE m.topic_id = p.topic_id AND m.partition = p.partition AND m.offset >= p.next_offset), 0)
         AS bytes,
       p.next_offset AS synced_offset,
       p.bytes AS synced_bytes
FROM main.mq_partitions p;
";

/// SQL for a duration in ms (`expr`) as the language writes it: the largest
/// unit that divides it exactly (`30s`, `2m`, `1500ms`); NULL for NULL.
/// (`||` binds tighter than `/` in SQLite, hence the parentheses.)
fn duration_sql(expr: &str) -> String {
    format!(
        "(CASE WHEN ({expr}) = 0 THEN '0ms'
               WHEN ({expr}) % 86400000 = 0 THEN (({expr}) / 86400000) || 'd'
               WHEN ({expr}) % 3600000 = 0 THEN (({expr}) / 3600000) || 'h'
               WHEN ({expr}) % 60000 = 0 THEN (({expr}) / 60000) || 'm'
               WHEN ({expr}) % 1000 = 0 THEN (({expr}) / 1000) || 's'
               ELSE ({expr}) || 'ms' END)"
    )
}

/// SQL for a time in ms (`expr`) as RFC 3339 in UTC with milliseconds,
/// as the shell prints timestamps; NULL for NULL.
fn time_sql(expr: &str) -> String {
    format!(
        "(strftime('%Y-%m-%dT%H:%M:%S', ({expr}) / 1000, 'unixepoch') || printf('.%03dZ', ({expr}) % 1000))"
    )
}

/// SQL for how the attempt row `a` of `mq_attempts` ended:
/// `lease expired 30s`, `nack`, `nack delay 1m 'reason'`, `dead 'reason'`.
/// Reasons are quoted as the language quotes strings.
fn outcome_sql(a: &str) -> String {
    let reason =
        format!("(CASE WHEN {a}.reason IS NULL THEN '' ELSE ' ' || quote({a}.reason) END)");
    format!(
        "(CASE {a}.outcome
            WHEN 'expired' THEN 'lease expired' || COALESCE(' ' || {lease}, '')
            WHEN 'nack' THEN 'nack' || COALESCE(' delay ' || {delay}, '') || {reason}
            ELSE 'dead' || {reason} END)",
        lease = duration_sql(&format!("{a}.ended_at - {a}.leased_at")),
        delay = duration_sql(&format!("{a}.delay_ms")),
    )
}

/// The bit of message `i` in a range lease's `acked` bitmap (bit `i % 8` of
/// byte `i / 8`, as `group::ranges` sets it), in plain SQL: the byte's hex
/// digit that holds the bit, shifted. 1 when acked.
fn acked_bit_sql(acked: &str, i: &str) -> String {
    format!(
        "(((instr('0123456789ABCDEF', substr(hex(substr({acked}, (({i}) / 8) + 1, 1)), 2 - ((({i}) % 8) / 4), 1))
            - 1) >> (({i}) % 4)) & 1)"
    )
}

/// Temporary views every connection gets (a file needs no migration for
/// them): `mq_partition_state` (above); `mq_attempt_history`, per message
/// with attempts, their text (`history`), JSON (`history_json`) and how the
/// latest ended (`last_outcome`); `mq_delivery_rows`, one row per message a
/// group holds (pending rows, and each unacked message of a range lease,
/// expanded here without writing), with `ended` (its current attempt was
/// NACKed) and `expiry` (how its lease running out reads); and
/// `mq_dead_letters`, `mq_dlq` with its history. A read-only connection on
/// a file older than version 3 gets the same views with NULL history and
/// start times, and an empty `mq_attempts`, so its queries still run.
pub(crate) fn temp_views(version: i64) -> String {
    let old = version < 3;
    let history = if old {
        // No attempts yet: an empty stand-in, which `mq_attempts` (no
        // schema name) reaches before `main`.
        "SELECT NULL AS group_id, NULL AS topic_id, NULL AS partition, NULL AS offset, NULL AS history,
                NULL AS history_json, NULL AS last_outcome WHERE 0;
         CREATE TEMP VIEW IF NOT EXISTS mq_attempts AS
         SELECT NULL AS group_id, NULL AS topic_id, NULL AS partition, NULL AS offset, NULL AS attempt,
                NULL AS member, NULL AS leased_at, NULL AS ended_at, NULL AS outcome, NULL AS reason,
                NULL AS delay_ms WHERE 0"
            .to_string()
    } else {
        format!(
            "SELECT group_id, topic_id, partition, offset,
                    group_concat(attempt || ': ' || COALESCE(member || ' ', '') || {outcome}, '; ' ORDER BY attempt)
                      AS history,
                    json_group_array(json_object('attempt', attempt, 'member', member,
                      'leased_at', {leased}, 'ended_at', {ended}, 'outcome', outcome, 'reason', reason,
                      'delay', {delay}) ORDER BY attempt) AS history_json,
                    max(attempt) AS last_attempt, {outcome} AS last_outcome
             FROM main.mq_attempts a GROUP BY group_id, topic_id, partition, offset",
            outcome = outcome_sql("a"),
            leased = time_sql("a.leased_at"),
            ended = time_sql("a.ended_at"),
            delay = duration_sql("a.delay_ms"),
        )
    };
    let (p_leased, l_leased, ended) = if old {
        ("NULL", "NULL", "0".to_string())
    } else {
        (
            "p.leased_at",
            "l.leased_at",
            "EXISTS (SELECT 1 FROM main.mq_attempts a WHERE a.group_id = p.group_id AND a.topic_id = p.topic_id
                     AND a.partition = p.partition AND a.offset = p.offset AND a.attempt = p.attempt)"
                .to_string(),
        )
    };
    let dlq_history = if old {
        "NULL AS history, NULL AS history_json"
    } else {
        "history, history_json"
    };
    format!(
        "{PARTITION_STATE_VIEW}
CREATE TEMP VIEW IF NOT EXISTS mq_attempt_history AS {history};
CREATE TEMP VIEW IF NOT EXISTS mq_delivery_rows AS
WITH RECURSIVE lease_msgs(lease_id, i, n) AS (
    SELECT lease_id, 0, count FROM main.mq_leases WHERE count > 0
    UNION ALL
    SELECT lease_id, i + 1, n FROM lease_msgs WHERE i + 1 < n
)
SELECT p.group_id AS group_id, p.topic_id AS topic_id, p.partition AS partition, p.offset AS offset,
       p.key AS key, p.delivery_id AS delivery_id, p.attempt AS attempt, p.member AS member,
       {p_leased} AS leased_at, p.visible_at AS visible_at, {ended} AS ended,
       'lease expired' || COALESCE(' ' || {p_lease}, '') AS expiry
FROM main.mq_pending p
UNION ALL
SELECT l.group_id, l.topic_id, l.partition, l.first_offset + x.i,
       (SELECT m.key FROM main.mq_messages m WHERE m.topic_id = l.topic_id AND m.partition = l.partition
                                               AND m.offset = l.first_offset + x.i),
       l.lease_id + x.i, 1, l.member, {l_leased}, l.visible_at, 0,
       'lease expired' || COALESCE(' ' || {l_lease}, '')
FROM lease_msgs x JOIN main.mq_leases l ON l.lease_id = x.lease_id
WHERE {bit} = 0;
CREATE TEMP VIEW IF NOT EXISTS mq_dead_letters AS
SELECT id, topic_id, topic, group_id, group_name, partition, offset, ts, key, headers, payload, attempts,
       reason, failed_at, {dlq_history}
FROM main.mq_dlq;
",
        p_lease = duration_sql(&format!("p.visible_at - {p_leased}")),
        l_lease = duration_sql(&format!("l.visible_at - {l_leased}")),
        bit = acked_bit_sql("l.acked", "x.i"),
    )
}

/// Brings a file at `from` up to `SCHEMA_VERSION`, in one transaction.
/// Initialises a new file under the write lock, after checking again under
/// it that the file is still empty or ours: several processes may create
/// one file at once, and only the first to get the lock initialises it.
pub(crate) fn migrate(conn: &Connection, from: i64, path: &Path) -> Result<()> {
    if from >= SCHEMA_VERSION {
        return Ok(());
    }
    let tx = rusqlite::Transaction::new_unchecked(conn, rusqlite::TransactionBehavior::Immediate)?;
    // Re-read under the write lock: another process may have migrated meanwhile.
    let (app_id, now, tables): (i64, i64, i64) = tx.query_row(super::IDENTIFY, [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })?;
    if now < 1 && (tables > 0 || app_id != 0) {
        return Err(Error::NotADatabase {
            path: path.to_path_buf(),
            reason: "it is an SQLite database of another application".into(),
        });
    }
    if now < 1 {
        tx.execute_batch(V1)?;
        tx.execute_batch(&format!("PRAGMA application_id = {APPLICATION_ID};"))?;
    }
    if now < 3 {
        tx.execute_batch(V3)?;
    }
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(sql: &str) -> rusqlite::types::Value {
        let conn = Connection::open_in_memory().unwrap();
        conn.query_row(&format!("SELECT {sql}"), [], |r| r.get(0))
            .unwrap()
    }

    /// The SQL bit test reads the bitmap exactly as `group::ranges` writes
    /// it: bit `i % 8` of byte `i / 8`.
    #[test]
    fn the_sql_bit_test_matches_the_bitmap_layout() {
        let conn = Connection::open_in_memory().unwrap();
        let mut st = conn
            .prepare(&format!("SELECT {}", acked_bit_sql("?1", "?2")))
            .unwrap();
        for byte in 0..=255u8 {
            let bitmap = [0x5a, byte, 0xa5];
            for i in 0..24i64 {
                let idx = usize::try_from(i).unwrap();
                let want = i64::from((bitmap[idx / 8] >> (idx % 8)) & 1);
                let got: i64 = st
                    .query_row(rusqlite::params![&bitmap[..], i], |r| r.get(0))
                    .unwrap();
                assert_eq!(got, want, "byte {byte:#04x}, bit {i}");
            }
        }
    }

    #[test]
    fn durations_read_as_the_language_writes_them() {
        use rusqlite::types::Value::{Null, Text};
        for (ms, text) in [
            ("0", "0ms"),
            ("250", "250ms"),
            ("1500", "1500ms"),
            ("30000", "30s"),
            ("60000", "1m"),
            ("90000", "90s"),
            ("7200000", "2h"),
            ("172800000", "2d"),
        ] {
            assert_eq!(eval(&duration_sql(ms)), Text(text.into()), "{ms}");
        }
        assert_eq!(eval(&duration_sql("NULL")), Null);
    }

    #[test]
    fn times_read_as_rfc_3339_with_milliseconds() {
        use rusqlite::types::Value::Text;
        assert_eq!(
            eval(&time_sql("1700000000123")),
            Text("2023-11-14T22:13:20.123Z".into())
        );
        assert_eq!(
            eval(&time_sql("1700000000000")),
            Text(crate::Value::format_timestamp(1_700_000_000_000))
        );
    }
}
