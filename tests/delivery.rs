//! Leased deliveries: ack wait, redelivery, fencing, ordered groups.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::time::Duration;

use common::{err, fail, open, rows, snapshot};
use mqlite::{ConsumeRequest, Error, Message, NackAction, Subscription};

#[test]
fn an_expired_lease_is_redelivered_with_attempt_2_and_the_old_id_is_refused() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 30s; PUBLISH jobs 'work'")
        .unwrap();
    let first = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    assert_eq!(first[0].attempt, 1);
    // Still leased: nothing to hand out.
    t.clock.advance(Duration::from_secs(29));
    assert!(
        db.consume(&ConsumeRequest::queue("jobs"))
            .unwrap()
            .is_empty()
    );
    t.clock.advance(Duration::from_secs(2));
    let second = db
        .consume(&ConsumeRequest::queue("jobs").member("w2"))
        .unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].attempt, 2);
    assert_eq!(second[0].offset, first[0].offset);
    assert_ne!(second[0].id, first[0].id);

    let before = snapshot(db);
    match db.ack(&[first[0].id]) {
        Err(Error::StaleDelivery { id, redelivered_as }) => {
            assert_eq!(id, first[0].id);
            assert_eq!(redelivered_as, second[0].id);
        }
        other => panic!("expected StaleDelivery, got {other:?}"),
    }
    let text = err(db, &format!("ACK {}", first[0].id));
    assert_eq!(
        text,
        format!(
            "delivery {} expired: the message was redelivered as {}",
            first[0].id, second[0].id
        )
    );
    let e = fail(db, &format!("NACK {}", first[0].id));
    assert!(
        matches!(e, Error::StaleDelivery { id, redelivered_as } if id == first[0].id && redelivered_as == second[0].id),
        "{e:?}"
    );
    assert_eq!(snapshot(db), before, "a refused ACK changes nothing");

    db.ack(&[second[0].id]).unwrap();
    assert!(matches!(
        db.ack(&[second[0].id]),
        Err(Error::UnknownDelivery(_))
    ));
    let e = fail(db, "ACK 999999");
    assert!(matches!(e, Error::UnknownDelivery(999_999)), "{e:?}");
    assert!(e.to_string().contains("delivery 999999 is unknown"), "{e}");
}

#[test]
fn an_expired_lease_that_nobody_took_can_still_be_acked() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 1s; PUBLISH jobs 'work'")
        .unwrap();
    let d = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    t.clock.advance(Duration::from_secs(5));
    db.ack(&[d[0].id]).unwrap();
    assert!(
        db.consume(&ConsumeRequest::queue("jobs"))
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_batch_ack_with_one_bad_id_changes_nothing() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a', 'b'")
        .unwrap();
    let d = db.consume(&ConsumeRequest::queue("jobs").max(2)).unwrap();
    let before = snapshot(db);
    assert!(db.ack(&[d[0].id, 424242]).is_err());
    assert_eq!(snapshot(db), before);
    let e = fail(db, &format!("ACK {}, {}", d[0].id, d[0].id));
    assert!(
        matches!(e, Error::DuplicateDelivery(id) if id == d[0].id),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        format!("delivery {} is listed twice", d[0].id)
    );
    db.ack(&[d[0].id, d[1].id]).unwrap();
}

#[test]
fn ack_wait_per_consume_and_per_group() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC ev ACK WAIT 1m; SUBSCRIBE GROUP g TO ev ACK WAIT 10s; PUBLISH ev 'x'")
        .unwrap();
    // PUBLISH happened after SUBSCRIBE (FROM LATEST), so g sees it.
    let d = db.consume(&ConsumeRequest::topic("ev", "g")).unwrap();
    assert_eq!(d.len(), 1);
    t.clock.advance(Duration::from_secs(11));
    let d2 = db
        .consume(&ConsumeRequest::topic("ev", "g").ack_wait(Duration::from_secs(120)))
        .unwrap();
    assert_eq!(d2.len(), 1, "group ACK WAIT 10s overrides the topic's 1m");
    t.clock.advance(Duration::from_secs(100));
    assert!(
        db.consume(&ConsumeRequest::topic("ev", "g"))
            .unwrap()
            .is_empty(),
        "CONSUME ACK WAIT 120s"
    );
    t.clock.advance(Duration::from_secs(21));
    assert_eq!(
        db.consume(&ConsumeRequest::topic("ev", "g")).unwrap()[0].attempt,
        3
    );
}

