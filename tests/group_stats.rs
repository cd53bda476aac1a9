//! SHOW GROUPS and the GROUPS source: every group, and counts named so
//! nobody has to guess (pending, lag, unacked).
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use common::{open, rows};
use mqlite::ConsumeRequest;
use serde_json::json;

#[test]
fn a_group_whose_pattern_matches_nothing_yet_is_listed() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC other; SUBSCRIBE GROUP audit TO 'order.#' FROM BEGINNING")
        .unwrap();
    let want = json!({
        "group": "audit", "topic": null, "partitions": 0, "pending": 0, "lag": 0,
        "dead": 0, "ordered": false, "unacked": 0
    });
    assert_eq!(rows(db, "SHOW GROUPS"), std::slice::from_ref(&want));
    assert_eq!(rows(db, "SELECT * FROM GROUPS"), [want]);
    assert_eq!(
        rows(db, "SELECT group FROM GROUPS WHERE topic IS NULL"),
        [json!({"group": "audit"})]
    );
    assert!(rows(db, "SHOW GROUPS ON other").is_empty());
    let stats = db.group_stats(None).unwrap();
    assert_eq!(stats.len(), 1);
    assert_eq!(stats[0].topic, None);
    // CONSUME FROM GROUP works meanwhile, and finds nothing.
    assert!(
        db.consume(&ConsumeRequest::group("audit"))
            .unwrap()
            .is_empty()
    );

    // Once a topic matches, its row replaces the one without topic.
    db.execute("CREATE TOPIC order.placed; PUBLISH order.placed 'o1'")
        .unwrap();
    assert_eq!(
        rows(db, "SELECT group, topic, lag FROM GROUPS"),
        [json!({"group": "audit", "topic": "order.placed", "lag": 1})]
    );
    // Rows are by group, then topic.
    db.execute("SUBSCRIBE GROUP billing TO 'invoice.*'")
        .unwrap();
    let names: Vec<_> = rows(db, "SHOW GROUPS")
        .into_iter()
        .map(|r| (r["group"].clone(), r["topic"].clone()))
        .collect();
    assert_eq!(
        names,
        [
            (json!("audit"), json!("order.placed")),
            (json!("billing"), json!(null))
        ]
    );
}

#[test]
fn unacked_counts_delivered_and_undelivered_messages_alike() {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC ev PARTITIONS 2; SUBSCRIBE GROUP g TO ev;
         PUBLISH ev 'a', 'b', 'c', 'd', 'e'",
    )
    .unwrap();
    let counts = |db: &mqlite::Database| {
        rows(
            db,
            "SELECT pending, lag, unacked FROM GROUPS WHERE group = 'g'",
        )[0]
        .clone()
    };
    assert_eq!(counts(db), json!({"pending": 0, "lag": 5, "unacked": 5}));
    let d = db
        .consume(&ConsumeRequest::topic("ev", "g").max(3))
        .unwrap();
    assert_eq!(counts(db), json!({"pending": 3, "lag": 2, "unacked": 5}));
    db.ack(&[d[0].id]).unwrap();
    assert_eq!(counts(db), json!({"pending": 2, "lag": 2, "unacked": 4}));
    // A NACKed message waits for redelivery: still pending, still unacked.
    db.execute(&format!("NACK {} DELAY 1m", d[1].id)).unwrap();
    assert_eq!(counts(db), json!({"pending": 2, "lag": 2, "unacked": 4}));
    let stats = db.group_stats(Some("ev")).unwrap();
    assert_eq!(stats[0].unacked, stats[0].pending + stats[0].lag);
    assert_eq!(
        rows(db, "SHOW GROUPS ON ev")[0]["unacked"],
        4,
        "SHOW GROUPS has the column too"
    );
}
