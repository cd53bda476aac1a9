//! nom 8 parser for the command language (see LANGUAGE.md).
//!
//! Shared lexing lives in [`lex`], expressions in [`expr`], and each family
//! of statements in its own module. Parsers backtrack (`nom::Err::Error`)
//! until the grammar is certain, then fail (`nom::Err::Failure`, via
//! [`lex::expect`]) with a message saying what was expected at that point.

mod clock;
mod consume;
mod definition;
pub(crate) mod expr;
pub(crate) mod lex;
mod maintenance;
mod produce;
mod query;

use std::ops::Range;

use self::lex::{PErr, PResult, describe_token, failure, ident, skip_ws};
use super::ast::Statement;
pub use crate::error::ParseError;

/// Keywords of the language, upper case, for completion and highlighting.
pub const KEYWORDS: &[&str] = &[
    "ACK",
    "ADVANCE",
    "ALTER",
    "AND",
    "AS",
    "ASC",
    "AVG",
    "BACKUP",
    "BATCH",
    "BEGIN",
    "BEGINNING",
    "BENCH",
    "BETWEEN",
    "BY",
    "CHECK",
    "CLOCK",
    "COMMIT",
    "CONSUME",
    "CONSUME_ACK",
    "CONSUMED",
    "COUNT",
    "CREATE",
    "DEAD",
    "DEDUP",
    "DELAY",
    "DELIVERIES",
    "DESC",
    "DESCRIBE",
    "DLQ",
    "DROP",
    "DRY",
    "EXISTS",
    "EXPORT",
    "FALSE",
    "FOREVER",
    "FROM",
    "GROUP",
    "GROUPS",
    "PROCESSED",
    "HEADERS",
    "IF",
    "IMPORT",
    "IN",
    "INTO",
    "IS",
    "KEY",
    "LATEST",
    "LENGTH",
    "LIKE",
    "LIMIT",
    "MAX",
    "MEMBER",
    "MESSAGES",
    "MIN",
    "NACK",
    "NOT",
    "NULL",
    "OFFSET",
    "OLDEST",
    "ON",
    "OR",
    "ORDER",
    "ORDERED",
    "OVERFLOW",
    "PARTITION",
    "PARTITIONS",
    "PRODUCERS",
    "PUBLISH",
    "PUBLISH_BATCH",
    "PUBLISH_CONCURRENT",
    "PURGE",
    "QUEUE",
    "QUEUES",
    "REJECT",
    "REPLAY",
    "REQUEUE",
    "RETENTION",
    "ROLLBACK",
    "RUN",
    "SELECT",
    "SET",
    "SHOW",
    "SIZE",
    "SUBSCRIBE",
    "SUM",
    "SYSTEM",
    "TAIL",
    "TIMESTAMP",
    "TO",
    "TOPIC",
    "TOPICS",
    "TRUE",
    "UNSUBSCRIBE",
    "UNTIL",
    "WAIT",
    "WHERE",
    "WINDOW",
];

/// True when `word` is a keyword (case-insensitively).
pub(crate) fn is_keyword(word: &str) -> bool {
    KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word))
}

/// A syntax error from nom, placed in `source`.
fn from_nom(source: &str, err: nom::Err<PErr<'_>>) -> ParseError {
    let e = match err {
        nom::Err::Error(e) | nom::Err::Failure(e) => e,
        nom::Err::Incomplete(_) => PErr {
            input: "",
            message: None,
        },
    };
    let position = source.len().saturating_sub(e.input.len());
    let message = match e.message {
        Some(m) => m.into_owned(),
        None => format!("unexpected {}", describe_token(e.input)),
    };
    ParseError::at(source, position, message)
}

/// One parsed statement and its byte range in the input (without the `;`).
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedStatement {
    /// The statement.
    pub statement: Statement,
    /// Where it was in the input.
    pub span: Range<usize>,
}

const STATEMENT_EXPECTED: &str = "expected a statement (CREATE, PUBLISH, CONSUME, SELECT, ...)";

