//! SELECT: compiles a query over a topic, the DLQ, TOPICS, GROUPS,
//! PROCESSED or DELIVERIES into parameterised SQLite SQL. User values are
//! always bound parameters.

use std::collections::HashMap;

use rusqlite::Connection;
use rusqlite::types::{Value as SqlValue, ValueRef};

use super::MAX_HEIGHT;
use super::ast::{
    BinaryOp, Expr, Function, Literal, PathSegment, Select, SelectItem, Source, TopicKind, UnaryOp,
};
use crate::db::{self, GroupStats, TopicSummary};
use crate::{Error, Result, ResultSet, Value};
use crate::{group, topic};

/// How a compiled column's SQL value becomes a `Value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// SQLite's own type.
    Plain,
    /// Integer ms rendered as a timestamp.
    Timestamp,
    /// JSON text (from `->`) turned into a typed value.
    Json,
    /// Header JSON object text; NULL is `{}`.
    Headers,
    /// Payload: text when UTF-8, else bytes (`Value::Bytes`).
    Payload,
    /// 0/1 shown as false/true.
    Bool,
}

struct Column {
    name: &'static str,
    sql: &'static str,
    kind: Kind,
}

const TOPIC_COLUMNS: &[Column] = &[
    Column {
        name: "partition",
        sql: "m.partition",
        kind: Kind::Plain,
    },
    Column {
        name: "offset",
        sql: "m.offset",
        kind: Kind::Plain,
    },
    Column {
        name: "timestamp",
        sql: "m.ts",
        kind: Kind::Timestamp,
    },
    Column {
        name: "key",
        sql: "m.key",
        kind: Kind::Plain,
    },
    Column {
        name: "headers",
        sql: "m.headers",
        kind: Kind::Headers,
    },
    Column {
        name: "payload",
        sql: "m.payload",
        kind: Kind::Payload,
    },
];

const DLQ_COLUMNS: &[Column] = &[
    Column {
        name: "id",
        sql: "m.id",
        kind: Kind::Plain,
    },
    Column {
        name: "topic",
        sql: "m.topic",
        kind: Kind::Plain,
    },
    Column {
        name: "group",
        sql: "m.group_name",
        kind: Kind::Plain,
    },
    Column {
        name: "partition",
        sql: "m.partition",
        kind: Kind::Plain,
    },
    Column {
        name: "offset",
        sql: "m.offset",
        kind: Kind::Plain,
    },
    Column {
        name: "timestamp",
        sql: "m.ts",
        kind: Kind::Timestamp,
    },
    Column {
        name: "key",
        sql: "m.key",
        kind: Kind::Plain,
    },
    Column {
        name: "attempts",
        sql: "m.attempts",
        kind: Kind::Plain,
    },
    Column {
        name: "reason",
        sql: "m.reason",
        kind: Kind::Plain,
    },
    Column {
        name: "failed_at",
        sql: "m.failed_at",
        kind: Kind::Timestamp,
    },
    Column {
        name: "headers",
        sql: "m.headers",
        kind: Kind::Headers,
    },
    Column {
        name: "payload",
        sql: "m.payload",
        kind: Kind::Payload,
    },
    Column {
        name: "history",
        sql: "m.history",
        kind: Kind::Plain,
    },
    Column {
        name: "history_json",
        sql: "m.history_json",
        kind: Kind::Json,
    },
];

/// DELIVERIES (`group::deliveries::relation_sql` says what each is).
const DELIVERIES_COLUMNS: &[Column] = &[
    Column {
        name: "group",
        sql: "m.grp",
        kind: Kind::Plain,
    },
    Column {
        name: "member",
        sql: "m.member",
        kind: Kind::Plain,
    },
    Column {
        name: "topic",
        sql: "m.topic",
        kind: Kind::Plain,
    },
    Column {
        name: "partition",
        sql: "m.partition",
        kind: Kind::Plain,
    },
    Column {
        name: "offset",
        sql: "m.offset",
        kind: Kind::Plain,
    },
    Column {
        name: "key",
        sql: "m.key",
        kind: Kind::Plain,
    },
    Column {
        name: "delivery",
        sql: "m.delivery",
        kind: Kind::Plain,
    },
    Column {
        name: "attempt",
        sql: "m.attempt",
        kind: Kind::Plain,
    },
    Column {
        name: "state",
        sql: "m.state",
        kind: Kind::Plain,
    },
    Column {
        name: "leased_at",
        sql: "m.leased_at",
        kind: Kind::Timestamp,
    },
    Column {
        name: "visible_at",
        sql: "m.visible_at",
        kind: Kind::Timestamp,
    },
    Column {
        name: "last_error",
        sql: "m.last_error",
        kind: Kind::Plain,
    },
    Column {
        name: "history",
        sql: "m.history",
        kind: Kind::Plain,
    },
    Column {
        name: "history_json",
        sql: "m.history_json",
        kind: Kind::Json,
    },
];

