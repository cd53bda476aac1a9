//! Executes statements of the language through the typed API: every
//! statement calls the same `Database` or `Transaction` method a Rust
//! program calls. The SELECT planner (`query`) is the only part of the
//! language that emits SQL, and it reads through the handle's read path.

use std::sync::atomic::AtomicBool;

use super::ast::{
    BinaryOp, Consume, ConsumeSource, DlqOp, Export, Expr, Import, Literal, PathSegment, Payload,
    Publish, Select, SelectItem, Source, Statement, Subscribe, SubscribeTarget, Tail, TopicKind,
    TopicOption,
};
use super::{display, jsonl, query};
use crate::db::{GroupStats, TopicSummary};
use crate::delivery::{ConsumeRequest, Delivery};
use crate::dlq::Requeued;
use crate::group::{PendingDelivery, Subscription};
use crate::input::{MAX_LINE_BYTES, read_line_limited};
use crate::publish::{Message, Published};
use crate::storage::files::{create_private, refuse_database_files};
use crate::topic::{PartitionInfo, TopicInfo, TopicOptions, TopicStats};
use crate::txn::Transaction;
use crate::{Database, Error, FileProblem, Result, ResultSet, Value};

/// Where statements run: each in its own transaction, or inside an explicit one.
pub(crate) enum Runner<'a> {
    /// Each statement is its own write transaction.
    Auto(&'a Database),
    /// Statements run inside this transaction.
    Tx(&'a mut Transaction),
}

/// Calls the same method on the database or the transaction.
macro_rules! either {
    ($r:expr, $x:ident => $call:expr) => {
        match $r {
            Runner::Auto($x) => $call,
            Runner::Tx($x) => $call,
        }
    };
}

impl Runner<'_> {
    fn db(&self) -> &Database {
        match self {
            Runner::Auto(db) => db,
            Runner::Tx(tx) => tx.database(),
        }
    }

    fn in_transaction(&self) -> bool {
        matches!(self, Runner::Tx(_))
    }

    /// Runs the SELECT planner on the handle's read path (or inside the
    /// transaction, which sees its own changes).
    fn select(&mut self, q: &Select) -> Result<ResultSet> {
        match self {
            Runner::Auto(db) => db.read(|c, now| query::select(c, now, q)),
            Runner::Tx(tx) => tx.step(|c| query::select(c, c.now, q)),
        }
    }

    fn topic_summaries(&mut self) -> Result<Vec<TopicSummary>> {
        either!(self, x => x.topic_summaries())
    }

    fn group_stats(&mut self, topic: Option<&str>) -> Result<Vec<GroupStats>> {
        either!(self, x => x.group_stats(topic))
    }

    fn deliveries(&mut self) -> Result<Vec<PendingDelivery>> {
        either!(self, x => x.deliveries(None))
    }

    fn topic(&mut self, name: &str) -> Result<(TopicInfo, TopicStats, Vec<PartitionInfo>)> {
        either!(self, x => Ok((x.topic(name)?, x.topic_stats(name)?, x.partitions(name)?)))
    }

    fn partitions(&mut self, topic: &str) -> Result<Vec<PartitionInfo>> {
        either!(self, x => x.partitions(topic))
    }

    fn publish(&mut self, topic: &str, msgs: Vec<Message>) -> Result<Vec<Published>> {
        either!(self, x => x.publish_batch(topic, msgs))
    }
}

/// Runs one statement in its own transaction, passing its result(s) to `out`.
pub(crate) fn run(
    db: &Database,
    interrupt: &AtomicBool,
    progress: Option<&mut Progress<'_>>,
    stmt: &Statement,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    let mut quiet = |_: &str, _: u64, _: u64| {};
    let progress = progress.unwrap_or(&mut quiet);
    match stmt {
        Statement::Bench(b) => out(super::bench::run(db, b, progress)?),
        Statement::Tail(t) => tail(db, interrupt, t, out),
        Statement::Backup(b) => {
            let copied = db.backup(&b.file, |done, total| progress("backup", done, total))?;
            out(backed_up(&copied))
        }
        Statement::Consume(c) => out(deliveries(
            &db.consume_until(&consume_request(c), Some(interrupt))?,
        )),
        _ => run_with(Runner::Auto(db), progress, stmt, out),
    }
}

