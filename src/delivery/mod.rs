//! Delivery: leasing messages to consumers (`consume`), settling them
//! (`settle`: ACK, NACK, fencing by delivery id) and the ids that fence
//! them (`ids`).

mod consume;
pub(crate) mod ids;
mod settle;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;

pub(crate) use settle::{ack, nack};

use self::ids::IdBlock;
use crate::group::{self, GroupInfo};
use crate::storage::tx::Ctx;
use crate::topic::{self, TopicKind};
use crate::{Error, Result};

/// Most messages one CONSUME may lease.
pub const MAX_CONSUME: usize = 10_000;

/// What a NACK asks for.
///
/// The constructors read better than the variants at a call site:
/// `NackAction::dead("card declined")` is `NackAction::Dead(Some(..))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NackAction {
    /// Redeliver now.
    Now,
    /// `DELAY d`: redeliver after d.
    Delay(Duration),
    /// `DEAD ['reason']`: dead-letter at once.
    Dead(Option<String>),
}

impl NackAction {
    /// Redeliver now (`NACK id`).
    pub const fn now() -> NackAction {
        NackAction::Now
    }

    /// Redeliver once `d` has passed (`NACK id DELAY d`).
    pub const fn delay(d: Duration) -> NackAction {
        NackAction::Delay(d)
    }

    /// Dead-letter at once, with `reason` in the DLQ (`NACK id DEAD 'reason'`).
    pub fn dead(reason: impl Into<String>) -> NackAction {
        NackAction::Dead(Some(reason.into()))
    }