#[test]
fn ordered_groups_never_have_two_messages_of_one_key_in_flight() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC acct; SUBSCRIBE GROUP ledger TO acct ORDERED")
        .unwrap();
    for i in 0..3 {
        db.publish("acct", Message::new(format!("a{i}")).key("A"))
            .unwrap();
        db.publish("acct", Message::new(format!("b{i}")).key("B"))
            .unwrap();
    }
    let first = db
        .consume(&ConsumeRequest::topic("acct", "ledger").max(10).member("m1"))
        .unwrap();
    let p: Vec<String> = first.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(p, ["a0", "b0"], "one per key");
    let other = db
        .consume(&ConsumeRequest::topic("acct", "ledger").max(10).member("m2"))
        .unwrap();
    assert!(other.is_empty(), "A and B are both in flight");
    db.ack(&[first[0].id]).unwrap();
    let next = db
        .consume(&ConsumeRequest::topic("acct", "ledger").max(10).member("m2"))
        .unwrap();
    let p: Vec<String> = next.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(p, ["a1"]);
    // A NACK with delay keeps the key blocked: order within the key holds.
    db.nack(&[next[0].id], &NackAction::Delay(Duration::from_secs(60)))
        .unwrap();
    db.ack(&[first[1].id]).unwrap();
    let more = db
        .consume(&ConsumeRequest::topic("acct", "ledger").max(10))
        .unwrap();
    let p: Vec<String> = more.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(p, ["b1"]);
    db.ack(&[more[0].id]).unwrap();
    t.clock.advance(Duration::from_secs(61));
    let more = db
        .consume(&ConsumeRequest::topic("acct", "ledger").max(10))
        .unwrap();
    let p: Vec<String> = more.iter().map(|d| d.payload_str().into_owned()).collect();
    assert!(
        p.contains(&"a1".to_string()) && !p.contains(&"a2".to_string()),
        "a1 again before a2: {p:?}"
    );
    assert!(
        p.contains(&"b2".to_string()),
        "B moves on once b1 is acked: {p:?}"
    );
}

#[test]
fn fan_in_consumes_every_topic_of_a_group() {
    let t = open();
    let db = &t.db;
    db.subscribe("ops", &Subscription::pattern("alerts.#"))
        .unwrap();
    db.execute("CREATE TOPIC alerts.db; CREATE TOPIC alerts.web")
        .unwrap();
    db.execute("PUBLISH alerts.db 'disk'; PUBLISH alerts.web '500s'")
        .unwrap();
    let got = rows(db, "CONSUME 10 FROM GROUP ops");
    let mut topics: Vec<String> = got
        .iter()
        .map(|r| r["topic"].as_str().unwrap().to_string())
        .collect();
    topics.sort();
    assert_eq!(topics, ["alerts.db", "alerts.web"]);
}

