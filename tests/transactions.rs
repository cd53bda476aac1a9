//! Exactly-once building blocks: transactions, fencing, dedup, the processed table.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::time::Duration;

use common::{fail, open, rows};
use mqlite::{ConsumeRequest, Error, Message, Subscription, rusqlite};
use serde_json::json;

fn setup(db: &mqlite::Database) {
    db.execute(
        "CREATE TOPIC order.placed; CREATE TOPIC invoice.created;
         SUBSCRIBE GROUP billing TO order.placed FROM BEGINNING;",
    )
    .expect("setup");
    let tx = db.transaction().expect("tx");
    tx.connection()
        .expect("conn")
        .execute_batch("CREATE TABLE invoices (order_id TEXT PRIMARY KEY, total REAL)")
        .expect("app table");
    tx.commit().expect("commit");
}

fn invoices(db: &mqlite::Database) -> i64 {
    let tx = db.transaction().unwrap();
    let n = tx
        .connection()
        .unwrap()
        .query_row("SELECT COUNT(*) FROM invoices", [], |r| r.get(0))
        .unwrap();
    tx.rollback().unwrap();
    n
}

#[test]
fn consume_transform_produce_commits_all_or_nothing() {
    let t = open();
    let db = &t.db;
    setup(db);
    db.publish(
        "order.placed",
        Message::new(r#"{"orderId": "o1", "total": 10}"#).key("o1"),
    )
    .unwrap();

    // A transaction that rolls back leaves no trace, and the lease never happened.
    {
        let mut tx = db.transaction().unwrap();
        let d = tx
            .consume(&ConsumeRequest::topic("order.placed", "billing"))
            .unwrap();
        assert_eq!(d[0].attempt, 1);
        tx.connection()
            .unwrap()
            .execute("INSERT INTO invoices VALUES ('o1', 10)", [])
            .unwrap();
        tx.publish("invoice.created", Message::new("inv-o1").key("o1"))
            .unwrap();
        tx.ack(&[d[0].id]).unwrap();
        // dropped: rolled back
    }
    assert_eq!(invoices(db), 0);
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        0
    );

    let mut tx = db.transaction().unwrap();
    let d = tx
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].attempt, 1, "same attempt after a rolled-back lease");
    tx.connection()
        .unwrap()
        .execute("INSERT INTO invoices VALUES ('o1', 10)", [])
        .unwrap();
    tx.publish("invoice.created", Message::new("inv-o1").key("o1"))
        .unwrap();
    tx.ack(&[d[0].id]).unwrap();
    tx.commit().unwrap();

    assert_eq!(invoices(db), 1);
    assert_eq!(
        rows(db, "SELECT payload FROM invoice.created"),
        [json!({"payload": "inv-o1"})]
    );
    assert!(
        db.consume(&ConsumeRequest::topic("order.placed", "billing"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_fenced_ack_makes_the_whole_transaction_fail() {
    let t = open();
    let db = &t.db;
    setup(db);
    db.publish("order.placed", Message::new("o1")).unwrap();
    let late = db
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    t.clock.advance(Duration::from_secs(31));
    let fresh = db
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    assert_eq!(fresh[0].attempt, 2);

    // The late worker's transaction: its work and its ack go nowhere.
    let mut tx = db.transaction().unwrap();
    tx.connection()
        .unwrap()
        .execute("INSERT INTO invoices VALUES ('o1', 10)", [])
        .unwrap();
    tx.publish("invoice.created", Message::new("inv-o1"))
        .unwrap();
    assert!(matches!(
        tx.ack(&[late[0].id]),
        Err(Error::StaleDelivery { .. })
    ));
    assert!(matches!(
        tx.publish("invoice.created", Message::new("x")),
        Err(Error::TransactionAborted(_))
    ));
    let e = tx.commit().unwrap_err();
    assert!(matches!(e, Error::TransactionAborted(_)), "{e}");
    assert!(e.to_string().contains("redelivered as"), "{e}");
    assert_eq!(invoices(db), 0);
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        0
    );
    // The fresh delivery is intact.
    db.ack(&[fresh[0].id]).unwrap();
}

#[test]
fn other_failures_inside_a_transaction_change_nothing_and_it_goes_on() {
    let t = open();
    let db = &t.db;
    setup(db);
    let mut tx = db.transaction().unwrap();
    tx.publish("invoice.created", Message::new("a")).unwrap();
    assert!(matches!(
        tx.publish("nope", Message::new("b")),
        Err(Error::TopicNotFound(_))
    ));
    tx.publish("invoice.created", Message::new("c")).unwrap();
    tx.commit().unwrap();
    assert_eq!(
        rows(db, "SELECT payload FROM invoice.created"),
        [json!({"payload": "a"}), json!({"payload": "c"})]
    );
}

#[test]
fn the_language_has_begin_commit_rollback() {
    let t = open();
    let db = &t.db;
    setup(db);
    db.execute("PUBLISH order.placed 'o1', 'o2'").unwrap();
    db.execute("BEGIN; PUBLISH invoice.created 'x'; ROLLBACK")
        .unwrap();
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        0
    );

    let mut s = db.session();
    let run = |s: &mut mqlite::Session, sql: &str| {
        s.execute_statement(&mqlite::lang::parse_statement(sql).unwrap())
    };
    run(&mut s, "BEGIN").unwrap();
    assert!(s.in_transaction());
    let d = run(&mut s, "CONSUME 2 FROM order.placed GROUP billing").unwrap();
    assert_eq!(d.rows.len(), 2);
    run(&mut s, "PUBLISH invoice.created 'inv-1'").unwrap();
    let id = d.get(0, "delivery").unwrap().to_string();
    run(&mut s, &format!("ACK {id}")).unwrap();
    let e = run(&mut s, "BEGIN").unwrap_err();
    assert!(matches!(e, Error::Transaction(_)), "{e:?}");
    assert!(e.to_string().contains("already open"), "{e}");
    let e = run(&mut s, "CONSUME FROM order.placed GROUP billing WAIT 1s").unwrap_err();
    assert!(
        matches!(&e, Error::NotAllowedInTransaction { statement } if statement == "CONSUME ... WAIT"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "CONSUME ... WAIT is not allowed inside a transaction: it would hold the write lock while waiting"
    );
    // Another handle does not see uncommitted work.
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        0
    );
    run(&mut s, "COMMIT").unwrap();
    assert!(!s.in_transaction());
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        1
    );
    assert_eq!(
        rows(db, "SELECT pending FROM GROUPS WHERE group = 'billing'")[0]["pending"],
        1
    );

    for sql in ["COMMIT", "ROLLBACK"] {
        let e = fail(db, sql);
        assert!(matches!(e, Error::Transaction(_)), "{e:?}");
        assert!(e.to_string().contains("no open transaction"), "{e}");
    }
    let e = fail(db, "BEGIN; PUBLISH invoice.created 'y'");
    assert!(matches!(e, Error::Transaction(_)), "{e:?}");
    assert!(e.to_string().contains("rolled back"), "{e}");
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        1
    );
    // A fenced ACK inside BEGIN: the script fails and nothing of it stays.
    assert!(matches!(
        fail(db, "BEGIN; PUBLISH invoice.created 'z'; ACK 999999; COMMIT"),
        Error::UnknownDelivery(999_999)
    ));
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        1
    );
}

