//! Consumer groups: fan-out, competing members, patterns, start positions, partitions.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::collections::{HashMap, HashSet};

use common::{fail, open, rows};
use mqlite::{
    ConsumeRequest, Error, Message, PatternProblem, StartFrom, Subscription, TopicOptions,
    partition_for_key,
};

#[test]
fn one_order_fans_out_to_every_group_with_its_payload_intact() {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC order.placed PARTITIONS 3;
         SUBSCRIBE GROUP email TO order.placed;
         SUBSCRIBE GROUP inventory TO order.placed;
         SUBSCRIBE GROUP analytics TO order.placed;",
    )
    .unwrap();
    let payload = r#"{"orderId": "ORD-1", "total": 99.5, "items": [{"sku": "A-1", "qty": 2}], "note": "ünïcode ✓"}"#;
    let p = rows(db, &format!("PUBLISH order.placed KEY 'ORD-1' {payload}"));
    assert_eq!(p[0]["duplicate"], false);
    for g in ["email", "inventory", "analytics"] {
        let got = rows(db, &format!("CONSUME 10 FROM order.placed GROUP {g}"));
        assert_eq!(got.len(), 1, "group {g}");
        assert_eq!(got[0]["payload"], payload, "group {g}");
        assert_eq!(got[0]["key"], "ORD-1");
        assert_eq!(got[0]["partition"], p[0]["partition"]);
        db.execute(&format!("ACK {}", got[0]["delivery"])).unwrap();
    }
    // The topic keeps the message (retention FOREVER) after every group acked.
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM order.placed")[0]["n"],
        1
    );
    let groups = rows(db, "SHOW GROUPS ON order.placed");
    assert_eq!(groups.len(), 3);
    assert!(groups.iter().all(|g| g["pending"] == 0 && g["lag"] == 0));
}

#[test]
fn three_members_share_nine_messages_while_another_group_gets_all_nine() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC tasks PARTITIONS 2; SUBSCRIBE GROUP workers TO tasks; SUBSCRIBE GROUP audit TO tasks")
        .unwrap();
    for i in 0..9 {
        db.publish("tasks", Message::new(format!("t{i}"))).unwrap();
    }
    let mut per_member: HashMap<String, Vec<String>> = HashMap::new();
    let mut all = Vec::new();
    'outer: loop {
        let mut progressed = false;
        for m in ["w1", "w2", "w3"] {
            let got = db
                .consume(&ConsumeRequest::topic("tasks", "workers").member(m).max(2))
                .unwrap();
            for d in &got {
                per_member
                    .entry(m.into())
                    .or_default()
                    .push(d.payload_str().into_owned());
                all.push(d.payload_str().into_owned());
                db.ack(&[d.id]).unwrap();
                progressed = true;
            }
        }
        if !progressed {
            break 'outer;
        }
    }
    assert_eq!(all.len(), 9, "every message delivered once: {all:?}");
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), 9, "none delivered twice");
    assert!(
        per_member.len() >= 2,
        "the members shared the work: {per_member:?}"
    );

    let audit = db
        .consume(&ConsumeRequest::topic("tasks", "audit").max(100))
        .unwrap();
    let audit: HashSet<String> = audit.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(audit, unique.into_iter().cloned().collect());
}

#[test]
fn keyed_messages_stay_in_one_partition_in_order() {
    let t = open();
    let db = &t.db;
    db.create_topic(
        "orders",
        &TopicOptions {
            partitions: Some(4),
            ..Default::default()
        },
    )
    .unwrap();
    db.subscribe(
        "g",
        &Subscription::topic("orders").from(StartFrom::Beginning),
    )
    .unwrap();
    for i in 0..20 {
        for key in ["alice", "bob", "carol"] {
            let p = db
                .publish("orders", Message::new(format!("{key}-{i}")).key(key))
                .unwrap();
            assert_eq!(p.partition, partition_for_key(key, 4));
        }
    }
    let got = db
        .consume(&ConsumeRequest::topic("orders", "g").max(1000))
        .unwrap();
    assert_eq!(got.len(), 60);
    for key in ["alice", "bob", "carol"] {
        let mine: Vec<_> = got
            .iter()
            .filter(|d| d.key.as_deref() == Some(key))
            .collect();
        let parts: HashSet<u32> = mine.iter().map(|d| d.partition).collect();
        assert_eq!(parts.len(), 1, "{key} in one partition");
        let order: Vec<String> = mine.iter().map(|d| d.payload_str().into_owned()).collect();
        let want: Vec<String> = (0..20).map(|i| format!("{key}-{i}")).collect();
        assert_eq!(order, want, "{key} in publish order");
        let offsets: Vec<u64> = mine.iter().map(|d| d.offset).collect();
        assert!(offsets.windows(2).all(|w| w[0] < w[1]));
    }
    // Offsets are dense from 0 in each partition, timestamps monotonic.
    for p in 0..4 {
        let r = rows(
            db,
            &format!("SELECT offset, timestamp FROM orders WHERE partition = {p} ORDER BY offset"),
        );
        for (i, row) in r.iter().enumerate() {
            assert_eq!(row["offset"], i as i64);
        }
    }
    // The stable hash never changes: pinned values.
    assert_eq!(partition_for_key("alice", 4), partition_for_key("alice", 4));
    assert_eq!(partition_for_key("ORD-1", 8), 2);
}