/// BACKUP's row: pages and bytes copied.
fn backed_up(b: &crate::BackupStats) -> ResultSet {
    ResultSet {
        columns: vec!["pages".into(), "bytes".into()],
        rows: vec![vec![count(b.pages), count(b.bytes)]],
    }
}

/// A callback for long statements (BENCH, BACKUP, EXPORT, IMPORT, large
/// REQUEUE DLQ): `(step, done, total)`.
pub(crate) type Progress<'a> = dyn FnMut(&str, u64, u64) + Send + 'a;

/// Runs one statement inside a transaction.
pub(crate) fn run_in(
    tx: &mut Transaction,
    stmt: &Statement,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    run_with(Runner::Tx(tx), &mut |_, _, _| {}, stmt, out)
}

fn run_with(
    mut r: Runner<'_>,
    progress: &mut Progress<'_>,
    stmt: &Statement,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    let rs = match stmt {
        Statement::Create(c) => {
            let o = options(&c.options)?;
            either!(&mut r, x => x.create(c.kind, &c.name, c.if_not_exists, &o))?;
            ResultSet::empty()
        }
        Statement::Alter(a) => {
            let o = alter_options(&a.options)?;
            either!(&mut r, x => x.alter(a.kind, &a.name, &o))?;
            ResultSet::empty()
        }
        Statement::Drop(d) => {
            either!(&mut r, x => x.drop_topic(d.kind, &d.name, d.if_exists))?;
            ResultSet::empty()
        }
        Statement::ShowTopics => show_topics(&r.topic_summaries()?, TopicKind::Topic),
        Statement::ShowQueues => show_topics(&r.topic_summaries()?, TopicKind::Queue),
        Statement::ShowGroups(on) => query::rows_result(
            query::groups_rows(&r.group_stats(on.as_deref())?),
            Source::Groups,
        ),
        Statement::Describe(name) => describe(&mut r, name)?,
        Statement::Publish(p) => published(&r.publish(&p.topic, messages_of(p)?)?),
        Statement::Subscribe(s) => {
            let sub = subscription(s);
            either!(&mut r, x => x.subscribe(&s.group, &sub))?;
            ResultSet::empty()
        }
        Statement::Unsubscribe(u) => {
            either!(&mut r, x => x.unsubscribe(&u.group, u.from.as_deref()))?;
            ResultSet::empty()
        }
        Statement::Ack(ids) => {
            either!(&mut r, x => x.ack(ids))?;
            ResultSet::empty()
        }
        Statement::Nack(n) => {
            match &n.reason {
                Some(why) => either!(&mut r, x => x.nack_with_reason(&n.ids, &n.action, why))?,
                None => either!(&mut r, x => x.nack(&n.ids, &n.action))?,
            }
            ResultSet::empty()
        }
        Statement::Purge(name) => one("purged", count(either!(&mut r, x => x.purge(name))?)),
        Statement::Check => {
            either!(&mut r, x => x.check())?;
            one("result", Value::Text("ok".into()))
        }
        Statement::Select(q) => r.select(q)?,
        Statement::Replay(rp) => {
            either!(&mut r, x => x.replay(&rp.topic, &rp.group, rp.from))?;
            ResultSet::empty()
        }
        Statement::RequeueDlq(op) => requeue_dlq(&mut r, op, progress)?,
        Statement::PurgeDlq(op) => purge_dlq(&mut r, op)?,
        Statement::Begin | Statement::Commit | Statement::Rollback => {
            return Err(transaction_control(stmt, r.in_transaction()));
        }
        Statement::Export(e) => one("exported", count(export(&mut r, e, progress)?)),
        Statement::Import(i) => one("imported", count(import(&mut r, i, progress)?)),
        // `run` takes these outside a transaction, with the interrupt flag.
        Statement::Consume(c) => deliveries(&either!(&mut r, x => x.consume(&consume_request(c)))?),
        Statement::Bench(_) => return Err(not_in_transaction("BENCH")),
        Statement::Tail(_) => return Err(not_in_transaction("TAIL")),
        Statement::Backup(_) => return Err(not_in_transaction("BACKUP")),
        Statement::SetClock(_) => return Err(not_in_transaction("SET CLOCK")),
        Statement::Advance(_) => return Err(not_in_transaction("ADVANCE")),
        Statement::ShowClock => super::session::clock_row(r.db()),
    };
    out(rs)
}

/// BENCH, TAIL, BACKUP and the clock statements reach `run_with` only
/// inside a transaction.
fn not_in_transaction(statement: &str) -> Error {
    Error::NotAllowedInTransaction {
        statement: statement.into(),
    }
}