#[test]
fn delivery_ids_from_a_rolled_back_transaction_are_never_issued_again() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a'").unwrap();
    let mut tx = db.transaction().unwrap();
    let first = tx.consume(&ConsumeRequest::queue("jobs")).unwrap()[0].id;
    tx.rollback().unwrap();
    let again = db.consume(&ConsumeRequest::queue("jobs")).unwrap()[0].id;
    assert_ne!(first, again);
    // A second handle (another process would do the same) reserves its own ids.
    let other = mqlite::Database::open(&t.path).unwrap();
    other.execute("PUBLISH jobs 'b'").unwrap();
    let third = other.consume(&ConsumeRequest::queue("jobs")).unwrap()[0].id;
    assert!(third != first && third != again);
}

#[test]
fn dedup_window_and_its_expiry() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC pay PARTITIONS 3 DEDUP WINDOW 1h")
        .unwrap();
    let a = rows(db, "PUBLISH pay KEY 'k' DEDUP 'pay-1' 'charge 10'");
    assert_eq!(a[0]["duplicate"], false);
    let b = rows(
        db,
        "PUBLISH pay KEY 'other' DEDUP 'pay-1' 'charge 10 again'",
    );
    assert_eq!(b[0]["duplicate"], true);
    assert_eq!(
        (&b[0]["partition"], &b[0]["offset"]),
        (&a[0]["partition"], &a[0]["offset"]),
        "the original's position"
    );
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM pay")[0]["n"],
        1,
        "nothing stored"
    );
    // Library builder, same id: duplicate too.
    let p = db
        .publish("pay", Message::new("x").dedup_id("pay-1"))
        .unwrap();
    assert!(p.duplicate);
    // Inside one batch, the second copy is a duplicate of the first.
    let ps = db
        .publish_batch(
            "pay",
            vec![
                Message::new("b1").dedup_id("pay-2"),
                Message::new("b2").dedup_id("pay-2"),
            ],
        )
        .unwrap();
    assert!(!ps[0].duplicate && ps[1].duplicate);
    assert_eq!(ps[1].offset, ps[0].offset);

    t.clock.advance(Duration::from_secs(3601));
    let c = rows(db, "PUBLISH pay DEDUP 'pay-1' 'charge 10 next day'");
    assert_eq!(c[0]["duplicate"], false, "the window has passed");
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM pay")[0]["n"], 3);
    let e = fail(db, "PUBLISH pay DEDUP 'd' 'a', 'b'");
    assert!(matches!(e, Error::InvalidStatement(_)), "{e:?}");
    assert!(e.to_string().contains("DEDUP names one message"), "{e}");
    let e = fail(db, "PUBLISH pay DEDUP '' 'a'");
    assert!(
        matches!(&e, Error::EmptyValue { what } if what == "dedup id"),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "a dedup id must not be empty");
}

