//! The typed syntax tree of the command language (see LANGUAGE.md).
//!
//! Every node implements `Display` printing canonical text that parses back
//! to an equal node (`parse(display(ast)) == ast`).

use std::time::Duration;

pub use crate::delivery::NackAction;
pub use crate::group::{ReplayFrom, StartFrom, TimeSpec};
pub use crate::topic::{Overflow, Retention, TopicKind};

/// One statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Statement {
    /// `CREATE TOPIC|QUEUE [IF NOT EXISTS] name options...`
    Create(Create),
    /// `ALTER TOPIC|QUEUE name SET option...`
    Alter(Alter),
    /// `DROP TOPIC|QUEUE [IF EXISTS] name`
    Drop(DropStmt),
    /// `SHOW TOPICS`
    ShowTopics,
    /// `SHOW QUEUES`
    ShowQueues,
    /// `SHOW GROUPS [ON name]`
    ShowGroups(Option<String>),
    /// `DESCRIBE name`
    Describe(String),
    /// `PUBLISH ...`
    Publish(Publish),
    /// `SUBSCRIBE GROUP ...`
    Subscribe(Subscribe),
    /// `UNSUBSCRIBE GROUP g [FROM name]`
    Unsubscribe(Unsubscribe),
    /// `CONSUME ...`
    Consume(Consume),
    /// `ACK id, ...`
    Ack(Vec<u64>),
    /// `NACK id, ... [DELAY d | DEAD ['reason']]`
    Nack(Nack),
    /// `REPLAY name GROUP g FROM ...`
    Replay(Replay),
    /// `REQUEUE DLQ ...`
    RequeueDlq(DlqOp),
    /// `PURGE DLQ ...` (limit is always None)
    PurgeDlq(DlqOp),
    /// `PURGE name`
    Purge(String),
    /// `BEGIN`
    Begin,
    /// `COMMIT`
    Commit,
    /// `ROLLBACK`
    Rollback,
    /// `CHECK`
    Check,
    /// `EXPORT name TO 'file' [WHERE expr]`
    Export(Export),
    /// `IMPORT 'file' INTO name`
    Import(Import),
    /// `BENCH ...`
    Bench(Bench),
    /// `SELECT ...`
    Select(Select),
    /// `TAIL name [WHERE expr]`
    Tail(Tail),
    /// `SET CLOCK 'time' | SET CLOCK SYSTEM`: this session's clock.
    SetClock(ClockSetting),
    /// `ADVANCE duration`: moves this session's clock forward.
    Advance(Duration),
    /// `SHOW CLOCK`: the time this session's statements run at.
    ShowClock,
    /// `BACKUP TO 'file'`
    Backup(Backup),
}

/// What `SET CLOCK` sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClockSetting {
    /// `SET CLOCK 'time'`: a clock that stands still at that time until
    /// ADVANCE or another SET CLOCK moves it (a relative `'-1h'` counts from
    /// the session's clock).
    At(TimeSpec),
    /// `SET CLOCK SYSTEM`: back to the machine's clock.
    System,
}

/// `BACKUP TO 'file'`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// The file to create.
    pub file: String,
}

/// `CREATE TOPIC|QUEUE`.
#[derive(Debug, Clone, PartialEq)]
pub struct Create {
    /// Topic or queue.
    pub kind: TopicKind,
    /// IF NOT EXISTS was given.
    pub if_not_exists: bool,
    /// The name.
    pub name: String,
    /// Options in the order written.
    pub options: Vec<TopicOption>,
}

/// `ALTER TOPIC|QUEUE name SET option...`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alter {
    /// Topic or queue.
    pub kind: TopicKind,
    /// The name.
    pub name: String,
    /// At least one option.
    pub options: Vec<TopicOption>,
}

/// `DROP TOPIC|QUEUE [IF EXISTS] name`.
#[derive(Debug, Clone, PartialEq)]
pub struct DropStmt {
    /// Topic or queue.
    pub kind: TopicKind,
    /// IF EXISTS was given.
    pub if_exists: bool,
    /// The name.
    pub name: String,
}

/// One option of CREATE/ALTER.
#[derive(Debug, Clone, PartialEq)]
pub enum TopicOption {
    /// `PARTITIONS n`
    Partitions(u32),
    /// `RETENTION ...`
    Retention(Retention),
    /// `MAX LENGTH n`
    MaxLength(u64),
    /// `OVERFLOW REJECT | DROP OLDEST`
    Overflow(Overflow),
    /// `DEDUP WINDOW d`
    DedupWindow(Duration),
    /// `MAX DELIVERIES n`
    MaxDeliveries(u32),
    /// `ACK WAIT d`
    AckWait(Duration),
}

/// A message payload literal.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    /// `'text'`
    Text(String),
    /// A bare JSON object or array, kept as the exact source text.
    Json(String),
}

