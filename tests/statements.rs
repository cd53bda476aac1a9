//! Every statement of the language: its happy path and its bad input.
//! Bad input gets a clear error naming what was wrong and changes nothing.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use common::{fail, open, rows, snapshot};
use mqlite::Error;
use serde_json::json;

/// Asserts that `sql` fails with an error matching `pattern` whose message
/// contains `want`, and leaves the database as it was.
macro_rules! refused {
    ($db:expr, $sql:expr, $pattern:pat, $want:expr $(,)?) => {
        refused_as(
            $db,
            $sql,
            |e| matches!(e, $pattern),
            stringify!($pattern),
            $want,
        )
    };
}

fn refused_as(
    db: &mqlite::Database,
    sql: &str,
    is: impl Fn(&Error) -> bool,
    pattern: &str,
    want: &str,
) {
    let before = snapshot(db);
    let e = fail(db, sql);
    assert!(is(&e), "{sql}: {e:?} is not {pattern}");
    let e = e.to_string();
    assert!(
        e.contains(want),
        "{sql}: error {e:?} does not mention {want:?}"
    );
    assert_eq!(
        snapshot(db),
        before,
        "{sql}: a refused statement changed the database"
    );
}

fn setup() -> common::TestDb {
    let t = open();
    t.db.execute(
        "CREATE TOPIC orders PARTITIONS 2 RETENTION 7d MAX DELIVERIES 3 ACK WAIT 1m;
         CREATE QUEUE jobs;
         SUBSCRIBE GROUP g TO orders FROM BEGINNING;
         PUBLISH orders KEY 'a' {\"n\": 1, \"data\": {\"total\": 10}};
         PUBLISH orders KEY 'a' {\"n\": 2, \"data\": {\"total\": 20}};
         PUBLISH orders KEY 'b' {\"n\": 3, \"data\": {\"total\": 5.5}};
         PUBLISH jobs 'j1';",
    )
    .expect("setup");
    t
}

#[test]
fn create() {
    let t = setup();
    let db = &t.db;
    db.execute("CREATE TOPIC t1 PARTITIONS 4 RETENTION 1000 MESSAGES MAX LENGTH 10 OVERFLOW DROP OLDEST DEDUP WINDOW 1h").unwrap();
    let d = rows(db, "SELECT * FROM TOPICS WHERE name = 't1'");
    assert_eq!(d[0]["partitions"], 4);
    assert_eq!(d[0]["retention"], "1000 MESSAGES");
    assert_eq!(d[0]["max_length"], 10);
    assert_eq!(d[0]["overflow"], "DROP OLDEST");
    assert_eq!(d[0]["dedup_window"], "1h");
    db.execute("CREATE TOPIC IF NOT EXISTS t1 PARTITIONS 9")
        .unwrap();
    assert_eq!(
        rows(db, "SELECT partitions FROM TOPICS WHERE name = 't1'")[0]["partitions"],
        4
    );
    db.execute("CREATE TOPIC sized RETENTION 10MB; CREATE QUEUE IF NOT EXISTS jobs")
        .unwrap();
    refused!(
        db,
        "CREATE TOPIC orders",
        Error::TopicExists(_),
        "topic 'orders' already exists",
    );
    refused!(
        db,
        "CREATE QUEUE orders",
        Error::TopicExists(_),
        "already exists",
    );
    refused!(
        db,
        "CREATE TOPIC t2 PARTITIONS 0",
        Error::Syntax(_),
        "PARTITIONS must be at least 1",
    );
    refused!(
        db,
        "CREATE TOPIC t2 PARTITIONS 5000",
        Error::InvalidOption { .. },
        "PARTITIONS must be between 1 and 1024",
    );
    refused!(
        db,
        "CREATE TOPIC t2 PARTITIONS 2 PARTITIONS 3",
        Error::Syntax(_),
        "PARTITIONS given twice",
    );
    refused!(
        db,
        "CREATE TOPIC t2 MAX DELIVERIES 0",
        Error::InvalidOption { .. },
        "MAX DELIVERIES must be at least 1",
    );
    refused!(
        db,
        "CREATE TOPIC t2 RETENTION 0 MESSAGES",
        Error::InvalidOption { .. },
        "at least 1 message",
    );
    refused!(
        db,
        "CREATE TOPIC t2 ACK WAIT 0s",
        Error::InvalidOption { .. },
        "ACK WAIT must be longer than 0",
    );
    refused!(db, "CREATE TOPIC", Error::Syntax(_), "syntax error",);
    refused!(db, "CREATE TOPIK t2", Error::Syntax(_), "syntax error",);
    refused!(
        db,
        "CREATE TOPIC t2 RETENTION forever-ish",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(
        db,
        "CREATE QUEUE g",
        Error::NameTaken { .. },
        "a group named 'g' already exists",
    );
}

#[test]
fn alter() {
    let t = setup();
    let db = &t.db;
    db.execute("ALTER TOPIC orders SET PARTITIONS 3, MAX DELIVERIES 7, RETENTION FOREVER")
        .unwrap();
    let d = rows(
        db,
        "SELECT partitions, max_deliveries, retention FROM TOPICS WHERE name = 'orders'",
    );
    assert_eq!(
        d[0],
        json!({"partitions": 3, "max_deliveries": 7, "retention": "FOREVER"})
    );
    // The group reads the new partition too.
    db.execute("PUBLISH orders PARTITION 2 'p2'").unwrap();
    let got = rows(db, "CONSUME 10 FROM orders GROUP g");
    assert!(got.iter().any(|r| r["payload"] == "p2"));
    db.execute("ALTER QUEUE jobs SET ACK WAIT 5s").unwrap();
    refused!(
        db,
        "ALTER TOPIC nope SET PARTITIONS 2",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(
        db,
        "ALTER TOPIC orders SET PARTITIONS 1",
        Error::InvalidOption { .. },
        "can only grow",
    );
    refused!(
        db,
        "ALTER TOPIC jobs SET MAX LENGTH 5",
        Error::WrongKind { .. },
        "is a queue, not a topic",
    );
    refused!(
        db,
        "ALTER TOPIC orders SET",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(
        db,
        "ALTER TOPIC orders SET MAX LENGTH 0",
        Error::InvalidOption { .. },
        "MAX LENGTH must be at least 1",
    );
}

#[test]
fn drop() {
    let t = setup();
    let db = &t.db;
    refused!(
        db,
        "DROP TOPIC nope",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(
        db,
        "DROP QUEUE orders",
        Error::WrongKind { .. },
        "is a topic, not a queue",
    );
    refused!(db, "DROP orders", Error::Syntax(_), "syntax error",);
    db.execute("DROP TOPIC IF EXISTS nope; DROP TOPIC orders; DROP QUEUE jobs")
        .unwrap();
    assert!(rows(db, "SHOW TOPICS").is_empty());
    assert!(rows(db, "SHOW QUEUES").is_empty());
    // The queue's group went with it; g read only orders and stays
    // subscribed to the name, so it is listed without topic.
    assert_eq!(
        rows(db, "SELECT group, topic FROM GROUPS"),
        [json!({"group": "g", "topic": null})]
    );
    // A topic created again under the same name starts empty, at offset 0.
    db.execute("CREATE TOPIC orders").unwrap();
    assert_eq!(rows(db, "PUBLISH orders 'x'")[0]["offset"], 0);
}

#[test]
fn show_and_describe() {
    let t = setup();
    let db = &t.db;
    let topics = rows(db, "SHOW TOPICS");
    assert_eq!(topics.len(), 1);
    assert_eq!(topics[0]["name"], "orders");
    assert_eq!(topics[0]["messages"], 3);
    assert_eq!(topics[0]["retention"], "7d");
    let queues = rows(db, "SHOW QUEUES");
    assert_eq!(queues[0]["name"], "jobs");
    assert_eq!(queues[0]["messages"], 1);
    let groups = rows(db, "SHOW GROUPS");
    assert_eq!(groups.len(), 2, "g and the queue's own group: {groups:?}");
    let on = rows(db, "SHOW GROUPS ON orders");
    assert_eq!(on.len(), 1);
    assert_eq!(on[0]["group"], "g");
    assert_eq!(on[0]["lag"], 3);
    let d = rows(db, "DESCRIBE orders");
    let get = |k: &str| {
        d.iter()
            .find(|r| r["property"] == k)
            .map(|r| r["value"].clone())
    };
    assert_eq!(get("partitions"), Some(json!(2)));
    assert_eq!(get("ack_wait"), Some(json!("1m")));
    assert_eq!(get("max_deliveries"), Some(json!(3)));
    refused!(
        db,
        "DESCRIBE nope",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(
        db,
        "SHOW GROUPS ON nope",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(db, "SHOW TABLES", Error::Syntax(_), "syntax error",);
}

#[test]
fn publish() {
    let t = setup();
    let db = &t.db;
    let r = rows(
        db,
        "PUBLISH TO orders HEADERS (source = 'web') 'a', 'b', {\"c\": [1, 2]}",
    );
    assert_eq!(r.len(), 3);
    assert!(
        r.iter()
            .all(|x| x["topic"] == "orders" && x["duplicate"] == false)
    );
    let last = rows(
        db,
        "SELECT headers, payload FROM orders WHERE payload = '{\"c\": [1, 2]}'",
    );
    assert_eq!(last[0]["headers"], json!({"source": "web"}));
    refused!(
        db,
        "PUBLISH nope 'x'",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(db, "PUBLISH orders", Error::Syntax(_), "syntax error",);
    refused!(
        db,
        "PUBLISH orders 'unterminated",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(db, "PUBLISH orders {\"bad\": }", Error::Syntax(_), "JSON",);
    refused!(
        db,
        "PUBLISH orders PARTITION 9 'x'",
        Error::PartitionOutOfRange { .. },
        "partition 9 does not exist",
    );
    refused!(
        db,
        "PUBLISH orders HEADERS (a = '1', a = '2') 'x'",
        Error::InvalidStatement(_),
        "header 'a' is given twice",
    );
    refused!(
        db,
        "PUBLISH orders PARTITION -1 'x'",
        Error::Syntax(_),
        "syntax error",
    );

    let dir = tempfile::tempdir().unwrap();
    let small = mqlite::Database::builder(dir.path().join("s.db"))
        .max_payload(16)
        .open()
        .unwrap();
    small.execute("CREATE QUEUE q").unwrap();
    refused!(
        &small,
        "PUBLISH q 'this payload is longer than sixteen bytes'",
        Error::PayloadTooLarge { .. },
        "over the limit of 16 bytes",
    );
    // A batch with one bad payload stores none of them.
    refused!(
        &small,
        "PUBLISH q 'ok', 'this payload is longer than sixteen bytes'",
        Error::PayloadTooLarge { .. },
        "over the limit",
    );
}

#[test]
fn subscribe_and_unsubscribe() {
    let t = setup();
    let db = &t.db;
    db.execute("SUBSCRIBE GROUP h TO orders, 'audit.*' FROM OFFSET 1 ORDERED MAX DELIVERIES 2 ACK WAIT 10s").unwrap();
    let g = rows(db, "SELECT * FROM GROUPS WHERE group = 'h'");
    assert_eq!(g[0]["ordered"], true);
    refused!(
        db,
        "SUBSCRIBE GROUP h2 TO nope",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(
        db,
        "SUBSCRIBE GROUP h2 TO 'a..b'",
        Error::InvalidPattern { .. },
        "empty word",
    );
    refused!(
        db,
        "SUBSCRIBE GROUP h2 TO jobs",
        Error::WrongKind { .. },
        "is a queue",
    );
    refused!(
        db,
        "SUBSCRIBE GROUP jobs TO orders",
        Error::ImplicitGroup { .. },
        "implicit group",
    );
    refused!(
        db,
        "SUBSCRIBE GROUP h2 orders",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(
        db,
        "SUBSCRIBE GROUP h2 TO orders FROM TIMESTAMP 'yesterday'",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(
        db,
        "UNSUBSCRIBE GROUP nope",
        Error::GroupNotFound(_),
        "group 'nope' does not exist",
    );
    refused!(
        db,
        "UNSUBSCRIBE GROUP h FROM nope",
        Error::NotSubscribed { .. },
        "not subscribed",
    );
    refused!(
        db,
        "UNSUBSCRIBE GROUP jobs",
        Error::ImplicitGroup { .. },
        "implicit group of a queue",
    );
    db.execute("UNSUBSCRIBE GROUP h FROM 'audit.*'; UNSUBSCRIBE GROUP h")
        .unwrap();
    assert!(rows(db, "SELECT * FROM GROUPS WHERE group = 'h'").is_empty());
}

#[test]
fn consume_ack_nack() {
    let t = setup();
    let db = &t.db;
    let got = rows(db, "CONSUME 2 FROM orders GROUP g MEMBER 'w1' ACK WAIT 5s");
    assert_eq!(got.len(), 2);
    let ids: Vec<String> = got.iter().map(|r| r["delivery"].to_string()).collect();
    db.execute(&format!("ACK {}", ids[0])).unwrap();
    db.execute(&format!("NACK {} DELAY 1m", ids[1])).unwrap();
    let j = rows(db, "CONSUME FROM jobs WAIT 10ms");
    assert_eq!(j[0]["payload"], "j1");
    db.execute(&format!("NACK {} DEAD 'cannot parse'", j[0]["delivery"]))
        .unwrap();
    assert_eq!(
        rows(db, "SELECT reason FROM DLQ")[0]["reason"],
        "cannot parse"
    );
    refused!(
        db,
        "CONSUME FROM nope GROUP g",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(
        db,
        "CONSUME FROM orders GROUP nope",
        Error::GroupNotFound(_),
        "group 'nope' does not exist",
    );
    refused!(
        db,
        "CONSUME FROM GROUP nope",
        Error::GroupNotFound(_),
        "group 'nope' does not exist",
    );
    refused!(
        db,
        "CONSUME FROM orders",
        Error::WrongKind { .. },
        "is a topic",
    );
    refused!(
        db,
        "CONSUME ten FROM orders",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(
        db,
        "CONSUME FROM orders GROUP g WAIT soon",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(
        db,
        "ACK 123456",
        Error::UnknownDelivery(_),
        "delivery 123456 is unknown",
    );
    refused!(
        db,
        &format!("ACK {}", ids[0]),
        Error::UnknownDelivery(_),
        "is unknown",
    );
    refused!(db, "ACK", Error::Syntax(_), "syntax error",);
    refused!(db, "ACK abc", Error::Syntax(_), "syntax error",);
    refused!(
        db,
        "NACK 123456 DEAD",
        Error::UnknownDelivery(_),
        "delivery 123456 is unknown",
    );
    refused!(db, "NACK 1 LATER", Error::Syntax(_), "syntax error",);
}

#[test]
fn select() {
    let t = setup();
    let db = &t.db;
    assert_eq!(rows(db, "SELECT COUNT(*) FROM orders")[0]["COUNT(*)"], 3);
    let r = rows(
        db,
        "SELECT offset, key, n, data.total FROM orders WHERE key = 'a' ORDER BY offset DESC",
    );
    assert_eq!(
        r,
        [
            json!({"offset": 1, "key": "a", "n": 2, "data.total": 20}),
            json!({"offset": 0, "key": "a", "n": 1, "data.total": 10})
        ]
    );
    let r = rows(
        db,
        "SELECT key, COUNT(*) AS c, SUM(data.total) AS total FROM orders GROUP BY key ORDER BY c DESC",
    );
    assert_eq!(r[0], json!({"key": "a", "c": 2, "total": 30}));
    assert_eq!(r[1], json!({"key": "b", "c": 1, "total": 5.5}));
    let r = rows(
        db,
        "SELECT n FROM orders WHERE data.total > 6 AND n IN (1, 2, 3) ORDER BY n LIMIT 1 OFFSET 1",
    );
    assert_eq!(r, [json!({"n": 2})]);
    let r = rows(
        db,
        "SELECT n FROM orders WHERE key LIKE 'b%' OR partition BETWEEN 5 AND 6",
    );
    assert_eq!(r, [json!({"n": 3})]);
    let r = rows(
        db,
        "SELECT COUNT(*) AS c FROM orders WHERE timestamp >= '-1h' AND missing IS NULL",
    );
    assert_eq!(r[0]["c"], 3);
    let r = rows(db, "SELECT data FROM orders WHERE n = 1");
    assert_eq!(
        r[0]["data"],
        json!({"total": 10}),
        "a JSON object stays an object"
    );
    let r = rows(db, "SELECT * FROM orders LIMIT 1");
    let keys: Vec<&String> = r[0].as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 6);
    assert_eq!(
        rows(db, "SELECT name FROM TOPICS ORDER BY name"),
        [json!({"name": "jobs"}), json!({"name": "orders"})]
    );
    // Reading changes no group state.
    assert_eq!(
        rows(db, "SELECT lag FROM GROUPS WHERE group = 'g'")[0]["lag"],
        3
    );
    refused!(
        db,
        "SELECT * FROM nope",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
    refused!(
        db,
        "SELECT foo FROM TOPICS",
        Error::InvalidStatement(_),
        "unknown column 'foo' in TOPICS",
    );
    refused!(
        db,
        "SELECT * FROM orders WHERE COUNT(*) > 1",
        Error::InvalidStatement(_),
        "not allowed in WHERE",
    );
    refused!(
        db,
        "SELECT SUM(*) FROM orders",
        Error::Syntax(_),
        "syntax error",
    );
    refused!(db, "SELECT FROM orders", Error::Syntax(_), "syntax error",);
    refused!(
        db,
        "SELECT * FROM orders WHERE timestamp > 'noon'",
        Error::InvalidStatement(_),
        "is not a timestamp",
    );
    refused!(
        db,
        "SELECT * FROM orders LIMIT -1",
        Error::Syntax(_),
        "syntax error",
    );
}

#[test]
fn purge_and_check() {
    let t = setup();
    let db = &t.db;
    assert_eq!(rows(db, "CHECK"), [json!({"result": "ok"})]);
    assert_eq!(rows(db, "PURGE orders"), [json!({"purged": 3})]);
    assert_eq!(rows(db, "SELECT COUNT(*) AS c FROM orders")[0]["c"], 0);
    assert_eq!(
        rows(db, "PUBLISH orders KEY 'a' 'x'")[0]["offset"],
        2,
        "offsets are never reused"
    );
    assert_eq!(rows(db, "CHECK"), [json!({"result": "ok"})]);
    refused!(
        db,
        "PURGE nope",
        Error::TopicNotFound(_),
        "topic 'nope' does not exist",
    );
}

#[test]
fn a_failed_statement_in_a_script_stops_it_and_earlier_ones_stand() {
    let t = setup();
    let db = &t.db;
    let e = fail(db, "PUBLISH jobs 'j2'; PUBLISH nope 'x'; PUBLISH jobs 'j3'");
    assert!(
        matches!(&e, Error::TopicNotFound(t) if t == "nope"),
        "{e:?}"
    );
    assert_eq!(rows(db, "SELECT COUNT(*) AS c FROM jobs")[0]["c"], 2);
    // A syntax error anywhere runs nothing.
    let e = fail(db, "PUBLISH jobs 'j4'; PUBLISH jobs oops oops");
    assert!(matches!(e, Error::Syntax(_)), "{e:?}");
    assert_eq!(rows(db, "SELECT COUNT(*) AS c FROM jobs")[0]["c"], 2);
}

#[test]
fn bench_runs_on_a_scratch_topic_and_drops_it() {
    let t = setup();
    let db = &t.db;
    let before = snapshot(db);
    let r = rows(
        db,
        "BENCH publish_batch, replay MESSAGES 50 SIZE 64B BATCH 10",
    );
    assert_eq!(r.len(), 2);
    assert_eq!(r[0]["workload"], "publish_batch");
    assert_eq!(r[1]["workload"], "replay");
    let cols = db.execute("BENCH replay MESSAGES 5").unwrap().columns;
    assert_eq!(
        cols,
        [
            "workload",
            "messages",
            "size",
            "seconds",
            "msgs_per_sec",
            "mb_per_sec",
            "p50_us",
            "p99_us"
        ]
    );
    assert_eq!(r[0]["messages"], 50);
    assert_eq!(r[0]["size"], 64);
    assert_eq!(snapshot(db), before, "the scratch topics are gone");
    refused!(
        db,
        "BENCH MESSAGES 0",
        Error::InvalidOption { .. },
        "MESSAGES",
    );
    refused!(db, "BENCH nothing", Error::Syntax(_), "syntax error",);
}