/// BEGIN, COMMIT and ROLLBACK reach the executor only where they cannot run.
fn transaction_control(stmt: &Statement, in_transaction: bool) -> Error {
    Error::Transaction(match (stmt, in_transaction) {
        (Statement::Begin, true) => {
            "BEGIN inside a transaction: COMMIT or ROLLBACK the open one first".into()
        }
        (Statement::Begin, false) => {
            "BEGIN needs a session (the shell, or Database::session)".into()
        }
        (_, true) => {
            "COMMIT and ROLLBACK end a transaction through its owner (Transaction::commit)".into()
        }
        (_, false) => "there is no open transaction (BEGIN starts one)".into(),
    })
}

/// The messages a PUBLISH statement stores.
fn messages_of(p: &Publish) -> Result<Vec<Message>> {
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
                return Err(Error::InvalidStatement(format!(
                    "header '{k}' is given twice"
                )));
            }
        }
        msgs.push(m);
    }
    if p.dedup.is_some() && msgs.len() > 1 {
        return Err(Error::InvalidStatement(
            "DEDUP names one message: publish several payloads with one DEDUP id each in separate statements".into(),
        ));
    }
    Ok(msgs)
}

fn subscription(s: &Subscribe) -> Subscription {
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
    sub
}

fn consume_request(c: &Consume) -> ConsumeRequest {
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
    req
}

fn one(column: &str, v: Value) -> ResultSet {
    ResultSet {
        columns: vec![column.to_string()],
        rows: vec![vec![v]],
    }
}

/// ALTER's options: at least one.
fn alter_options(opts: &[TopicOption]) -> Result<TopicOptions> {
    if opts.is_empty() {
        return Err(Error::Incomplete {
            statement: "ALTER".into(),
            needs: "at least one option after SET".into(),
        });
    }
    options(opts)
}

fn options(opts: &[TopicOption]) -> Result<TopicOptions> {
    let mut o = TopicOptions::default();
    fn set<T>(slot: &mut Option<T>, v: T, name: &str) -> Result<()> {
        if slot.is_some() {
            return Err(Error::option(name, format!("option {name} is given twice")));
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
            Value::payload(x.payload.clone()),
        ]);
    }
    rs
}

fn show_topics(all: &[TopicSummary], kind: TopicKind) -> ResultSet {
    let all = query::rows_result(query::topics_rows(all), Source::Topics);
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
    rs
}

fn describe(r: &mut Runner<'_>, name: &str) -> Result<ResultSet> {
    let (t, s, parts) = r.topic(name)?;
    let groups = r.group_stats(Some(name))?;
    let mut rs = ResultSet::with_columns(["property", "value"]);
    let mut add = |k: &str, v: Value| rs.rows.push(vec![Value::Text(k.into()), v]);
    add("name", Value::Text(t.name.clone()));
    add("kind", Value::Text(crate::topic::kind_str(t.kind).into()));
    add("partitions", Value::Int(i64::from(t.partitions)));
    add("retention", Value::Text(t.retention.to_string()));
    add("max_length", t.max_length.map_or(Value::Null, count));
    add("overflow", Value::Text(t.overflow.to_string()));
    add(
        "dedup_window",
        Value::Text(display::duration_text(t.dedup_window)),
    );
    add("max_deliveries", Value::Int(i64::from(t.max_deliveries)));
    add("ack_wait", Value::Text(display::duration_text(t.ack_wait)));
    add("messages", count(s.messages));
    add("bytes", count(s.bytes));
    for p in parts {
        let offsets = format!("offsets {}..{}", p.low_offset, p.next_offset);
        add(&format!("partition {}", p.partition), Value::Text(offsets));
    }
    for g in groups {
        let v = format!("pending {}, lag {}", g.pending, g.lag);
        add(&format!("group {}", g.group), Value::Text(v));
    }
    describe_deliveries(r, &t.name, &mut rs)?;
    Ok(rs)
}