#[test]
fn round_robin_without_key_and_explicit_partition() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC logs PARTITIONS 3").unwrap();
    let r = rows(db, "PUBLISH logs 'a', 'b', 'c', 'd', 'e', 'f'");
    let parts: Vec<i64> = r.iter().map(|x| x["partition"].as_i64().unwrap()).collect();
    assert_eq!(parts.iter().filter(|&&p| p == 0).count(), 2);
    assert_eq!(parts.iter().filter(|&&p| p == 1).count(), 2);
    let r = rows(db, "PUBLISH logs PARTITION 2 'x'");
    assert_eq!(r[0]["partition"], 2);
    assert_eq!(r[0]["offset"], 2);
    let e = fail(db, "PUBLISH logs PARTITION 3 'x'");
    assert!(
        matches!(&e, Error::PartitionOutOfRange { topic, partition: 3, partitions: 3, .. } if topic == "logs"),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "partition 3 does not exist: 'logs' has 3 partitions (0..2)"
    );
}

#[test]
fn start_positions() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC ev; PUBLISH ev 'old1', 'old2'")
        .unwrap();
    db.execute("SUBSCRIBE GROUP latest TO ev").unwrap();
    db.execute("SUBSCRIBE GROUP begin TO ev FROM BEGINNING")
        .unwrap();
    db.execute("SUBSCRIBE GROUP off TO ev FROM OFFSET 1")
        .unwrap();
    t.clock.advance(std::time::Duration::from_secs(3600));
    db.execute("PUBLISH ev 'new'").unwrap();
    db.execute("SUBSCRIBE GROUP recent TO ev FROM TIMESTAMP '-30m'")
        .unwrap();
    let payloads = |g: &str| -> Vec<String> {
        db.consume(&ConsumeRequest::topic("ev", g).max(10))
            .unwrap()
            .iter()
            .map(|d| d.payload_str().into_owned())
            .collect()
    };
    assert_eq!(payloads("latest"), ["new"]);
    assert_eq!(payloads("begin"), ["old1", "old2", "new"]);
    assert_eq!(payloads("off"), ["old2", "new"]);
    assert_eq!(payloads("recent"), ["new"]);
}

#[test]
fn patterns_match_words_and_pick_up_topics_created_later() {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC order.placed; CREATE TOPIC order.shipped; CREATE TOPIC user.created;
         SUBSCRIBE GROUP orders TO 'order.*';
         SUBSCRIBE GROUP everything TO '#';",
    )
    .unwrap();
    db.execute("CREATE TOPIC order.cancelled; CREATE TOPIC order.eu.placed")
        .unwrap();
    for topic in [
        "order.placed",
        "order.shipped",
        "user.created",
        "order.cancelled",
        "order.eu.placed",
    ] {
        db.publish(topic, Message::new(topic)).unwrap();
    }
    let got: HashSet<String> = db
        .consume(&ConsumeRequest::group("orders").max(100))
        .unwrap()
        .iter()
        .map(|d| d.topic.clone())
        .collect();
    let want: HashSet<String> = ["order.placed", "order.shipped", "order.cancelled"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(got, want, "'*' is exactly one word");
    let all = db
        .consume(&ConsumeRequest::group("everything").max(100))
        .unwrap();
    assert_eq!(all.len(), 5);
    assert!(mqlite::pattern_matches("order.#", "order"));
    assert!(mqlite::pattern_matches("#.placed", "order.eu.placed"));
    assert!(!mqlite::pattern_matches("order.*", "order.eu.placed"));
    let e = fail(db, "SUBSCRIBE GROUP bad TO 'order.*x'");
    assert!(
        matches!(
            &e,
            Error::InvalidPattern {
                pattern,
                problem: PatternProblem::EmbeddedWildcard
            } if pattern == "order.*x"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("must stand alone"), "{e}");
}

#[test]
fn unsubscribe_removes_a_topic_or_the_group() {
    let t = open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC a; CREATE TOPIC b; SUBSCRIBE GROUP g TO a, b; PUBLISH a 'x'; PUBLISH b 'y'",
    )
    .unwrap();
    db.execute("UNSUBSCRIBE GROUP g FROM a").unwrap();
    let got = db.consume(&ConsumeRequest::group("g").max(10)).unwrap();
    let topics: Vec<&str> = got.iter().map(|d| d.topic.as_str()).collect();
    assert_eq!(topics, ["b"], "g no longer reads a");
    db.execute("PUBLISH a 'x2'; PUBLISH b 'y2'").unwrap();
    let got = db.consume(&ConsumeRequest::group("g").max(10)).unwrap();
    let payloads: Vec<String> = got.iter().map(|d| d.payload_str().into_owned()).collect();
    assert_eq!(payloads, ["y2"]);
    for sql in ["CONSUME FROM a GROUP g", "UNSUBSCRIBE GROUP g FROM a"] {
        let e = fail(db, sql);
        assert!(
            matches!(&e, Error::NotSubscribed { group, topic } if group == "g" && topic == "a"),
            "{sql}: {e:?}"
        );
    }
    db.execute("UNSUBSCRIBE GROUP g").unwrap();
    for (sql, name) in [
        ("CONSUME FROM GROUP g", "g"),
        ("UNSUBSCRIBE GROUP nope", "nope"),
    ] {
        let e = fail(db, sql);
        assert!(
            matches!(&e, Error::GroupNotFound(g) if g == name),
            "{sql}: {e:?}"
        );
    }
}
