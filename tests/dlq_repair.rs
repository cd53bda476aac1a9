//! Repairing the dead-letter queue: DRY RUN previews, names that must
//! exist, orphaned dead letters that do not block the rest, and what DROP
//! TOPIC leaves.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use common::{fail, open, rows, snapshot};
use mqlite::{ConsumeRequest, Database, Error, NackAction, OrphanReason};
use serde_json::{Value, json};

/// Dead-letters the next message of `from` with `reason`.
fn kill(db: &Database, from: ConsumeRequest, reason: &str) {
    let d = db.consume(&from).unwrap();
    assert_eq!(d.len(), 1);
    db.nack(&[d[0].id], &NackAction::dead(reason)).unwrap();
}

/// Two topics, each read by its group, each with dead letters:
/// `orders` (group `billing`, keys a and b) and `audit` (group `log`).
fn setup() -> common::TestDb {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC orders; CREATE TOPIC audit;
         SUBSCRIBE GROUP billing TO orders; SUBSCRIBE GROUP log TO audit;
         PUBLISH orders KEY 'a' 'o1'; PUBLISH orders KEY 'b' 'o2'; PUBLISH audit 'x1'",
    )
    .unwrap();
    kill(
        db,
        ConsumeRequest::topic("orders", "billing"),
        "card declined",
    );
    kill(db, ConsumeRequest::topic("orders", "billing"), "timeout");
    kill(db, ConsumeRequest::topic("audit", "log"), "disk");
    t
}

fn column(rows: &[Value], name: &str) -> Vec<Value> {
    rows.iter().map(|r| r[name].clone()).collect()
}

#[test]
fn dry_run_lists_what_would_move_and_changes_nothing() {
    let t = setup();
    let db = &t.db;
    let before = snapshot(db);
    let preview = rows(
        db,
        "REQUEUE DLQ orders WHERE reason != 'disk' LIMIT 5 DRY RUN",
    );
    assert_eq!(preview.len(), 2);
    assert_eq!(
        db.execute("REQUEUE DLQ DRY RUN").unwrap().columns,
        [
            "id",
            "topic",
            "group",
            "partition",
            "offset",
            "key",
            "attempts",
            "reason",
            "failed_at",
            "skipped"
        ]
    );
    assert_eq!(column(&preview, "key"), [json!("a"), json!("b")]);
    assert_eq!(
        column(&preview, "reason"),
        [json!("card declined"), json!("timeout")]
    );
    assert_eq!(column(&preview, "skipped"), [Value::Null, Value::Null]);
    assert_eq!(
        rows(db, "REQUEUE DLQ LIMIT 1 DRY RUN").len(),
        1,
        "LIMIT applies"
    );
    let purge = rows(db, "PURGE DLQ WHERE reason = 'disk' DRY RUN");
    assert_eq!(column(&purge, "topic"), [json!("audit")]);
    assert!(purge[0].get("skipped").is_none(), "{purge:?}");
    // The ids shown are the ones the statement then takes.
    let ids = rows(db, "PURGE DLQ DRY RUN");
    assert_eq!(ids.len(), 3);
    assert!(rows(db, "PURGE DLQ orders GROUP log DRY RUN").is_empty());
    assert_eq!(snapshot(db), before, "a dry run changes nothing");
    assert_eq!(
        rows(db, "PURGE DLQ WHERE reason = 'disk'"),
        [json!({"purged": 1})]
    );
}

#[test]
fn dry_run_works_inside_a_transaction_and_on_a_read_only_handle() {
    let t = setup();
    let mut tx = t.db.transaction().unwrap();
    let rs = tx.execute("REQUEUE DLQ orders DRY RUN").unwrap();
    assert_eq!(rs.rows.len(), 2);
    tx.rollback().unwrap();
    let ro = Database::builder(&t.path).read_only(true).open().unwrap();
    assert_eq!(rows(&ro, "PURGE DLQ DRY RUN").len(), 3);
    assert!(matches!(ro.execute("PURGE DLQ"), Err(Error::ReadOnly(_))));
}

#[test]
fn a_name_that_is_nowhere_is_an_error() {
    let t = setup();
    let db = &t.db;
    let before = snapshot(db);
    for sql in [
        "REQUEUE DLQ nosuch",
        "PURGE DLQ nosuch",
        "REQUEUE DLQ nosuch DRY RUN",
        "PURGE DLQ nosuch GROUP billing",
    ] {
        let e = fail(db, sql);
        assert!(
            matches!(&e, Error::TopicNotFound(n) if n == "nosuch"),
            "{sql}: {e:?}"
        );
        assert_eq!(e.to_string(), "topic 'nosuch' does not exist");
    }
    for sql in [
        "REQUEUE DLQ orders GROUP biling",
        "PURGE DLQ orders GROUP biling DRY RUN",
    ] {
        let e = fail(db, sql);
        assert!(
            matches!(&e, Error::GroupNotFound(n) if n == "biling"),
            "{sql}: {e:?}"
        );
    }
    assert_eq!(snapshot(db), before);
    // Names that exist but select nothing are no error.
    db.execute("CREATE TOPIC quiet; SUBSCRIBE GROUP idle TO quiet")
        .unwrap();
    assert_eq!(
        rows(db, "REQUEUE DLQ quiet"),
        [json!({"requeued": 0, "skipped": 0})]
    );
    assert_eq!(
        rows(db, "PURGE DLQ orders GROUP idle"),
        [json!({"purged": 0})]
    );
}