/// DESCRIBE's row per group that holds messages of the topic, counted by
/// state (`deliveries billing` = `in_flight 2, blocked 1`), from DELIVERIES.
fn describe_deliveries(r: &mut Runner<'_>, topic: &str, rs: &mut ResultSet) -> Result<()> {
    use crate::DeliveryState::{Blocked, Delayed, InFlight, Waiting};
    const STATES: [crate::DeliveryState; 4] = [InFlight, Waiting, Delayed, Blocked];
    // Rows come by group, so each group's rows are consecutive.
    let mut groups: Vec<(String, [u64; 4])> = Vec::new();
    for d in r.deliveries()?.into_iter().filter(|d| d.topic == topic) {
        if groups.last().is_none_or(|(g, _)| *g != d.group) {
            groups.push((d.group.clone(), [0; 4]));
        }
        let i = STATES.iter().position(|s| *s == d.state);
        if let (Some((_, n)), Some(i)) = (groups.last_mut(), i) {
            n[i] += 1;
        }
    }
    for (group, n) in groups {
        let counts: Vec<String> = STATES
            .iter()
            .zip(n)
            .filter(|(_, k)| *k > 0)
            .map(|(s, k)| format!("{s} {k}"))
            .collect();
        rs.rows.push(vec![
            Value::Text(format!("deliveries {group}")),
            Value::Text(counts.join(", ")),
        ]);
    }
    Ok(())
}

fn count(n: u64) -> Value {
    Value::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn column(name: &str) -> Expr {
    Expr::Path(vec![PathSegment::Field(name.to_string())])
}

fn and(a: Expr, b: Expr) -> Expr {
    Expr::Binary {
        left: Box::new(a),
        op: BinaryOp::And,
        right: Box::new(b),
    }
}

fn equals(name: &str, v: Literal) -> Expr {
    Expr::Binary {
        left: Box::new(column(name)),
        op: BinaryOp::Eq,
        right: Box::new(Expr::Literal(v)),
    }
}

/// The SELECT of `items` over the dead letters a REQUEUE/PURGE DLQ names,
/// oldest first.
fn dlq_select(op: &DlqOp, items: &[&str]) -> Select {
    let mut conds = Vec::new();
    if let Some(t) = &op.topic {
        conds.push(equals("topic", Literal::String(t.clone())));
    }
    if let Some(g) = &op.group {
        conds.push(equals("group", Literal::String(g.clone())));
    }
    if let Some(f) = &op.filter {
        conds.push(f.clone());
    }
    Select {
        items: items
            .iter()
            .map(|&c| SelectItem::Expr {
                expr: column(c),
                alias: Some(c.to_string()),
            })
            .collect(),
        source: Source::Dlq,
        filter: conds.into_iter().reduce(and),
        group_by: Vec::new(),
        order_by: Vec::new(),
        limit: op.limit,
        offset: None,
    }
}

/// The ids in the first column of `rs`.
fn ids_of(rs: &ResultSet) -> Vec<i64> {
    rs.rows
        .iter()
        .filter_map(|r| match r.first() {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        })
        .collect()
}

/// A topic or group a REQUEUE/PURGE DLQ names must exist, as a topic or
/// group or in a dead letter (a dropped topic's dead letters stay, and
/// must stay purgeable by name): a typo is an error, not 0 rows.
fn dlq_names_exist(r: &mut Runner<'_>, op: &DlqOp) -> Result<()> {
    let named = |r: &mut Runner<'_>, col: &str, v: &str| -> Result<bool> {
        let q = dlq_select(
            &DlqOp {
                topic: None,
                group: None,
                filter: Some(equals(col, Literal::String(v.to_string()))),
                limit: Some(1),
                dry_run: false,
            },
            &["id"],
        );
        Ok(!r.select(&q)?.rows.is_empty())
    };
    if let Some(t) = &op.topic
        && !named(r, "topic", t)?
    {
        either!(r, x => x.topic(t))?;
    }
    if let Some(g) = &op.group
        && !named(r, "group", g)?
        && !either!(r, x => x.groups())?.iter().any(|x| &x.name == g)
    {
        return Err(Error::GroupNotFound(g.clone()));
    }
    Ok(())
}

/// Ids of the dead letters a REQUEUE/PURGE DLQ selects, oldest first.
fn dlq_ids(r: &mut Runner<'_>, op: &DlqOp) -> Result<Vec<i64>> {
    dlq_names_exist(r, op)?;
    Ok(ids_of(&r.select(&dlq_select(op, &["id"]))?))
}

