//! Executes statements of the language through the library API.

use std::sync::atomic::AtomicBool;

use rusqlite::types::Value as SqlValue;

use super::ast::{
    BinaryOp, ConsumeSource, DlqOp, Export, Expr, Import, Literal, PathSegment, Payload, Select,
    SelectItem, Source, Statement, SubscribeTarget, Tail, TopicKind, TopicOption,
};
use super::{display, query};
use rusqlite::Connection;

use crate::db::ConsumeRequest;
use crate::group::{self, Delivery, Subscription};
use crate::input::{MAX_LINE_BYTES, read_line_limited};
use crate::publish;
use crate::publish::{Message, Published};
use crate::topic::{self, TopicOptions};
use crate::txn::Transaction;
use crate::{Database, Error, Result, ResultSet, Value};

/// Runs one statement, passing its result(s) to `out`.
/// Where statements run: each in its own transaction, or inside an explicit one.
pub(crate) enum Runner<'a> {
    /// Each statement is its own write transaction.
    Auto(&'a Database),
    /// Statements run inside this transaction.
    Tx(&'a mut Transaction),
}

impl Runner<'_> {
    fn db(&self) -> Database {
        match self {
            Runner::Auto(db) => (*db).clone(),
            Runner::Tx(tx) => tx.database().clone(),
        }
    }

    fn write<T>(&mut self, what: &str, f: impl FnOnce(&Connection, i64) -> Result<T>) -> Result<T> {
        match self {
            Runner::Auto(db) => db.write(what, f),
            Runner::Tx(tx) => tx.step(f),
        }
    }

    fn read<T>(&mut self, f: impl FnOnce(&Connection, i64) -> Result<T>) -> Result<T> {
        match self {
            Runner::Auto(db) => db.read(f),
            Runner::Tx(tx) => tx.step(f),
        }
    }

    /// Something was published or made deliverable: wake waiting consumers
    /// (at once, or when the transaction commits).
    fn wrote(&mut self) {
        match self {
            Runner::Auto(db) => db.wake_waiters(),
            Runner::Tx(tx) => tx.note_published(),
        }
    }

    fn in_transaction(&self) -> bool {
        matches!(self, Runner::Tx(_))
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
    run_with(Runner::Auto(db), interrupt, progress, stmt, out)
}

/// A callback for long statements (BENCH): `(step, done, total)`.
pub(crate) type Progress<'a> = dyn FnMut(&str, u64, u64) + Send + 'a;

/// Runs one statement inside a transaction.
pub(crate) fn run_in(
    tx: &mut Transaction,
    stmt: &Statement,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    run_with(Runner::Tx(tx), &AtomicBool::new(false), None, stmt, out)
}

fn run_with(
    mut r: Runner<'_>,
    interrupt: &AtomicBool,
    progress: Option<&mut Progress<'_>>,
    stmt: &Statement,
    out: &mut dyn FnMut(ResultSet) -> Result<()>,
) -> Result<()> {
    let rs = match stmt {
        Statement::Create(c) => {
            let o = options(&c.options)?;
            r.write("CREATE", |conn, now| {
                topic::create(conn, now, c.kind, &c.name, c.if_not_exists, &o)
            })?;
            ResultSet::empty()
        }
        Statement::Alter(a) => {
            if a.options.is_empty() {
                return Err(Error::invalid("ALTER needs at least one option after SET"));
            }
            let o = options(&a.options)?;
            r.write("ALTER", |conn, _| topic::alter(conn, a.kind, &a.name, &o))?;
            ResultSet::empty()
        }
        Statement::Drop(d) => {
            r.write("DROP", |conn, _| {
                topic::drop(conn, d.kind, &d.name, d.if_exists)
            })?;
            ResultSet::empty()
        }
        Statement::ShowTopics => show_topics(&mut r, TopicKind::Topic)?,
        Statement::ShowQueues => show_topics(&mut r, TopicKind::Queue)?,
        Statement::ShowGroups(on) => r.read(|c, now| {
            let only = match on {
                Some(name) => Some(topic::get(c, name)?.id),
                None => None,
            };
            Ok(query::rows_result(
                query::groups_rows(c, now, only)?,
                Source::Groups,
            ))
        })?,
        Statement::Describe(name) => describe(&mut r, name)?,
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
            let stored = publish_all(&mut r, &p.topic, &msgs)?;
            published(&stored)
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
            r.write("SUBSCRIBE", |c, now| {
                group::subscribe(c, now, &s.group, &sub)
            })?;
            ResultSet::empty()
        }
        Statement::Unsubscribe(u) => {
            r.write("UNSUBSCRIBE", |c, _| {
                group::unsubscribe(c, &u.group, u.from.as_deref())
            })?;
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
            let got = match &mut r {
                Runner::Auto(db) => db.consume_until(&req, Some(interrupt))?,
                Runner::Tx(tx) => tx.consume(&req)?,
            };
            deliveries(&got)
        }
        Statement::Ack(ids) => {
            r.write("ACK", |c, _| group::ack(c, ids))?;
            ResultSet::empty()
        }
        Statement::Nack(n) => {
            r.write("NACK", |c, now| group::nack(c, now, &n.ids, &n.action))?;
            r.wrote();
            ResultSet::empty()
        }
        Statement::Purge(name) => {
            let n = r.write("PURGE", |c, _| topic::purge(c, name))?;
            one("purged", count(n))
        }
        Statement::Check => check(&mut r)?,
        Statement::Select(q) => r.read(|c, now| query::select(c, now, q))?,
        Statement::Replay(rp) => {
            r.write("REPLAY", |c, now| {
                group::replay(c, now, &rp.topic, &rp.group, rp.from)
            })?;
            r.wrote();
            ResultSet::empty()
        }
        Statement::RequeueDlq(op) => {
            let n = r.write("REQUEUE DLQ", |c, now| {
                let ids = dlq_ids(c, now, op)?;
                group::requeue(c, now, &ids)
            })?;
            r.wrote();
            one("requeued", count(n))
        }
        Statement::PurgeDlq(op) => {
            let n = r.write("PURGE DLQ", |c, now| {
                let ids = dlq_ids(c, now, op)?;
                let mut st = c.prepare_cached("DELETE FROM mq_dlq WHERE id = ?1")?;
                for id in &ids {
                    st.execute([id])?;
                }
                Ok(ids.len() as u64)
            })?;
            one("purged", count(n))
        }
        Statement::Begin => {
            return Err(Error::Transaction(if r.in_transaction() {
                "BEGIN inside a transaction: COMMIT or ROLLBACK the open one first".into()
            } else {
                "BEGIN needs a session (the shell, or Database::session)".into()
            }));
        }
        Statement::Commit | Statement::Rollback => {
            return Err(Error::Transaction(if r.in_transaction() {
                "COMMIT and ROLLBACK end a transaction through its owner (Transaction::commit)"
                    .into()
            } else {
                "there is no open transaction (BEGIN starts one)".into()
            }));
        }
        Statement::Export(e) => one("exported", count(export(&mut r, e)?)),
        Statement::Import(i) => one("imported", count(import(&mut r, i)?)),
        Statement::Bench(b) => {
            let Runner::Auto(db) = r else {
                return Err(Error::invalid("BENCH is not allowed inside a transaction"));
            };
            let mut quiet = |_: &str, _: u64, _: u64| {};
            crate::bench::run(db, b, progress.unwrap_or(&mut quiet))?
        }
        Statement::Tail(t) => {
            let Runner::Auto(db) = r else {
                return Err(Error::invalid("TAIL is not allowed inside a transaction"));
            };
            return tail(db, interrupt, t, out);
        }
    };
    out(rs)
}