/// One statement, ending right after its last token.
fn statement(input: &str) -> PResult<'_, Statement> {
    let start = skip_ws(input);
    let Ok((rest, word)) = ident(start) else {
        return failure(start, STATEMENT_EXPECTED);
    };
    let done = |s: Statement| lex::end(rest, s, "expected ';' or end of input");
    match word.to_ascii_uppercase().as_str() {
        "CREATE" => definition::create(rest),
        "ALTER" => definition::alter(rest),
        "DROP" => definition::drop(rest),
        "SHOW" => definition::show(rest),
        "DESCRIBE" => definition::describe(rest),
        "PUBLISH" => produce::publish(rest),
        "SUBSCRIBE" => consume::subscribe(rest),
        "UNSUBSCRIBE" => consume::unsubscribe(rest),
        "CONSUME" => consume::consume(rest),
        "ACK" => consume::ack(rest),
        "NACK" => consume::nack(rest),
        "REPLAY" => maintenance::replay(rest),
        "REQUEUE" => maintenance::requeue(rest),
        "PURGE" => maintenance::purge(rest),
        "EXPORT" => maintenance::export(rest),
        "IMPORT" => maintenance::import(rest),
        "BENCH" => maintenance::bench(rest),
        "BACKUP" => maintenance::backup(rest),
        "SET" => clock::set(rest),
        "ADVANCE" => clock::advance(rest),
        "SELECT" => query::select(rest),
        "TAIL" => query::tail(rest),
        "BEGIN" => done(Statement::Begin),
        "COMMIT" => done(Statement::Commit),
        "ROLLBACK" => done(Statement::Rollback),
        "CHECK" => done(Statement::Check),
        _ => failure(start, STATEMENT_EXPECTED),
    }
}

/// Parses a script: statements separated by `;` (optional after the last
/// one; empty statements are skipped), comments `--`.
///
/// # Errors
/// The first syntax error, with its position and what was expected there.
pub fn parse_script(input: &str) -> Result<Vec<ParsedStatement>, ParseError> {
    let offset = |rest: &str| input.len() - rest.len();
    let mut out = Vec::new();
    // A UTF-8 byte order mark (files saved by some editors) is not text.
    let mut i = input.strip_prefix('\u{feff}').unwrap_or(input);
    loop {
        i = skip_ws(i);
        if i.is_empty() {
            return Ok(out);
        }
        if let Some(rest) = i.strip_prefix(';') {
            i = rest;
            continue;
        }
        let (rest, statement) = statement(i).map_err(|e| from_nom(input, e))?;
        out.push(ParsedStatement {
            statement,
            span: offset(i)..offset(rest),
        });
        i = skip_ws(rest);
        match i.strip_prefix(';') {
            Some(rest) => i = rest,
            None if i.is_empty() => return Ok(out),
            None => {
                let message = format!(
                    "unexpected {}: expected ';' or end of input",
                    describe_token(i)
                );
                return Err(ParseError::at(input, offset(i), message));
            }
        }
    }
}

/// Parses exactly one statement (a trailing `;` is allowed).
///
/// # Errors
/// A syntax error, or an error when there is no statement or more than one.
pub fn parse_statement(input: &str) -> Result<Statement, ParseError> {
    let start = skip_ws(input.strip_prefix('\u{feff}').unwrap_or(input));
    if start.is_empty() || start.starts_with(';') {
        return Err(ParseError::at(
            input,
            input.len() - start.len(),
            STATEMENT_EXPECTED.to_string(),
        ));
    }
    let (rest, statement) = statement(start).map_err(|e| from_nom(input, e))?;
    let rest = skip_ws(rest);
    let rest = skip_ws(rest.strip_prefix(';').unwrap_or(rest));
    if !rest.is_empty() {
        let message = format!(
            "unexpected {}: expected end of input (one statement only)",
            describe_token(rest)
        );
        return Err(ParseError::at(input, input.len() - rest.len(), message));
    }
    Ok(statement)
}

impl std::str::FromStr for Statement {
    type Err = ParseError;

    /// Same as [`parse_statement`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_statement(s)
    }
}

