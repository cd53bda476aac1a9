//! Queues: point-to-point, FIFO, gone once acked.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::time::Duration;

use common::{fail, open, rows};
use mqlite::{ConsumeRequest, Error, Message, NackAction, TopicKind, Value};

#[test]
fn fifo_queue_is_drained_by_acks() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs").unwrap();
    for i in 0..10 {
        db.publish("jobs", Message::new(format!("job-{i}")))
            .unwrap();
    }
    let mut seen = Vec::new();
    loop {
        let got = db.consume(&ConsumeRequest::queue("jobs").max(3)).unwrap();
        if got.is_empty() {
            break;
        }
        for d in &got {
            assert_eq!(d.attempt, 1);
            seen.push(d.payload_str().into_owned());
        }
        db.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .unwrap();
    }
    let want: Vec<String> = (0..10).map(|i| format!("job-{i}")).collect();
    assert_eq!(seen, want, "FIFO order");
    // Acked messages are gone from the queue's storage.
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 0);
    assert_eq!(rows(db, "SELECT COUNT(*) FROM jobs")[0]["COUNT(*)"], 0);
    let r = rows(db, "SHOW QUEUES");
    assert_eq!(r[0]["name"], "jobs");
    assert_eq!(r[0]["messages"], 0);
}

#[test]
fn unacked_messages_stay_until_acked_and_block_nothing() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a', 'b', 'c'")
        .unwrap();
    let a = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    let b = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    assert_eq!(a[0].payload_str(), "a");
    assert_eq!(b[0].payload_str(), "b");
    db.ack(&[b[0].id]).unwrap();
    // 'a' is still in flight: it holds the ack floor, so nothing is trimmed yet.
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 3);
    db.ack(&[a[0].id]).unwrap();
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 1);
}

#[test]
fn consume_statement_returns_the_contract_columns() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs").unwrap();
    db.execute(
        "PUBLISH jobs KEY 'k1' HEADERS (source = 'web', trace = 'x1') {\"orderId\": \"ORD-1\"}",
    )
    .unwrap();
    let rs = db.execute("CONSUME FROM jobs").unwrap();
    assert_eq!(
        rs.columns,
        [
            "delivery",
            "topic",
            "partition",
            "offset",
            "key",
            "attempt",
            "timestamp",
            "headers",
            "payload"
        ]
    );
    let r = &rows(db, "SELECT * FROM jobs")[0];
    assert_eq!(r["payload"], "{\"orderId\": \"ORD-1\"}");
    assert_eq!(
        r["headers"],
        serde_json::json!({"source": "web", "trace": "x1"})
    );
    assert_eq!(rs.rows[0][1], Value::Text("jobs".into()));
    assert_eq!(rs.rows[0][4], Value::Text("k1".into()));
    assert_eq!(rs.rows[0][5], Value::Int(1));
    assert_eq!(rs.rows[0][6], Value::Timestamp(common::T0));
    assert_eq!(rs.rows[0][6].to_json(), "2023-11-14T22:13:20.000Z");
}

#[test]
fn consume_wait_returns_when_a_message_arrives_in_process() {
    let t = open();
    let db = t.db.clone();
    db.execute("CREATE QUEUE jobs").unwrap();
    let publisher = {
        let db = db.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            db.publish("jobs", Message::new("late")).unwrap();
        })
    };
    let got = db
        .consume(&ConsumeRequest::queue("jobs").wait(Duration::from_secs(20)))
        .unwrap();
    publisher.join().unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload_str(), "late");
    // Without anything to deliver, a short WAIT returns empty.
    let none = db
        .consume(&ConsumeRequest::queue("jobs").wait(Duration::from_millis(20)))
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn nack_now_delay_and_dead() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a', 'b', 'c'")
        .unwrap();
    let got = db.consume(&ConsumeRequest::queue("jobs").max(3)).unwrap();
    db.nack(&[got[0].id], &NackAction::Now).unwrap();
    db.nack(&[got[1].id], &NackAction::Delay(Duration::from_secs(60)))
        .unwrap();
    db.nack(&[got[2].id], &NackAction::Dead(Some("bad input".into())))
        .unwrap();

    let again = db.consume(&ConsumeRequest::queue("jobs").max(3)).unwrap();
    assert_eq!(again.len(), 1, "only 'a' is due now");
    assert_eq!(again[0].payload_str(), "a");
    assert_eq!(again[0].attempt, 2);
    db.ack(&[again[0].id]).unwrap();

    t.clock.advance(Duration::from_secs(61));
    let later = db.consume(&ConsumeRequest::queue("jobs").max(3)).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].payload_str(), "b");

    let dlq = rows(
        db,
        "SELECT topic, group, offset, reason, attempts, payload FROM DLQ",
    );
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["topic"], "jobs");
    assert_eq!(dlq[0]["group"], "jobs");
    assert_eq!(dlq[0]["reason"], "bad input");
    assert_eq!(dlq[0]["payload"], "c");
    assert_eq!(dlq[0]["attempts"], 1);
}

#[test]
fn max_deliveries_moves_the_message_to_the_dlq() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs MAX DELIVERIES 2 ACK WAIT 10s; PUBLISH jobs 'poison'")
        .unwrap();
    for attempt in 1..=2 {
        let got = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].attempt, attempt);
        t.clock.advance(Duration::from_secs(11));
    }
    assert!(
        db.consume(&ConsumeRequest::queue("jobs"))
            .unwrap()
            .is_empty()
    );
    let dlq = rows(db, "SELECT * FROM DLQ");
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0]["attempts"], 2);
    assert_eq!(dlq[0]["reason"], "exceeded MAX DELIVERIES (2)");
    assert_eq!(rows(db, "SELECT dead, pending FROM GROUPS")[0]["dead"], 1);
    // The dead message no longer holds the queue.
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 0);
}

