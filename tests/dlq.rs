//! The dead-letter queue: listing, requeue to the failed group only, purge.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::time::Duration;

use common::{fail, open, rows};
use mqlite::{ConsumeRequest, Error};
use serde_json::json;

fn kill(db: &mqlite::Database, from: ConsumeRequest, reason: &str) {
    let d = db.consume(&from).unwrap();
    assert_eq!(d.len(), 1);
    db.execute(&format!("NACK {} DEAD '{reason}'", d[0].id))
        .unwrap();
}

#[test]
fn requeue_redelivers_to_that_group_only_with_attempts_reset() {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC orders; SUBSCRIBE GROUP email TO orders; SUBSCRIBE GROUP stock TO orders;
         PUBLISH orders KEY 'o1' {\"orderId\": \"o1\"}",
    )
    .unwrap();
    // stock takes it normally; email fails it.
    let s = db
        .consume(&ConsumeRequest::topic("orders", "stock"))
        .unwrap();
    db.ack(&[s[0].id]).unwrap();
    kill(db, ConsumeRequest::topic("orders", "email"), "smtp down");
    let dead = rows(db, "SELECT topic, group, key, reason, orderId FROM DLQ");
    assert_eq!(
        dead,
        [
            json!({"topic": "orders", "group": "email", "key": "o1", "reason": "smtp down", "orderId": "o1"})
        ]
    );

    assert_eq!(
        rows(db, "REQUEUE DLQ orders GROUP email"),
        [json!({"requeued": 1, "skipped": 0})]
    );
    assert!(rows(db, "SELECT * FROM DLQ").is_empty());
    let again = db
        .consume(&ConsumeRequest::topic("orders", "email"))
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].attempt, 1, "attempts reset");
    assert_eq!(again[0].payload_str(), "{\"orderId\": \"o1\"}");
    assert!(
        db.consume(&ConsumeRequest::topic("orders", "stock"))
            .unwrap()
            .is_empty(),
        "only email gets it again"
    );
    db.ack(&[again[0].id]).unwrap();
}

#[test]
fn requeue_works_for_a_queue_whose_log_already_dropped_the_message() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a', 'b'")
        .unwrap();
    kill(db, ConsumeRequest::queue("jobs"), "boom");
    // The queue trimmed the dead message from its log.
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 1);
    assert_eq!(
        rows(db, "REQUEUE DLQ jobs WHERE reason = 'boom'"),
        [json!({"requeued": 1, "skipped": 0})]
    );
    let got = db.consume(&ConsumeRequest::queue("jobs").max(5)).unwrap();
    let mut p: Vec<String> = got.iter().map(|d| d.payload_str().into_owned()).collect();
    p.sort();
    assert_eq!(p, ["a", "b"]);
    // It can die again, keeping its payload.
    let a = got.iter().find(|d| d.payload_str() == "a").unwrap();
    db.execute(&format!("NACK {} DEAD 'again'", a.id)).unwrap();
    assert_eq!(
        rows(db, "SELECT payload, reason FROM DLQ"),
        [json!({"payload": "a", "reason": "again"})]
    );
    assert_eq!(rows(db, "CHECK"), [json!({"result": "ok"})]);
}

#[test]
fn requeue_and_purge_filters_and_limits() {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE QUEUE jobs; CREATE QUEUE mail; PUBLISH jobs 'j1', 'j2', 'j3'; PUBLISH mail 'm1'",
    )
    .unwrap();
    for _ in 0..3 {
        kill(db, ConsumeRequest::queue("jobs"), "bad");
    }
    kill(db, ConsumeRequest::queue("mail"), "smtp");
    assert_eq!(
        rows(db, "REQUEUE DLQ jobs LIMIT 2"),
        [json!({"requeued": 2, "skipped": 0})]
    );
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM DLQ")[0]["n"], 2);
    assert_eq!(
        rows(db, "PURGE DLQ WHERE reason = 'smtp'"),
        [json!({"purged": 1})]
    );
    assert_eq!(
        rows(db, "SELECT payload FROM DLQ"),
        [json!({"payload": "j3"})]
    );
    assert_eq!(rows(db, "PURGE DLQ"), [json!({"purged": 1})]);
    assert!(matches!(fail(db, "REQUEUE DLQ nope"), Error::TopicNotFound(t) if t == "nope"));
    let e = fail(db, "REQUEUE DLQ WHERE nosuch.col = 1 OR COUNT(*) > 1");
    assert!(matches!(e, Error::InvalidStatement(_)), "{e:?}");
    assert!(e.to_string().contains("not allowed in WHERE"), "{e}");
    assert!(matches!(fail(db, "PURGE DLQ jobs GROUP"), Error::Syntax(_)));
}

#[test]
fn requeue_skips_a_dead_letter_whose_group_is_gone() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC ev; SUBSCRIBE GROUP g TO ev; PUBLISH ev 'x'")
        .unwrap();
    kill(db, ConsumeRequest::topic("ev", "g"), "bad");
    db.execute("UNSUBSCRIBE GROUP g").unwrap();
    assert_eq!(
        rows(db, "REQUEUE DLQ"),
        [json!({"requeued": 0, "skipped": 1})]
    );
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM DLQ")[0]["n"],
        1,
        "it stays, to be purged"
    );
}

#[test]
fn expired_attempts_carry_into_the_dlq() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs MAX DELIVERIES 1 ACK WAIT 1s; PUBLISH jobs 'x'")
        .unwrap();
    db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    t.clock.advance(Duration::from_secs(2));
    assert!(
        db.consume(&ConsumeRequest::queue("jobs"))
            .unwrap()
            .is_empty()
    );
    let d = rows(db, "SELECT attempts, reason, failed_at FROM DLQ");
    assert_eq!(d[0]["attempts"], 1);
    assert_eq!(d[0]["failed_at"], "2023-11-14T22:13:22.000Z");
}

#[test]
fn requeue_after_a_replay_delivers_the_message_once() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC ev; SUBSCRIBE GROUP g TO ev; PUBLISH ev 'a', 'b'")
        .unwrap();
    let d = db
        .consume(&ConsumeRequest::topic("ev", "g").max(2))
        .unwrap();
    db.ack(&[d[0].id]).unwrap();
    db.execute(&format!("NACK {} DEAD 'x'", d[1].id)).unwrap();
    db.execute("REPLAY ev GROUP g FROM BEGINNING; REQUEUE DLQ")
        .unwrap();
    let got = db
        .consume(&ConsumeRequest::topic("ev", "g").max(10))
        .unwrap();
    let mut p: Vec<String> = got.iter().map(|d| d.payload_str().into_owned()).collect();
    p.sort();
    assert_eq!(
        p,
        ["a", "b"],
        "b once, though both the replay and the requeue bring it back"
    );
}