const TOPICS_COLUMNS: &[Column] = &[
    Column {
        name: "name",
        sql: "m.name",
        kind: Kind::Plain,
    },
    Column {
        name: "kind",
        sql: "m.kind",
        kind: Kind::Plain,
    },
    Column {
        name: "partitions",
        sql: "m.partitions",
        kind: Kind::Plain,
    },
    Column {
        name: "messages",
        sql: "m.messages",
        kind: Kind::Plain,
    },
    Column {
        name: "bytes",
        sql: "m.bytes",
        kind: Kind::Plain,
    },
    Column {
        name: "retention",
        sql: "m.retention",
        kind: Kind::Plain,
    },
    Column {
        name: "max_length",
        sql: "m.max_length",
        kind: Kind::Plain,
    },
    Column {
        name: "overflow",
        sql: "m.overflow",
        kind: Kind::Plain,
    },
    Column {
        name: "dedup_window",
        sql: "m.dedup_window",
        kind: Kind::Plain,
    },
    Column {
        name: "max_deliveries",
        sql: "m.max_deliveries",
        kind: Kind::Plain,
    },
    Column {
        name: "ack_wait",
        sql: "m.ack_wait",
        kind: Kind::Plain,
    },
    Column {
        name: "groups",
        sql: "m.groups",
        kind: Kind::Plain,
    },
];

const GROUPS_COLUMNS: &[Column] = &[
    Column {
        name: "group",
        sql: "m.grp",
        kind: Kind::Plain,
    },
    Column {
        name: "topic",
        sql: "m.topic",
        kind: Kind::Plain,
    },
    Column {
        name: "partitions",
        sql: "m.partitions",
        kind: Kind::Plain,
    },
    Column {
        name: "pending",
        sql: "m.pending",
        kind: Kind::Plain,
    },
    Column {
        name: "lag",
        sql: "m.lag",
        kind: Kind::Plain,
    },
    Column {
        name: "dead",
        sql: "m.dead",
        kind: Kind::Plain,
    },
    Column {
        name: "ordered",
        sql: "m.ordered",
        kind: Kind::Bool,
    },
    Column {
        name: "unacked",
        sql: "m.unacked",
        kind: Kind::Plain,
    },
];

const PROCESSED_COLUMNS: &[Column] = &[
    Column {
        name: "group",
        sql: "m.group_name",
        kind: Kind::Plain,
    },
    Column {
        name: "key",
        sql: "m.key",
        kind: Kind::Plain,
    },
    Column {
        name: "processed_at",
        sql: "m.processed_at",
        kind: Kind::Timestamp,
    },
    Column {
        name: "expires_at",
        sql: "m.expires_at",
        kind: Kind::Timestamp,
    },
];

/// The FROM part of a source, its columns, and whether unknown paths reach into the payload.
struct SourceDef {
    from: String,
    base_filter: Option<String>,
    columns: &'static [Column],
    payload_paths: bool,
    label: String,
    default_order: Option<&'static str>,
}

/// How SQL for an expression is wanted.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A SQL value (`->>` for JSON paths).
    Value,
    /// A top-level select item (`->` for JSON paths, so types survive).
    Projection,
}

/// SQLite's limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER).
const MAX_PARAMS: usize = 32_766;