#[test]
fn processed_table_remembers_keys_until_they_expire() {
    let t = open();
    let db = &t.db;
    assert!(db.mark_processed("email", "order-1").unwrap());
    assert!(!db.mark_processed("email", "order-1").unwrap());
    assert!(db.mark_processed("sms", "order-1").unwrap(), "per group");
    let r = rows(db, "SELECT group, key FROM PROCESSED ORDER BY group");
    assert_eq!(
        r,
        [
            json!({"group": "email", "key": "order-1"}),
            json!({"group": "sms", "key": "order-1"})
        ]
    );

    let mut tx = db.transaction().unwrap();
    assert!(
        tx.mark_processed_for("email", "order-2", Duration::from_secs(60))
            .unwrap()
    );
    tx.rollback().unwrap();
    assert!(
        db.mark_processed("email", "order-2").unwrap(),
        "a rolled-back mark never happened"
    );

    let mut tx = db.transaction().unwrap();
    assert!(
        tx.mark_processed_for("email", "short", Duration::from_secs(60))
            .unwrap()
    );
    tx.commit().unwrap();
    t.clock.advance(Duration::from_secs(61));
    assert!(
        db.mark_processed("email", "short").unwrap(),
        "expired: handled again"
    );
    t.clock.advance(mqlite::DEFAULT_PROCESSED_TTL);
    assert!(
        db.mark_processed("email", "order-1").unwrap(),
        "the default TTL passed"
    );
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM PROCESSED")[0]["n"], 1);
}

