//! The command language: `parse(display(ast)) == ast` for random trees,
//! robustness on random input, and the rendering of syntax errors.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::time::Duration;

use mqlite::lang::ast::*;
use mqlite::lang::{ParseError, is_complete, parse_script, parse_statement};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

// ---------------------------------------------------------------- strategies

fn name() -> impl Strategy<Value = String> {
    select(vec![
        "a",
        "orders",
        "order.placed",
        "email-service",
        "_x9",
        "my topic",
        "select",
        "DLQ",
        "group",
        "Topics",
        "a\"b",
        "",
        "x--y",
        "1abc",
        "é",
        "a-",
        "where",
        "limit",
        "dry",
        "Run",
        "system",
    ])
    .prop_map(str::to_string)
}

fn field() -> impl Strategy<Value = String> {
    select(vec![
        "data", "total", "items", "group", "offset", "key", "and", "NOT", "my field", "a-b",
        "null", "count", "x.y", "", "_", "é",
    ])
    .prop_map(str::to_string)
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        select(vec![
            "",
            "it's",
            "a;b",
            "-- no comment",
            "x''y",
            "{\"j\": 1}",
            "line\nbreak"
        ])
        .prop_map(str::to_string),
        ".{0,8}",
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        (0u64..10_000_000_000).prop_map(Duration::from_millis),
        (0u64..100_000).prop_map(Duration::from_secs),
        (0u64..10_000).prop_map(|m| Duration::from_secs(m * 60)),
        (0u64..1000).prop_map(|h| Duration::from_secs(h * 3600)),
        (0u64..1000).prop_map(|d| Duration::from_secs(d * 86400)),
    ]
}

fn size() -> impl Strategy<Value = u64> {
    prop_oneof![
        any::<u64>(),
        (0u64..1 << 20).prop_map(|n| n << 10),
        (0u64..4096).prop_map(|n| n << 20),
        (0u64..64).prop_map(|n| n << 30)
    ]
}

fn time_spec() -> impl Strategy<Value = TimeSpec> {
    prop_oneof![
        // Years 0001 to 9999.
        (-62_135_596_800_000i64..253_402_300_799_999).prop_map(TimeSpec::Absolute),
        duration().prop_map(TimeSpec::Ago),
    ]
}

fn literal() -> impl Strategy<Value = Literal> {
    prop_oneof![
        Just(Literal::Null),
        any::<bool>().prop_map(Literal::Bool),
        any::<i64>().prop_map(Literal::Int),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Literal::Float),
        select(vec![0.5, -1.25, 1e100, 1e-7, 3.0]).prop_map(Literal::Float),
        text().prop_map(Literal::String),
    ]
}

fn path() -> impl Strategy<Value = Expr> {
    (
        field(),
        prop::collection::vec(
            prop_oneof![
                field().prop_map(PathSegment::Field),
                (0u64..100).prop_map(PathSegment::Index)
            ],
            0..3,
        ),
    )
        .prop_map(|(first, rest)| {
            let mut segments = vec![PathSegment::Field(first)];
            segments.extend(rest);
            Expr::Path(segments)
        })
}

fn expr() -> impl Strategy<Value = Expr> {
    let leaf = prop_oneof![literal().prop_map(Expr::Literal), path()];
    leaf.prop_recursive(4, 24, 3, |inner| {
        let b = |e: Expr| Box::new(e);
        prop_oneof![
            (select(vec![UnaryOp::Not, UnaryOp::Neg]), inner.clone())
                .prop_map(move |(op, e)| Expr::Unary { op, expr: b(e) }),
            (
                inner.clone(),
                select(vec![
                    BinaryOp::Or,
                    BinaryOp::And,
                    BinaryOp::Eq,
                    BinaryOp::NotEq,
                    BinaryOp::Lt,
                    BinaryOp::LtEq,
                    BinaryOp::Gt,
                    BinaryOp::GtEq,
                    BinaryOp::Like,
                    BinaryOp::NotLike,
                    BinaryOp::Add,
                    BinaryOp::Sub,
                    BinaryOp::Mul,
                    BinaryOp::Div,
                    BinaryOp::Mod,
                ]),
                inner.clone()
            )
                .prop_map(move |(l, op, r)| Expr::Binary {
                    left: b(l),
                    op,
                    right: b(r)
                }),
            (
                inner.clone(),
                prop::collection::vec(inner.clone(), 1..3),
                any::<bool>()
            )
                .prop_map(move |(e, list, negated)| Expr::InList {
                    expr: b(e),
                    list,
                    negated
                }),
            (inner.clone(), inner.clone(), inner.clone(), any::<bool>()).prop_map(
                move |(e, lo, hi, negated)| {
                    Expr::Between {
                        expr: b(e),
                        low: b(lo),
                        high: b(hi),
                        negated,
                    }
                }
            ),
            (inner.clone(), any::<bool>()).prop_map(move |(e, negated)| Expr::IsNull {
                expr: b(e),
                negated
            }),
            Just(Expr::Function {
                func: Function::Count,
                arg: None
            }),
            (
                select(vec![
                    Function::Count,
                    Function::Sum,
                    Function::Avg,
                    Function::Min,
                    Function::Max
                ]),
                inner
            )
                .prop_map(move |(func, e)| Expr::Function {
                    func,
                    arg: Some(b(e))
                }),
        ]
    })
}

