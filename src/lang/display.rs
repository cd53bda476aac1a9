//! Display of the syntax tree as canonical text: keywords upper case, single
//! spaces, names bare unless they need double quotes, strings single-quoted,
//! durations and sizes in their largest exact unit, and sub-expressions
//! parenthesised. Parsing the text gives back an equal tree.

use std::fmt::{self, Display, Formatter, Write};
use std::time::Duration;

use super::ast::{
    Alter, Bench, BinaryOp, ClockSetting, Consume, ConsumeSource, Create, DlqOp, DropStmt, Export,
    Expr, Function, Import, Literal, Nack, NackAction, OrderBy, Overflow, PathSegment, Payload,
    Publish, Replay, ReplayFrom, Retention, Select, SelectItem, Source, StartFrom, Statement,
    Subscribe, SubscribeTarget, Tail, TimeSpec, TopicKind, TopicOption, UnaryOp, Unsubscribe,
    Workload,
};
use super::parser::expr::RESERVED_IN_EXPR;
use super::parser::is_keyword;
use super::parser::lex::ident_len;

/// A name: bare when it lexes as one identifier and is not a keyword, else `"quoted"`.
struct Name<'a>(&'a str);

impl Display for Name<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let n = self.0;
        if !n.is_empty() && ident_len(n) == n.len() && !is_keyword(n) {
            f.write_str(n)
        } else {
            quote(f, n, '"')
        }
    }
}

/// A `'string'`.
struct Str<'a>(&'a str);

impl Display for Str<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        quote(f, self.0, '\'')
    }
}

fn quote(f: &mut Formatter<'_>, text: &str, q: char) -> fmt::Result {
    f.write_char(q)?;
    for c in text.chars() {
        if c == q {
            f.write_char(q)?;
        }
        f.write_char(c)?;
    }
    f.write_char(q)
}

/// The canonical text of a duration (`90s`, `2m`, `1500ms`), as DESCRIBE and TOPICS show it.
pub(crate) fn duration_text(d: Duration) -> String {
    Dur(d).to_string()
}

/// A duration in the largest unit that divides it exactly (`90s`, `2m`, `1500ms`).
struct Dur(Duration);

impl Display for Dur {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        for (unit, len) in [
            ("d", 86_400_000u128),
            ("h", 3_600_000),
            ("m", 60_000),
            ("s", 1000),
        ] {
            if ms != 0 && ms.is_multiple_of(len) {
                return write!(f, "{}{unit}", ms / len);
            }
        }
        write!(f, "{ms}ms")
    }
}

/// A size in the largest 1024-based unit that divides it exactly (`512B`, `64KB`).
struct Size(u64);

impl Display for Size {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, len) in [("GB", 1u64 << 30), ("MB", 1 << 20), ("KB", 1 << 10)] {
            if b != 0 && b.is_multiple_of(len) {
                return write!(f, "{}{unit}", b / len);
            }
        }
        write!(f, "{b}B")
    }
}

/// Items separated by `, `.
struct List<'a, T>(&'a [T]);

impl<T: Display> Display for List<'_, T> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        for (n, item) in self.0.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            item.fmt(f)?;
        }
        Ok(())
    }
}

impl Display for TopicKind {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicKind::Topic => "TOPIC",
            TopicKind::Queue => "QUEUE",
        })
    }
}

impl Display for Retention {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Retention::Age(d) => Dur(*d).fmt(f),
            Retention::Size(n) => Size(*n).fmt(f),
            Retention::Messages(n) => write!(f, "{n} MESSAGES"),
            Retention::UntilConsumed => f.write_str("UNTIL CONSUMED"),
            Retention::Forever => f.write_str("FOREVER"),
        }
    }
}

impl Display for Overflow {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Overflow::Reject => "REJECT",
            Overflow::DropOldest => "DROP OLDEST",
        })
    }
}