/// `PUBLISH [TO] name [KEY 'k'] [PARTITION n] [HEADERS (h = 'v', ...)] [DEDUP 'id'] [DELAY d] payload, ...`
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    /// The topic or queue.
    pub topic: String,
    /// KEY.
    pub key: Option<String>,
    /// PARTITION.
    pub partition: Option<u32>,
    /// HEADERS, in order written.
    pub headers: Vec<(String, String)>,
    /// DEDUP id.
    pub dedup: Option<String>,
    /// DELAY.
    pub delay: Option<Duration>,
    /// At least one payload.
    pub payloads: Vec<Payload>,
}

/// One entry of SUBSCRIBE's TO list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeTarget {
    /// A topic name.
    Name(String),
    /// A quoted pattern: `*` one dot-separated word, `#` zero or more.
    Pattern(String),
}

/// `SUBSCRIBE GROUP g TO target, ... [FROM ...] [ORDERED] [MAX DELIVERIES n] [ACK WAIT d]`
#[derive(Debug, Clone, PartialEq)]
pub struct Subscribe {
    /// The group.
    pub group: String,
    /// At least one target.
    pub targets: Vec<SubscribeTarget>,
    /// FROM.
    pub from: Option<StartFrom>,
    /// ORDERED.
    pub ordered: bool,
    /// MAX DELIVERIES.
    pub max_deliveries: Option<u32>,
    /// ACK WAIT.
    pub ack_wait: Option<Duration>,
}

/// `UNSUBSCRIBE GROUP g [FROM name]`
#[derive(Debug, Clone, PartialEq)]
pub struct Unsubscribe {
    /// The group.
    pub group: String,
    /// Only this topic (or pattern text); else the whole group.
    pub from: Option<String>,
}

/// What CONSUME reads.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsumeSource {
    /// `FROM name [GROUP g]` (no group: the queue's own group).
    Topic {
        /// The topic or queue.
        name: String,
        /// GROUP.
        group: Option<String>,
    },
    /// `FROM GROUP g`: every topic of the group.
    Group(String),
}

/// `CONSUME [n] FROM ... [MEMBER 'm'] [WAIT d] [ACK WAIT d]`
#[derive(Debug, Clone, PartialEq)]
pub struct Consume {
    /// n; None means 1.
    pub count: Option<u32>,
    /// FROM.
    pub source: ConsumeSource,
    /// MEMBER.
    pub member: Option<String>,
    /// WAIT.
    pub wait: Option<Duration>,
    /// ACK WAIT.
    pub ack_wait: Option<Duration>,
}

/// `NACK id, ... [DELAY d] ['reason'] | NACK id, ... DEAD ['reason']`
#[derive(Debug, Clone, PartialEq)]
pub struct Nack {
    /// Delivery ids.
    pub ids: Vec<u64>,
    /// What to do.
    pub action: NackAction,
    /// Why the attempt failed (NACK and NACK DELAY; DEAD keeps its reason
    /// in the action): remembered in the attempt history.
    pub reason: Option<String>,
}

/// `REPLAY name GROUP g FROM ...`
#[derive(Debug, Clone, PartialEq)]
pub struct Replay {
    /// The topic.
    pub topic: String,
    /// The group.
    pub group: String,
    /// Where to.
    pub from: ReplayFrom,
}

/// `REQUEUE DLQ [name [GROUP g]] [WHERE expr] [LIMIT n] [DRY RUN]` and
/// `PURGE DLQ [name [GROUP g]] [WHERE expr] [DRY RUN]`
#[derive(Debug, Clone, PartialEq)]
pub struct DlqOp {
    /// Only this topic.
    pub topic: Option<String>,
    /// Only this group (only with a topic).
    pub group: Option<String>,
    /// WHERE.
    pub filter: Option<Expr>,
    /// LIMIT (REQUEUE only).
    pub limit: Option<u64>,
    /// DRY RUN: list the dead letters it would move, change nothing.
    pub dry_run: bool,
}

/// `EXPORT name TO 'file' [WHERE expr] [OVERWRITE]`
#[derive(Debug, Clone, PartialEq)]
pub struct Export {
    /// The topic.
    pub topic: String,
    /// The file.
    pub file: String,
    /// WHERE.
    pub filter: Option<Expr>,
    /// OVERWRITE: replace an existing file (otherwise one is refused).
    pub overwrite: bool,
}

/// `IMPORT 'file' INTO name`
#[derive(Debug, Clone, PartialEq)]
pub struct Import {
    /// The file.
    pub file: String,
    /// The topic.
    pub topic: String,
}

/// A BENCH workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// `publish`
    Publish,
    /// `publish_batch`
    PublishBatch,
    /// `publish_concurrent`
    PublishConcurrent,
    /// `consume_ack`
    ConsumeAck,
    /// `replay`
    Replay,
}