#[test]
fn a_dropped_topics_dead_letters_stay_listed_and_purgeable_by_name() {
    let t = setup();
    let db = &t.db;
    db.execute("DROP TOPIC orders").unwrap();
    assert_eq!(
        rows(
            db,
            "SELECT topic, group, key FROM DLQ WHERE topic = 'orders'"
        ),
        [
            json!({"topic": "orders", "group": "billing", "key": "a"}),
            json!({"topic": "orders", "group": "billing", "key": "b"})
        ],
        "DROP TOPIC keeps its dead letters"
    );
    let preview = rows(db, "REQUEUE DLQ orders GROUP billing DRY RUN");
    assert_eq!(
        column(&preview, "skipped"),
        [
            json!("topic 'orders' was dropped"),
            json!("topic 'orders' was dropped")
        ]
    );
    assert_eq!(
        rows(db, "REQUEUE DLQ orders"),
        [json!({"requeued": 0, "skipped": 2})]
    );
    assert_eq!(rows(db, "PURGE DLQ orders"), [json!({"purged": 2})]);
    // Gone from the DLQ too, the name is unknown again.
    assert!(matches!(
        fail(db, "PURGE DLQ orders"),
        Error::TopicNotFound(_)
    ));
    // A topic created again under that name is another topic: the old
    // dead letters would not go to it.
    db.execute("CREATE TOPIC orders").unwrap();
    assert_eq!(rows(db, "PURGE DLQ orders"), [json!({"purged": 0})]);
}

#[test]
fn one_orphan_does_not_block_the_rest() {
    let t = setup();
    let db = &t.db;
    // billing stops reading orders but still exists (it reads audit now);
    // log goes away entirely.
    db.execute("SUBSCRIBE GROUP billing TO audit; UNSUBSCRIBE GROUP billing FROM orders")
        .unwrap();
    db.execute("UNSUBSCRIBE GROUP log").unwrap();
    db.execute("PUBLISH audit 'x2'; SUBSCRIBE GROUP log TO audit")
        .unwrap();
    // A fresh dead letter of the new billing-on-audit subscription.
    kill(db, ConsumeRequest::topic("audit", "billing"), "fresh");

    let preview = rows(db, "REQUEUE DLQ DRY RUN");
    let skipped: Vec<(Value, Value)> = preview
        .iter()
        .map(|r| (r["reason"].clone(), r["skipped"].clone()))
        .collect();
    assert_eq!(
        skipped,
        [
            (
                json!("card declined"),
                json!("group 'billing' no longer reads 'orders'")
            ),
            (
                json!("timeout"),
                json!("group 'billing' no longer reads 'orders'")
            ),
            (json!("disk"), json!("group 'log' no longer exists")),
            (json!("fresh"), Value::Null),
        ],
        "a group of the same name made since is another group"
    );
    let ids: Vec<i64> = column(&preview, "id")
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();

    assert_eq!(
        rows(db, "REQUEUE DLQ"),
        [json!({"requeued": 1, "skipped": 3})]
    );
    let again = db
        .consume(&ConsumeRequest::topic("audit", "billing"))
        .unwrap();
    assert_eq!(again[0].payload_str(), "x2");
    assert_eq!(again[0].attempt, 1);
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM DLQ"), [json!({"n": 3})]);

    // The library reports the same, typed.
    let done = db.requeue_dlq(&ids).unwrap();
    assert_eq!(done.requeued, 0);
    let reasons: Vec<(i64, OrphanReason)> = done.skipped.iter().map(|o| (o.id, o.reason)).collect();
    assert_eq!(
        reasons,
        [
            (ids[0], OrphanReason::NotSubscribed),
            (ids[1], OrphanReason::NotSubscribed),
            (ids[2], OrphanReason::GroupGone),
        ],
        "the requeued id is no longer there and is passed over"
    );
    assert_eq!(db.dlq_orphans(&ids).unwrap(), done.skipped);
    // Subscribed again, billing takes its dead letters back.
    db.execute("SUBSCRIBE GROUP billing TO orders").unwrap();
    assert_eq!(
        rows(db, "REQUEUE DLQ orders GROUP billing"),
        [json!({"requeued": 2, "skipped": 0})]
    );
}