impl Display for TopicOption {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TopicOption::Partitions(n) => write!(f, "PARTITIONS {n}"),
            TopicOption::Retention(r) => write!(f, "RETENTION {r}"),
            TopicOption::MaxLength(n) => write!(f, "MAX LENGTH {n}"),
            TopicOption::Overflow(o) => write!(f, "OVERFLOW {o}"),
            TopicOption::DedupWindow(d) => write!(f, "DEDUP WINDOW {}", Dur(*d)),
            TopicOption::MaxDeliveries(n) => write!(f, "MAX DELIVERIES {n}"),
            TopicOption::AckWait(d) => write!(f, "ACK WAIT {}", Dur(*d)),
        }
    }
}

fn options(f: &mut Formatter<'_>, options: &[TopicOption]) -> fmt::Result {
    options.iter().try_for_each(|o| write!(f, " {o}"))
}

impl Display for Create {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "CREATE {}", self.kind)?;
        if self.if_not_exists {
            f.write_str(" IF NOT EXISTS")?;
        }
        write!(f, " {}", Name(&self.name))?;
        options(f, &self.options)
    }
}

impl Display for Alter {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "ALTER {} {} SET", self.kind, Name(&self.name))?;
        options(f, &self.options)
    }
}

impl Display for DropStmt {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "DROP {}", self.kind)?;
        if self.if_exists {
            f.write_str(" IF EXISTS")?;
        }
        write!(f, " {}", Name(&self.name))
    }
}

impl Display for Payload {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Payload::Text(t) => Str(t).fmt(f),
            Payload::Json(j) => f.write_str(j),
        }
    }
}

impl Display for Publish {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "PUBLISH TO {}", Name(&self.topic))?;
        if let Some(k) = &self.key {
            write!(f, " KEY {}", Str(k))?;
        }
        if let Some(p) = self.partition {
            write!(f, " PARTITION {p}")?;
        }
        if !self.headers.is_empty() {
            f.write_str(" HEADERS (")?;
            for (n, (h, v)) in self.headers.iter().enumerate() {
                if n > 0 {
                    f.write_str(", ")?;
                }
                write!(f, "{} = {}", Name(h), Str(v))?;
            }
            f.write_char(')')?;
        }
        if let Some(d) = &self.dedup {
            write!(f, " DEDUP {}", Str(d))?;
        }
        if let Some(d) = self.delay {
            write!(f, " DELAY {}", Dur(d))?;
        }
        write!(f, " {}", List(&self.payloads))
    }
}

impl Display for SubscribeTarget {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SubscribeTarget::Name(n) => Name(n).fmt(f),
            SubscribeTarget::Pattern(p) => Str(p).fmt(f),
        }
    }
}

impl Display for TimeSpec {
    /// Absolute times as RFC 3339 strings (millisecond precision when
    /// needed), relative ones as `'-1h'`.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            TimeSpec::Absolute(ms) => match jiff::Timestamp::from_millisecond(*ms) {
                Ok(ts) => write!(f, "'{ts}'"),
                Err(_) => match crate::value::utc_civil(*ms) {
                    // The last hours of year 9999, past jiff's Timestamp.
                    Some(dt) => write!(f, "'{dt}Z'"),
                    // Outside RFC 3339's years: no text exists for it.
                    None => write!(f, "'{ms}ms since 1970-01-01T00:00:00Z'"),
                },
            },
            TimeSpec::Ago(d) => write!(f, "'-{}'", Dur(*d)),
        }
    }
}

impl Display for StartFrom {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            StartFrom::Beginning => f.write_str("BEGINNING"),
            StartFrom::Latest => f.write_str("LATEST"),
            StartFrom::Offset(n) => write!(f, "OFFSET {n}"),
            StartFrom::Timestamp(t) => write!(f, "TIMESTAMP {t}"),
        }
    }
}

impl Display for Subscribe {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SUBSCRIBE GROUP {} TO {}",
            Name(&self.group),
            List(&self.targets)
        )?;
        if let Some(from) = &self.from {
            write!(f, " FROM {from}")?;
        }
        if self.ordered {
            f.write_str(" ORDERED")?;
        }
        if let Some(n) = self.max_deliveries {
            write!(f, " MAX DELIVERIES {n}")?;
        }
        if let Some(d) = self.ack_wait {
            write!(f, " ACK WAIT {}", Dur(d))?;
        }
        Ok(())
    }
}