struct Compiler<'a> {
    source: &'a SourceDef,
    params: Vec<SqlValue>,
    now: i64,
    aliases: HashMap<String, usize>,
    /// The select list's columns once compiled: the expression of each, or
    /// None for the columns of `*` (for `ORDER BY 2` and aliases).
    items: Vec<Option<Expr>>,
}

/// The select list compiled: SQL per column, how to read each, names.
#[derive(Default)]
struct Projection {
    sql: Vec<String>,
    kinds: Vec<Kind>,
    names: Vec<String>,
    has_aggregate: bool,
}

/// Runs a SELECT and returns its rows.
pub(crate) fn select(conn: &Connection, now: i64, q: &Select) -> Result<ResultSet> {
    let mut params = Vec::new();
    let source = source_def(conn, now, &q.source, &mut params)?;
    let mut c = Compiler {
        source: &source,
        params,
        now,
        aliases: HashMap::new(),
        items: Vec::new(),
    };
    let proj = c.projection(&q.items)?;
    let mut sql = format!("SELECT {} FROM {}", proj.sql.join(", "), source.from);
    c.where_clause(q, &mut sql)?;
    c.order_and_limit(q, proj.has_aggregate, &mut sql)?;
    // SQLite refuses more parameters, with an error that quotes the SQL.
    if c.params.len() > MAX_PARAMS {
        return Err(Error::InvalidStatement(format!(
            "statement too large: it needs {} values, at most {MAX_PARAMS}",
            c.params.len()
        )));
    }
    let mut st = conn.prepare(&sql)?;
    let mut rows = st.query(rusqlite::params_from_iter(c.params.iter()))?;
    let mut out = ResultSet {
        columns: proj.names,
        rows: Vec::new(),
    };
    while let Some(r) = rows.next()? {
        let mut row = Vec::with_capacity(proj.kinds.len());
        for (i, k) in proj.kinds.iter().enumerate() {
            row.push(to_value(r.get_ref(i)?, *k));
        }
        out.rows.push(row);
    }
    Ok(out)
}

impl Compiler<'_> {
    fn projection(&mut self, items: &[SelectItem]) -> Result<Projection> {
        let mut p = Projection::default();
        for item in items {
            match item {
                SelectItem::Star => {
                    for col in self.source.columns {
                        self.items.push(None);
                        p.sql.push(format!("{} AS \"c{}\"", col.sql, p.sql.len()));
                        p.kinds.push(col.kind);
                        p.names.push(col.name.to_string());
                    }
                }
                SelectItem::Expr { expr, alias } => {
                    p.has_aggregate |= contains_aggregate(expr);
                    let (sql, kind) = self.expr(expr, Mode::Projection, 0)?;
                    let name = alias.clone().unwrap_or_else(|| expr.to_string());
                    if let Some(a) = alias {
                        self.aliases.insert(a.clone(), p.sql.len());
                    }
                    self.items.push(Some(expr.clone()));
                    p.sql.push(format!("{sql} AS \"c{}\"", p.sql.len()));
                    p.kinds.push(kind);
                    p.names.push(name);
                }
            }
        }
        Ok(p)
    }

    /// WHERE: the source's own condition and the query's filter.
    fn where_clause(&mut self, q: &Select, sql: &mut String) -> Result<()> {
        let mut conds = Vec::new();
        if let Some(b) = &self.source.base_filter {
            conds.push(b.clone());
        }
        if let Some(w) = &q.filter {
            if contains_aggregate(w) {
                return Err(Error::InvalidStatement(
                    "aggregate functions (COUNT, SUM, ...) are not allowed in WHERE".into(),
                ));
            }
            conds.push(self.expr(w, Mode::Value, 0)?.0);
        }
        if !conds.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conds.join(" AND "));
        }
        Ok(())
    }

    /// GROUP BY, ORDER BY (or the source's order), LIMIT and OFFSET.
    fn order_and_limit(&mut self, q: &Select, has_aggregate: bool, sql: &mut String) -> Result<()> {
        if !q.group_by.is_empty() {
            let mut parts = Vec::new();
            for g in &q.group_by {
                parts.push(self.order_term(g, "GROUP BY")?);
            }
            sql.push_str(" GROUP BY ");
            sql.push_str(&parts.join(", "));
        }
        if !q.order_by.is_empty() {
            let mut parts = Vec::new();
            for o in &q.order_by {
                let t = self.order_term(&o.expr, "ORDER BY")?;
                parts.push(if o.desc { format!("{t} DESC") } else { t });
            }
            sql.push_str(" ORDER BY ");
            sql.push_str(&parts.join(", "));
        } else if q.group_by.is_empty()
            && !has_aggregate
            && let Some(o) = self.source.default_order
        {
            sql.push_str(" ORDER BY ");
            sql.push_str(o);
        }
        if let Some(limit) = q.limit {
            let n = self.bind(SqlValue::Integer(clamp(limit)));
            sql.push_str(&format!(" LIMIT ?{n}"));
            if let Some(off) = q.offset {
                let n = self.bind(SqlValue::Integer(clamp(off)));
                sql.push_str(&format!(" OFFSET ?{n}"));
            }
        }
        Ok(())
    }
}