#[test]
fn explicit_offset_commit_inside_a_transaction() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC ev PARTITIONS 2 RETENTION UNTIL CONSUMED")
        .unwrap();
    db.subscribe("reader", &Subscription::topic("ev")).unwrap();
    for i in 0..6 {
        db.publish("ev", Message::new(format!("m{i}")).partition(0))
            .unwrap();
    }
    let d = db
        .consume(&ConsumeRequest::topic("ev", "reader").max(2))
        .unwrap();
    assert_eq!(d.len(), 2);
    let mut tx = db.transaction().unwrap();
    tx.commit_offset("reader", "ev", 0, 4).unwrap();
    let e = tx.commit_offset("reader", "ev", 0, 99).unwrap_err();
    assert!(
        matches!(&e, Error::PastEnd { topic, partition: 0, offset: 99, next: 6 } if topic == "ev"),
        "{e:?}"
    );
    assert!(e.to_string().contains("past the end"), "{e}");
    let e = tx.commit_offset("reader", "ev", 5, 0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::PartitionOutOfRange {
                partition: 5,
                partitions: 2,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "partition 5 does not exist in 'ev'");
    tx.commit().unwrap();
    let rest: Vec<String> = db
        .consume(&ConsumeRequest::topic("ev", "reader").max(10))
        .unwrap()
        .iter()
        .map(|d| d.payload_str().into_owned())
        .collect();
    assert_eq!(rest, ["m4", "m5"]);
    assert!(
        matches!(db.ack(&[d[0].id]), Err(Error::UnknownDelivery(_))),
        "committed past: done"
    );
    assert_eq!(
        db.topic_stats("ev").unwrap().messages,
        2,
        "UNTIL CONSUMED trimmed below the committed offset"
    );
}

/// What a refused statement of application SQL becomes as an mqlite error.
fn refused(e: rusqlite::Error) -> String {
    match Error::from(e) {
        Error::Forbidden(what) => what,
        other => panic!("expected Error::Forbidden, got {other:?}"),
    }
}

/// The file's identity and schema, and the delivery id counter.
fn fingerprint(path: &std::path::Path) -> (i64, i64, Vec<String>, String) {
    let c = rusqlite::Connection::open(path).unwrap();
    let app: i64 = c
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .unwrap();
    let ver: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    let mut st = c
        .prepare("SELECT type || ' ' || name || ' ' || COALESCE(sql, '') FROM sqlite_schema ORDER BY name")
        .unwrap();
    let schema = st
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<Vec<String>>>()
        .unwrap();
    let next: String = c
        .query_row(
            "SELECT CAST(value AS TEXT) FROM mq_meta WHERE name = 'next_delivery_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    (app, ver, schema, next)
}

#[test]
fn application_sql_cannot_change_what_belongs_to_mqlite() {
    let t = open();
    let db = &t.db;
    setup(db);
    db.publish("order.placed", Message::new("o1")).unwrap();
    let before = fingerprint(&t.path);
    let attacks = [
        ("DROP TABLE mq_messages", "mq_messages"),
        ("DELETE FROM mq_messages", "mq_messages"),
        (
            "UPDATE mq_meta SET value = 1 WHERE name = 'next_delivery_id'",
            "mq_meta",
        ),
        ("INSERT INTO mq_topics (name) VALUES ('x')", "mq_topics"),
        ("UPDATE sqlite_sequence SET seq = 0", "sqlite_sequence"),
        ("CREATE INDEX mine ON mq_messages (ts)", "mq_messages"),
        (
            "CREATE TRIGGER mine AFTER INSERT ON mq_messages BEGIN SELECT 1; END",
            "mq_messages",
        ),
        ("ALTER TABLE mq_dlq ADD COLUMN x", "mq_dlq"),
        ("CREATE TABLE mq_mine (x)", "mq_mine"),
        ("DROP VIEW mq_partition_state", "mq_partition_state"),
        ("PRAGMA writable_schema = ON", "writable_schema"),
        ("PRAGMA application_id = 0", "application_id"),
        ("PRAGMA user_version = 99", "user_version"),
        ("PRAGMA main.journal_mode = DELETE", "journal_mode"),
        ("PRAGMA optimize", "optimize"),
        ("ATTACH ':memory:' AS other", "ATTACH"),
        // A trigger on the application's own table that writes mqlite's.
        (
            "CREATE TRIGGER sneaky AFTER INSERT ON invoices BEGIN DELETE FROM mq_messages; END;
             INSERT INTO invoices VALUES ('o9', 1)",
            "mq_messages",
        ),
    ];
    let mut tx = db.transaction().unwrap();
    tx.publish("invoice.created", Message::new("kept")).unwrap();
    for (sql, named) in attacks {
        let e = tx.connection().unwrap().execute_batch(sql).unwrap_err();
        let what = refused(e);
        assert!(what.contains(named), "{sql}: {what}");
        // The transaction goes on: mqlite's own work is not blocked.
        tx.publish("invoice.created", Message::new("kept")).unwrap();
    }
    // The trigger above was created on an application table: allowed, but it
    // cannot fire into mq_ tables. Drop it so the table stays usable.
    tx.connection()
        .unwrap()
        .execute_batch("DROP TRIGGER sneaky")
        .unwrap();
    tx.commit().unwrap();

    assert_eq!(
        fingerprint(&t.path),
        before,
        "file identity and schema unchanged"
    );
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        json!(attacks.len() + 1)
    );
    let d = db
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    assert_eq!(d[0].payload_str(), "o1");
    db.ack(&[d[0].id]).unwrap();
    assert_eq!(rows(db, "CHECK"), [json!({"result": "ok"})]);
}