impl Display for Unsubscribe {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "UNSUBSCRIBE GROUP {}", Name(&self.group))?;
        if let Some(from) = &self.from {
            write!(f, " FROM {}", Name(from))?;
        }
        Ok(())
    }
}

impl Display for ConsumeSource {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ConsumeSource::Topic { name, group } => {
                Name(name).fmt(f)?;
                if let Some(g) = group {
                    write!(f, " GROUP {}", Name(g))?;
                }
                Ok(())
            }
            ConsumeSource::Group(g) => write!(f, "GROUP {}", Name(g)),
        }
    }
}

impl Display for Consume {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("CONSUME")?;
        if let Some(n) = self.count {
            write!(f, " {n}")?;
        }
        write!(f, " FROM {}", self.source)?;
        if let Some(m) = &self.member {
            write!(f, " MEMBER {}", Str(m))?;
        }
        if let Some(d) = self.wait {
            write!(f, " WAIT {}", Dur(d))?;
        }
        if let Some(d) = self.ack_wait {
            write!(f, " ACK WAIT {}", Dur(d))?;
        }
        Ok(())
    }
}

impl Display for Nack {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "NACK {}", List(&self.ids))?;
        match &self.action {
            NackAction::Now => Ok(()),
            NackAction::Delay(d) => write!(f, " DELAY {}", Dur(*d)),
            NackAction::Dead(None) => f.write_str(" DEAD"),
            NackAction::Dead(Some(reason)) => write!(f, " DEAD {}", Str(reason)),
        }?;
        match &self.reason {
            Some(reason) => write!(f, " {}", Str(reason)),
            None => Ok(()),
        }
    }
}

impl Display for ReplayFrom {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            ReplayFrom::Beginning => f.write_str("BEGINNING"),
            ReplayFrom::Latest => f.write_str("LATEST"),
            ReplayFrom::Offset {
                offset,
                partition: None,
            } => write!(f, "OFFSET {offset}"),
            ReplayFrom::Offset {
                offset,
                partition: Some(p),
            } => write!(f, "OFFSET {offset} PARTITION {p}"),
            ReplayFrom::Timestamp(t) => write!(f, "TIMESTAMP {t}"),
        }
    }
}

impl Display for Replay {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "REPLAY {} GROUP {} FROM {}",
            Name(&self.topic),
            Name(&self.group),
            self.from
        )
    }
}

impl Display for DlqOp {
    /// The part after `REQUEUE DLQ` / `PURGE DLQ` (with a leading space when not empty).
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        if let Some(t) = &self.topic {
            write!(f, " {}", Name(t))?;
            if let Some(g) = &self.group {
                write!(f, " GROUP {}", Name(g))?;
            }
        }
        if let Some(e) = &self.filter {
            write!(f, " WHERE {e}")?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
        }
        if self.dry_run {
            f.write_str(" DRY RUN")?;
        }
        Ok(())
    }
}

impl Display for Export {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "EXPORT {} TO {}", Name(&self.topic), Str(&self.file))?;
        if let Some(e) = &self.filter {
            write!(f, " WHERE {e}")?;
        }
        if self.overwrite {
            f.write_str(" OVERWRITE")?;
        }
        Ok(())
    }
}

impl Display for Import {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "IMPORT {} INTO {}", Str(&self.file), Name(&self.topic))
    }
}

impl Display for Workload {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Workload::Publish => "publish",
            Workload::PublishBatch => "publish_batch",
            Workload::PublishConcurrent => "publish_concurrent",
            Workload::ConsumeAck => "consume_ack",
            Workload::Replay => "replay",
        })
    }
}

