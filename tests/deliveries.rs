//! The DELIVERIES source and the attempt history (issue #12, points 1 and 2):
//! every state reached with a manual clock, range leases read without
//! writing, history carried into the DLQ and forgotten with its message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{T0, open, rows};
use mqlite::{
    AttemptOutcome, ConsumeRequest, Database, DeliveryState, Message, NackAction, ReplayFrom,
};
use serde_json::json;

/// Rows of one table, counted on a connection of its own (not mqlite's).
fn count(path: &std::path::Path, table: &str) -> i64 {
    let c = mqlite::rusqlite::Connection::open(path).unwrap();
    c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn consume(db: &Database, req: ConsumeRequest) -> Vec<mqlite::Delivery> {
    db.consume(&req).unwrap()
}

fn time(ms: i64) -> serde_json::Value {
    json!(mqlite::Value::format_timestamp(ms))
}

#[test]
fn in_flight_then_waiting_after_the_lease_ran_out_then_redelivered_with_history() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 30s").unwrap();
    db.publish("jobs", Message::new("a").key("k")).unwrap();
    let got = consume(db, ConsumeRequest::queue("jobs").member("w1"));
    let id = got[0].id;
    let sql =
        "SELECT group, member, topic, partition, offset, key, delivery, attempt, state, leased_at,
                      visible_at, last_error, history FROM DELIVERIES";
    assert_eq!(
        rows(db, sql),
        [
            json!({"group": "jobs", "member": "w1", "topic": "jobs", "partition": 0, "offset": 0,
                "key": "k", "delivery": id, "attempt": 1, "state": "in_flight",
                "leased_at": time(T0), "visible_at": time(T0 + 30_000), "last_error": null,
                "history": null})
        ]
    );

    // The lease runs out: waiting, and last_error says why.
    t.clock.advance(Duration::from_secs(31));
    let r = &rows(db, sql)[0];
    assert_eq!(r["state"], "waiting");
    assert_eq!(r["last_error"], "lease expired 30s");
    assert_eq!(
        r["history"],
        json!(null),
        "not recorded before it is taken up"
    );

    // Redelivered to another member: attempt 2 in flight, attempt 1 in history.
    let again = consume(db, ConsumeRequest::queue("jobs").member("w2"));
    assert_eq!(again[0].attempt, 2);
    let r = &rows(db, sql)[0];
    assert_eq!(r["state"], "in_flight");
    assert_eq!(r["member"], "w2");
    assert_eq!(r["delivery"], json!(again[0].id));
    assert_eq!(r["leased_at"], time(T0 + 31_000));
    assert_eq!(r["last_error"], "lease expired 30s");
    assert_eq!(r["history"], "1: w1 lease expired 30s");

    // The typed rows say the same.
    let typed = db.deliveries(Some("jobs")).unwrap();
    assert_eq!(typed.len(), 1);
    let d = &typed[0];
    assert_eq!(d.state, DeliveryState::InFlight);
    assert_eq!(
        (d.member.as_deref(), d.delivery, d.attempt),
        (Some("w2"), Some(again[0].id), 2)
    );
    assert_eq!(
        (d.leased_at, d.visible_at),
        (Some(T0 + 31_000), T0 + 61_000)
    );
    assert_eq!(d.history.len(), 1);
    let h = &d.history[0];
    assert_eq!(
        (h.attempt, h.member.as_deref(), h.leased_at, h.ended_at),
        (1, Some("w1"), Some(T0), T0 + 30_000)
    );
    assert_eq!(h.outcome, AttemptOutcome::Expired);
}

