//! Executes statements of the language through the library API.

use std::sync::atomic::AtomicBool;

use rusqlite::types::Value as SqlValue;

use super::ast::{
    ConsumeSource, Payload, Retention, Source, Statement, SubscribeTarget, TopicKind, TopicOption,
};
use super::{query, units};
use crate::db::ConsumeRequest;
use crate::group::{Delivery, Subscription};
use crate::publish::{Message, Published};
use crate::topic::{self, TopicOptions};
use crate::{Database, Error, Result, ResultSet, Value};

/// Runs one statement, passing its result(s) to `out`.
pub(crate) fn run(
    db: &Database,
    interrupt: &AtomicBool,
    stmt: &Statement,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    let rs = match stmt {
        Statement::Create(c) => {
            let o = options(&c.options)?;
            db.create(c.kind, &c.name, c.if_not_exists, &o)?;
            ResultSet::empty()
        }
        Statement::Alter(a) => {
            if a.options.is_empty() {
                return Err(Error::invalid("ALTER needs at least one option after SET"));
            }
            let o = options(&a.options)?;
            db.alter(a.kind, &a.name, &o)?;
            ResultSet::empty()
        }
        Statement::Drop(d) => {
            db.drop_topic(d.kind, &d.name, d.if_exists)?;
            ResultSet::empty()
        }
        Statement::ShowTopics => show_topics(db, TopicKind::Topic)?,
        Statement::ShowQueues => show_topics(db, TopicKind::Queue)?,
        Statement::ShowGroups(on) => db.read(|c, now| {
            let only = match on {
                Some(name) => Some(topic::get(c, name)?.id),
                None => None,
            };
            Ok(query::rows_result(
                query::groups_rows(c, now, only)?,
                Source::Groups,
            ))
        })?,
        Statement::Describe(name) => describe(db, name)?,
        Statement::Publish(p) => {
            let mut msgs = Vec::with_capacity(p.payloads.len());
            for payload in &p.payloads {
                let text = match payload {
                    Payload::Text(s) | Payload::Json(s) => s.clone(),
                };
                let mut m = Message::new(text);
                m.key = p.key.clone();
                m.partition = p.partition;
                m.delay = p.delay;
                m.dedup_id = p.dedup.clone();
                for (k, v) in &p.headers {
                    if m.headers.insert(k.clone(), v.clone()).is_some() {
                        return Err(Error::invalid(format!("header '{k}' is given twice")));
                    }
                }
                msgs.push(m);
            }
            if p.dedup.is_some() && msgs.len() > 1 {
                return Err(Error::invalid(
                    "DEDUP names one message: publish several payloads with one DEDUP id each in separate statements",
                ));
            }
            published(&db.publish_batch(&p.topic, msgs)?)
        }
        Statement::Subscribe(s) => {
            let mut sub = Subscription {
                from: s.from,
                ordered: s.ordered,
                max_deliveries: s.max_deliveries,
                ack_wait: s.ack_wait,
                ..Subscription::default()
            };
            for t in &s.targets {
                match t {
                    SubscribeTarget::Name(n) => sub.topics.push(n.clone()),
                    SubscribeTarget::Pattern(p) => sub.patterns.push(p.clone()),
                }
            }
            db.subscribe(&s.group, &sub)?;
            ResultSet::empty()
        }
        Statement::Unsubscribe(u) => {
            db.unsubscribe(&u.group, u.from.as_deref())?;
            ResultSet::empty()
        }
        Statement::Consume(c) => {
            let mut req = match &c.source {
                ConsumeSource::Topic { name, group: None } => ConsumeRequest::queue(name.clone()),
                ConsumeSource::Topic {
                    name,
                    group: Some(g),
                } => ConsumeRequest::topic(name.clone(), g.clone()),
                ConsumeSource::Group(g) => ConsumeRequest::group(g.clone()),
            };
            req.max = c
                .count
                .map_or(1, |n| usize::try_from(n).unwrap_or(usize::MAX));
            req.member = c.member.clone();
            req.wait = c.wait;
            req.ack_wait = c.ack_wait;
            deliveries(&db.consume_until(&req, Some(interrupt))?)
        }
        Statement::Ack(ids) => {
            db.ack(ids)?;
            ResultSet::empty()
        }
        Statement::Nack(n) => {
            db.nack(&n.ids, &n.action)?;
            ResultSet::empty()
        }
        Statement::Purge(name) => {
            let n = db.write("PURGE", |c, _| topic::purge(c, name))?;
            one("purged", Value::Int(i64::try_from(n).unwrap_or(i64::MAX)))
        }
        Statement::Check => check(db)?,
        Statement::Select(q) => db.read(|c, now| query::select(c, now, q))?,
        Statement::Replay(_) => return Err(Error::NotSupported("REPLAY".into())),
        Statement::RequeueDlq(_) => return Err(Error::NotSupported("REQUEUE DLQ".into())),
        Statement::PurgeDlq(_) => return Err(Error::NotSupported("PURGE DLQ".into())),
        Statement::Begin | Statement::Commit | Statement::Rollback => {
            return Err(Error::NotSupported(
                "transactions (BEGIN / COMMIT / ROLLBACK)".into(),
            ));
        }
        Statement::Export(_) => return Err(Error::NotSupported("EXPORT".into())),
        Statement::Import(_) => return Err(Error::NotSupported("IMPORT".into())),
        Statement::Bench(_) => return Err(Error::NotSupported("BENCH".into())),
        Statement::Tail(_) => return Err(Error::NotSupported("TAIL".into())),
    };
    out(rs)
}