impl Display for Bench {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str("BENCH")?;
        if !self.workloads.is_empty() {
            write!(f, " {}", List(&self.workloads))?;
        }
        if let Some(n) = self.messages {
            write!(f, " MESSAGES {n}")?;
        }
        if let Some(n) = self.size {
            write!(f, " SIZE {}", Size(n))?;
        }
        if let Some(n) = self.batch {
            write!(f, " BATCH {n}")?;
        }
        if let Some(n) = self.producers {
            write!(f, " PRODUCERS {n}")?;
        }
        Ok(())
    }
}

impl Display for Tail {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "TAIL {}", Name(&self.topic))?;
        if let Some(e) = &self.filter {
            write!(f, " WHERE {e}")?;
        }
        Ok(())
    }
}

impl Display for Source {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Source::Topic(n) => Name(n).fmt(f),
            Source::Dlq => f.write_str("DLQ"),
            Source::Topics => f.write_str("TOPICS"),
            Source::Groups => f.write_str("GROUPS"),
            Source::Processed => f.write_str("PROCESSED"),
            Source::Deliveries => f.write_str("DELIVERIES"),
        }
    }
}

impl Display for SelectItem {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            SelectItem::Star => f.write_char('*'),
            SelectItem::Expr { expr, alias: None } => expr.fmt(f),
            SelectItem::Expr {
                expr,
                alias: Some(a),
            } => write!(f, "{expr} AS {}", Name(a)),
        }
    }
}

impl Display for OrderBy {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        self.expr.fmt(f)?;
        if self.desc {
            f.write_str(" DESC")?;
        }
        Ok(())
    }
}

impl Display for Select {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "SELECT {} FROM {}", List(&self.items), self.source)?;
        if let Some(e) = &self.filter {
            write!(f, " WHERE {e}")?;
        }
        if !self.group_by.is_empty() {
            write!(f, " GROUP BY {}", List(&self.group_by))?;
        }
        if !self.order_by.is_empty() {
            write!(f, " ORDER BY {}", List(&self.order_by))?;
        }
        if let Some(n) = self.limit {
            write!(f, " LIMIT {n}")?;
            if let Some(m) = self.offset {
                write!(f, " OFFSET {m}")?;
            }
        }
        Ok(())
    }
}

impl Display for Literal {
    /// Floats print with `{:?}` so they keep a `.` or exponent and parse
    /// back as the same float.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Literal::Null => f.write_str("NULL"),
            Literal::Bool(true) => f.write_str("TRUE"),
            Literal::Bool(false) => f.write_str("FALSE"),
            Literal::Int(n) => write!(f, "{n}"),
            Literal::Float(x) => write!(f, "{x:?}"),
            Literal::String(s) => Str(s).fmt(f),
        }
    }
}

impl Display for Function {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Function::Count => "COUNT",
            Function::Sum => "SUM",
            Function::Avg => "AVG",
            Function::Min => "MIN",
            Function::Max => "MAX",
        })
    }
}

impl Display for UnaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UnaryOp::Not => "NOT ",
            UnaryOp::Neg => "-",
        })
    }
}

impl Display for BinaryOp {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            BinaryOp::Or => "OR",
            BinaryOp::And => "AND",
            BinaryOp::Eq => "=",
            BinaryOp::NotEq => "!=",
            BinaryOp::Lt => "<",
            BinaryOp::LtEq => "<=",
            BinaryOp::Gt => ">",
            BinaryOp::GtEq => ">=",
            BinaryOp::Like => "LIKE",
            BinaryOp::NotLike => "NOT LIKE",
            BinaryOp::Add => "+",
            BinaryOp::Sub => "-",
            BinaryOp::Mul => "*",
            BinaryOp::Div => "/",
            BinaryOp::Mod => "%",
        })
    }
}

/// A path field: bare when it lexes as one identifier without dots (and,
/// first in a path, is not an operator or literal word), else `"quoted"`.
fn field(f: &mut Formatter<'_>, name: &str, first: bool) -> fmt::Result {
    let bare = !name.is_empty()
        && ident_len(name) == name.len()
        && !name.contains('.')
        && (!first
            || !RESERVED_IN_EXPR
                .iter()
                .any(|r| r.eq_ignore_ascii_case(name)));
    if bare {
        f.write_str(name)
    } else {
        quote(f, name, '"')
    }
}