#[test]
fn a_batch_lease_settles_message_by_message() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE QUEUE jobs ACK WAIT 30s").unwrap();
    db.publish_batch(
        "jobs",
        (0..10).map(|i| Message::new(format!("j{i}"))).collect(),
    )
    .unwrap();
    let batch = db.consume(&ConsumeRequest::queue("jobs").max(10)).unwrap();
    assert_eq!(batch.len(), 10);
    let ids: Vec<u64> = batch.iter().map(|d| d.id).collect();
    assert!(
        ids.windows(2).all(|w| w[1] == w[0] + 1),
        "one batch, consecutive ids"
    );
    assert_eq!(
        rows(db, "SELECT pending, lag FROM GROUPS")[0]["pending"],
        10
    );

    db.ack(&ids[0..3]).unwrap();
    assert_eq!(rows(db, "SELECT pending FROM GROUPS")[0]["pending"], 7);
    // A second ACK of a settled id fails, and the whole ACK changes nothing.
    let before = snapshot(db);
    assert!(matches!(
        db.ack(&[ids[3], ids[1]]),
        Err(Error::UnknownDelivery(_))
    ));
    assert_eq!(snapshot(db), before);
    // NACK of one id: only that message comes back now.
    db.nack(&[ids[4]], &NackAction::Now).unwrap();
    let again = db.consume(&ConsumeRequest::queue("jobs").max(10)).unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].payload_str(), "j4");
    assert_eq!(again[0].attempt, 2);
    let e = fail(db, &format!("ACK {}", ids[4]));
    assert!(
        matches!(e, Error::StaleDelivery { redelivered_as, .. } if redelivered_as == again[0].id),
        "{e:?}"
    );
    db.ack(&[again[0].id]).unwrap();

    // The lease runs out: the unsettled rest (j3, j5..j9) come back as attempt 2.
    t.clock.advance(Duration::from_secs(31));
    let rest = db.consume(&ConsumeRequest::queue("jobs").max(10)).unwrap();
    let p: Vec<String> = rest.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(p, ["j3", "j5", "j6", "j7", "j8", "j9"]);
    assert!(rest.iter().all(|d| d.attempt == 2));
    let e = fail(db, &format!("ACK {}", ids[9]));
    assert!(
        matches!(e, Error::StaleDelivery { id, redelivered_as } if id == ids[9] && redelivered_as == rest[5].id),
        "{e:?}"
    );
    db.ack(&rest.iter().map(|d| d.id).collect::<Vec<_>>())
        .unwrap();
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 0);
    assert_eq!(rows(db, "CHECK")[0]["result"], "ok");
}

#[test]
fn nack_constructors_round_trip_through_a_group() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC orders").unwrap();
    db.subscribe("billing", &Subscription::topic("orders"))
        .unwrap();
    db.publish_batch(
        "orders",
        ["now", "later", "boom", "quiet"]
            .map(Message::new)
            .into_iter()
            .collect(),
    )
    .unwrap();
    let req = ConsumeRequest::from_topic("orders")
        .for_group("billing")
        .max(10);
    let got = db.consume(&req).unwrap();
    let payloads: Vec<String> = got.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(payloads, ["now", "later", "boom", "quiet"]);
    let appended = mqlite::jiff::Timestamp::from_millisecond(common::T0).unwrap();
    assert!(got.iter().all(|d| d.time() == appended));

    db.nack(&[got[0].id], &NackAction::now()).unwrap();
    db.nack(&[got[1].id], &NackAction::delay(Duration::from_secs(60)))
        .unwrap();
    db.nack(&[got[2].id], &NackAction::dead("card declined"))
        .unwrap();
    db.nack(&[got[3].id], &NackAction::dead_without_reason())
        .unwrap();

    let again = db.consume(&req).unwrap();
    assert_eq!(again.len(), 1, "only 'now' is back at once");
    assert_eq!(
        (again[0].payload_str().as_ref(), again[0].attempt),
        ("now", 2)
    );
    db.ack(&[again[0].id]).unwrap();
    t.clock.advance(Duration::from_secs(61));
    let later = db.consume(&req).unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(
        (later[0].payload_str().as_ref(), later[0].attempt),
        ("later", 2)
    );
    assert_eq!(
        later[0].time(),
        appended,
        "the append time, not the redelivery's"
    );
    db.ack(&[later[0].id]).unwrap();

    let dead = db
        .execute("SELECT payload, reason, group FROM DLQ ORDER BY id")
        .unwrap();
    assert_eq!(dead.len(), 2);
    let reasons: Vec<(&str, &str)> = dead
        .iter()
        .map(|r| (r.get_str("payload").unwrap(), r.get_str("reason").unwrap()))
        .collect();
    assert_eq!(
        reasons,
        [
            ("boom", "card declined"),
            ("quiet", "dead-lettered by NACK")
        ]
    );
    assert!(dead.iter().all(|r| r.get_str("group") == Some("billing")));
}