fn retention() -> impl Strategy<Value = Retention> {
    prop_oneof![
        duration().prop_map(Retention::Age),
        size().prop_map(Retention::Size),
        any::<u64>().prop_map(Retention::Messages),
        Just(Retention::UntilConsumed),
        Just(Retention::Forever),
    ]
}

fn topic_options(kind: TopicKind, at_least_one: bool) -> impl Strategy<Value = Vec<TopicOption>> {
    let topic_only = kind == TopicKind::Topic;
    (
        prop::option::of(1u32..)
            .prop_map(move |o| o.filter(|_| topic_only).map(TopicOption::Partitions)),
        prop::option::of(retention())
            .prop_map(move |o| o.filter(|_| topic_only).map(TopicOption::Retention)),
        prop::option::of(any::<u64>()).prop_map(|o| o.map(TopicOption::MaxLength)),
        prop::option::of(select(vec![Overflow::Reject, Overflow::DropOldest]))
            .prop_map(|o| o.map(TopicOption::Overflow)),
        prop::option::of(duration()).prop_map(|o| o.map(TopicOption::DedupWindow)),
        prop::option::of(any::<u32>()).prop_map(|o| o.map(TopicOption::MaxDeliveries)),
        prop::option::of(duration()).prop_map(|o| o.map(TopicOption::AckWait)),
    )
        .prop_map(|(a, b, c, d, e, f, g)| {
            [a, b, c, d, e, f, g]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
        })
        .prop_shuffle()
        .prop_filter("ALTER needs an option", move |o| {
            !at_least_one || !o.is_empty()
        })
}

fn kind() -> impl Strategy<Value = TopicKind> {
    select(vec![TopicKind::Topic, TopicKind::Queue])
}

fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        text().prop_map(Payload::Text),
        select(vec![
            "{}",
            "[]",
            "{\"orderId\": \"ORD-1\"}",
            "[1, 2.5, \"a;b\"]",
            "{\"a\":{\"b\":[null,true]}}"
        ])
        .prop_map(|j| Payload::Json(j.to_string())),
    ]
}

fn dlq_op(with_limit: bool) -> impl Strategy<Value = DlqOp> {
    (
        prop::option::of((name(), prop::option::of(name()))),
        prop::option::of(expr()),
        prop::option::of(any::<u64>()),
        any::<bool>(),
    )
        .prop_map(move |(target, filter, limit, dry_run)| DlqOp {
            topic: target.as_ref().map(|t| t.0.clone()),
            group: target.and_then(|t| t.1),
            filter,
            limit: limit.filter(|_| with_limit),
            dry_run,
        })
}

fn select_stmt() -> impl Strategy<Value = Select> {
    let item = prop_oneof![
        Just(SelectItem::Star),
        (expr(), prop::option::of(name()))
            .prop_map(|(expr, alias)| SelectItem::Expr { expr, alias }),
    ];
    let source = prop_oneof![
        name().prop_map(Source::Topic),
        Just(Source::Dlq),
        Just(Source::Topics),
        Just(Source::Groups),
        Just(Source::Processed),
        Just(Source::Deliveries),
    ];
    (
        prop::collection::vec(item, 1..3),
        source,
        prop::option::of(expr()),
        prop::collection::vec(expr(), 0..2),
        prop::collection::vec(
            (expr(), any::<bool>()).prop_map(|(expr, desc)| OrderBy { expr, desc }),
            0..2,
        ),
        prop::option::of((any::<u64>(), prop::option::of(any::<u64>()))),
    )
        .prop_map(|(items, source, filter, group_by, order_by, page)| Select {
            items,
            source,
            filter,
            group_by,
            order_by,
            limit: page.map(|p| p.0),
            offset: page.and_then(|p| p.1),
        })
}