/// REQUEUE DLQ: `requeued, skipped` (dead letters whose group no longer
/// reads their topic stay in the DLQ), or the DRY RUN listing.
fn requeue_dlq(r: &mut Runner<'_>, op: &DlqOp, progress: &mut Progress<'_>) -> Result<ResultSet> {
    if op.dry_run {
        return dlq_preview(r, op, true);
    }
    let ids = dlq_ids(r, op)?;
    let done = requeue(r, &ids, progress)?;
    Ok(ResultSet {
        columns: vec!["requeued".into(), "skipped".into()],
        rows: vec![vec![count(done.requeued), count(done.skipped.len() as u64)]],
    })
}

/// PURGE DLQ: `purged`, or the DRY RUN listing.
fn purge_dlq(r: &mut Runner<'_>, op: &DlqOp) -> Result<ResultSet> {
    if op.dry_run {
        return dlq_preview(r, op, false);
    }
    let ids = dlq_ids(r, op)?;
    Ok(one("purged", count(either!(r, x => x.purge_dlq(&ids))?)))
}

/// What a REQUEUE/PURGE DLQ ... DRY RUN shows of each dead letter it would
/// take (the payload and headers stay in `SELECT * FROM DLQ`).
const DRY_RUN_COLUMNS: &[&str] = &[
    "id",
    "topic",
    "group",
    "partition",
    "offset",
    "key",
    "attempts",
    "reason",
    "failed_at",
];

/// DRY RUN: the dead letters the statement would take, changing nothing.
/// For REQUEUE a last column `skipped` says why one would stay in the DLQ
/// (NULL: it would be requeued).
fn dlq_preview(r: &mut Runner<'_>, op: &DlqOp, requeue: bool) -> Result<ResultSet> {
    dlq_names_exist(r, op)?;
    let mut rs = r.select(&dlq_select(op, DRY_RUN_COLUMNS))?;
    if requeue {
        let ids = ids_of(&rs);
        let orphans = either!(r, x => x.dlq_orphans(&ids))?;
        rs.columns.push("skipped".into());
        for row in &mut rs.rows {
            let id = match row.first() {
                Some(Value::Int(i)) => Some(*i),
                _ => None,
            };
            let why = orphans.iter().find(|o| Some(o.id) == id);
            row.push(why.map_or(Value::Null, |o| Value::Text(o.why())));
        }
    }
    Ok(rs)
}

/// Dead letters a large REQUEUE DLQ moves per step.
const REQUEUE_CHUNK: usize = 1000;

/// REQUEUE DLQ of `ids`: one write; past `REQUEUE_CHUNK` ids, one
/// transaction of chunks that tells `progress` ("REQUEUE", dead letters
/// done, ids), all or nothing alike.
fn requeue(r: &mut Runner<'_>, ids: &[i64], progress: &mut Progress<'_>) -> Result<Requeued> {
    if ids.len() <= REQUEUE_CHUNK {
        return either!(r, x => x.requeue_dlq(ids));
    }
    let total = ids.len() as u64;
    let mut chunks = |tx: &mut Transaction| -> Result<Requeued> {
        let mut all = Requeued::default();
        let mut done = 0;
        for chunk in ids.chunks(REQUEUE_CHUNK) {
            let part = tx.requeue_dlq(chunk)?;
            all.requeued += part.requeued;
            all.skipped.extend(part.skipped);
            done += chunk.len() as u64;
            progress("REQUEUE", done, total);
        }
        Ok(all)
    };
    match r {
        Runner::Auto(db) => {
            let mut tx = db.transaction()?;
            let n = chunks(&mut tx)?;
            tx.commit()?;
            Ok(n)
        }
        Runner::Tx(tx) => tx.atomically(chunks),
    }
}

/// The messages of a topic matching a filter, in partition/offset order.
fn messages(topic: &str, filter: Option<Expr>) -> Select {
    Select {
        items: vec![SelectItem::Star],
        source: Source::Topic(topic.to_string()),
        filter,
        group_by: Vec::new(),
        order_by: Vec::new(),
        limit: None,
        offset: None,
    }
}

/// Messages EXPORT reads per partition and query: memory stays bounded
/// and no read transaction stays open for the whole file.
const EXPORT_PAGE: u64 = 1000;