fn one(column: &str, v: Value) -> ResultSet {
    ResultSet {
        columns: vec![column.to_string()],
        rows: vec![vec![v]],
    }
}

fn options(opts: &[TopicOption]) -> Result<TopicOptions> {
    let mut o = TopicOptions::default();
    fn set<T>(slot: &mut Option<T>, v: T, name: &str) -> Result<()> {
        if slot.is_some() {
            return Err(Error::invalid(format!("option {name} is given twice")));
        }
        *slot = Some(v);
        Ok(())
    }
    for opt in opts {
        match opt {
            TopicOption::Partitions(n) => set(&mut o.partitions, *n, "PARTITIONS")?,
            TopicOption::Retention(r) => set(&mut o.retention, *r, "RETENTION")?,
            TopicOption::MaxLength(n) => set(&mut o.max_length, *n, "MAX LENGTH")?,
            TopicOption::Overflow(v) => set(&mut o.overflow, *v, "OVERFLOW")?,
            TopicOption::DedupWindow(d) => set(&mut o.dedup_window, *d, "DEDUP WINDOW")?,
            TopicOption::MaxDeliveries(n) => set(&mut o.max_deliveries, *n, "MAX DELIVERIES")?,
            TopicOption::AckWait(d) => set(&mut o.ack_wait, *d, "ACK WAIT")?,
        }
    }
    Ok(o)
}

fn published(p: &[Published]) -> ResultSet {
    let mut rs = ResultSet::with_columns(["topic", "partition", "offset", "duplicate"]);
    for x in p {
        rs.rows.push(vec![
            Value::Text(x.topic.clone()),
            Value::Int(i64::from(x.partition)),
            Value::Int(i64::try_from(x.offset).unwrap_or(i64::MAX)),
            Value::Bool(x.duplicate),
        ]);
    }
    rs
}

/// The rows CONSUME returns.
pub(crate) fn deliveries(d: &[Delivery]) -> ResultSet {
    let mut rs = ResultSet::with_columns([
        "delivery",
        "topic",
        "partition",
        "offset",
        "key",
        "attempt",
        "timestamp",
        "headers",
        "payload",
    ]);
    for x in d {
        let headers = x
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect::<serde_json::Map<_, _>>();
        rs.rows.push(vec![
            Value::Int(i64::try_from(x.id).unwrap_or(i64::MAX)),
            Value::Text(x.topic.clone()),
            Value::Int(i64::from(x.partition)),
            Value::Int(i64::try_from(x.offset).unwrap_or(i64::MAX)),
            x.key.clone().map_or(Value::Null, Value::Text),
            Value::Int(i64::from(x.attempt)),
            Value::Timestamp(x.timestamp),
            Value::Json(serde_json::Value::Object(headers)),
            Value::Text(x.payload_str().into_owned()),
        ]);
    }
    rs
}