fn publish_all(r: &mut Runner<'_>, topic_name: &str, msgs: &[Message]) -> Result<Vec<Published>> {
    let db = r.db();
    db.check_disk_reserve("PUBLISH")?;
    let max = db.max_payload();
    let stored = r.write("PUBLISH", |c, now| {
        let t = topic::get(c, topic_name)?;
        publish::append(c, now, &t, msgs, max)
    })?;
    r.wrote();
    Ok(stored)
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

fn show_topics(r: &mut Runner<'_>, kind: TopicKind) -> Result<ResultSet> {
    let all = r.read(|c, _| Ok(query::rows_result(query::topics_rows(c)?, Source::Topics)))?;
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

fn describe(r: &mut Runner<'_>, name: &str) -> Result<ResultSet> {
    r.read(|c, _| {
        let t = topic::get(c, name)?;
        let s = topic::stats(c, t.id)?;
        let mut rs = ResultSet::with_columns(["property", "value"]);
        let mut add = |k: &str, v: Value| rs.rows.push(vec![Value::Text(k.into()), v]);
        add("name", Value::Text(t.name.clone()));
        add("kind", Value::Text(topic::kind_str(t.kind).into()));
        add("partitions", Value::Int(i64::from(t.partitions)));
        add(
            "retention",
            Value::Text(t.retention.to_string()),
        );
        add(
            "max_length",
            t.max_length.map_or(Value::Null, |m| Value::Int(i64::try_from(m).unwrap_or(i64::MAX))),
        );
        add(
            "overflow",
            Value::Text(t.overflow.to_string()),
        );
        add("dedup_window", Value::Text(display::duration_text(t.dedup_window)));
        add("max_deliveries", Value::Int(i64::from(t.max_deliveries)));
        add("ack_wait", Value::Text(display::duration_text(t.ack_wait)));
        add("messages", Value::Int(i64::try_from(s.messages).unwrap_or(i64::MAX)));
        add("bytes", Value::Int(i64::try_from(s.bytes).unwrap_or(i64::MAX)));
        let mut st = c.prepare_cached(
            "SELECT partition, low_offset, next_offset FROM mq_partition_state WHERE topic_id = ?1 ORDER BY partition",
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

/// One of CHECK's checks: adds what it finds to the list.
type Check = fn(&Connection, &mut Vec<String>) -> rusqlite::Result<()>;

/// CHECK: one row `ok`, or `Error::CheckFailed` listing every problem (so
/// the shell exits non-zero). A damaged file can also make the checking
/// queries themselves fail with SQLITE_CORRUPT; that is a problem too.
fn check(r: &mut Runner<'_>) -> Result<ResultSet> {
    let problems = r.read(|c, _| {
        let mut problems: Vec<String> = Vec::new();
        let checks: [Check; 2] = [integrity, offsets];
        for check in checks {
            if let Err(e) = check(c, &mut problems) {
                match e.sqlite_error_code() {
                    Some(
                        rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase,
                    ) => {
                        problems.push(e.to_string());
                    }
                    _ => return Err(e.into()),
                }
            }
        }
        Ok(problems)
    })?;
    if !problems.is_empty() {
        return Err(Error::CheckFailed { problems });
    }
    let mut rs = ResultSet::with_columns(["result"]);
    rs.rows.push(vec![Value::Text("ok".into())]);
    Ok(rs)
}

/// SQLite's integrity check: every row but "ok" is a problem.
fn integrity(c: &Connection, problems: &mut Vec<String>) -> rusqlite::Result<()> {
    let mut st = c.prepare("PRAGMA integrity_check")?;
    let rows = st.query_map([], |r| r.get::<_, String>(0))?;
    for row in rows {
        let row = row?;
        if row != "ok" {
            problems.push(row);
        }
    }
    Ok(())
}

/// Each partition's stored messages match its offsets.
fn offsets(c: &Connection, problems: &mut Vec<String>) -> rusqlite::Result<()> {
    let bad: i64 = c.query_row(
        "SELECT COUNT(*) FROM mq_partition_state p WHERE p.low_offset > p.next_offset
           OR (SELECT COUNT(*) FROM mq_messages m WHERE m.topic_id = p.topic_id AND m.partition = p.partition)
              != p.next_offset - p.low_offset",
        [],
        |r| r.get(0),
    )?;
    if bad > 0 {
        problems.push(format!(
            "{bad} partition(s) whose stored messages do not match their offsets"
        ));
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

/// Ids of the dead letters a REQUEUE/PURGE DLQ selects, oldest first.
fn dlq_ids(c: &rusqlite::Connection, now: i64, op: &DlqOp) -> Result<Vec<i64>> {
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
    let q = Select {
        items: vec![SelectItem::Expr {
            expr: column("id"),
            alias: None,
        }],
        source: Source::Dlq,
        filter: conds.into_iter().reduce(and),
        group_by: Vec::new(),
        order_by: Vec::new(),
        limit: op.limit,
        offset: None,
    };
    let rs = query::select(c, now, &q)?;
    Ok(rs
        .rows
        .iter()
        .filter_map(|r| match r.first() {
            Some(Value::Int(i)) => Some(*i),
            _ => None,
        })
        .collect())
}

/// The messages of a topic matching a filter, in partition/offset order.
fn messages(
    c: &rusqlite::Connection,
    now: i64,
    topic: &str,
    filter: Option<Expr>,
) -> Result<ResultSet> {
    let q = Select {
        items: vec![SelectItem::Star],
        source: Source::Topic(topic.to_string()),
        filter,
        group_by: Vec::new(),
        order_by: Vec::new(),
        limit: None,
        offset: None,
    };
    query::select(c, now, &q)
}

/// EXPORT: one JSON object per message (partition, offset, timestamp, key, headers, payload).
///
/// The file is created 0600. An existing file is refused unless the
/// statement says OVERWRITE, and a path that is (or resolves to) the
/// database file or one of its -wal/-shm/-journal files is always refused.
fn export(r: &mut Runner<'_>, e: &Export) -> Result<u64> {
    use std::io::Write;
    let target = std::path::Path::new(&e.file);
    refuse_database_files(r.db().path(), target)?;
    let rs = r.read(|c, now| messages(c, now, &e.topic, e.filter.clone()))?;
    let out = OutputFile::create(target, e.overwrite)?;
    let mut w = std::io::BufWriter::new(out.file()?);
    for row in &rs.rows {
        let mut obj = serde_json::Map::new();
        for (col, v) in rs.columns.iter().zip(row) {
            obj.insert(col.clone(), v.to_json());
        }
        writeln!(w, "{}", serde_json::Value::Object(obj))?;
    }
    w.flush()?;
    drop(w);
    out.finish()?;
    Ok(rs.rows.len() as u64)
}

/// Refuses `target` when it names the database file or one of SQLite's
/// files beside it (`-wal`, `-shm`, `-journal`), by name (after resolving
/// `.`, `..` and symlinks of the directory) or by identity (a symlink or a
/// hard link to one of them).
fn refuse_database_files(db: &std::path::Path, target: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let refuse = || {
        Err(Error::invalid(format!(
            "'{}' is the database file or one of its own files: choose another file",
            target.display()
        )))
    };
    let db = db.canonicalize()?;
    let mut own = vec![db.clone()];
    for suffix in ["-wal", "-shm", "-journal"] {
        let mut name = db.clone().into_os_string();
        name.push(suffix);
        own.push(name.into());
    }
    let parent = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => std::path::Path::new("."),
    };
    if let (Ok(dir), Some(name)) = (parent.canonicalize(), target.file_name())
        && own.contains(&dir.join(name))
    {
        return refuse();
    }
    if let Ok(meta) = std::fs::metadata(target) {
        for path in &own {
            if let Ok(m) = std::fs::metadata(path)
                && (m.dev(), m.ino()) == (meta.dev(), meta.ino())
            {
                return refuse();
            }
        }
    }
    Ok(())
}

/// A file mqlite writes for the user: created 0600 whatever the umask.
///
/// Without `overwrite` the file itself is created (an existing one is
/// refused) and removed again if writing fails. With `overwrite` the data
/// goes to a new file beside it, which replaces the target only once it is
/// complete and synced, so a failed EXPORT leaves the old file as it was.
struct OutputFile {
    file: Option<std::fs::File>,
    /// Where the data is written.
    written: std::path::PathBuf,
    /// Where it must end up, when that differs.
    rename_to: Option<std::path::PathBuf>,
}

impl OutputFile {
    fn create(target: &std::path::Path, overwrite: bool) -> Result<OutputFile> {
        let written = if overwrite {
            let name = target.file_name().ok_or_else(|| {
                Error::invalid(format!("'{}' is not a file name", target.display()))
            })?;
            let mut tmp = std::ffi::OsString::from(".");
            tmp.push(name);
            tmp.push(format!(".mqlite-{}.tmp", std::process::id()));
            target.with_file_name(tmp)
        } else {
            target.to_path_buf()
        };
        let file = create_private(&written).map_err(|err| {
            if !overwrite && err.kind() == std::io::ErrorKind::AlreadyExists {
                Error::invalid(format!(
                    "'{}' exists: add OVERWRITE to replace it",
                    target.display()
                ))
            } else {
                Error::invalid(format!("cannot write '{}': {err}", target.display()))
            }
        })?;
        Ok(OutputFile {
            file: Some(file),
            written,
            rename_to: overwrite.then(|| target.to_path_buf()),
        })
    }

    fn file(&self) -> Result<&std::fs::File> {
        self.file
            .as_ref()
            .ok_or_else(|| Error::invalid("the output file is closed"))
    }

    /// Syncs the data and moves it into place.
    fn finish(mut self) -> Result<()> {
        if let Some(f) = self.file.take() {
            f.sync_all()?;
        }
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

/// Creates a new file with mode 0600 (the mode is set again after
/// creation, so no umask widens or narrows it); fails if the path exists.
pub(crate) fn create_private(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

/// IMPORT: publishes every line of a jsonl file (as EXPORT writes them) in
/// one transaction. The file is read as it is published, a chunk of lines
/// at a time, and no line may be longer than [`MAX_LINE_BYTES`], so memory
/// stays bounded whatever the file (even `/dev/zero`).
fn import(r: &mut Runner<'_>, i: &Import) -> Result<u64> {
    const CHUNK: usize = 1000;
    let file = std::fs::File::open(&i.file)
        .map_err(|err| Error::invalid(format!("cannot read '{}': {err}", i.file)))?;
    let mut lines = std::io::BufReader::new(file);
    let db = r.db();
    db.check_disk_reserve("IMPORT")?;
    let max = db.max_payload();
    let n = r.write("IMPORT", |c, now| {
        let t = topic::get(c, &i.topic)?;
        let (mut line, mut n, mut total) = (Vec::new(), 0usize, 0u64);
        let mut chunk = Vec::with_capacity(CHUNK);
        loop {
            let more = read_line_limited(&mut lines, MAX_LINE_BYTES, &mut line)
                .map_err(|e| Error::invalid(format!("{} line {}: {e}", i.file, n + 1)))?;
            if more {
                n += 1;
                if let Some(m) = import_line(&line)
                    .map_err(|why| Error::invalid(format!("{} line {n}: {why}", i.file)))?
                {
                    chunk.push(m);
                }
            }
            if chunk.len() == CHUNK || (!more && !chunk.is_empty()) {
                total += publish::append(c, now, &t, &chunk, max)?.len() as u64;
                chunk.clear();
            }
            if !more {
                return Ok(total);
            }
        }
    })?;
    r.wrote();
    Ok(n)
}

/// One IMPORT line as a message; None for a blank line.
fn import_line(line: &[u8]) -> std::result::Result<Option<Message>, String> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    if line.trim().is_empty() {
        return Ok(None);
    }
    let v: serde_json::Value = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let payload = match obj.get("payload") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err("no \"payload\"".into()),
    };
    let mut m = Message::new(payload);
    match obj.get("key") {
        Some(serde_json::Value::String(k)) => m.key = Some(k.clone()),
        Some(serde_json::Value::Null) | None => {}
        Some(_) => return Err("\"key\" must be a string or null".into()),
    }
    if let Some(h) = obj.get("headers") {
        let h = h.as_object().ok_or("\"headers\" must be an object")?;
        for (k, v) in h {
            let v = v.as_str().ok_or("header values must be strings")?;
            m.headers.insert(k.clone(), v.to_string());
        }
    }
    Ok(Some(m))
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
    let mut next: HashMap<u32, i64> = db.read(|c, _| {
        let info = topic::get(c, &t.topic)?;
        let mut st = c.prepare_cached(
            "SELECT partition, next_offset FROM mq_partition_state WHERE topic_id = ?1",
        )?;
        let rows = st.query_map([info.id], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    })?;
    let mut idle = std::time::Duration::from_millis(5);
    while !interrupt.load(Ordering::Relaxed) {
        let partitions = db.read(|c, _| Ok(topic::get(c, &t.topic)?.partitions))?;
        let mut got = false;
        for p in 0..partitions {
            let from = *next.get(&p).unwrap_or(&0);
            // The end first, then the rows below it: every offset below an
            // end already read is committed, so no row can be skipped by a
            // commit landing between the two reads (as it could when the
            // end was read after the rows).
            let end: i64 = db.read(|c, _| {
                let info = topic::get(c, &t.topic)?;
                Ok(c.query_row(
                    "SELECT next_offset FROM mq_partition_state WHERE topic_id = ?1 AND partition = ?2",
                    rusqlite::params![info.id, p],
                    |r| r.get(0),
                )?)
            })?;
            if end <= from {
                continue;
            }
            let offset = |op, v| Expr::Binary {
                left: Box::new(column("offset")),
                op,
                right: Box::new(Expr::Literal(Literal::Int(v))),
            };
            let mut filter = and(
                equals("partition", Literal::Int(i64::from(p))),
                and(offset(BinaryOp::GtEq, from), offset(BinaryOp::Lt, end)),
            );
            if let Some(f) = &t.filter {
                filter = and(filter, f.clone());
            }
            // Advance past everything stored below the end, matching or not.
            let rs = db.read(|c, now| messages(c, now, &t.topic, Some(filter)))?;
            next.insert(p, end);
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