/// Comparisons and logic give true/false (SQLite's 1/0, shown as
/// booleans); arithmetic gives numbers.
fn kind_of(op: BinaryOp) -> Kind {
    match op {
        BinaryOp::Add | BinaryOp::Sub | BinaryOp::Mul | BinaryOp::Div | BinaryOp::Mod => {
            Kind::Plain
        }
        BinaryOp::Or
        | BinaryOp::And
        | BinaryOp::Eq
        | BinaryOp::NotEq
        | BinaryOp::Lt
        | BinaryOp::LtEq
        | BinaryOp::Gt
        | BinaryOp::GtEq
        | BinaryOp::Like
        | BinaryOp::NotLike => Kind::Bool,
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn contains_aggregate(e: &Expr) -> bool {
    match e {
        Expr::Function { .. } => true,
        Expr::Literal(_) | Expr::Path(_) => false,
        Expr::Unary { expr, .. } | Expr::IsNull { expr, .. } => contains_aggregate(expr),
        Expr::Binary { left, right, .. } => contains_aggregate(left) || contains_aggregate(right),
        Expr::InList { expr, list, .. } => {
            contains_aggregate(expr) || list.iter().any(contains_aggregate)
        }
        Expr::Between {
            expr, low, high, ..
        } => contains_aggregate(expr) || contains_aggregate(low) || contains_aggregate(high),
    }
}

/// Converts one SQLite value by its column kind.
fn to_value(v: ValueRef<'_>, kind: Kind) -> Value {
    match (kind, v) {
        (Kind::Headers, ValueRef::Null) => {
            Value::Json(serde_json::Value::Object(Default::default()))
        }
        (_, ValueRef::Null) => Value::Null,
        (Kind::Timestamp, ValueRef::Integer(i)) => Value::Timestamp(i),
        (Kind::Bool, ValueRef::Integer(i)) => Value::Bool(i != 0),
        (Kind::Json | Kind::Headers, ValueRef::Text(t)) => {
            match serde_json::from_slice::<serde_json::Value>(t) {
                Ok(j) => json_to_value(j),
                Err(_) => Value::Text(String::from_utf8_lossy(t).into_owned()),
            }
        }
        (Kind::Payload, ValueRef::Blob(b)) => Value::payload(b.to_vec()),
        (_, ValueRef::Integer(i)) => Value::Int(i),
        (_, ValueRef::Real(f)) => Value::Float(f),
        (_, ValueRef::Text(t) | ValueRef::Blob(t)) => {
            Value::Text(String::from_utf8_lossy(t).into_owned())
        }
    }
}

fn json_to_value(j: serde_json::Value) -> Value {
    match j {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Text(s),
        other => Value::Json(other),
    }
}

/// A JSON path string (`$."data"."items"[0]`) for segments.
fn json_path(segs: &[PathSegment]) -> String {
    let mut p = String::from("$");
    for s in segs {
        match s {
            PathSegment::Field(f) => {
                p.push_str(".\"");
                p.push_str(&f.replace('"', "\\\""));
                p.push('"');
            }
            PathSegment::Index(i) => p.push_str(&format!("[{i}]")),
        }
    }
    p
}

fn path_text(segs: &[PathSegment]) -> String {
    Expr::Path(segs.to_vec()).to_string()
}

/// Parses a timestamp literal: RFC 3339, or `-1h` style (that long before now).
pub(crate) fn parse_time_literal(now: i64, s: &str) -> Option<i64> {
    if let Some(rest) = s.strip_prefix('-') {
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let n: i64 = digits.parse().ok()?;
        let unit_ms = match &rest[digits.len()..] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => return None,
        };
        return Some(now.saturating_sub(n.saturating_mul(unit_ms)));
    }
    crate::value::parse_timestamp_ms(s)
}

impl Compiler<'_> {
    fn bind(&mut self, v: SqlValue) -> usize {
        self.params.push(v);
        self.params.len()
    }

    /// ORDER BY / GROUP BY term: a position in the select list (from 1, as
    /// SQL's `ORDER BY 2`), an alias of a select item, or an expression.
    fn order_term(&mut self, e: &Expr, clause: &str) -> Result<String> {
        let item = match e {
            Expr::Literal(Literal::Int(n)) => match usize::try_from(*n) {
                Ok(i) if (1..=self.items.len()).contains(&i) => i - 1,
                _ => {
                    return Err(Error::InvalidStatement(format!(
                        "{clause} {n}: a position in the select list must be 1 to {}",
                        self.items.len()
                    )));
                }
            },
            Expr::Path(segs) => match segs.as_slice() {
                [PathSegment::Field(name)] if self.aliases.contains_key(name) => self.aliases[name],
                _ => return Ok(self.expr(e, Mode::Value, 0)?.0),
            },
            _ => return Ok(self.expr(e, Mode::Value, 0)?.0),
        };
        // The item's own value, not its projection: a JSON path projects
        // JSON text (`->`), which would sort 10 before 5.
        match self.items[item].clone() {
            Some(expr) => Ok(self.expr(&expr, Mode::Value, 0)?.0),
            None => Ok(format!("\"c{item}\"")),
        }
    }

    fn path(&mut self, segs: &[PathSegment], mode: Mode) -> Result<(String, Kind)> {
        let Some(PathSegment::Field(first)) = segs.first() else {
            return Err(Error::InvalidStatement(
                "a column name must start with a name".into(),
            ));
        };
        if segs.len() == 1
            && let Some(col) = self
                .source
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(first))
        {
            let kind = if mode == Mode::Value && col.kind == Kind::Headers {
                Kind::Plain
            } else {
                col.kind
            };
            return Ok((col.sql.to_string(), kind));
        }
        let headers_col = self.source.columns.iter().find(|c| c.kind == Kind::Headers);
        let (target, path_segs) = match headers_col {
            Some(h) if first.eq_ignore_ascii_case("headers") && segs.len() > 1 => {
                (h.sql, &segs[1..])
            }
            _ if self.source.payload_paths => {
                let p = self
                    .source
                    .columns
                    .iter()
                    .find(|c| c.kind == Kind::Payload)
                    .map(|c| c.sql)
                    .unwrap_or("m.payload");
                (p, segs)
            }
            _ => {
                let names: Vec<&str> = self.source.columns.iter().map(|c| c.name).collect();
                return Err(Error::InvalidStatement(format!(
                    "unknown column '{}' in {} (columns: {})",
                    path_text(segs),
                    self.source.label,
                    names.join(", ")
                )));
            }
        };
        let p = self.bind(SqlValue::Text(json_path(path_segs)));
        let op = if mode == Mode::Projection {
            "->"
        } else {
            "->>"
        };
        let sql = format!(
            "(CASE WHEN typeof({target}) = 'text' AND json_valid({target}) THEN {target} {op} ?{p} END)"
        );
        Ok((
            sql,
            if mode == Mode::Projection {
                Kind::Json
            } else {
                Kind::Plain
            },
        ))
    }

    fn literal(&mut self, l: &Literal) -> String {
        let v = match l {
            Literal::Null => return "NULL".into(),
            Literal::Bool(b) => SqlValue::Integer(i64::from(*b)),
            Literal::Int(i) => SqlValue::Integer(*i),
            Literal::Float(f) => SqlValue::Real(*f),
            Literal::String(s) => SqlValue::Text(s.clone()),
        };
        format!("?{}", self.bind(v))
    }

    /// An operand compared with a timestamp column: strings are read as times.
    fn operand(&mut self, e: &Expr, against_time: bool, depth: usize) -> Result<(String, Kind)> {
        if against_time && let Expr::Literal(Literal::String(s)) = e {
            let ms = parse_time_literal(self.now, s).ok_or_else(|| {
                    Error::InvalidStatement(format!(
                        "'{s}' is not a timestamp: expected RFC 3339 like '2024-01-15T10:30:00Z' or relative like '-1h'"
                    ))
                })?;
            return Ok((
                format!("?{}", self.bind(SqlValue::Integer(ms))),
                Kind::Plain,
            ));
        }
        self.expr(e, Mode::Value, depth + 1)
    }

    fn is_time(&mut self, e: &Expr) -> bool {
        match e {
            Expr::Path(segs) if segs.len() == 1 => matches!(
                &segs[0],
                PathSegment::Field(f) if self.source.columns.iter().any(|c| c.name.eq_ignore_ascii_case(f) && c.kind == Kind::Timestamp)
            ),
            _ => false,
        }
    }

    fn expr(&mut self, e: &Expr, mode: Mode, depth: usize) -> Result<(String, Kind)> {
        // Parsed trees are at most MAX_HEIGHT high, plus the few ANDs that
        // statements add around a filter; a tree built by hand may be deeper.
        if depth > MAX_HEIGHT + 8 {
            return Err(Error::InvalidStatement(format!(
                "expression too long: more than {MAX_HEIGHT} levels of operators"
            )));
        }
        Ok(match e {
            Expr::Literal(l) => {
                let kind = if matches!(l, Literal::Bool(_)) {
                    Kind::Bool
                } else {
                    Kind::Plain
                };
                (self.literal(l), kind)
            }
            Expr::Path(segs) => self.path(segs, mode)?,
            Expr::Unary { op, expr } => {
                let (s, _) = self.expr(expr, Mode::Value, depth + 1)?;
                match op {
                    UnaryOp::Not => (format!("(NOT {s})"), Kind::Bool),
                    UnaryOp::Neg => (format!("(- {s})"), Kind::Plain),
                }
            }
            Expr::Binary { left, op, right } => {
                let time = self.is_time(left) || self.is_time(right);
                let (l, _) = self.operand(left, time, depth)?;
                let (r, _) = self.operand(right, time, depth)?;
                // The language's operators are SQLite's, spelled the same.
                let o = op.to_string();
                (format!("({l} {o} {r})"), kind_of(*op))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let time = self.is_time(expr);
                let (s, _) = self.expr(expr, Mode::Value, depth + 1)?;
                let mut items = Vec::new();
                for i in list {
                    items.push(self.operand(i, time, depth)?.0);
                }
                let not = if *negated { "NOT " } else { "" };
                (format!("({s} {not}IN ({}))", items.join(", ")), Kind::Bool)
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let time = self.is_time(expr);
                let (s, _) = self.expr(expr, Mode::Value, depth + 1)?;
                let (lo, _) = self.operand(low, time, depth)?;
                let (hi, _) = self.operand(high, time, depth)?;
                let not = if *negated { "NOT " } else { "" };
                (format!("({s} {not}BETWEEN {lo} AND {hi})"), Kind::Bool)
            }
            Expr::IsNull { expr, negated } => {
                let (s, _) = self.expr(expr, Mode::Value, depth + 1)?;
                (
                    format!("({s} IS {}NULL)", if *negated { "NOT " } else { "" }),
                    Kind::Bool,
                )
            }
            Expr::Function { func, arg } => self.function(*func, arg.as_deref(), depth)?,
        })
    }

    /// An aggregate function call.
    fn function(
        &mut self,
        func: Function,
        arg: Option<&Expr>,
        depth: usize,
    ) -> Result<(String, Kind)> {
        let (a, kind) = match arg {
            None => ("*".to_string(), Kind::Plain),
            Some(a) => {
                if contains_aggregate(a) {
                    return Err(Error::InvalidStatement(
                        "aggregate functions cannot be nested".into(),
                    ));
                }
                let time = self.is_time(a);
                let (s, _) = self.expr(a, Mode::Value, depth + 1)?;
                (s, if time { Kind::Timestamp } else { Kind::Plain })
            }
        };
        let name = match func {
            Function::Count => "COUNT",
            Function::Sum => "SUM",
            Function::Avg => "AVG",
            Function::Min => "MIN",
            Function::Max => "MAX",
        };
        if arg.is_none() && func != Function::Count {
            return Err(Error::InvalidStatement(format!(
                "{name}(*) is not allowed; only COUNT(*) takes *"
            )));
        }
        let kind = match func {
            Function::Min | Function::Max => kind,
            _ => Kind::Plain,
        };
        Ok((format!("{name}({a})"), kind))
    }
}

