//! mqlite: an embedded, persistent message-queue database in one SQLite file.

mod bench;
mod clock;
mod commit;
mod db;
mod dlq;
mod error;
mod group;
pub mod lang;
mod lease;
mod publish;
mod storage;
mod topic;
mod txn;
mod value;

pub use clock::{Clock, ManualClock, SystemClock};
pub use db::{
    ConsumeRequest, Database, DatabaseBuilder, Durability, MAX_CONSUME, Session, WriteStats,
};
pub use error::{Error, Result};
pub use group::{Delivery, GroupInfo, Subscription, pattern_matches};
pub use lang::ast::{NackAction, Overflow, ReplayFrom, Retention, StartFrom, TimeSpec, TopicKind};
pub use publish::{DEFAULT_MAX_PAYLOAD, Message, Published, partition_for_key};
/// The rusqlite crate mqlite links, for the application's own SQL in a [`Transaction`].
pub use rusqlite;
pub use storage::sqlite_version;
pub use topic::{
    DEFAULT_ACK_WAIT, DEFAULT_DEDUP_WINDOW, DEFAULT_MAX_DELIVERIES, Record, TopicInfo,
    TopicOptions, TopicStats,
};
pub use txn::{DEFAULT_PROCESSED_TTL, Transaction};
pub use value::{ResultSet, Value};