/// An operand: bare when it is atomic, else in parentheses.
struct Operand<'a>(&'a Expr);

impl Display for Operand<'_> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self.0 {
            Expr::Literal(_) | Expr::Path(_) | Expr::Function { .. } => self.0.fmt(f),
            e => write!(f, "({e})"),
        }
    }
}

impl Display for Expr {
    /// Sub-expressions that are not literals, paths or function calls are
    /// parenthesised; the top level is bare.
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Expr::Literal(l) => l.fmt(f),
            Expr::Path(segments) => {
                for (n, s) in segments.iter().enumerate() {
                    match s {
                        PathSegment::Field(name) => {
                            if n > 0 {
                                f.write_char('.')?;
                            }
                            field(f, name, n == 0)?;
                        }
                        PathSegment::Index(i) => write!(f, "[{i}]")?,
                    }
                }
                Ok(())
            }
            // `-5` would read back as a literal: a negated number keeps its parentheses.
            Expr::Unary {
                op: UnaryOp::Neg,
                expr,
            } if matches!(**expr, Expr::Literal(Literal::Int(_) | Literal::Float(_))) => {
                write!(f, "-({expr})")
            }
            Expr::Unary { op, expr } => write!(f, "{op}{}", Operand(expr)),
            Expr::Binary { left, op, right } => {
                write!(f, "{} {op} {}", Operand(left), Operand(right))
            }
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                write!(f, "{} {not}IN ({})", Operand(expr), List(list))
            }
            Expr::Between {
                expr,
                low,
                high,
                negated,
            } => {
                let not = if *negated { "NOT " } else { "" };
                write!(
                    f,
                    "{} {not}BETWEEN {} AND {}",
                    Operand(expr),
                    Operand(low),
                    Operand(high)
                )
            }
            Expr::IsNull {
                expr,
                negated: false,
            } => write!(f, "{} IS NULL", Operand(expr)),
            Expr::IsNull {
                expr,
                negated: true,
            } => write!(f, "{} IS NOT NULL", Operand(expr)),
            Expr::Function { func, arg: None } => write!(f, "{func}(*)"),
            Expr::Function {
                func,
                arg: Some(arg),
            } => write!(f, "{func}({arg})"),
        }
    }
}

