//! mqlite: an embedded, persistent message-queue database in one SQLite file.
//!
//! Topics are partitioned logs; queues are topics with one implicit group
//! and retention until consumed. Consumer groups lease messages to their
//! members; ACK/NACK are fenced by delivery id; failed messages go to a
//! dead-letter queue. Several processes may share one file.
//!
//! ```
//! use std::time::Duration;
//! use mqlite::{ConsumeRequest, Database, Message, NackAction, Subscription};
//!
//! let dir = tempfile::tempdir()?;
//! let db = Database::open(dir.path().join("shop.db"))?;
//!
//! // Fan-out: every group gets every order.
//! db.execute("CREATE TOPIC order.placed PARTITIONS 3")?;
//! db.subscribe("email", &Subscription::topic("order.placed"))?;
//! db.subscribe("inventory", &Subscription::topic("order.placed"))?;
//! db.publish("order.placed", Message::new(r#"{"orderId": "ORD-1"}"#).key("ORD-1"))?;
//! for group in ["email", "inventory"] {
//!     let got = db.consume(&ConsumeRequest::from_topic("order.placed").for_group(group).max(10))?;
//!     assert_eq!(got.len(), 1);
//!     db.ack(&[got[0].id])?;
//! }
//!
//! // A job queue: one worker per message, gone once acked.
//! db.execute("CREATE QUEUE jobs MAX DELIVERIES 3")?;
//! db.publish_batch("jobs", vec![Message::new("resize 1"), Message::new("resize -1")])?;
//! let jobs = db.consume(&ConsumeRequest::queue("jobs").max(2).wait(Duration::from_millis(10)))?;
//! db.ack(&[jobs[0].id])?;
//! db.nack(&[jobs[1].id], &NackAction::dead("negative size"))?;
//!
//! // The command language returns rows, read by column name.
//! let rs = db.execute("SELECT COUNT(*) AS n FROM order.placed")?;
//! assert_eq!(rs.row(0).and_then(|row| row.get_i64("n")), Some(1));
//! let dead = db.execute("SELECT reason FROM DLQ")?;
//! assert_eq!(dead.row(0).and_then(|row| row.get_str("reason")), Some("negative size"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// The README's library example must keep compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod catalog;
mod clock;
mod db;
mod delivery;
mod dlq;
mod error;
mod group;
mod input;
mod kind;
pub mod lang;
mod processed;
mod publish;
mod storage;
mod sync;
mod topic;
mod txn;
mod units;
mod value;

pub use clock::{Clock, MAX_CLOCK_OFFSET, ManualClock, SystemClock};
pub use db::{
    DEFAULT_DISK_RESERVE, Database, DatabaseBuilder, GroupStats, MAX_CONSUME, TopicSummary,
    WriteStats,
};
pub use delivery::{ConsumeRequest, Delivery, NackAction};
pub use dlq::{Orphan, OrphanReason, Requeued};
pub use error::{Error, FileProblem, NameProblem, ParseError, PatternProblem, Result};
pub use group::{
    Attempt, AttemptOutcome, DeliveryState, GroupInfo, PendingDelivery, ReplayFrom, StartFrom,
    Subscription, TimeSpec, pattern_matches,
};
pub use input::{MAX_LINE_BYTES, read_line_limited};
/// The jiff crate of [`Delivery::time`] and [`Value::as_timestamp`].
pub use jiff;
pub use lang::Session;
pub use processed::DEFAULT_PROCESSED_TTL;
pub use publish::{DEFAULT_MAX_PAYLOAD, Message, Published, partition_for_key};
/// The rusqlite crate mqlite links, for the application's own SQL in a [`Transaction`].
pub use rusqlite;
pub use storage::{BackupStats, Durability, sqlite_version};
pub use topic::{
    DEFAULT_ACK_WAIT, DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_DELIVERIES, Overflow, PartitionInfo,
    Record, Retention, TopicInfo, TopicKind, TopicOptions, TopicStats,
};
pub use txn::Transaction;
pub use value::{ResultSet, Row, Rows, Value};
