//! What every group holds right now: one row per message it has taken and
//! not settled (the `DELIVERIES` source and `Database::deliveries`), with
//! the attempts that did not end in an ACK.
//!
//! Read only: range leases are expanded into one row per unacked message by
//! the temporary view `mq_delivery_rows` (storage::schema), never exploded
//! on disk, so read-only handles see them too.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use rusqlite::{Connection, params};

use crate::Result;
use crate::units::{DeliveryId, Millis, Offset};

/// Where a message a group holds stands (the `state` column of DELIVERIES).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DeliveryState {
    /// Leased to a member whose lease has not run out (`in_flight`).
    InFlight,
    /// Deliverable, not yet redelivered: NACKed, its lease ran out, or
    /// requeued from the DLQ (`waiting`).
    Waiting,
    /// Not deliverable before `visible_at`: PUBLISH ... DELAY or
    /// NACK ... DELAY (`delayed`).
    Delayed,
    /// An ORDERED group holds it behind an earlier message of its key
    /// (`blocked`).
    Blocked,
}

impl DeliveryState {
    /// The name the language uses: `in_flight`, `waiting`, `delayed`, `blocked`.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeliveryState::InFlight => "in_flight",
            DeliveryState::Waiting => "waiting",
            DeliveryState::Delayed => "delayed",
            DeliveryState::Blocked => "blocked",
        }
    }
}

impl fmt::Display for DeliveryState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeliveryState {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Ok(match s {
            "in_flight" => DeliveryState::InFlight,
            "waiting" => DeliveryState::Waiting,
            "delayed" => DeliveryState::Delayed,
            "blocked" => DeliveryState::Blocked,
            other => return Err(format!("unknown delivery state '{other}'")),
        })
    }
}

/// How an attempt that was not acked ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AttemptOutcome {
    /// The lease ran out.
    Expired,
    /// NACK, redelivered after `delay` (None: at once), with the caller's reason.
    Nack {
        /// NACK ... DELAY.
        delay: Option<Duration>,
        /// The reason given, if any.
        reason: Option<String>,
    },
    /// NACK ... DEAD, with the caller's reason.
    Dead {
        /// The reason given, if any.
        reason: Option<String>,
    },
}

/// One attempt of a message that did not end in an ACK.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// 1 for the first delivery.
    pub attempt: u32,
    /// The member it was leased to (CONSUME ... MEMBER), if named.
    pub member: Option<String>,
    /// When it was leased, ms since the epoch (None for leases taken
    /// before schema version 3).
    pub leased_at: Option<i64>,
    /// When it ended: the lease's end for [`AttemptOutcome::Expired`],
    /// else the time of the NACK.
    pub ended_at: i64,
    /// How it ended.
    pub outcome: AttemptOutcome,
}

/// One message a group has taken and not settled (a row of
/// `SELECT ... FROM DELIVERIES`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingDelivery {
    /// The group (a queue's group is named after the queue).
    pub group: String,
    /// The member of the latest delivery, if it named one.
    pub member: Option<String>,
    /// The topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// Offset.
    pub offset: u64,
    /// The message's key.
    pub key: Option<String>,
    /// The id of the latest delivery (ACK/NACK take it); None while the
    /// message was never delivered (delayed, blocked, requeued).
    pub delivery: Option<u64>,
    /// Deliveries so far (0: never delivered).
    pub attempt: u32,
    /// Where it stands.
    pub state: DeliveryState,
    /// When the latest delivery was leased, ms since the epoch.
    pub leased_at: Option<i64>,
    /// When it is (or became) deliverable again: the lease's end while in
    /// flight, the due time while delayed.
    pub visible_at: i64,
    /// How the latest attempt that did not end in an ACK ended, as in the
    /// history (`lease expired 30s`, `nack 'timeout'`), including a lease
    /// that ran out and was not redelivered yet.
    pub last_error: Option<String>,
    /// The attempts that did not end in an ACK, oldest first.
    pub history: Vec<Attempt>,
}