impl Display for Statement {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Statement::Create(s) => s.fmt(f),
            Statement::Alter(s) => s.fmt(f),
            Statement::Drop(s) => s.fmt(f),
            Statement::ShowTopics => f.write_str("SHOW TOPICS"),
            Statement::ShowQueues => f.write_str("SHOW QUEUES"),
            Statement::ShowGroups(None) => f.write_str("SHOW GROUPS"),
            Statement::ShowGroups(Some(n)) => write!(f, "SHOW GROUPS ON {}", Name(n)),
            Statement::Describe(n) => write!(f, "DESCRIBE {}", Name(n)),
            Statement::Publish(s) => s.fmt(f),
            Statement::Subscribe(s) => s.fmt(f),
            Statement::Unsubscribe(s) => s.fmt(f),
            Statement::Consume(s) => s.fmt(f),
            Statement::Ack(ids) => write!(f, "ACK {}", List(ids)),
            Statement::Nack(s) => s.fmt(f),
            Statement::Replay(s) => s.fmt(f),
            Statement::RequeueDlq(op) => write!(f, "REQUEUE DLQ{op}"),
            Statement::PurgeDlq(op) => write!(f, "PURGE DLQ{op}"),
            Statement::Purge(n) => write!(f, "PURGE {}", Name(n)),
            Statement::Begin => f.write_str("BEGIN"),
            Statement::Commit => f.write_str("COMMIT"),
            Statement::Rollback => f.write_str("ROLLBACK"),
            Statement::Check => f.write_str("CHECK"),
            Statement::Export(s) => s.fmt(f),
            Statement::Import(s) => s.fmt(f),
            Statement::Bench(s) => s.fmt(f),
            Statement::Select(s) => s.fmt(f),
            Statement::Tail(s) => s.fmt(f),
            Statement::SetClock(ClockSetting::At(t)) => write!(f, "SET CLOCK {t}"),
            Statement::SetClock(ClockSetting::System) => f.write_str("SET CLOCK SYSTEM"),
            Statement::Advance(d) => write!(f, "ADVANCE {}", Dur(*d)),
            Statement::ShowClock => f.write_str("SHOW CLOCK"),
            Statement::Backup(b) => write!(f, "BACKUP TO {}", Str(&b.file)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lang::parse_statement;

    fn canonical(src: &str) -> String {
        match parse_statement(src) {
            Ok(s) => s.to_string(),
            Err(e) => panic!("{}", e.render(src)),
        }
    }

    #[test]
    fn durations_and_sizes_use_the_largest_exact_unit() {
        assert_eq!(Dur(Duration::from_secs(90)).to_string(), "90s");
        assert_eq!(Dur(Duration::from_secs(120)).to_string(), "2m");
        assert_eq!(Dur(Duration::from_millis(1500)).to_string(), "1500ms");
        assert_eq!(Dur(Duration::from_secs(86400 * 7)).to_string(), "7d");
        assert_eq!(Dur(Duration::ZERO).to_string(), "0ms");
        assert_eq!(Size(512).to_string(), "512B");
        assert_eq!(Size(64 << 10).to_string(), "64KB");
        assert_eq!(Size(3 << 30).to_string(), "3GB");
        assert_eq!(Size(0).to_string(), "0B");
    }

    #[test]
    fn names_and_strings_are_quoted_when_needed() {
        assert_eq!(canonical("describe order.placed"), "DESCRIBE order.placed");
        assert_eq!(canonical("describe \"my topic\""), "DESCRIBE \"my topic\"");
        assert_eq!(canonical("purge \"dlq\""), "PURGE \"dlq\"");
        assert_eq!(canonical("describe \"a\"\"b\""), "DESCRIBE \"a\"\"b\"");
        assert_eq!(canonical("publish t 'it''s'"), "PUBLISH TO t 'it''s'");
    }

    #[test]
    fn statements_print_canonically() {
        assert_eq!(
            canonical("create topic t retention 120s ack wait 90s dedup window 1500ms"),
            "CREATE TOPIC t RETENTION 2m ACK WAIT 90s DEDUP WINDOW 1500ms"
        );
        assert_eq!(
            canonical("subscribe group g to t from timestamp '2024-01-15T10:30:00.250+01:00'"),
            "SUBSCRIBE GROUP g TO t FROM TIMESTAMP '2024-01-15T09:30:00.25Z'"
        );
        assert_eq!(
            canonical("replay t group g from timestamp '-90m'"),
            "REPLAY t GROUP g FROM TIMESTAMP '-90m'"
        );
        assert_eq!(
            canonical("publish t  {\"a\": 1} ,'x'"),
            "PUBLISH TO t {\"a\": 1}, 'x'"
        );
    }

    #[test]
    fn expressions_are_parenthesised_where_needed() {
        assert_eq!(
            canonical(
                "select count(*), sum(data.total) as s from t where a = 1 or not b and c between 1 + 2 and 4"
            ),
            "SELECT COUNT(*), SUM(data.total) AS s FROM t WHERE (a = 1) OR ((NOT b) AND (c BETWEEN (1 + 2) AND 4))"
        );
        assert_eq!(
            canonical("select -(5), -5, - x from t"),
            "SELECT -(5), -5, -x FROM t"
        );
        assert_eq!(
            canonical("select data.items[0].price, \"not\" from t"),
            "SELECT data.items[0].price, \"not\" FROM t"
        );
        assert_eq!(
            canonical("select 1.0, 1e300, 0.1 from t"),
            "SELECT 1.0, 1e300, 0.1 FROM t"
        );
    }
}