#[test]
fn delayed_blocked_and_nacked_messages_and_counts_by_state() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC orders; SUBSCRIBE GROUP billing TO orders FROM BEGINNING ORDERED")
        .unwrap();
    db.execute("PUBLISH orders KEY 'k1' 'k1-first', 'k1-second'")
        .unwrap();
    db.execute("PUBLISH orders KEY 'k2' 'k2-first'").unwrap();
    db.execute("PUBLISH orders DELAY 1h 'later'").unwrap();
    let req = ConsumeRequest::topic("orders", "billing")
        .max(10)
        .member("b1");
    let got = consume(db, req.clone());
    let payloads: Vec<_> = got.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(payloads, ["k1-first", "k2-first"]);

    let states = |db: &Database| rows(db, "SELECT offset, state, delivery FROM DELIVERIES");
    assert_eq!(
        states(db),
        [
            json!({"offset": 0, "state": "in_flight", "delivery": got[0].id}),
            json!({"offset": 1, "state": "blocked", "delivery": null}),
            json!({"offset": 2, "state": "in_flight", "delivery": got[1].id}),
            json!({"offset": 3, "state": "delayed", "delivery": null}),
        ]
    );
    let delayed = &rows(
        db,
        "SELECT visible_at, attempt FROM DELIVERIES WHERE state = 'delayed'",
    )[0];
    assert_eq!(delayed["visible_at"], time(T0 + 3_600_000));
    assert_eq!(delayed["attempt"], 0);

    // NACK now: waiting; NACK DELAY: delayed until then, with the reason.
    db.execute(&format!("NACK {} 'db down'", got[0].id))
        .unwrap();
    db.execute(&format!("NACK {} DELAY 5m", got[1].id)).unwrap();
    let r = rows(
        db,
        "SELECT offset, state, visible_at, last_error, history FROM DELIVERIES WHERE offset IN (0, 2)",
    );
    assert_eq!(
        r,
        [
            json!({"offset": 0, "state": "waiting", "visible_at": time(T0),
                   "last_error": "nack 'db down'", "history": "1: b1 nack 'db down'"}),
            json!({"offset": 2, "state": "delayed", "visible_at": time(T0 + 300_000),
                   "last_error": "nack delay 5m", "history": "1: b1 nack delay 5m"}),
        ]
    );
    assert_eq!(
        rows(
            db,
            "SELECT state, COUNT(*) AS n FROM DELIVERIES GROUP BY state ORDER BY state"
        ),
        [
            json!({"state": "blocked", "n": 1}),
            json!({"state": "delayed", "n": 2}),
            json!({"state": "waiting", "n": 1}),
        ]
    );
    // Filters on any column, including member and the history.
    assert_eq!(
        rows(
            db,
            "SELECT COUNT(*) AS n FROM DELIVERIES WHERE member = 'b1' AND history LIKE '%db down%'"
        ),
        [json!({"n": 1})]
    );
    let typed: Vec<DeliveryState> = db
        .deliveries(None)
        .unwrap()
        .iter()
        .map(|d| d.state)
        .collect();
    use DeliveryState::*;
    assert_eq!(typed, [Waiting, Blocked, Delayed, Delayed]);
    assert!(matches!(
        db.deliveries(Some("nosuch")),
        Err(mqlite::Error::GroupNotFound(g)) if g == "nosuch"
    ));
}

#[test]
fn a_range_lease_of_100_is_100_rows_read_without_writing() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs").unwrap();
    db.publish_batch(
        "jobs",
        (0..100).map(|i| Message::new(format!("m{i}"))).collect(),
    )
    .unwrap();
    let got = consume(db, ConsumeRequest::queue("jobs").max(100).member("w"));
    assert_eq!(got.len(), 100);
    assert_eq!(count(&t.path, "mq_leases"), 1, "one range lease");
    assert_eq!(count(&t.path, "mq_pending"), 0);

    let files = |path: &std::path::Path| {
        let mut wal = path.as_os_str().to_owned();
        wal.push("-wal");
        (std::fs::read(path).unwrap(), std::fs::read(&wal).unwrap())
    };
    let before = files(&t.path);
    let n = |db: &Database| {
        rows(
            db,
            "SELECT COUNT(*) AS n FROM DELIVERIES WHERE state = 'in_flight'",
        )
    };
    assert_eq!(n(db), [json!({"n": 100})]);
    let all = rows(db, "SELECT offset, delivery FROM DELIVERIES");
    let want: Vec<_> = got
        .iter()
        .map(|d| json!({"offset": d.offset, "delivery": d.id}))
        .collect();
    assert_eq!(all, want);
    assert_eq!(files(&t.path), before, "a SELECT writes nothing");
    assert_eq!(count(&t.path, "mq_leases"), 1, "the lease is not exploded");

    // One ACK sets a bit: 99 rows, the acked one gone.
    db.ack(&[got[41].id]).unwrap();
    assert_eq!(n(db), [json!({"n": 99})]);
    assert!(
        rows(db, "SELECT offset FROM DELIVERIES WHERE offset = 41").is_empty(),
        "the acked message is not listed"
    );
    assert_eq!(count(&t.path, "mq_leases"), 1);

    // A read-only handle reads the same rows without writing either.
    let before = files(&t.path);
    let ro = Database::builder(&t.path)
        .read_only(true)
        .clock(t.clock.clone())
        .open()
        .unwrap();
    assert_eq!(n(&ro), [json!({"n": 99})]);
    assert_eq!(ro.deliveries(Some("jobs")).unwrap().len(), 99);
    drop(ro);
    assert_eq!(files(&t.path), before);
}