fn source_def(
    conn: &Connection,
    now: i64,
    source: &Source,
    params: &mut Vec<SqlValue>,
) -> Result<SourceDef> {
    Ok(match source {
        Source::Topic(name) => {
            let t = topic::get(conn, name)?;
            params.push(SqlValue::Integer(t.id));
            let mut base = format!("m.topic_id = ?{}", params.len());
            if t.kind == TopicKind::Queue {
                base.push_str(&queue_unsettled(conn, t.id, params)?);
            }
            SourceDef {
                from: "mq_messages m".into(),
                base_filter: Some(base),
                columns: TOPIC_COLUMNS,
                payload_paths: true,
                label: format!("topic '{name}'"),
                default_order: Some("m.partition, m.offset"),
            }
        }
        Source::Processed => {
            params.push(SqlValue::Integer(now));
            SourceDef {
                from: "mq_processed m".into(),
                base_filter: Some(format!("m.expires_at > ?{}", params.len())),
                columns: PROCESSED_COLUMNS,
                payload_paths: false,
                label: "PROCESSED".into(),
                default_order: Some("m.group_name, m.key"),
            }
        }
        Source::Dlq => SourceDef {
            from: "mq_dead_letters m".into(),
            base_filter: None,
            columns: DLQ_COLUMNS,
            payload_paths: true,
            label: "DLQ".into(),
            default_order: Some("m.id"),
        },
        Source::Deliveries => {
            params.push(SqlValue::Integer(now));
            SourceDef {
                from: format!("({}) m", group::deliveries::relation_sql(params.len())),
                base_filter: None,
                columns: DELIVERIES_COLUMNS,
                payload_paths: false,
                label: "DELIVERIES".into(),
                default_order: Some("m.grp, m.topic, m.partition, m.offset"),
            }
        }
        Source::Topics => {
            let rows = topics_rows(&db::topic_summaries(conn)?);
            values_source(rows, TOPICS_COLUMNS, "TOPICS", "m.name", params)
        }
        Source::Groups => {
            let rows = groups_rows(&db::group_stats(conn, None)?);
            values_source(rows, GROUPS_COLUMNS, "GROUPS", "m.grp, m.topic", params)
        }
    })
}