fn statement() -> impl Strategy<Value = Statement> {
    let start_from = prop_oneof![
        Just(StartFrom::Beginning),
        Just(StartFrom::Latest),
        any::<u64>().prop_map(StartFrom::Offset),
        time_spec().prop_map(StartFrom::Timestamp),
    ];
    let replay_from = prop_oneof![
        Just(ReplayFrom::Beginning),
        Just(ReplayFrom::Latest),
        (any::<u64>(), prop::option::of(any::<u32>()))
            .prop_map(|(offset, partition)| ReplayFrom::Offset { offset, partition }),
        time_spec().prop_map(ReplayFrom::Timestamp),
    ];
    let workload = select(vec![
        Workload::Publish,
        Workload::PublishBatch,
        Workload::PublishConcurrent,
        Workload::ConsumeAck,
        Workload::Replay,
    ]);
    let ids = prop::collection::vec(any::<u64>(), 1..4);
    Union::new(vec![
        (kind(), any::<bool>(), name())
            .prop_flat_map(|(kind, if_not_exists, name)| {
                topic_options(kind, false).prop_map(move |options| {
                    Statement::Create(Create {
                        kind,
                        if_not_exists,
                        name: name.clone(),
                        options,
                    })
                })
            })
            .boxed(),
        (kind(), name())
            .prop_flat_map(|(kind, name)| {
                topic_options(kind, true).prop_map(move |options| {
                    Statement::Alter(Alter {
                        kind,
                        name: name.clone(),
                        options,
                    })
                })
            })
            .boxed(),
        (kind(), any::<bool>(), name())
            .prop_map(|(kind, if_exists, name)| {
                Statement::Drop(DropStmt {
                    kind,
                    if_exists,
                    name,
                })
            })
            .boxed(),
        Just(Statement::ShowTopics).boxed(),
        Just(Statement::ShowQueues).boxed(),
        prop::option::of(name())
            .prop_map(Statement::ShowGroups)
            .boxed(),
        name().prop_map(Statement::Describe).boxed(),
        (
            name(),
            prop::option::of(text()),
            prop::option::of(any::<u32>()),
            prop::collection::vec((name(), text()), 0..3),
            prop::option::of(text()),
            prop::option::of(duration()),
            prop::collection::vec(payload(), 1..3),
        )
            .prop_map(|(topic, key, partition, headers, dedup, delay, payloads)| {
                Statement::Publish(Publish {
                    topic,
                    key,
                    partition,
                    headers,
                    dedup,
                    delay,
                    payloads,
                })
            })
            .boxed(),
        (
            name(),
            prop::collection::vec(
                prop_oneof![
                    name().prop_map(SubscribeTarget::Name),
                    text().prop_map(SubscribeTarget::Pattern)
                ],
                1..3,
            ),
            prop::option::of(start_from),
            any::<bool>(),
            prop::option::of(any::<u32>()),
            prop::option::of(duration()),
        )
            .prop_map(
                |(group, targets, from, ordered, max_deliveries, ack_wait)| {
                    Statement::Subscribe(Subscribe {
                        group,
                        targets,
                        from,
                        ordered,
                        max_deliveries,
                        ack_wait,
                    })
                },
            )
            .boxed(),
        (name(), prop::option::of(name()))
            .prop_map(|(group, from)| Statement::Unsubscribe(Unsubscribe { group, from }))
            .boxed(),
        (
            prop::option::of(1u32..),
            prop_oneof![
                (name(), prop::option::of(name()))
                    .prop_map(|(name, group)| ConsumeSource::Topic { name, group }),
                name().prop_map(ConsumeSource::Group),
            ],
            prop::option::of(text()),
            prop::option::of(duration()),
            prop::option::of(duration()),
        )
            .prop_map(|(count, source, member, wait, ack_wait)| {
                Statement::Consume(Consume {
                    count,
                    source,
                    member,
                    wait,
                    ack_wait,
                })
            })
            .boxed(),
        ids.clone().prop_map(Statement::Ack).boxed(),
        (
            ids,
            prop_oneof![
                Just(NackAction::Now),
                duration().prop_map(NackAction::Delay),
                prop::option::of(text()).prop_map(NackAction::Dead),
            ],
            prop::option::of(text()),
        )
            .prop_map(|(ids, action, reason)| {
                // DEAD carries its reason in the action.
                let reason = reason.filter(|_| !matches!(action, NackAction::Dead(_)));
                Statement::Nack(Nack {
                    ids,
                    action,
                    reason,
                })
            })
            .boxed(),
        (name(), name(), replay_from)
            .prop_map(|(topic, group, from)| Statement::Replay(Replay { topic, group, from }))
            .boxed(),
        dlq_op(true).prop_map(Statement::RequeueDlq).boxed(),
        dlq_op(false).prop_map(Statement::PurgeDlq).boxed(),
        name().prop_map(Statement::Purge).boxed(),
        Just(Statement::Begin).boxed(),
        Just(Statement::Commit).boxed(),
        Just(Statement::Rollback).boxed(),
        Just(Statement::Check).boxed(),
        (name(), text(), prop::option::of(expr()), any::<bool>())
            .prop_map(|(topic, file, filter, overwrite)| {
                Statement::Export(Export {
                    topic,
                    file,
                    filter,
                    overwrite,
                })
            })
            .boxed(),
        (text(), name())
            .prop_map(|(file, topic)| Statement::Import(Import { file, topic }))
            .boxed(),
        (
            prop::collection::vec(workload, 0..3),
            prop::option::of(any::<u64>()),
            prop::option::of(size()),
            prop::option::of(any::<u64>()),
            prop::option::of(any::<u32>()),
        )
            .prop_map(|(workloads, messages, size, batch, producers)| {
                Statement::Bench(Bench {
                    workloads,
                    messages,
                    size,
                    batch,
                    producers,
                })
            })
            .boxed(),
        select_stmt().prop_map(Statement::Select).boxed(),
        (name(), prop::option::of(expr()))
            .prop_map(|(topic, filter)| Statement::Tail(Tail { topic, filter }))
            .boxed(),
        time_spec()
            .prop_map(|t| Statement::SetClock(ClockSetting::At(t)))
            .boxed(),
        Just(Statement::SetClock(ClockSetting::System)).boxed(),
        duration().prop_map(Statement::Advance).boxed(),
        Just(Statement::ShowClock).boxed(),
        text()
            .prop_map(|file| Statement::Backup(Backup { file }))
            .boxed(),
    ])
}