/// The DELIVERIES relation as SQL, judged at the time bound to parameter
/// `?{now}`. Its columns: `grp, member, topic, partition, offset, key,
/// delivery, attempt, state, leased_at, visible_at, last_error, history,
/// history_json, group_id, topic_id`. State rules, first match wins:
/// `in_flight` (delivered, not NACKed, lease not run out), `delayed` (not
/// due yet), `blocked` (ORDERED group, an earlier message of its key in
/// the same partition is pending), `waiting`.
pub(crate) fn relation_sql(now: usize) -> String {
    format!(
        "SELECT g.name AS grp, r.member AS member, t.name AS topic, r.partition AS partition,
                r.offset AS offset, r.key AS key, r.delivery_id AS delivery, r.attempt AS attempt,
                CASE WHEN r.delivery_id IS NOT NULL AND NOT r.ended AND r.visible_at > ?{now} THEN 'in_flight'
                     WHEN r.visible_at > ?{now} THEN 'delayed'
                     WHEN g.ordered AND r.key IS NOT NULL AND EXISTS (
                          SELECT 1 FROM mq_pending q WHERE q.group_id = r.group_id AND q.topic_id = r.topic_id
                          AND q.key = r.key AND q.offset < r.offset AND q.partition = r.partition) THEN 'blocked'
                     ELSE 'waiting' END AS state,
                r.leased_at AS leased_at, r.visible_at AS visible_at,
                CASE WHEN r.delivery_id IS NOT NULL AND NOT r.ended AND r.visible_at <= ?{now} THEN r.expiry
                     ELSE h.last_outcome END AS last_error,
                h.history AS history, h.history_json AS history_json,
                r.group_id AS group_id, r.topic_id AS topic_id
         FROM mq_delivery_rows r
         JOIN mq_groups g ON g.id = r.group_id
         JOIN mq_topics t ON t.id = r.topic_id
         LEFT JOIN mq_attempt_history h ON h.group_id = r.group_id AND h.topic_id = r.topic_id
              AND h.partition = r.partition AND h.offset = r.offset"
    )
}

/// Where a message is: group id, topic id, partition, offset.
type At = (i64, i64, u32, i64);

/// Every message `group` (None: every group) holds, by group, topic,
/// partition and offset, judged at `now`.
pub(crate) fn list(
    conn: &Connection,
    now: i64,
    group: Option<i64>,
) -> Result<Vec<PendingDelivery>> {
    let sql = format!(
        "SELECT grp, member, topic, partition, offset, key, delivery, attempt, state, leased_at, visible_at,
                last_error, group_id, topic_id
         FROM ({}) WHERE ?2 IS NULL OR group_id = ?2 ORDER BY grp, topic, partition, offset",
        relation_sql(1)
    );
    let mut history = attempts(conn, group)?;
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(params![now, group])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let state: String = r.get(8)?;
        let at: At = (r.get(12)?, r.get(13)?, r.get(3)?, r.get(4)?);
        out.push(PendingDelivery {
            group: r.get(0)?,
            member: r.get(1)?,
            topic: r.get(2)?,
            partition: at.2,
            offset: r.get::<_, Offset>(4)?.0,
            key: r.get(5)?,
            delivery: r.get::<_, Option<DeliveryId>>(6)?.map(|d| d.0),
            attempt: r.get(7)?,
            state: state.parse().unwrap_or(DeliveryState::Waiting),
            leased_at: r.get(9)?,
            visible_at: r.get(10)?,
            last_error: r.get(11)?,
            history: history.remove(&at).unwrap_or_default(),
        });
    }
    Ok(out)
}

/// The attempt history of every message of `group` (None: every group).
fn attempts(conn: &Connection, group: Option<i64>) -> Result<HashMap<At, Vec<Attempt>>> {
    let mut st = conn.prepare_cached(
        "SELECT group_id, topic_id, partition, offset, attempt, member, leased_at, ended_at, outcome, reason,
                delay_ms
         FROM mq_attempts WHERE ?1 IS NULL OR group_id = ?1
         ORDER BY group_id, topic_id, partition, offset, attempt",
    )?;
    let mut rows = st.query([group])?;
    let mut out: HashMap<At, Vec<Attempt>> = HashMap::new();
    while let Some(r) = rows.next()? {
        let reason: Option<String> = r.get(9)?;
        let outcome = match r.get::<_, String>(8)?.as_str() {
            "expired" => AttemptOutcome::Expired,
            "dead" => AttemptOutcome::Dead { reason },
            _ => AttemptOutcome::Nack {
                delay: r.get::<_, Option<Millis>>(10)?.map(|m| m.0),
                reason,
            },
        };
        let at: At = (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?);
        out.entry(at).or_default().push(Attempt {
            attempt: r.get(4)?,
            member: r.get(5)?,
            leased_at: r.get(6)?,
            ended_at: r.get(7)?,
            outcome,
        });
    }
    Ok(out)
}