/// EXPORT: one JSON object per message (`jsonl::export_line`), partition by
/// partition in offset order, read a page of offsets at a time. Tells
/// `progress` ("EXPORT", offsets read, offsets stored when it started).
///
/// The file is created 0600. An existing file is refused unless the
/// statement says OVERWRITE, and a path that is (or resolves to) the
/// database file or one of its -wal/-shm/-journal files is always refused.
fn export(r: &mut Runner<'_>, e: &Export, progress: &mut Progress<'_>) -> Result<u64> {
    use std::io::Write;
    let target = std::path::Path::new(&e.file);
    refuse_database_files(r.db().path(), target)?;
    let parts = r.partitions(&e.topic)?;
    let total: u64 = parts.iter().map(|p| p.next_offset - p.low_offset).sum();
    let out = OutputFile::create(target, e.overwrite)?;
    let mut w = std::io::BufWriter::new(&out.file);
    let (mut read, mut written) = (0, 0);
    for p in &parts {
        let mut from = p.low_offset;
        while from < p.next_offset {
            let to = p.next_offset.min(from.saturating_add(EXPORT_PAGE));
            let window = offsets_window(e.filter.as_ref(), p.partition, from, to);
            let rs = r.select(&messages(&e.topic, Some(window)))?;
            for row in &rs.rows {
                writeln!(w, "{}", jsonl::export_line(&rs.columns, row))?;
            }
            written += rs.rows.len() as u64;
            read += to - from;
            progress("EXPORT", read, total);
            from = to;
        }
    }
    w.flush()?;
    drop(w);
    out.finish()?;
    Ok(written)
}

/// A file mqlite writes for the user: created 0600 whatever the umask.
///
/// Without `overwrite` the file itself is created (an existing one is
/// refused) and removed again if writing fails. With `overwrite` the data
/// goes to a new file beside it, which replaces the target only once it is
/// complete and synced, so a failed EXPORT leaves the old file as it was.
struct OutputFile {
    file: std::fs::File,
    /// Where the data is written.
    written: std::path::PathBuf,
    /// Where it must end up, when that differs.
    rename_to: Option<std::path::PathBuf>,
}

impl OutputFile {
    fn create(target: &std::path::Path, overwrite: bool) -> Result<OutputFile> {
        let written = if overwrite {
            let name = target.file_name().ok_or_else(|| Error::OutputFile {
                path: target.to_path_buf(),
                problem: FileProblem::NotAFileName,
            })?;
            let mut tmp = std::ffi::OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".mqlite-{}.tmp", std::process::id()));
            target.with_file_name(tmp)
        } else {
            target.to_path_buf()
        };
        let file = create_private(&written).map_err(|err| Error::OutputFile {
            path: target.to_path_buf(),
            problem: if !overwrite && err.kind() == std::io::ErrorKind::AlreadyExists {
                FileProblem::Exists
            } else {
                FileProblem::Io(err)
            },
        })?;
        Ok(OutputFile {
            file,
            written,
            rename_to: overwrite.then(|| target.to_path_buf()),
        })
    }

    /// Syncs the data and moves it into place.
    fn finish(mut self) -> Result<()> {
        self.file.sync_all()?;
        if let Some(to) = self.rename_to.take() {
            std::fs::rename(&self.written, to)?;
        }
        self.written = std::path::PathBuf::new();
        Ok(())
    }
}

impl Drop for OutputFile {
    /// An unfinished output (an error on the way) is removed.
    fn drop(&mut self) {
        if !self.written.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.written);
        }
    }
}

/// IMPORT: publishes every line of a jsonl file (as EXPORT writes them) in
/// one transaction. The file is read as it is published, a chunk of lines
/// at a time, and no line may be longer than [`MAX_LINE_BYTES`], so memory
/// stays bounded whatever the file (even `/dev/zero`). Tells `progress`
/// ("IMPORT", bytes read, the file's size).
fn import(r: &mut Runner<'_>, i: &Import, progress: &mut Progress<'_>) -> Result<u64> {
    let file = std::fs::File::open(&i.file).map_err(|source| Error::ImportFile {
        path: i.file.clone().into(),
        source,
    })?;
    let size = file.metadata().map_or(0, |m| m.len());
    let mut lines = Counted {
        inner: std::io::BufReader::new(file),
        read: 0,
    };
    let db = r.db();
    if db.is_read_only() {
        return Err(Error::ReadOnly("IMPORT".into()));
    }
    db.check_disk_reserve("IMPORT")?;
    let mut told = |read: u64| progress("IMPORT", read, size.max(read));
    match r {
        Runner::Auto(db) => {
            let mut tx = db.transaction()?;
            let n = import_lines(&mut tx, i, &mut lines, &mut told)?;
            tx.commit()?;
            Ok(n)
        }
        Runner::Tx(tx) => tx.atomically(|tx| import_lines(tx, i, &mut lines, &mut told)),
    }
}