/// Words and symbols of the language, to build random near-statements.
const TOKENS: &[&str] = &[
    "CREATE",
    "TOPIC",
    "QUEUE",
    "PUBLISH",
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "CONSUME",
    "ACK",
    "NACK",
    "DLQ",
    "DRY",
    "RUN",
    "SET",
    "CLOCK",
    "SYSTEM",
    "ADVANCE",
    "BACKUP",
    "PURGE",
    "REQUEUE",
    "SUBSCRIBE",
    "TO",
    "NOT",
    "AND",
    "OR",
    "IN",
    "BETWEEN",
    "IS",
    "NULL",
    "COUNT",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    ",",
    ";",
    "*",
    "-",
    "--",
    "=",
    "<>",
    "'",
    "\"",
    "'x'",
    "\"n\"",
    "30s",
    "5m",
    "10MB",
    "42",
    "1.5",
    "-1",
    "a.b",
    "x",
    "{\"a\":",
    "\n",
    "é",
    "99999999999999999999",
];

// ---------------------------------------------------------------- properties

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn display_parses_back(stmt in statement()) {
        let text = stmt.to_string();
        match parse_statement(&text) {
            Ok(parsed) => prop_assert_eq!(parsed, stmt, "text: {}", text),
            Err(e) => prop_assert!(false, "{}\nfrom {:?}", e.render(&text), stmt),
        }
        let script = format!("{text};\n");
        prop_assert!(is_complete(&script), "{}", script);
        let parsed = parse_script(&script);
        prop_assert!(matches!(&parsed, Ok(s) if s.len() == 1 && s[0].span == (0..text.len())), "{:?}", parsed);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_script(&text);
        let _ = is_complete(&text);
    }

    #[test]
    fn random_strings_never_panic(text in ".{0,100}") {
        check_error_shape(&text);
    }

    #[test]
    fn random_token_soups_never_panic(tokens in prop::collection::vec(select(TOKENS), 0..25)) {
        check_error_shape(&tokens.join(" "));
        check_error_shape(&tokens.concat());
    }
}