/// True when the text is ready to run in the REPL: its last token outside
/// comments is a `;` not inside a string, quoted name or JSON literal (or the
/// text is only whitespace and comments).
pub fn is_complete(input: &str) -> bool {
    let b = input.as_bytes();
    let mut last = None;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = input[i..].find('\n').map_or(b.len(), |n| i + n);
            }
            q @ (b'\'' | b'"') => {
                let mut j = i + 1;
                loop {
                    match b[j..].iter().position(|&c| c == q) {
                        None => return false,
                        Some(n) if b.get(j + n + 1) == Some(&q) => j += n + 2,
                        Some(n) => {
                            j += n + 1;
                            break;
                        }
                    }
                }
                last = Some(q);
                i = j;
            }
            c @ (b'{' | b'[') => {
                let mut stream = serde_json::Deserializer::from_str(&input[i..])
                    .into_iter::<serde_json::Value>();
                match stream.next() {
                    Some(Ok(_)) => i += stream.byte_offset().max(1),
                    Some(Err(e)) if e.is_eof() => return false,
                    _ => i += 1,
                }
                last = Some(c);
            }
            c if c.is_ascii_whitespace() => i += 1,
            c => {
                last = Some(c);
                i += 1;
            }
        }
    }
    last.is_none_or(|c| c == b';')
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::lang::ast::*;

    fn ok(src: &str) -> Statement {
        match parse_statement(src) {
            Ok(s) => s,
            Err(e) => panic!("{}", e.render(src)),
        }
    }

    fn err(src: &str) -> ParseError {
        match parse_statement(src) {
            Ok(s) => panic!("{src} parsed as {s:?}"),
            Err(e) => e,
        }
    }

    /// The message and the text at the error position.
    fn err_at(src: &str) -> (String, String) {
        let e = err(src);
        (e.message, src[e.position..].to_string())
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn path(parts: &[&str]) -> Expr {
        Expr::Path(
            parts
                .iter()
                .map(|p| PathSegment::Field(p.to_string()))
                .collect(),
        )
    }

    #[test]
    fn create_and_options() {
        assert_eq!(
            ok(
                "create topic if not exists order.placed partitions 4 retention 7d max length 100 \
                overflow drop oldest dedup window 5m max deliveries 3 ack wait 30s"
            ),
            Statement::Create(Create {
                kind: TopicKind::Topic,
                if_not_exists: true,
                name: "order.placed".into(),
                options: vec![
                    TopicOption::Partitions(4),
                    TopicOption::Retention(Retention::Age(secs(7 * 86400))),
                    TopicOption::MaxLength(100),
                    TopicOption::Overflow(Overflow::DropOldest),
                    TopicOption::DedupWindow(secs(300)),
                    TopicOption::MaxDeliveries(3),
                    TopicOption::AckWait(secs(30)),
                ],
            })
        );
        let retention = |src: &str| match ok(src) {
            Statement::Create(c) => c.options,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            retention("CREATE TOPIC t RETENTION 10MB"),
            vec![TopicOption::Retention(Retention::Size(10 << 20))]
        );
        assert_eq!(
            retention("CREATE TOPIC t RETENTION 1000 MESSAGES"),
            vec![TopicOption::Retention(Retention::Messages(1000))]
        );
        assert_eq!(
            retention("CREATE TOPIC t RETENTION UNTIL CONSUMED"),
            vec![TopicOption::Retention(Retention::UntilConsumed)]
        );
        assert_eq!(
            retention("CREATE TOPIC t RETENTION forever, OVERFLOW reject"),
            vec![
                TopicOption::Retention(Retention::Forever),
                TopicOption::Overflow(Overflow::Reject)
            ]
        );
        assert_eq!(retention("CREATE QUEUE \"my queue\""), vec![]);
    }

    #[test]
    fn alter_drop_show_describe() {
        assert_eq!(
            ok("ALTER QUEUE jobs SET MAX DELIVERIES 5, ACK WAIT 1m"),
            Statement::Alter(Alter {
                kind: TopicKind::Queue,
                name: "jobs".into(),
                options: vec![
                    TopicOption::MaxDeliveries(5),
                    TopicOption::AckWait(secs(60))
                ],
            })
        );
        assert_eq!(
            ok("drop queue if exists jobs;"),
            Statement::Drop(DropStmt {
                kind: TopicKind::Queue,
                if_exists: true,
                name: "jobs".into()
            })
        );
        assert_eq!(ok("SHOW TOPICS"), Statement::ShowTopics);
        assert_eq!(ok("show queues"), Statement::ShowQueues);
        assert_eq!(ok("SHOW GROUPS"), Statement::ShowGroups(None));
        assert_eq!(
            ok("SHOW GROUPS ON orders"),
            Statement::ShowGroups(Some("orders".into()))
        );
        assert_eq!(
            ok("DESCRIBE email-service"),
            Statement::Describe("email-service".into())
        );
    }

    #[test]
    fn publish() {
        assert_eq!(
            ok(
                "PUBLISH orders DELAY 250ms HEADERS (source = 'web', \"x y\" = 'z') KEY 'c-1' PARTITION 2 \
                DEDUP 'o-1' {\"orderId\": \"ORD-1;\"}, 'it''s', [1, 2]"
            ),
            Statement::Publish(Publish {
                topic: "orders".into(),
                key: Some("c-1".into()),
                partition: Some(2),
                headers: vec![("source".into(), "web".into()), ("x y".into(), "z".into())],
                dedup: Some("o-1".into()),
                delay: Some(Duration::from_millis(250)),
                payloads: vec![
                    Payload::Json("{\"orderId\": \"ORD-1;\"}".into()),
                    Payload::Text("it's".into()),
                    Payload::Json("[1, 2]".into()),
                ],
            })
        );
        assert!(
            matches!(ok("publish to orders 'x'"), Statement::Publish(p) if p.topic == "orders")
        );
    }

    #[test]
    fn subscribe_and_consume() {
        assert_eq!(
            ok(
                "SUBSCRIBE GROUP billing TO orders, 'order.*' ORDERED FROM TIMESTAMP '-1h' ACK WAIT 30s MAX DELIVERIES 5"
            ),
            Statement::Subscribe(Subscribe {
                group: "billing".into(),
                targets: vec![
                    SubscribeTarget::Name("orders".into()),
                    SubscribeTarget::Pattern("order.*".into())
                ],
                from: Some(StartFrom::Timestamp(TimeSpec::Ago(secs(3600)))),
                ordered: true,
                max_deliveries: Some(5),
                ack_wait: Some(secs(30)),
            })
        );
        assert_eq!(
            ok("SUBSCRIBE GROUP g TO t FROM TIMESTAMP '2024-01-15T10:30:00Z'"),
            Statement::Subscribe(Subscribe {
                group: "g".into(),
                targets: vec![SubscribeTarget::Name("t".into())],
                from: Some(StartFrom::Timestamp(TimeSpec::Absolute(1_705_314_600_000))),
                ordered: false,
                max_deliveries: None,
                ack_wait: None,
            })
        );
        assert_eq!(
            ok("UNSUBSCRIBE GROUP g FROM 'order.*'"),
            Statement::Unsubscribe(Unsubscribe {
                group: "g".into(),
                from: Some("order.*".into())
            })
        );
        assert_eq!(
            ok("CONSUME 10 FROM orders GROUP billing WAIT 5s MEMBER 'w-1' ACK WAIT 1m"),
            Statement::Consume(Consume {
                count: Some(10),
                source: ConsumeSource::Topic {
                    name: "orders".into(),
                    group: Some("billing".into())
                },
                member: Some("w-1".into()),
                wait: Some(secs(5)),
                ack_wait: Some(secs(60)),
            })
        );
        assert_eq!(
            ok("consume from group billing"),
            Statement::Consume(Consume {
                count: None,
                source: ConsumeSource::Group("billing".into()),
                member: None,
                wait: None,
                ack_wait: None,
            })
        );
        assert!(matches!(
            ok("CONSUME FROM \"GROUP\""),
            Statement::Consume(Consume { source: ConsumeSource::Topic { name, group: None }, .. }) if name == "GROUP"
        ));
        assert_eq!(ok("ACK 1, 2,3"), Statement::Ack(vec![1, 2, 3]));
        assert_eq!(
            ok("NACK 4"),
            Statement::Nack(Nack {
                ids: vec![4],
                action: NackAction::Now,
                reason: None
            })
        );
        assert_eq!(
            ok("NACK 4 DELAY 10s"),
            Statement::Nack(Nack {
                ids: vec![4],
                action: NackAction::Delay(secs(10)),
                reason: None
            })
        );
        assert_eq!(
            ok("NACK 4, 5 DEAD"),
            Statement::Nack(Nack {
                ids: vec![4, 5],
                action: NackAction::Dead(None),
                reason: None
            })
        );
        assert_eq!(
            ok("NACK 4 DEAD 'bad data'"),
            Statement::Nack(Nack {
                ids: vec![4],
                action: NackAction::Dead(Some("bad data".into())),
                reason: None
            })
        );
        assert_eq!(
            ok("NACK 4 'timeout'"),
            Statement::Nack(Nack {
                ids: vec![4],
                action: NackAction::Now,
                reason: Some("timeout".into())
            })
        );
        assert_eq!(
            ok("NACK 4 DELAY 10s 'busy'"),
            Statement::Nack(Nack {
                ids: vec![4],
                action: NackAction::Delay(secs(10)),
                reason: Some("busy".into())
            })
        );
    }

    #[test]
    fn replay_dlq_and_maintenance() {
        assert_eq!(
            ok("REPLAY orders GROUP g FROM OFFSET 42 PARTITION 1"),
            Statement::Replay(Replay {
                topic: "orders".into(),
                group: "g".into(),
                from: ReplayFrom::Offset {
                    offset: 42,
                    partition: Some(1)
                },
            })
        );
        assert!(
            matches!(ok("REPLAY t GROUP g FROM LATEST"), Statement::Replay(r) if r.from == ReplayFrom::Latest)
        );
        assert_eq!(
            ok("REQUEUE DLQ orders GROUP g WHERE attempts > 3 LIMIT 10"),
            Statement::RequeueDlq(DlqOp {
                topic: Some("orders".into()),
                group: Some("g".into()),
                filter: Some(Expr::Binary {
                    left: Box::new(path(&["attempts"])),
                    op: BinaryOp::Gt,
                    right: Box::new(Expr::Literal(Literal::Int(3))),
                }),
                limit: Some(10),
                dry_run: false,
            })
        );
        assert_eq!(
            ok("REQUEUE DLQ LIMIT 5"),
            Statement::RequeueDlq(DlqOp {
                topic: None,
                group: None,
                filter: None,
                limit: Some(5),
                dry_run: false,
            })
        );
        assert_eq!(
            ok("PURGE DLQ"),
            Statement::PurgeDlq(DlqOp {
                topic: None,
                group: None,
                filter: None,
                limit: None,
                dry_run: false,
            })
        );
        assert_eq!(
            ok("purge dlq;"),
            Statement::PurgeDlq(DlqOp {
                topic: None,
                group: None,
                filter: None,
                limit: None,
                dry_run: false,
            })
        );
        let dry = |topic: Option<&str>, limit| DlqOp {
            topic: topic.map(Into::into),
            group: None,
            filter: None,
            limit,
            dry_run: true,
        };
        assert_eq!(
            ok("REQUEUE DLQ DRY RUN"),
            Statement::RequeueDlq(dry(None, None))
        );
        assert_eq!(
            ok("requeue dlq dry LIMIT 3 dry run"),
            Statement::RequeueDlq(dry(Some("dry"), Some(3))),
            "a topic named dry"
        );
        assert_eq!(
            ok("PURGE DLQ orders DRY RUN;"),
            Statement::PurgeDlq(dry(Some("orders"), None))
        );
        assert_eq!(
            ok("PURGE DLQ DRY"),
            Statement::PurgeDlq(DlqOp {
                dry_run: false,
                ..dry(Some("DRY"), None)
            }),
            "DRY without RUN is a name"
        );
        assert_eq!(
            ok("PURGE DLQ \"dry\" DRY RUN"),
            Statement::PurgeDlq(dry(Some("dry"), None))
        );
        for (bad, says) in [
            ("PURGE DLQ jobs DRY", "expected RUN (DRY RUN)"),
            ("REQUEUE DLQ LIMIT 1 DRY", "expected RUN (DRY RUN)"),
            ("REQUEUE DLQ LIMIT 1 RUN", "expected DRY RUN or ';'"),
            ("PURGE DLQ WHERE id = 1 LIMIT 1", "expected DRY RUN or ';'"),
            ("REQUEUE DLQ DRY RUN LIMIT 1", "expected ';'"),
        ] {
            let e = parse_statement(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        assert_eq!(
            ok("BACKUP TO 'copy.db'"),
            Statement::Backup(Backup {
                file: "copy.db".into()
            })
        );
        assert_eq!(ok("SHOW CLOCK"), Statement::ShowClock);
        for (bad, says) in [
            ("BACKUP 'copy.db'", "expected TO"),
            ("BACKUP TO copy.db", "expected a file name in quotes"),
            ("SHOW CLOCKS", "expected TOPICS, QUEUES, GROUPS or CLOCK"),
        ] {
            let e = parse_statement(bad).expect_err(bad);
            assert!(e.to_string().contains(says), "{bad}: {e}");
        }
        assert_eq!(ok("PURGE \"DLQ\""), Statement::Purge("DLQ".into()));
        assert_eq!(ok("PURGE orders"), Statement::Purge("orders".into()));
        assert_eq!("begin".parse::<Statement>(), Ok(Statement::Begin));
        assert_eq!(ok("COMMIT;"), Statement::Commit);
        assert_eq!(ok("Rollback"), Statement::Rollback);
        assert_eq!(ok("CHECK"), Statement::Check);
        assert_eq!(
            ok("EXPORT orders TO 'o.jsonl' WHERE key = 'a'"),
            Statement::Export(Export {
                topic: "orders".into(),
                file: "o.jsonl".into(),
                filter: Some(Expr::Binary {
                    left: Box::new(path(&["key"])),
                    op: BinaryOp::Eq,
                    right: Box::new(Expr::Literal(Literal::String("a".into()))),
                }),
                overwrite: false,
            })
        );
        assert_eq!(
            ok("EXPORT orders TO 'o.jsonl' OVERWRITE"),
            Statement::Export(Export {
                topic: "orders".into(),
                file: "o.jsonl".into(),
                filter: None,
                overwrite: true,
            })
        );
        assert_eq!(
            ok("IMPORT 'o.jsonl' INTO orders"),
            Statement::Import(Import {
                file: "o.jsonl".into(),
                topic: "orders".into()
            })
        );
        assert_eq!(
            ok("BENCH Publish, consume_ACK SIZE 1KB MESSAGES 100 PRODUCERS 4 BATCH 10"),
            Statement::Bench(Bench {
                workloads: vec![Workload::Publish, Workload::ConsumeAck],
                messages: Some(100),
                size: Some(1024),
                batch: Some(10),
                producers: Some(4),
            })
        );
        assert_eq!(
            ok("BENCH"),
            Statement::Bench(Bench {
                workloads: vec![],
                messages: None,
                size: None,
                batch: None,
                producers: None
            })
        );
    }

    #[test]
    fn select_and_tail() {
        assert_eq!(
            ok(
                "SELECT key, COUNT(*) AS n, SUM(data.total) FROM orders WHERE data.items[0].price >= 10.5 \
                GROUP BY key ORDER BY n DESC, key ASC LIMIT 10 OFFSET 20"
            ),
            Statement::Select(Select {
                items: vec![
                    SelectItem::Expr {
                        expr: path(&["key"]),
                        alias: None
                    },
                    SelectItem::Expr {
                        expr: Expr::Function {
                            func: Function::Count,
                            arg: None
                        },
                        alias: Some("n".into())
                    },
                    SelectItem::Expr {
                        expr: Expr::Function {
                            func: Function::Sum,
                            arg: Some(Box::new(path(&["data", "total"])))
                        },
                        alias: None,
                    },
                ],
                source: Source::Topic("orders".into()),
                filter: Some(Expr::Binary {
                    left: Box::new(Expr::Path(vec![
                        PathSegment::Field("data".into()),
                        PathSegment::Field("items".into()),
                        PathSegment::Index(0),
                        PathSegment::Field("price".into()),
                    ])),
                    op: BinaryOp::GtEq,
                    right: Box::new(Expr::Literal(Literal::Float(10.5))),
                }),
                group_by: vec![path(&["key"])],
                order_by: vec![
                    OrderBy {
                        expr: path(&["n"]),
                        desc: true
                    },
                    OrderBy {
                        expr: path(&["key"]),
                        desc: false
                    }
                ],
                limit: Some(10),
                offset: Some(20),
            })
        );
        assert!(
            matches!(ok("SELECT * FROM DLQ"), Statement::Select(s) if s.source == Source::Dlq && s.items == vec![SelectItem::Star])
        );
        assert!(
            matches!(ok("select group, lag from groups"), Statement::Select(s) if s.source == Source::Groups)
        );
        assert!(
            matches!(ok("SELECT * FROM topics"), Statement::Select(s) if s.source == Source::Topics)
        );
        assert!(
            matches!(ok("SELECT * FROM \"DLQ\""), Statement::Select(s) if s.source == Source::Topic("DLQ".into()))
        );
        assert_eq!(
            ok("TAIL orders WHERE NOT (headers.x IS NULL)"),
            Statement::Tail(Tail {
                topic: "orders".into(),
                filter: Some(Expr::Unary {
                    op: UnaryOp::Not,
                    expr: Box::new(Expr::IsNull {
                        expr: Box::new(path(&["headers", "x"])),
                        negated: false
                    }),
                }),
            })
        );
    }

    #[test]
    fn scripts_spans_and_comments() {
        let src = "-- setup\nCREATE TOPIC a; ;; PUBLISH a 'x;y' -- trailing ; comment\n;\n  CHECK";
        let script = match parse_script(src) {
            Ok(s) => s,
            Err(e) => panic!("{}", e.render(src)),
        };
        let texts: Vec<&str> = script.iter().map(|p| &src[p.span.clone()]).collect();
        assert_eq!(texts, ["CREATE TOPIC a", "PUBLISH a 'x;y'", "CHECK"]);
        assert_eq!(parse_script("  -- nothing\n ;; "), Ok(vec![]));
        assert!(parse_script("CHECK CHECK").is_err());
        assert!(parse_statement("CHECK; CHECK").is_err());
        assert!(
            matches!(ok("CREATE TOPIC a -- comment\n PARTITIONS 2"), Statement::Create(c) if c.options.len() == 1)
        );
    }

    #[test]
    fn lexing_edge_cases() {
        // `5m` is minutes, `5ms` milliseconds.
        assert!(
            matches!(ok("CONSUME FROM q WAIT 5m"), Statement::Consume(c) if c.wait == Some(secs(300)))
        );
        assert!(
            matches!(ok("CONSUME FROM q WAIT 5ms"), Statement::Consume(c) if c.wait == Some(Duration::from_millis(5)))
        );
        // A keyword needs a boundary: `DROPX` is not DROP.
        assert_eq!(err_at("DROPX TOPIC a").1, "DROPX TOPIC a");
        // Names may be keywords only when quoted where ambiguous; quoted names keep quotes and spaces.
        assert_eq!(
            ok("DESCRIBE \"a \"\"b\"\"\""),
            Statement::Describe("a \"b\"".into())
        );
        assert!(matches!(ok("sElEcT * fRoM t"), Statement::Select(_)));
    }

    #[test]
    fn error_messages() {
        let cases: &[(&str, &str, &str)] = &[
            (
                "SELEC * FROM t",
                "expected a statement (CREATE, PUBLISH, CONSUME, SELECT, ...)",
                "SELEC",
            ),
            ("CREATE TOPIC", "expected a topic name", ""),
            ("CREATE STREAM s", "expected TOPIC or QUEUE", "STREAM s"),
            (
                "SUBSCRIBE GROUP g TO orders ACK WAIT forever",
                "expected a duration like 30s",
                "forever",
            ),
            ("BENCH SIZE 10XB", "expected a size like 10MB", "10XB"),
            (
                "CREATE TOPIC t PARTITIONS 99999999999",
                "PARTITIONS 99999999999: number too large",
                "99999999999",
            ),
            (
                "CREATE TOPIC t PARTITONS 3",
                "unexpected 'PARTITONS': expected an option (PARTITIONS, RETENTION, MAX LENGTH, OVERFLOW, DEDUP WINDOW, MAX DELIVERIES, ACK WAIT) or ';'",
                "PARTITONS 3",
            ),
            (
                "PUBLISH t 'open",
                "unterminated string: missing the closing '",
                "'open",
            ),
            (
                "PUBLISH t {\"a\": }",
                "invalid JSON payload: expected value",
                "}",
            ),
            (
                "REPLAY t GROUP g FROM TIMESTAMP 'yesterday'",
                "expected a timestamp like '2024-01-15T10:30:00Z' or '-1h'",
                "'yesterday'",
            ),
            ("ACK", "expected a delivery id (a number)", ""),
            ("ACK 1,", "expected a delivery id (a number)", ""),
            (
                "CONSUME 0 FROM q",
                "CONSUME needs a count of at least 1",
                "0 FROM q",
            ),
            (
                "CHECK please",
                "unexpected 'please': expected ';' or end of input",
                "please",
            ),
            ("SELECT a FROM t WHERE a =", "expected an expression", ""),
            (
                "CREATE TOPIC t PARTITIONS 2 PARTITIONS 3",
                "PARTITIONS given twice",
                "PARTITIONS 3",
            ),
            (
                "CREATE QUEUE q PARTITIONS 2",
                "a queue has no PARTITIONS option",
                "PARTITIONS 2",
            ),
            (
                "PUBLISH t KEY 'a' KEY 'b' 'x'",
                "KEY given twice",
                "KEY 'b' 'x'",
            ),
            (
                "PUBLISH t",
                "expected a payload ('text' or a JSON object or array) or an option (KEY, PARTITION, HEADERS, DEDUP, DELAY)",
                "",
            ),
            (
                "BENCH fast",
                "unknown workload 'fast' (expected publish, publish_batch, publish_concurrent, consume_ack or replay)",
                "fast",
            ),
            ("SELECT SUM(*) FROM t", "only COUNT takes *", "*) FROM t"),
            (
                "DESCRIBE \"open",
                "unterminated quoted name: missing the closing \"",
                "\"open",
            ),
            (
                "CREATE TOPIC t RETENTION 5 DAYS",
                "expected a retention like 7d, 10MB, 1000 MESSAGES, UNTIL CONSUMED or FOREVER",
                "5 DAYS",
            ),
            (
                "ALTER TOPIC t SET",
                "expected an option (PARTITIONS, RETENTION, MAX LENGTH, OVERFLOW, DEDUP WINDOW, MAX DELIVERIES, ACK WAIT)",
                "",
            ),
            (
                "SELECT * FROM t WHERE a NOT 1",
                "expected LIKE, IN or BETWEEN after NOT",
                "1",
            ),
        ];
        for (src, message, at) in cases {
            let (m, rest) = err_at(src);
            assert_eq!(m, *message, "{src}");
            assert!(
                rest.starts_with(at) && (at.is_empty() == rest.is_empty()),
                "{src}: error at {rest:?}"
            );
        }
    }

    #[test]
    fn deep_nesting_is_an_error() {
        let deep = format!(
            "SELECT * FROM t WHERE {}1{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        assert_eq!(err(&deep).message, "expression nested too deeply");
        let nots = format!("SELECT * FROM t WHERE {}x", "NOT ".repeat(10_000));
        assert_eq!(err(&nots).message, "expression nested too deeply");
    }

    #[test]
    fn positions_and_render() {
        let src = "CHECK;\nSUBSCRIBE GROUP g TO orders ACK WAIT forever";
        let e = match parse_script(src) {
            Err(e) => e,
            Ok(s) => panic!("{s:?}"),
        };
        assert_eq!((e.line, e.column), (2, 38));
        assert_eq!(
            e.render(src),
            "syntax error at line 2, column 38: expected a duration like 30s\n\
             SUBSCRIBE GROUP g TO orders ACK WAIT forever\n\
             \x20                                    ^"
        );
        // Columns count characters, not bytes.
        let e = err("PUBLISH \"é\" KEY");
        assert_eq!(e.column, 16);
    }

    #[test]
    fn completeness() {
        assert!(is_complete(""));
        assert!(is_complete("  -- just a comment"));
        assert!(is_complete("CHECK;"));
        assert!(is_complete("CHECK; -- done"));
        assert!(!is_complete("CHECK"));
        assert!(!is_complete("PUBLISH t 'a;"));
        assert!(!is_complete("PUBLISH t 'a;' -- ;"));
        assert!(is_complete("PUBLISH t 'it''s;';"));
        assert!(!is_complete("DESCRIBE \"x;"));
        assert!(!is_complete("PUBLISH t {\"a\": \"b;\"}"));
        assert!(!is_complete("PUBLISH t {\"a\": [1,"));
        // Invalid JSON ending in `;` is complete: running it reports the error.
        assert!(is_complete("PUBLISH t {\"a\": ;"));
        assert!(is_complete("PUBLISH t {\"a\": \"b;\"};"));
        assert!(is_complete("SELECT a[0] FROM t;"));
    }

    #[test]
    fn keywords_are_upper_case_and_unique() {
        for k in KEYWORDS {
            assert_eq!(*k, k.to_ascii_uppercase());
        }
        let mut sorted = KEYWORDS.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), KEYWORDS.len());
    }
}