/// The condition that hides a queue's settled messages: a queue's message
/// is gone once acked (or dead-lettered), but it stays stored until the ack
/// floor passes it, which waits for the lowest unsettled message. Shown are
/// those not yet delivered (at or past the cursor), pending ones, and those
/// under a range lease whose bit is not set.
fn queue_unsettled(conn: &Connection, topic_id: i64, params: &mut Vec<SqlValue>) -> Result<String> {
    let Some(group) = group::queue_group_id(conn, topic_id)? else {
        return Ok(String::new());
    };
    let leased: Vec<[i64; 2]> = group::ranges::unacked_offsets(conn, group, topic_id)?
        .into_iter()
        .map(|(p, o)| [i64::from(p), o])
        .collect();
    params.push(SqlValue::Integer(group));
    let g = params.len();
    params.push(SqlValue::Text(serde_json::json!(leased).to_string()));
    let l = params.len();
    Ok(format!(
        " AND (m.offset >= COALESCE((SELECT c.next_offset FROM mq_cursors c WHERE c.group_id = ?{g}
                 AND c.topic_id = m.topic_id AND c.partition = m.partition), 0)
             OR EXISTS (SELECT 1 FROM mq_pending p WHERE p.group_id = ?{g} AND p.topic_id = m.topic_id
                 AND p.partition = m.partition AND p.offset = m.offset)
             OR EXISTS (SELECT 1 FROM json_each(?{l}) j WHERE j.value ->> 0 = m.partition
                 AND j.value ->> 1 = m.offset))"
    ))
}

