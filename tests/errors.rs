//! Errors a program can match: each structured variant, triggered through
//! the public API (typed calls or the language), with its fields and its
//! message, which the shell prints and other programs parse.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::time::Duration;

use common::{fail, open};
use mqlite::lang::ast::{Alter, Statement};
use mqlite::{
    ConsumeRequest, Durability, Error, FileProblem, Message, NackAction, NameProblem,
    PatternProblem, ReplayFrom, Subscription, TopicKind, TopicOptions,
};

fn setup() -> common::TestDb {
    let t = open();
    t.db.execute(
        "CREATE TOPIC orders PARTITIONS 2; CREATE QUEUE jobs;
         SUBSCRIBE GROUP g TO orders FROM BEGINNING",
    )
    .unwrap();
    t
}

#[test]
fn wrong_kind_names_what_it_is_and_what_was_expected() {
    let t = setup();
    let db = &t.db;
    let cases = [
        (
            db.drop_topic(TopicKind::Queue, "orders", false).map(|_| ()),
            ("orders", TopicKind::Topic, TopicKind::Queue, "DROP"),
            "'orders' is a topic, not a queue: use DROP TOPIC",
        ),
        (
            db.alter(TopicKind::Topic, "jobs", &TopicOptions::default()),
            ("jobs", TopicKind::Queue, TopicKind::Topic, "ALTER"),
            "'jobs' is a queue, not a topic",
        ),
        (
            db.consume(&ConsumeRequest::queue("orders")).map(|_| ()),
            ("orders", TopicKind::Topic, TopicKind::Queue, "CONSUME"),
            "'orders' is a topic: consume it through a group (CONSUME FROM orders GROUP g)",
        ),
        (
            db.subscribe("h", &Subscription::topic("jobs")),
            ("jobs", TopicKind::Queue, TopicKind::Topic, "SUBSCRIBE"),
            "'jobs' is a queue: it has its own group; consume it with CONSUME FROM jobs",
        ),
    ];
    for (result, want, text) in cases {
        let e = result.unwrap_err();
        match &e {
            Error::WrongKind {
                name,
                is,
                expected,
                statement,
            } => assert_eq!((name.as_str(), *is, *expected, statement.as_str()), want),
            other => panic!("expected WrongKind, got {other:?}"),
        }
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn a_missing_name_is_called_what_the_statement_called_it() {
    let t = setup();
    let db = &t.db;
    for (statement, want) in [
        ("DROP QUEUE nope", Error::QueueNotFound("nope".into())),
        (
            "ALTER QUEUE nope SET ACK WAIT 5s",
            Error::QueueNotFound("nope".into()),
        ),
        ("CONSUME FROM nope", Error::QueueNotFound("nope".into())),
        ("DROP TOPIC nope", Error::TopicNotFound("nope".into())),
        (
            "ALTER TOPIC nope SET RETENTION 1d",
            Error::TopicNotFound("nope".into()),
        ),
        ("PUBLISH nope 'x'", Error::TopicNotFound("nope".into())),
    ] {
        let e = fail(db, statement);
        assert_eq!(e.to_string(), want.to_string(), "{statement}");
        match (&e, &want) {
            (Error::QueueNotFound(a), Error::QueueNotFound(b))
            | (Error::TopicNotFound(a), Error::TopicNotFound(b)) => assert_eq!(a, b),
            _ => panic!("{statement}: {e:?}, expected {want:?}"),
        }
    }
    assert_eq!(
        fail(db, "DROP QUEUE nope").to_string(),
        "queue 'nope' does not exist"
    );
    db.execute("DROP QUEUE IF EXISTS nope").unwrap();
}

#[test]
fn a_partition_out_of_range_says_how_many_there_are() {
    let t = setup();
    let db = &t.db;
    let publish = db
        .publish("orders", Message::new("x").partition(2))
        .unwrap_err();
    let replay = db
        .replay(
            "orders",
            "g",
            ReplayFrom::Offset {
                offset: 0,
                partition: Some(5),
            },
        )
        .unwrap_err();
    let mut tx = db.transaction().unwrap();
    let commit = tx.commit_offset("g", "orders", 9, 0).unwrap_err();
    drop(tx);
    for (e, partition, statement, text) in [
        (
            publish,
            2,
            "PUBLISH",
            "partition 2 does not exist: 'orders' has 2 partitions (0..1)",
        ),
        (
            replay,
            5,
            "REPLAY",
            "partition 5 does not exist: 'orders' has 2 partition(s)",
        ),
        (
            commit,
            9,
            "commit_offset",
            "partition 9 does not exist in 'orders'",
        ),
    ] {
        assert!(
            matches!(
                &e,
                Error::PartitionOutOfRange { topic, partition: p, partitions: 2, statement: s }
                    if topic == "orders" && *p == partition && s == statement
            ),
            "{e:?}"
        );
        assert_eq!(e.to_string(), text);
    }
    // One partition: singular.
    let e = db
        .publish("jobs", Message::new("x").partition(1))
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "partition 1 does not exist: 'jobs' has 1 partition (0..0)"
    );
}

#[test]
fn an_offset_commit_past_the_end_gives_the_next_offset() {
    let t = setup();
    let db = &t.db;
    db.publish("orders", Message::new("a").partition(1))
        .unwrap();
    let mut tx = db.transaction().unwrap();
    let e = tx.commit_offset("g", "orders", 1, 7).unwrap_err();
    assert!(
        matches!(&e, Error::PastEnd { topic, partition: 1, offset: 7, next: 1 } if topic == "orders"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "offset 7 is past the end of 'orders' partition 1 (next offset 1)"
    );
}

/// The option an error names, and its message.
fn option_of(e: Error) -> (String, String) {
    match e {
        Error::InvalidOption { option, message } => {
            assert_eq!(
                Error::InvalidOption {
                    option: option.clone(),
                    message: message.clone()
                }
                .to_string(),
                message
            );
            (option, message)
        }
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}

#[test]
fn invalid_options_name_the_option() {
    let t = setup();
    let db = &t.db;
    let topic = |o: TopicOptions| db.create_topic("t2", &o).unwrap_err();
    let queue = |o: TopicOptions| db.create_queue("q2", &o).unwrap_err();
    let cases: Vec<(Error, &str, &str)> = vec![
        (
            topic(TopicOptions {
                partitions: Some(0),
                ..Default::default()
            }),
            "PARTITIONS",
            "PARTITIONS must be between 1 and",
        ),
        (
            queue(TopicOptions {
                partitions: Some(2),
                ..Default::default()
            }),
            "PARTITIONS",
            "a queue has exactly one partition",
        ),
        (
            queue(TopicOptions {
                retention: Some(mqlite::Retention::Messages(5)),
                ..Default::default()
            }),
            "RETENTION",
            "a queue's retention is always UNTIL CONSUMED",
        ),
        (
            topic(TopicOptions {
                retention: Some(mqlite::Retention::Size(0)),
                ..Default::default()
            }),
            "RETENTION",
            "RETENTION size must be at least 1 byte",
        ),
        (
            topic(TopicOptions {
                max_length: Some(0),
                ..Default::default()
            }),
            "MAX LENGTH",
            "MAX LENGTH must be at least 1",
        ),
        (
            topic(TopicOptions {
                dedup_window: Some(Duration::MAX),
                ..Default::default()
            }),
            "DEDUP WINDOW",
            "DEDUP WINDOW (in ms) is too large: at most 9223372036854775807 (2^63 - 1)",
        ),
        (
            db.alter(
                TopicKind::Topic,
                "orders",
                &TopicOptions {
                    partitions: Some(1),
                    ..Default::default()
                },
            )
            .unwrap_err(),
            "PARTITIONS",
            "PARTITIONS can only grow ('orders' has 2): stored messages cannot leave their partition",
        ),
        (
            db.subscribe("h", &Subscription::topic("orders").max_deliveries(0))
                .unwrap_err(),
            "MAX DELIVERIES",
            "MAX DELIVERIES must be at least 1",
        ),
        (
            db.consume(&ConsumeRequest::queue("jobs").ack_wait(Duration::ZERO))
                .unwrap_err(),
            "ACK WAIT",
            "ACK WAIT must be longer than 0",
        ),
        (
            db.consume(&ConsumeRequest::queue("jobs").max(0))
                .unwrap_err(),
            "CONSUME",
            "CONSUME takes between 1 and",
        ),
        (
            fail(db, "BENCH MESSAGES 0"),
            "MESSAGES",
            "BENCH MESSAGES must be at least 1",
        ),
        (
            "fast".parse::<Durability>().unwrap_err(),
            "durability",
            "unknown durability 'fast': expected full, normal or off",
        ),
    ];
    for (e, want_option, want_text) in cases {
        let (option, message) = option_of(e);
        assert_eq!(option, want_option, "{message}");
        assert!(message.starts_with(want_text), "{message}");
    }
}

#[test]
fn an_option_given_twice_is_named() {
    let t = setup();
    // The grammar refuses a repeated option; a statement built in code
    // reaches the executor's check.
    let stmt = Statement::Alter(Alter {
        kind: TopicKind::Topic,
        name: "orders".into(),
        options: vec![
            mqlite::lang::ast::TopicOption::MaxLength(5),
            mqlite::lang::ast::TopicOption::MaxLength(6),
        ],
    });
    let e = t.db.session().execute_statement(&stmt).unwrap_err();
    assert_eq!(
        option_of(e),
        (
            "MAX LENGTH".to_string(),
            "option MAX LENGTH is given twice".to_string()
        )
    );
    let empty = Statement::Alter(Alter {
        kind: TopicKind::Topic,
        name: "orders".into(),
        options: Vec::new(),
    });
    let e = t.db.session().execute_statement(&empty).unwrap_err();
    assert!(
        matches!(&e, Error::Incomplete { statement, .. } if statement == "ALTER"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "ALTER needs at least one option after SET");
}

#[test]
fn invalid_names_say_what_is_wrong() {
    let t = setup();
    let db = &t.db;
    let long = "x".repeat(250);
    let cases = [
        (
            db.create_topic("", &TopicOptions::default()),
            "topic",
            "",
            NameProblem::Empty,
            "topic name must not be empty".to_string(),
        ),
        (
            db.create_queue(&long, &TopicOptions::default()),
            "queue",
            long.as_str(),
            NameProblem::TooLong,
            format!("queue name '{long}' is longer than 249 bytes"),
        ),
        (
            db.subscribe("a\tb", &Subscription::topic("orders")),
            "group",
            "a\tb",
            NameProblem::ControlCharacter,
            "group name \"a\\tb\" contains a control character".to_string(),
        ),
        (
            db.create_topic("Groups", &TopicOptions::default()),
            "topic",
            "Groups",
            NameProblem::Reserved,
            "'Groups' is a reserved name (GROUPS is a system source of SELECT): choose another name"
                .to_string(),
        ),
    ];
    for (result, want_what, want_name, want_problem, text) in cases {
        let e = result.unwrap_err();
        match &e {
            Error::InvalidName {
                what,
                name,
                problem,
            } => {
                assert_eq!(
                    (what.as_str(), name.as_str(), *problem),
                    (want_what, want_name, want_problem)
                );
            }
            other => panic!("expected InvalidName, got {other:?}"),
        }
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn invalid_patterns_say_what_is_wrong() {
    let t = setup();
    for (pattern, want) in [
        ("", PatternProblem::Empty),
        ("a..b", PatternProblem::EmptyWord),
        ("order.*x", PatternProblem::EmbeddedWildcard),
    ] {
        let e =
            t.db.subscribe("h", &Subscription::pattern(pattern))
                .unwrap_err();
        assert!(
            matches!(&e, Error::InvalidPattern { pattern: p, problem } if p == pattern && *problem == want),
            "{pattern}: {e:?}"
        );
    }
}

#[test]
fn empty_header_names_and_dedup_ids_are_refused() {
    let t = setup();
    for (m, want) in [
        (Message::new("x").header("", "v"), "header name"),
        (Message::new("x").dedup_id(""), "dedup id"),
    ] {
        let e = t.db.publish("jobs", m).unwrap_err();
        assert!(
            matches!(&e, Error::EmptyValue { what } if what == want),
            "{e:?}"
        );
        assert_eq!(e.to_string(), format!("a {want} must not be empty"));
    }
}

#[test]
fn a_delivery_listed_twice_is_named() {
    let t = setup();
    t.db.publish("jobs", Message::new("x")).unwrap();
    let d = t.db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    let id = d[0].id;
    for e in [
        t.db.ack(&[id, id]).unwrap_err(),
        t.db.nack(&[id, id], &NackAction::Now).unwrap_err(),
    ] {
        assert!(matches!(e, Error::DuplicateDelivery(x) if x == id), "{e:?}");
        assert_eq!(e.to_string(), format!("delivery {id} is listed twice"));
    }
}

#[test]
fn queues_and_groups_do_not_share_names() {
    let t = setup();
    let db = &t.db;
    let e = db.create_queue("g", &TopicOptions::default()).unwrap_err();
    assert!(
        matches!(&e, Error::NameTaken { name, statement } if name == "g" && statement == "CREATE QUEUE"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "a group named 'g' already exists; a queue's implicit group takes the queue's name"
    );
    let e = db
        .subscribe("jobs", &Subscription::topic("orders"))
        .unwrap_err();
    assert!(
        matches!(&e, Error::ImplicitGroup { queue, statement } if queue == "jobs" && statement == "SUBSCRIBE"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "'jobs' is the implicit group of queue 'jobs'; choose another group name"
    );
    let e = db.unsubscribe("jobs", None).unwrap_err();
    assert!(
        matches!(&e, Error::ImplicitGroup { queue, statement } if queue == "jobs" && statement == "UNSUBSCRIBE"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "'jobs' is the implicit group of a queue; DROP QUEUE jobs removes it"
    );
}

/// A dead letter whose group is gone is no error: REQUEUE DLQ leaves it
/// in the DLQ and names it in its outcome (see tests/dlq_repair.rs).
#[test]
fn requeueing_a_dead_letter_of_a_gone_group_reports_it() {
    let t = setup();
    let db = &t.db;
    db.publish("orders", Message::new("x")).unwrap();
    let d = db.consume(&ConsumeRequest::topic("orders", "g")).unwrap();
    db.nack(&[d[0].id], &NackAction::Dead(None)).unwrap();
    db.unsubscribe("g", None).unwrap();
    let ids: Vec<i64> = db
        .execute("SELECT id FROM DLQ")
        .unwrap()
        .rows
        .iter()
        .map(|r| match r[0] {
            mqlite::Value::Int(i) => i,
            ref other => panic!("{other:?}"),
        })
        .collect();
    let done = db.requeue_dlq(&ids).unwrap();
    assert_eq!(done.requeued, 0);
    let o = &done.skipped[0];
    assert_eq!(
        (o.id, o.group.as_str(), o.topic.as_str(), o.reason),
        (ids[0], "g", "orders", mqlite::OrphanReason::GroupGone)
    );
    assert_eq!(
        o.to_string(),
        format!(
            "dead letter {} was not requeued: group 'g' no longer exists; PURGE DLQ removes it",
            ids[0]
        )
    );
}

#[test]
fn backup_to_an_existing_file_says_it_never_replaces_one() {
    let t = setup();
    let copy = t.dir.path().join("copy.db");
    t.db.backup(&copy, |_, _| {}).unwrap();
    let e = t.db.backup(&copy, |_, _| {}).unwrap_err();
    assert!(
        matches!(&e, Error::OutputFile { path, problem: FileProblem::BackupExists } if *path == copy),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!(
            "'{}' exists: BACKUP never replaces a file; remove it or choose another name",
            copy.display()
        )
    );
}

#[test]
fn statements_that_cannot_run_in_a_transaction_say_so() {
    let t = setup();
    let mut tx = t.db.transaction().unwrap();
    let wait = ConsumeRequest::queue("jobs").wait(Duration::from_secs(1));
    let cases = [
        (tx.consume(&wait).map(|_| ()), "CONSUME ... WAIT"),
        (tx.execute("BENCH MESSAGES 1").map(|_| ()), "BENCH"),
        (tx.execute("TAIL orders").map(|_| ()), "TAIL"),
    ];
    for (result, want) in cases {
        let e = result.unwrap_err();
        assert!(
            matches!(&e, Error::NotAllowedInTransaction { statement } if statement == want),
            "{e:?}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("{want} is not allowed inside a transaction")),
            "{e}"
        );
    }
}

#[test]
fn incomplete_requests_say_what_they_need() {
    let t = setup();
    let db = &t.db;
    let cases = [
        (
            db.subscribe("h", &Subscription::default()),
            "SUBSCRIBE",
            "SUBSCRIBE needs at least one topic or pattern",
        ),
        (
            db.mark_processed("g", "").map(|_| ()),
            "mark_processed",
            "mark_processed needs a group and a key",
        ),
    ];
    for (result, want, text) in cases {
        let e = result.unwrap_err();
        assert!(
            matches!(&e, Error::Incomplete { statement, .. } if statement == want),
            "{e:?}"
        );
        assert_eq!(e.to_string(), text);
    }
}

#[test]
fn statements_that_cannot_run_as_written_are_invalid_statements() {
    let t = setup();
    for (sql, text) in [
        (
            "PUBLISH orders HEADERS (a = '1', a = '2') 'x'",
            "header 'a' is given twice",
        ),
        (
            "PUBLISH orders DEDUP 'd' 'a', 'b'",
            "DEDUP names one message: publish several payloads with one DEDUP id each in separate statements",
        ),
        ("SELECT nope FROM TOPICS", "unknown column 'nope' in TOPICS"),
        (
            "SELECT * FROM orders WHERE COUNT(*) > 1",
            "aggregate functions (COUNT, SUM, ...) are not allowed in WHERE",
        ),
    ] {
        let e = fail(&t.db, sql);
        match &e {
            Error::InvalidStatement(m) => assert!(m.starts_with(text), "{m}"),
            other => panic!("{sql}: expected InvalidStatement, got {other:?}"),
        }
    }
}

#[test]
fn export_and_import_file_errors_name_the_file() {
    let t = setup();
    let db = &t.db;
    let dir = t.dir.path();
    let file = dir.join("out.jsonl");
    let f = file.display();
    db.execute(&format!("EXPORT orders TO '{f}'")).unwrap();
    let exists = fail(db, &format!("EXPORT orders TO '{f}'"));
    let own = fail(db, &format!("EXPORT orders TO '{}'", t.path.display()));
    let root = fail(db, "EXPORT orders TO '/' OVERWRITE");
    let missing = dir.join("no/such/dir.jsonl");
    let io = fail(db, &format!("EXPORT orders TO '{}'", missing.display()));
    let file_problem = |e: &Error| match e {
        Error::OutputFile { path, problem } => (path.clone(), format!("{problem:?}")),
        other => panic!("expected OutputFile, got {other:?}"),
    };
    assert_eq!(file_problem(&exists), (file.clone(), "Exists".into()));
    assert_eq!(
        exists.to_string(),
        format!("'{f}' exists: add OVERWRITE to replace it")
    );
    assert_eq!(file_problem(&own), (t.path.clone(), "DatabaseFile".into()));
    assert_eq!(
        own.to_string(),
        format!(
            "'{}' is the database file or one of its own files: choose another file",
            t.path.display()
        )
    );
    assert_eq!(file_problem(&root), ("/".into(), "NotAFileName".into()));
    assert_eq!(root.to_string(), "'/' is not a file name");
    assert!(
        matches!(&io, Error::OutputFile { path, problem: FileProblem::Io(e) }
            if path == &missing && e.kind() == std::io::ErrorKind::NotFound),
        "{io:?}"
    );
    assert!(
        io.to_string()
            .starts_with(&format!("cannot write '{}': ", missing.display())),
        "{io}"
    );

    let e = fail(db, &format!("IMPORT '{}' INTO jobs", missing.display()));
    assert!(
        matches!(&e, Error::ImportFile { path, source }
            if path == &missing && source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read '{}': ", missing.display())),
        "{e}"
    );
    let bad = dir.join("bad.jsonl");
    std::fs::write(
        &bad,
        "{\"payload\": \"ok\"}\n{\"key\": 5, \"payload\": \"x\"}\n",
    )
    .unwrap();
    let e = fail(db, &format!("IMPORT '{}' INTO jobs", bad.display()));
    assert!(
        matches!(&e, Error::ImportLine { path, line: 2, reason }
            if path == &bad && reason == "\"key\" must be a string or null"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("{} line 2: \"key\" must be a string or null", bad.display())
    );
}