#[test]
fn delayed_publish_is_invisible_until_due() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs DELAY 5m 'later'; PUBLISH jobs 'now'")
        .unwrap();
    let got = db.consume(&ConsumeRequest::queue("jobs").max(5)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload_str(), "now");
    db.ack(&[got[0].id]).unwrap();
    t.clock.advance(Duration::from_secs(301));
    let got = db.consume(&ConsumeRequest::queue("jobs").max(5)).unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload_str(), "later");
    assert_eq!(got[0].attempt, 1);
}

#[test]
fn max_length_reject_and_drop_oldest() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE small MAX LENGTH 2; PUBLISH small 'a', 'b'")
        .unwrap();
    let e = fail(db, "PUBLISH small 'c'");
    assert!(
        matches!(&e, Error::TopicFull { topic, kind: TopicKind::Queue, max: 2 } if topic == "small"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "queue 'small' is full (2 messages, OVERFLOW REJECT)"
    );
    db.execute("CREATE QUEUE ring MAX LENGTH 2 OVERFLOW DROP OLDEST; PUBLISH ring 'a', 'b', 'c'")
        .unwrap();
    let left: Vec<_> = rows(db, "SELECT payload FROM ring")
        .into_iter()
        .map(|r| r["payload"].clone())
        .collect();
    assert_eq!(left, ["b", "c"]);
}

#[test]
fn queue_misuse_is_refused() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; CREATE TOPIC orders")
        .unwrap();
    let wrong_kind = |e: &Error, want_is: TopicKind, want_statement: &str| {
        matches!(e, Error::WrongKind { is, statement, .. }
            if *is == want_is && statement == want_statement)
    };
    let e = fail(db, "SUBSCRIBE GROUP g TO jobs");
    assert!(wrong_kind(&e, TopicKind::Queue, "SUBSCRIBE"), "{e:?}");
    assert!(e.to_string().contains("is a queue"), "{e}");
    let e = fail(db, "CONSUME FROM orders");
    assert!(wrong_kind(&e, TopicKind::Topic, "CONSUME"), "{e:?}");
    assert!(e.to_string().contains("is a topic"), "{e}");
    // The grammar has no PARTITIONS/RETENTION for queues; the library refuses them too.
    assert!(matches!(
        fail(db, "CREATE QUEUE q2 PARTITIONS 3"),
        Error::Syntax(_)
    ));
    let opts = mqlite::TopicOptions {
        partitions: Some(3),
        ..Default::default()
    };
    let e = db.create_queue("q2", &opts).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidOption { option, .. } if option == "PARTITIONS"),
        "{e:?}"
    );
    assert!(e.to_string().contains("one partition"), "{e}");
    let opts = mqlite::TopicOptions {
        retention: Some(mqlite::Retention::Age(Duration::from_secs(60))),
        ..Default::default()
    };
    let e = db.create_queue("q3", &opts).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidOption { option, .. } if option == "RETENTION"),
        "{e:?}"
    );
    assert!(e.to_string().contains("UNTIL CONSUMED"), "{e}");
    let e = fail(db, "DROP TOPIC jobs");
    assert!(wrong_kind(&e, TopicKind::Queue, "DROP"), "{e:?}");
    assert_eq!(
        e.to_string(),
        "'jobs' is a queue, not a topic: use DROP QUEUE"
    );
    let e = fail(db, "CONSUME 0 FROM jobs");
    assert!(matches!(e, Error::Syntax(_)), "{e:?}");
    assert!(e.to_string().contains("at least 1"), "{e}");
    let big = ConsumeRequest::queue("jobs").max(mqlite::MAX_CONSUME + 1);
    let e = db.consume(&big).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidOption { option, .. } if option == "CONSUME"),
        "{e:?}"
    );
    assert!(e.to_string().contains("between 1 and"), "{e}");
}

#[test]
fn stored_bytes_count_bytes_not_characters() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE q; PUBLISH q 'ünï✓'").unwrap();
    let bytes = "ünï✓".len() as i64;
    assert_eq!(rows(db, "SHOW QUEUES")[0]["bytes"], bytes);
    let d = db.consume(&ConsumeRequest::queue("q")).unwrap();
    db.ack(&[d[0].id]).unwrap();
    assert_eq!(
        rows(db, "SHOW QUEUES")[0]["bytes"],
        0,
        "the trim subtracts the same bytes"
    );
    db.execute("CREATE TOPIC small RETENTION 20B; PUBLISH small 'ünïcödé', 'ünïcödé', 'ünïcödé'")
        .unwrap();
    let kept = rows(db, "SELECT COUNT(*) AS n FROM small")[0]["n"]
        .as_i64()
        .unwrap();
    assert_eq!(kept, 1, "each payload is 11 bytes: only one fits in 20B");
}

#[test]
fn a_batch_that_fails_halfway_stores_nothing() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE small MAX LENGTH 2").unwrap();
    // The third message finds the queue full after two were written.
    let e = fail(db, "PUBLISH small 'a', 'b', 'c'");
    assert!(matches!(e, Error::TopicFull { .. }), "{e:?}");
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM small")[0]["n"], 0);
    assert_eq!(rows(db, "SHOW QUEUES")[0]["messages"], 0);
    assert_eq!(
        rows(db, "PUBLISH small 'a'")[0]["offset"],
        0,
        "offsets were not used up"
    );
}