/// A source over rows computed here, as a bound VALUES table.
fn values_source(
    rows: Vec<Vec<SqlValue>>,
    columns: &'static [Column],
    label: &str,
    order: &'static str,
    params: &mut Vec<SqlValue>,
) -> SourceDef {
    let names: Vec<String> = columns
        .iter()
        .map(|c| c.sql.trim_start_matches("m.").to_string())
        .collect();
    let body = if rows.is_empty() {
        format!(
            "SELECT {} WHERE 0",
            names
                .iter()
                .map(|n| format!("NULL AS {n}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    } else {
        let mut tuples = Vec::new();
        for row in rows {
            let mut cells = Vec::new();
            for v in row {
                params.push(v);
                cells.push(format!("?{}", params.len()));
            }
            tuples.push(format!("({})", cells.join(", ")));
        }
        format!("SELECT * FROM (VALUES {}) AS v", tuples.join(", "))
    };
    // Name the VALUES columns (column1, column2, ...) after the source's columns.
    let renamed = if body.starts_with("SELECT * FROM (VALUES") {
        let sel: Vec<String> = names
            .iter()
            .enumerate()
            .map(|(i, n)| format!("column{} AS {n}", i + 1))
            .collect();
        format!("(SELECT {} FROM ({body}))", sel.join(", "))
    } else {
        format!("({body})")
    };
    SourceDef {
        from: format!("{renamed} m"),
        base_filter: None,
        columns,
        payload_paths: false,
        label: label.into(),
        default_order: Some(order),
    }
}

fn int(v: u64) -> SqlValue {
    SqlValue::Integer(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Rows of the TOPICS source, from the typed summaries.
pub(crate) fn topics_rows(topics: &[TopicSummary]) -> Vec<Vec<SqlValue>> {
    topics
        .iter()
        .map(|s| {
            let t = &s.info;
            vec![
                SqlValue::Text(t.name.clone()),
                SqlValue::Text(topic::kind_str(t.kind).into()),
                SqlValue::Integer(i64::from(t.partitions)),
                int(s.stats.messages),
                int(s.stats.bytes),
                SqlValue::Text(t.retention.to_string()),
                t.max_length.map(int).unwrap_or(SqlValue::Null),
                SqlValue::Text(t.overflow.to_string()),
                SqlValue::Text(super::display::duration_text(t.dedup_window)),
                SqlValue::Integer(i64::from(t.max_deliveries)),
                SqlValue::Text(super::display::duration_text(t.ack_wait)),
                int(s.groups),
            ]
        })
        .collect()
}

/// Rows of the GROUPS source (one per group and topic it reads), from the
/// typed stats.
pub(crate) fn groups_rows(groups: &[GroupStats]) -> Vec<Vec<SqlValue>> {
    groups
        .iter()
        .map(|g| {
            vec![
                SqlValue::Text(g.group.clone()),
                g.topic.clone().map_or(SqlValue::Null, SqlValue::Text),
                SqlValue::Integer(i64::from(g.partitions)),
                int(g.pending),
                int(g.lag),
                int(g.dead),
                SqlValue::Integer(i64::from(g.ordered)),
                int(g.unacked),
            ]
        })
        .collect()
}

/// Converts computed rows into a result with the source's column names.
pub(crate) fn rows_result(rows: Vec<Vec<SqlValue>>, which: Source) -> ResultSet {
    let cols = match which {
        Source::Groups => GROUPS_COLUMNS,
        _ => TOPICS_COLUMNS,
    };
    ResultSet {
        columns: cols.iter().map(|c| c.name.to_string()).collect(),
        rows: rows
            .into_iter()
            .map(|r| {
                r.iter()
                    .zip(cols)
                    .map(|(v, c)| to_value(ValueRef::from(v), c.kind))
                    .collect()
            })
            .collect(),
    }
}