/// `BENCH [workload, ...] [MESSAGES n] [SIZE size] [BATCH n] [PRODUCERS n]`
#[derive(Debug, Clone, PartialEq)]
pub struct Bench {
    /// Empty means all.
    pub workloads: Vec<Workload>,
    /// MESSAGES.
    pub messages: Option<u64>,
    /// SIZE in bytes.
    pub size: Option<u64>,
    /// BATCH.
    pub batch: Option<u64>,
    /// PRODUCERS.
    pub producers: Option<u32>,
}

/// `TAIL name [WHERE expr]`
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    /// The topic.
    pub topic: String,
    /// WHERE.
    pub filter: Option<Expr>,
}

/// What a SELECT reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A topic or queue.
    Topic(String),
    /// `DLQ`
    Dlq,
    /// `TOPICS`
    Topics,
    /// `GROUPS`
    Groups,
    /// `PROCESSED`: the keys consumers marked as handled.
    Processed,
    /// `DELIVERIES`: every message a group has taken and not settled.
    Deliveries,
}

/// One item of the select list.
#[derive(Debug, Clone, PartialEq)]
pub enum SelectItem {
    /// `*`
    Star,
    /// `expr [AS name]`
    Expr {
        /// The expression.
        expr: Expr,
        /// AS name.
        alias: Option<String>,
    },
}

/// One ORDER BY term.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderBy {
    /// The expression.
    pub expr: Expr,
    /// DESC.
    pub desc: bool,
}

/// `SELECT items FROM source [WHERE] [GROUP BY] [ORDER BY] [LIMIT n [OFFSET m]]`
#[derive(Debug, Clone, PartialEq)]
pub struct Select {
    /// At least one item.
    pub items: Vec<SelectItem>,
    /// FROM.
    pub source: Source,
    /// WHERE.
    pub filter: Option<Expr>,
    /// GROUP BY.
    pub group_by: Vec<Expr>,
    /// ORDER BY.
    pub order_by: Vec<OrderBy>,
    /// LIMIT.
    pub limit: Option<u64>,
    /// OFFSET (only with LIMIT).
    pub offset: Option<u64>,
}

/// A literal value in an expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    /// NULL
    Null,
    /// TRUE / FALSE
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A decimal (finite).
    Float(f64),
    /// `'text'`
    String(String),
}

/// One step of a path: `data`, `.total`, `[0]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    /// A field name.
    Field(String),
    /// An array index.
    Index(u64),
}

/// Unary operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnaryOp {
    /// NOT
    Not,
    /// unary minus
    Neg,
}

/// Binary operators, loosest first: OR, AND, comparisons/LIKE, + -, * / %.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinaryOp {
    /// OR
    Or,
    /// AND
    And,
    /// =
    Eq,
    /// != or <>
    NotEq,
    /// <
    Lt,
    /// <=
    LtEq,
    /// >
    Gt,
    /// >=
    GtEq,
    /// LIKE
    Like,
    /// NOT LIKE
    NotLike,
    /// +
    Add,
    /// -
    Sub,
    /// *
    Mul,
    /// /
    Div,
    /// %
    Mod,
}

/// Aggregate functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// COUNT
    Count,
    /// SUM
    Sum,
    /// AVG
    Avg,
    /// MIN
    Min,
    /// MAX
    Max,
}

/// An expression of WHERE / SELECT / ORDER BY / GROUP BY.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    /// A literal.
    Literal(Literal),
    /// A column or a JSON path: first segment is always a `Field`
    /// (`offset`, `data.items[0].price`, `headers.x`).
    Path(Vec<PathSegment>),
    /// NOT e, -e
    Unary {
        /// Operator.
        op: UnaryOp,
        /// Operand.
        expr: Box<Expr>,
    },
    /// l op r
    Binary {
        /// Left.
        left: Box<Expr>,
        /// Operator.
        op: BinaryOp,
        /// Right.
        right: Box<Expr>,
    },
    /// `e [NOT] IN (a, b, ...)`
    InList {
        /// Tested.
        expr: Box<Expr>,
        /// At least one.
        list: Vec<Expr>,
        /// NOT IN.
        negated: bool,
    },
    /// `e [NOT] BETWEEN lo AND hi`
    Between {
        /// Tested.
        expr: Box<Expr>,
        /// Low.
        low: Box<Expr>,
        /// High.
        high: Box<Expr>,
        /// NOT BETWEEN.
        negated: bool,
    },
    /// `e IS [NOT] NULL`
    IsNull {
        /// Tested.
        expr: Box<Expr>,
        /// IS NOT NULL.
        negated: bool,
    },
    /// `COUNT(*)`, `SUM(e)`, ...; `arg` None is `*` (COUNT only).
    Function {
        /// Which.
        func: Function,
        /// Argument; None for `*`.
        arg: Option<Box<Expr>>,
    },
}