#[test]
fn application_sql_keeps_its_own_tables_and_reads() {
    let t = open();
    let db = &t.db;
    setup(db);
    let mut tx = db.transaction().unwrap();
    let c = tx.connection().unwrap();
    c.execute_batch(
        "CREATE TABLE log (id INTEGER PRIMARY KEY AUTOINCREMENT, what TEXT);
         CREATE INDEX log_what ON log (what);
         CREATE TRIGGER audit AFTER INSERT ON invoices BEGIN INSERT INTO log (what) VALUES (NEW.order_id); END;
         INSERT INTO invoices VALUES ('o1', 10);
         UPDATE invoices SET total = 11;
         PRAGMA defer_foreign_keys = ON;",
    )
    .unwrap();
    let cols: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM pragma_table_info('invoices')",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(cols, 2);
    let ver: i64 = c
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(ver > 0, "reading a setting is allowed");
    let topics: i64 = c
        .query_row("SELECT COUNT(*) FROM mq_topics", [], |r| r.get(0))
        .unwrap();
    assert_eq!(topics, 2, "reading mqlite's tables is allowed");
    // mqlite's own statements, typed or through the language, still run.
    tx.execute("PUBLISH invoice.created 'i1'; CREATE TOPIC made.inside")
        .unwrap();
    tx.connection()
        .unwrap()
        .execute("DELETE FROM log", [])
        .unwrap();
    tx.commit().unwrap();
    assert_eq!(invoices(db), 1);
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        1
    );
    assert!(db.topic_stats("made.inside").is_ok());
}