/// Parsing never panics, and an error points inside the text at a char boundary.
fn check_error_shape(text: &str) {
    let _ = is_complete(text);
    if let Err(e) = parse_script(text) {
        assert!(
            e.position <= text.len() && text.is_char_boundary(e.position),
            "{e:?}"
        );
        assert!(e.line >= 1 && e.column >= 1);
        let _ = e.render(text);
    }
}

// ---------------------------------------------------------------- deep nesting

fn error(src: &str) -> ParseError {
    match parse_script(src) {
        Ok(s) => panic!("parsed: {s:?}"),
        Err(e) => e,
    }
}

#[test]
fn ten_thousand_parentheses_are_an_error() {
    let src = format!(
        "SELECT * FROM t WHERE {}1{}",
        "(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(error(&src).message, "expression nested too deeply");
    let src = format!("SELECT {}1", "(".repeat(10_000));
    assert_eq!(error(&src).message, "expression nested too deeply");
}

#[test]
fn ten_thousand_nots_are_an_error() {
    let src = format!("SELECT * FROM t WHERE {} x", "NOT ".repeat(10_000));
    assert_eq!(error(&src).message, "expression nested too deeply");
    let src = format!("SELECT {} x FROM t", "- ".repeat(10_000));
    assert_eq!(error(&src).message, "expression nested too deeply");
    let src = format!(
        "SELECT {}x{} FROM t",
        "SUM(".repeat(10_000),
        ")".repeat(10_000)
    );
    assert_eq!(error(&src).message, "expression nested too deeply");
}

#[test]
fn nesting_within_the_limit_parses() {
    let src = format!(
        "SELECT * FROM t WHERE {}1{}",
        "(".repeat(60),
        ")".repeat(60)
    );
    assert!(parse_script(&src).is_ok());
}

// ---------------------------------------------------------------- error snapshots

fn render(src: &str) -> String {
    error(src).render(src)
}

#[test]
fn syntax_error_snapshots() {
    let cases: &[(&str, &str)] = &[
        ("misspelled_statement", "SELEC * FROM orders"),
        ("misspelled_option", "CREATE TOPIC orders PARTITONS 3"),
        ("missing_topic_name", "CREATE TOPIC IF NOT EXISTS"),
        ("missing_kind", "DROP orders"),
        (
            "bad_duration",
            "SUBSCRIBE GROUP g TO orders ACK WAIT forever",
        ),
        ("duration_with_space", "CONSUME FROM jobs WAIT 5 s"),
        ("bad_size", "BENCH publish SIZE 10 MB"),
        ("bad_retention", "CREATE TOPIC logs RETENTION 7 days"),
        (
            "unterminated_string",
            "PUBLISH orders KEY 'customer-1 {\"a\": 1}",
        ),
        (
            "bad_json_payload",
            "PUBLISH orders {\"orderId\": \"ORD-1\",}",
        ),
        ("missing_payload", "PUBLISH orders KEY 'k'"),
        (
            "bad_timestamp",
            "REPLAY orders GROUP billing FROM TIMESTAMP 'last tuesday'",
        ),
        ("ack_without_id", "ACK"),
        ("trailing_garbage", "SHOW TOPICS please"),
        ("consume_zero", "CONSUME 0 FROM jobs"),
        ("number_too_large", "CREATE TOPIC t PARTITIONS 99999999999"),
        ("option_twice", "PUBLISH orders DELAY 1s DELAY 2s 'x'"),
        (
            "incomplete_where",
            "SELECT * FROM orders WHERE data.total >",
        ),
        ("unclosed_parenthesis", "SELECT * FROM orders WHERE (a = 1"),
        ("unknown_workload", "BENCH publish, fsync"),
        (
            "second_line",
            "CREATE TOPIC orders;\nPUBLISH TO orders\n  HEADERS (source 'web') 'x'",
        ),
        ("nack_bad_action", "NACK 12 LATER"),
        ("missing_semicolon", "CHECK\nCHECK"),
    ];
    for (name, src) in cases {
        insta::assert_snapshot!(*name, render(src), src);
    }
}