#[test]
fn lease_expired_nack_and_dead_land_in_the_dlq_row() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 30s MAX DELIVERIES 5")
        .unwrap();
    db.publish("jobs", Message::new("x")).unwrap();
    consume(db, ConsumeRequest::queue("jobs").member("worker-1"));
    t.clock.advance(Duration::from_secs(31));
    let second = consume(db, ConsumeRequest::queue("jobs").member("worker-2"));
    db.execute(&format!("NACK {} 'x'", second[0].id)).unwrap();
    t.clock.advance(Duration::from_secs(1));
    let third = consume(db, ConsumeRequest::queue("jobs").member("worker-3"));
    assert_eq!(third[0].attempt, 3);
    t.clock.advance(Duration::from_secs(2));
    db.execute(&format!("NACK {} DEAD 'bad input'", third[0].id))
        .unwrap();

    let dead = rows(
        db,
        "SELECT id, attempts, reason, history, history_json FROM DLQ",
    );
    assert_eq!(dead.len(), 1);
    assert_eq!(
        dead[0]["history"],
        "1: worker-1 lease expired 30s; 2: worker-2 nack 'x'; 3: worker-3 dead 'bad input'"
    );
    assert_eq!(dead[0]["reason"], "bad input");
    assert_eq!(dead[0]["attempts"], 3);
    assert_eq!(
        dead[0]["history_json"],
        json!([
            {"attempt": 1, "member": "worker-1", "leased_at": time(T0), "ended_at": time(T0 + 30_000),
             "outcome": "expired", "reason": null, "delay": null},
            {"attempt": 2, "member": "worker-2", "leased_at": time(T0 + 31_000),
             "ended_at": time(T0 + 31_000), "outcome": "nack", "reason": "x", "delay": null},
            {"attempt": 3, "member": "worker-3", "leased_at": time(T0 + 32_000),
             "ended_at": time(T0 + 34_000), "outcome": "dead", "reason": "bad input", "delay": null},
        ])
    );
    // Nothing of the message is left behind.
    assert!(rows(db, "SELECT * FROM DELIVERIES").is_empty());
    assert_eq!(count(&t.path, "mq_attempts"), 0);
}

#[test]
fn max_deliveries_keeps_every_attempt_and_says_why_in_the_reason() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 10s MAX DELIVERIES 2")
        .unwrap();
    db.publish("jobs", Message::new("x")).unwrap();
    let first = consume(db, ConsumeRequest::queue("jobs"));
    db.nack_with_reason(
        &[first[0].id],
        &NackAction::delay(Duration::from_secs(1)),
        "busy",
    )
    .unwrap();
    t.clock.advance(Duration::from_secs(1));
    consume(db, ConsumeRequest::queue("jobs").member("w2"));
    t.clock.advance(Duration::from_secs(10));
    assert!(consume(db, ConsumeRequest::queue("jobs")).is_empty());
    let dead = rows(db, "SELECT reason, history FROM DLQ");
    assert_eq!(
        dead,
        [json!({"reason": "exceeded MAX DELIVERIES (2)",
                "history": "1: nack delay 1s 'busy'; 2: w2 lease expired 10s"})]
    );
    assert_eq!(count(&t.path, "mq_attempts"), 0);
}

#[test]
fn a_first_attempt_that_is_acked_writes_no_history() {
    let t = open();
    let db = &t.db;
    // A range lease (queue) and per-message leases (ORDERED group).
    db.execute("CREATE QUEUE jobs; CREATE TOPIC orders; SUBSCRIBE GROUP g TO orders ORDERED")
        .unwrap();
    db.execute("PUBLISH jobs 'a', 'b'; PUBLISH orders KEY 'k' 'c', 'd'")
        .unwrap();
    for req in [
        ConsumeRequest::queue("jobs").max(10),
        ConsumeRequest::topic("orders", "g").max(10),
        ConsumeRequest::topic("orders", "g").max(10),
    ] {
        let got = consume(db, req);
        let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
        db.ack(&ids).unwrap();
    }
    assert!(rows(db, "SELECT * FROM DELIVERIES").is_empty());
    assert_eq!(count(&t.path, "mq_attempts"), 0);
}

/// A message with a remembered attempt (NACKed once, waiting).
fn nacked(db: &Database, topic: &str, group: Option<&str>) {
    let req = match group {
        Some(g) => ConsumeRequest::topic(topic, g),
        None => ConsumeRequest::queue(topic),
    };
    let got = db.consume(&req.max(10)).unwrap();
    let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
    db.nack_with_reason(&ids, &NackAction::now(), "try again")
        .unwrap();
}