#[test]
fn nothing_of_a_transaction_connection_leaks_into_the_next_transaction() {
    let t = open();
    let db = &t.db;
    setup(db);
    db.execute("CREATE TOPIC ev PARTITIONS 1").unwrap();
    let tx = db.transaction().unwrap();
    let c = tx.connection().unwrap();
    let trigger = "CREATE TEMP TRIGGER eat AFTER INSERT ON mq_messages BEGIN DELETE FROM mq_messages WHERE rowid = NEW.rowid; END";
    assert!(refused(c.execute_batch(trigger).unwrap_err()).contains("temporary"));
    let view = "CREATE TEMP VIEW v AS SELECT 1";
    assert!(refused(c.execute_batch(view).unwrap_err()).contains("temporary"));
    assert!(refused(c.execute_batch("PRAGMA query_only = 1").unwrap_err()).contains("query_only"));
    // Not SQL, so no authorizer sees it: the connection must not be reused.
    c.busy_timeout(Duration::ZERO).unwrap();
    let writable = rusqlite::config::DbConfig::SQLITE_DBCONFIG_WRITABLE_SCHEMA;
    c.set_db_config(writable, true).unwrap();
    tx.commit().unwrap();
    let tx = db.transaction().unwrap();
    let on: bool = tx
        .connection()
        .unwrap()
        .query_row("PRAGMA writable_schema", [], |r| r.get(0))
        .unwrap();
    assert!(!on, "a flag set through the Connection API was reset");
    tx.rollback().unwrap();

    // Another writer holds the lock for a moment: the next transaction waits
    // for it (busy timeout) instead of failing at once.
    let (locked, wait) = std::sync::mpsc::channel();
    let path = t.path.clone();
    let writer = std::thread::spawn(move || {
        let other = rusqlite::Connection::open(path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        locked.send(()).unwrap();
        std::thread::sleep(Duration::from_millis(200));
        other.execute_batch("COMMIT").unwrap();
    });
    wait.recv().unwrap();
    let tx = db.transaction().unwrap();
    tx.rollback().unwrap();
    writer.join().unwrap();

    for want in 0..2u64 {
        let mut tx = db.transaction().unwrap();
        let p = tx.publish("ev", Message::new(format!("m{want}"))).unwrap();
        assert_eq!(p.offset, want);
        tx.commit().unwrap();
    }
    assert_eq!(
        rows(db, "SELECT payload FROM ev"),
        [json!({"payload": "m0"}), json!({"payload": "m1"})]
    );
}

#[test]
fn application_sql_cannot_end_mqlites_transaction() {
    let t = open();
    let db = &t.db;
    setup(db);
    db.publish("order.placed", Message::new("o1")).unwrap();

    // ROLLBACK; BEGIN is refused: mqlite's work stays in its transaction.
    let mut tx = db.transaction().unwrap();
    let d = tx
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    for sql in [
        "ROLLBACK; BEGIN",
        "COMMIT",
        "SAVEPOINT a",
        "RELEASE a",
        "BEGIN",
    ] {
        let e = tx.connection().unwrap().execute_batch(sql).unwrap_err();
        assert!(refused(e).contains("transaction"), "{sql}");
    }
    let e = tx
        .connection()
        .unwrap()
        .unchecked_transaction()
        .unwrap_err();
    assert!(refused(e).contains("transaction"));
    tx.ack(&[d[0].id]).unwrap();
    tx.commit().unwrap();
    assert!(
        db.consume(&ConsumeRequest::topic("order.placed", "billing"))
            .unwrap()
            .is_empty(),
        "the ack committed"
    );

    // INSERT OR ROLLBACK ends it from inside SQLite: later steps and the
    // commit fail instead of running outside any transaction.
    db.publish("order.placed", Message::new("o2")).unwrap();
    let mut tx = db.transaction().unwrap();
    let d = tx
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    tx.publish("invoice.created", Message::new("before"))
        .unwrap();
    let c = tx.connection().unwrap();
    c.execute("INSERT INTO invoices VALUES ('o1', 1)", [])
        .unwrap();
    c.execute("INSERT OR ROLLBACK INTO invoices VALUES ('o1', 2)", [])
        .unwrap_err();
    assert!(matches!(
        tx.publish("invoice.created", Message::new("after")),
        Err(Error::TransactionAborted(_))
    ));
    assert!(matches!(
        tx.ack(&[d[0].id]),
        Err(Error::TransactionAborted(_))
    ));
    let e = tx.commit().unwrap_err();
    assert!(matches!(e, Error::TransactionAborted(_)), "{e}");
    assert!(e.to_string().contains("rolled back"), "{e}");
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM invoice.created")[0]["n"],
        0,
        "nothing committed outside the transaction"
    );
    assert_eq!(invoices(db), 0);
    // The lease never happened: o2 is deliverable at the same attempt.
    let again = db
        .consume(&ConsumeRequest::topic("order.placed", "billing"))
        .unwrap();
    assert_eq!(
        (again[0].payload_str().as_ref(), again[0].attempt),
        ("o2", 1)
    );
}