    /// Dead-letter at once without a reason of the caller's (`NACK id DEAD`):
    /// the DLQ's reason reads "dead-lettered by NACK".
    pub const fn dead_without_reason() -> NackAction {
        NackAction::Dead(None)
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
    /// Append time, ms since the epoch; [`Delivery::time`] as an instant.
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

    /// The append time as an instant. Append times lie within jiff's range
    /// (years -9999 to 9999); a value outside it saturates at its end.
    pub fn time(&self) -> jiff::Timestamp {
        jiff::Timestamp::from_millisecond(self.timestamp).unwrap_or(if self.timestamp < 0 {
            jiff::Timestamp::MIN
        } else {
            jiff::Timestamp::MAX
        })
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
    pub ids: &'a Mutex<IdBlock>,
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

/// What to consume: a queue, a topic through a group, or every topic of a group.
///
/// ```
/// use mqlite::ConsumeRequest;
///
/// let jobs = ConsumeRequest::queue("jobs").max(10);
/// let email = ConsumeRequest::from_topic("order.placed").for_group("email");
/// assert_eq!(email, ConsumeRequest::topic("order.placed", "email"));
/// let audit = ConsumeRequest::group("audit"); // every topic the group reads
/// # let _ = (jobs, audit);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ConsumeRequest {
    pub(crate) topic: Option<String>,
    pub(crate) group: Option<String>,
    pub(crate) max: usize,
    pub(crate) member: Option<String>,
    pub(crate) wait: Option<Duration>,
    pub(crate) ack_wait: Option<Duration>,
}

impl ConsumeRequest {
    /// From a queue (its implicit group).
    pub fn queue(name: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest {
            topic: Some(name.into()),
            group: None,
            max: 1,
            member: None,
            wait: None,
            ack_wait: None,
        }
    }
    /// From the topic or queue `name`. A topic is read through a group:
    /// add [`for_group`](ConsumeRequest::for_group); without one, `name`
    /// must be a queue (the same request as [`queue`](ConsumeRequest::queue)).
    pub fn from_topic(name: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest::queue(name)
    }
    /// From one topic through a group: the topic first, then the group.
    /// `ConsumeRequest::from_topic(name).for_group(group)` is the same
    /// request and names each argument.
    pub fn topic(name: impl Into<String>, group: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest {
            group: Some(group.into()),
            ..ConsumeRequest::queue(name)
        }
    }
    /// From every topic of a group (fan-in).
    pub fn group(group: impl Into<String>) -> ConsumeRequest {
        ConsumeRequest {
            topic: None,
            group: Some(group.into()),
            ..ConsumeRequest::queue("")
        }
    }
    /// Through the group `group` (a topic's subscriber): sets the group of a
    /// [`from_topic`](ConsumeRequest::from_topic) request, or replaces it.
    pub fn for_group(mut self, group: impl Into<String>) -> ConsumeRequest {
        self.group = Some(group.into());
        self
    }
    /// Up to `n` messages (default 1).
    pub fn max(mut self, n: usize) -> ConsumeRequest {
        self.max = n;
        self
    }
    /// The member (consumer) name, recorded on the deliveries.
    pub fn member(mut self, m: impl Into<String>) -> ConsumeRequest {
        self.member = Some(m.into());
        self
    }
    /// Blocks up to this long for the first message.
    pub fn wait(mut self, d: Duration) -> ConsumeRequest {
        self.wait = Some(d);
        self
    }
    /// Lease length for these deliveries.
    pub fn ack_wait(mut self, d: Duration) -> ConsumeRequest {
        self.ack_wait = Some(d);
        self
    }

    /// The blocking wait asked for, if any.
    pub(crate) fn waits(&self) -> Option<Duration> {
        self.wait
    }

    /// Refuses a request no consume can serve (before any write).
    pub(crate) fn check(&self) -> Result<()> {
        if self.max == 0 || self.max > MAX_CONSUME {
            return Err(Error::option(
                "CONSUME",
                format!(
                    "CONSUME takes between 1 and {MAX_CONSUME} messages, got {}",
                    self.max
                ),
            ));
        }
        if self.ack_wait.is_some_and(|d| d.is_zero()) {
            return Err(Error::option("ACK WAIT", "ACK WAIT must be longer than 0"));
        }
        Ok(())
    }
}

/// One non-blocking CONSUME inside the caller's write transaction. Leases
/// it grants change when waiters must look again (when they run out), so
/// they are recorded on the context.
pub(crate) fn consume_once(
    ctx: &Ctx<'_>,
    req: &ConsumeRequest,
    ids: &Mutex<IdBlock>,
) -> Result<Vec<Delivery>> {
    let (g, topic_id) = resolve(ctx, req)?;
    let got = consume::consume(
        ctx,
        &ConsumeSpec {
            group: &g,
            topic_id,
            max: req.max,
            member: req.member.as_deref(),
            ack_wait: req.ack_wait,
            ids,
        },
    )?;
    if !got.is_empty() {
        ctx.due_changed();
    }
    Ok(got)
}

/// The group (and topic) a request reads.
fn resolve(c: &Connection, req: &ConsumeRequest) -> Result<(GroupInfo, Option<i64>)> {
    match (&req.topic, &req.group) {
        (Some(name), None) => {
            let t = topic::find(c, name)?.ok_or_else(|| Error::QueueNotFound(name.clone()))?;
            if t.kind != TopicKind::Queue {
                return Err(Error::WrongKind {
                    name: name.clone(),
                    is: t.kind,
                    expected: TopicKind::Queue,
                    statement: "CONSUME".into(),
                });
            }
            Ok((group::queue_group(c, &t)?, Some(t.id)))
        }
        (Some(name), Some(gname)) => {
            let t = topic::get(c, name)?;
            let g = group::get(c, gname)?;
            if !group::reads_topic(c, g.id, t.id)? {
                return Err(Error::NotSubscribed {
                    group: gname.clone(),
                    topic: name.clone(),
                });
            }
            Ok((g, Some(t.id)))
        }
        (None, Some(gname)) => Ok((group::get(c, gname)?, None)),
        (None, None) => Err(Error::Incomplete {
            statement: "CONSUME".into(),
            needs: "a topic, a queue or a group".into(),
        }),
    }
}

/// When something of the request's group next becomes due by itself (ms
/// since the epoch): a lease running out, a NACK DELAY or a delayed
/// message ending, in any process. None when nothing is waiting for time.
/// A CONSUME that found nothing sleeps until then at most.
pub(crate) fn next_due(c: &Connection, req: &ConsumeRequest, now: i64) -> Result<Option<i64>> {
    let (g, topic_id) = resolve(c, req)?;
    Ok(c.prepare_cached(
        "SELECT MIN(t) FROM (
           SELECT MIN(visible_at) AS t FROM mq_pending
           WHERE group_id = ?1 AND visible_at > ?2 AND (?3 IS NULL OR topic_id = ?3)
           UNION ALL
           SELECT MIN(visible_at) FROM mq_leases
           WHERE group_id = ?1 AND visible_at > ?2 AND (?3 IS NULL OR topic_id = ?3))",
    )?
    .query_row(rusqlite::params![g.id, now, topic_id], |r| r.get(0))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_topic_for_group_is_topic() {
        assert_eq!(
            ConsumeRequest::from_topic("order.placed").for_group("email"),
            ConsumeRequest::topic("order.placed", "email")
        );
        assert_eq!(
            ConsumeRequest::from_topic("order.placed")
                .for_group("email")
                .max(10)
                .member("w1"),
            ConsumeRequest::topic("order.placed", "email")
                .max(10)
                .member("w1")
        );
        assert_eq!(
            ConsumeRequest::from_topic("jobs"),
            ConsumeRequest::queue("jobs")
        );
        // The setter replaces a group, whatever the order of the calls.
        assert_eq!(
            ConsumeRequest::topic("t", "a").max(3).for_group("b"),
            ConsumeRequest::topic("t", "b").max(3)
        );
    }

    #[test]
    fn nack_constructors_are_the_variants() {
        assert_eq!(NackAction::now(), NackAction::Now);
        assert_eq!(
            NackAction::delay(Duration::from_secs(60)),
            NackAction::Delay(Duration::from_secs(60))
        );
        assert_eq!(NackAction::dead("x"), NackAction::Dead(Some("x".into())));
        assert_eq!(
            NackAction::dead(String::from("y")),
            NackAction::Dead(Some("y".into()))
        );
        assert_eq!(NackAction::dead_without_reason(), NackAction::Dead(None));
    }

    fn delivery(timestamp: i64) -> Delivery {
        Delivery {
            id: 1,
            topic: "t".into(),
            partition: 0,
            offset: 0,
            key: None,
            attempt: 1,
            timestamp,
            headers: BTreeMap::new(),
            payload: Vec::new(),
        }
    }

    #[test]
    fn time_is_the_timestamp_as_an_instant() {
        let ts: jiff::Timestamp = "2024-01-15T10:30:00.123Z".parse().unwrap();
        assert_eq!(delivery(ts.as_millisecond()).time(), ts);
        assert_eq!(delivery(0).time(), jiff::Timestamp::UNIX_EPOCH);
        assert_eq!(delivery(-1).time().as_millisecond(), -1);
        assert_eq!(delivery(i64::MAX).time(), jiff::Timestamp::MAX);
        assert_eq!(delivery(i64::MIN).time(), jiff::Timestamp::MIN);
    }
}