#[test]
fn history_is_forgotten_with_its_message() {
    let t = open();
    let db = &t.db;
    let attempts = || count(&t.path, "mq_attempts");
    db.execute("CREATE TOPIC orders; SUBSCRIBE GROUP g TO orders FROM BEGINNING")
        .unwrap();
    db.execute("PUBLISH orders 'a', 'b'").unwrap();

    // ACK of the redelivery.
    nacked(db, "orders", Some("g"));
    assert_eq!(attempts(), 2);
    let again = consume(db, ConsumeRequest::topic("orders", "g").max(10));
    db.ack(&again.iter().map(|d| d.id).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(attempts(), 0, "ACK");

    // REPLAY back over them.
    db.replay("orders", "g", ReplayFrom::Beginning).unwrap();
    nacked(db, "orders", Some("g"));
    assert_eq!(attempts(), 2);
    db.replay("orders", "g", ReplayFrom::Beginning).unwrap();
    assert_eq!(attempts(), 0, "REPLAY");

    // An offset commit past them.
    nacked(db, "orders", Some("g"));
    assert_eq!(attempts(), 2);
    let mut tx = db.transaction().unwrap();
    tx.commit_offset("g", "orders", 0, 2).unwrap();
    assert!(tx.deliveries(Some("g")).unwrap().is_empty());
    tx.commit().unwrap();
    assert_eq!(attempts(), 0, "offset commit");

    // PURGE of the topic.
    db.replay("orders", "g", ReplayFrom::Beginning).unwrap();
    nacked(db, "orders", Some("g"));
    assert_eq!(attempts(), 2);
    db.purge("orders").unwrap();
    assert_eq!(attempts(), 0, "PURGE");

    // UNSUBSCRIBE of the group.
    db.execute("PUBLISH orders 'c'").unwrap();
    db.replay("orders", "g", ReplayFrom::Beginning).unwrap();
    nacked(db, "orders", Some("g"));
    assert_eq!(attempts(), 1);
    db.unsubscribe("g", None).unwrap();
    assert_eq!(attempts(), 0, "UNSUBSCRIBE");

    // DROP of a queue.
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'x'").unwrap();
    nacked(db, "jobs", None);
    assert_eq!(attempts(), 1);
    db.execute("DROP QUEUE jobs").unwrap();
    assert_eq!(attempts(), 0, "DROP");
}

#[test]
fn a_requeued_dead_letter_starts_a_new_history() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'x'").unwrap();
    nacked(db, "jobs", None);
    let got = consume(db, ConsumeRequest::queue("jobs").member("w"));
    db.nack(&[got[0].id], &NackAction::dead_without_reason())
        .unwrap();
    assert_eq!(
        rows(db, "SELECT reason, history FROM DLQ"),
        [json!({"reason": "dead-lettered by NACK", "history": "1: nack 'try again'; 2: w dead"})]
    );
    db.execute("REQUEUE DLQ jobs").unwrap();
    assert_eq!(
        rows(db, "SELECT state, attempt, history FROM DELIVERIES"),
        [json!({"state": "waiting", "attempt": 0, "history": null})]
    );
    let got = consume(db, ConsumeRequest::queue("jobs"));
    assert_eq!(got[0].attempt, 1);
}

#[test]
fn deliveries_see_a_transactions_own_changes() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'x'").unwrap();
    let mut tx = db.transaction().unwrap();
    let got = tx
        .consume(&ConsumeRequest::queue("jobs").member("m"))
        .unwrap();
    let inside = tx.deliveries(None).unwrap();
    assert_eq!(inside.len(), 1);
    assert_eq!(inside[0].delivery, Some(got[0].id));
    assert_eq!(inside[0].state, DeliveryState::InFlight);
    tx.rollback().unwrap();
    assert!(db.deliveries(None).unwrap().is_empty());
}

#[test]
fn nack_reasons_round_trip_through_the_language() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 1m; PUBLISH jobs 'x'")
        .unwrap();
    let got = consume(db, ConsumeRequest::queue("jobs").member("w"));
    db.execute(&format!("NACK {} DELAY 2s 'it''s down'", got[0].id))
        .unwrap();
    assert_eq!(
        rows(db, "SELECT last_error, history FROM DELIVERIES"),
        [json!({"last_error": "nack delay 2s 'it''s down'",
                "history": "1: w nack delay 2s 'it''s down'"})]
    );
}