fn show_topics(db: &Database, kind: TopicKind) -> Result<ResultSet> {
    let all = db.read(|c, _| Ok(query::rows_result(query::topics_rows(c)?, Source::Topics)))?;
    let want = match kind {
        TopicKind::Topic => "topic",
        TopicKind::Queue => "queue",
    };
    let keep: &[&str] = match kind {
        TopicKind::Topic => &[
            "name",
            "partitions",
            "messages",
            "bytes",
            "retention",
            "groups",
        ],
        TopicKind::Queue => &["name", "messages", "bytes", "max_deliveries", "ack_wait"],
    };
    let idx: Vec<usize> = keep
        .iter()
        .filter_map(|k| all.columns.iter().position(|c| c == k))
        .collect();
    let kind_col = all.columns.iter().position(|c| c == "kind");
    let mut rs = ResultSet::with_columns(keep.iter().copied());
    for row in all.rows {
        if kind_col.and_then(|i| row.get(i)) == Some(&Value::Text(want.into())) {
            rs.rows.push(idx.iter().map(|&i| row[i].clone()).collect());
        }
    }
    Ok(rs)
}

fn describe(db: &Database, name: &str) -> Result<ResultSet> {
    db.read(|c, _| {
        let t = topic::get(c, name)?;
        let s = topic::stats(c, t.id)?;
        let mut rs = ResultSet::with_columns(["property", "value"]);
        let mut add = |k: &str, v: Value| rs.rows.push(vec![Value::Text(k.into()), v]);
        add("name", Value::Text(t.name.clone()));
        add("kind", Value::Text(topic::kind_str(t.kind).into()));
        add("partitions", Value::Int(i64::from(t.partitions)));
        add(
            "retention",
            Value::Text(match t.retention {
                Retention::Age(d) => units::display_duration(d),
                Retention::Size(b) => units::display_size(b),
                Retention::Messages(n) => format!("{n} MESSAGES"),
                Retention::UntilConsumed => "UNTIL CONSUMED".into(),
                Retention::Forever => "FOREVER".into(),
            }),
        );
        add(
            "max_length",
            t.max_length.map_or(Value::Null, |m| Value::Int(i64::try_from(m).unwrap_or(i64::MAX))),
        );
        add(
            "overflow",
            Value::Text(match t.overflow {
                crate::Overflow::Reject => "REJECT".into(),
                crate::Overflow::DropOldest => "DROP OLDEST".into(),
            }),
        );
        add("dedup_window", Value::Text(units::display_duration(t.dedup_window)));
        add("max_deliveries", Value::Int(i64::from(t.max_deliveries)));
        add("ack_wait", Value::Text(units::display_duration(t.ack_wait)));
        add("messages", Value::Int(i64::try_from(s.messages).unwrap_or(i64::MAX)));
        add("bytes", Value::Int(i64::try_from(s.bytes).unwrap_or(i64::MAX)));
        let mut st = c.prepare_cached(
            "SELECT partition, low_offset, next_offset FROM mq_partitions WHERE topic_id = ?1 ORDER BY partition",
        )?;
        let parts: Vec<(i64, i64, i64)> =
            st.query_map([t.id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<_>>()?;
        for (p, low, next) in parts {
            add(&format!("partition {p}"), Value::Text(format!("offsets {low}..{next}")));
        }
        let groups = query::groups_rows(c, 0, Some(t.id))?;
        for g in groups {
            if let (Some(SqlValue::Text(gname)), Some(SqlValue::Integer(pending)), Some(SqlValue::Integer(lag))) =
                (g.first(), g.get(3), g.get(4))
            {
                add(&format!("group {gname}"), Value::Text(format!("pending {pending}, lag {lag}")));
            }
        }
        Ok(rs)
    })
}

fn check(db: &Database) -> Result<ResultSet> {
    db.read(|c, _| {
        let mut problems: Vec<String> = Vec::new();
        let mut st = c.prepare("PRAGMA integrity_check")?;
        let rows: Vec<String> = st.query_map([], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
        problems.extend(rows.into_iter().filter(|r| r != "ok"));
        let bad: i64 = c.query_row(
            "SELECT COUNT(*) FROM mq_partitions p WHERE p.low_offset > p.next_offset
               OR (SELECT COUNT(*) FROM mq_messages m WHERE m.topic_id = p.topic_id AND m.partition = p.partition)
                  != p.next_offset - p.low_offset",
            [],
            |r| r.get(0),
        )?;
        if bad > 0 {
            problems.push(format!("{bad} partition(s) whose stored messages do not match their offsets"));
        }
        let mut rs = ResultSet::with_columns(["result"]);
        if problems.is_empty() {
            rs.rows.push(vec![Value::Text("ok".into())]);
        }
        for p in problems {
            rs.rows.push(vec![Value::Text(p)]);
        }
        Ok(rs)
    })
}