/// A reader that counts the bytes taken from it.
struct Counted<R> {
    inner: R,
    read: u64,
}

impl<R: std::io::Read> std::io::Read for Counted<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        Ok(n)
    }
}

impl<R: std::io::BufRead> std::io::BufRead for Counted<R> {
    fn fill_buf(&mut self) -> std::io::Result<&[u8]> {
        self.inner.fill_buf()
    }
    fn consume(&mut self, n: usize) {
        self.read += n as u64;
        self.inner.consume(n);
    }
}

/// Publishes the lines of an IMPORT file in chunks of 1,000 messages.
///
/// A message keeps its exported timestamp as far as the partition's
/// monotonic times allow (`Message::timestamp`). A message without a key
/// goes back to its exported partition when the topic has it; a keyed one
/// goes where its key hashes, so later messages of the key follow it.
fn import_lines(
    tx: &mut Transaction,
    i: &Import,
    lines: &mut Counted<impl std::io::BufRead>,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    const CHUNK: usize = 1000;
    let partitions = tx.topic(&i.topic)?.partitions;
    let (mut line, mut n, mut total) = (Vec::new(), 0usize, 0u64);
    let mut chunk = Vec::with_capacity(CHUNK);
    loop {
        let more = read_line_limited(lines, MAX_LINE_BYTES, &mut line)
            .map_err(|e| import_error(i, n + 1, e.to_string()))?;
        if more {
            n += 1;
            if let Some(m) = jsonl::import_line(&line).map_err(|why| import_error(i, n, why))? {
                let mut message = m.message;
                if message.key.is_none() {
                    message.partition = m.partition.filter(|p| *p < partitions);
                }
                chunk.push(message);
            }
        }
        if chunk.len() == CHUNK || (!more && !chunk.is_empty()) {
            let batch = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            total += tx.publish_batch(&i.topic, batch)?.len() as u64;
            progress(lines.read);
        }
        if !more {
            return Ok(total);
        }
    }
}

/// Line `line` of the IMPORT file cannot be read or is not a message.
fn import_error(i: &Import, line: usize, reason: String) -> Error {
    Error::ImportLine {
        path: i.file.clone().into(),
        line,
        reason,
    }
}

/// TAIL: follows new messages until interrupted.
fn tail(
    db: &Database,
    interrupt: &AtomicBool,
    t: &Tail,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    let mut next: HashMap<u32, u64> = db
        .partitions(&t.topic)?
        .into_iter()
        .map(|p| (p.partition, p.next_offset))
        .collect();
    let mut idle = std::time::Duration::from_millis(5);
    while !interrupt.load(Ordering::Relaxed) {
        let mut got = false;
        // The ends first, then the rows below them: every offset below an
        // end already read is committed, so no row can be skipped by a
        // commit landing between the two reads (as it could when the end
        // was read after the rows).
        for p in db.partitions(&t.topic)? {
            let from = *next.get(&p.partition).unwrap_or(&0);
            if p.next_offset <= from {
                continue;
            }
            let q = messages(
                &t.topic,
                Some(offsets_window(
                    t.filter.as_ref(),
                    p.partition,
                    from,
                    p.next_offset,
                )),
            );
            // Advance past everything stored below the end, matching or not.
            let rs = db.read(|c, now| query::select(c, now, &q))?;
            next.insert(p.partition, p.next_offset);
            got = true;
            if !rs.rows.is_empty() {
                out(rs)?;
            }
        }
        if got {
            idle = std::time::Duration::from_millis(5);
        } else {
            std::thread::sleep(idle);
            idle = (idle * 2).min(std::time::Duration::from_millis(100));
        }
    }
    Ok(())
}

/// The rows of one partition at offsets `from..end` that match `filter`
/// (TAIL's new rows, a page of EXPORT).
fn offsets_window(filter: Option<&Expr>, partition: u32, from: u64, end: u64) -> Expr {
    let offset = |op, v: u64| Expr::Binary {
        left: Box::new(column("offset")),
        op,
        right: Box::new(Expr::Literal(Literal::Int(
            i64::try_from(v).unwrap_or(i64::MAX),
        ))),
    };
    let mut window = and(
        equals("partition", Literal::Int(i64::from(partition))),
        and(offset(BinaryOp::GtEq, from), offset(BinaryOp::Lt, end)),
    );
    if let Some(f) = filter {
        window = and(window, f.clone());
    }
    window
}
