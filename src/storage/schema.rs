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
pub(crate) const SCHEMA_VERSION: i64 = 2;

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

/// The true state of every partition: `mq_partitions`' checkpoint plus the
/// messages appended since (see the module comment). A temporary view, made
/// on each connection, so files need no migration for it. `synced_offset`
/// and `synced_bytes` are the checkpoint's next offset and bytes.
pub(crate) const PARTITION_STATE_VIEW: &str = "
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
    tx.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};"))?;
    tx.commit()?;
    Ok(())
}
