//! Group commit: concurrent publishers share commits, each gets its own
//! result after the commit, and one failing publish does not touch the others.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use mqlite::{Database, Error, Message};

#[test]
fn concurrent_publishers_share_commits_and_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("gc.db")).unwrap(); // durability full
    db.execute("CREATE TOPIC ev PARTITIONS 4").unwrap();
    let threads = 8;
    let per = 100;
    let barrier = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..per)
                    .map(|i| {
                        let key = format!("t{t}");
                        let p = db
                            .publish("ev", Message::new(format!("{t}-{i}")).key(key))
                            .unwrap();
                        (p.partition, p.offset)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut positions = HashSet::new();
    for h in handles {
        for pos in h.join().unwrap() {
            assert!(
                positions.insert(pos),
                "two publishes got the same position {pos:?}"
            );
        }
    }
    assert_eq!(positions.len(), threads * per);
    assert_eq!(
        db.topic_stats("ev").unwrap().messages,
        (threads * per) as u64
    );
    let stats = db.write_stats();
    assert_eq!(stats.writes, (threads * per) as u64);
    assert!(stats.commits <= stats.writes);
    // Per key (one thread each), offsets follow the thread's publish order.
    let rs = db
        .execute("SELECT key, payload FROM ev ORDER BY partition, offset")
        .unwrap();
    for t in 0..threads {
        let mine: Vec<usize> = rs
            .rows
            .iter()
            .filter(|r| r[0].to_string() == format!("t{t}"))
            .map(|r| r[1].to_string().split('-').nth(1).unwrap().parse().unwrap())
            .collect();
        assert_eq!(mine, (0..per).collect::<Vec<_>>());
    }
}

#[test]
fn a_failing_publish_in_a_shared_commit_changes_nothing_for_the_others() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder(dir.path().join("gc.db"))
        .max_payload(10)
        .open()
        .unwrap();
    db.execute("CREATE QUEUE q").unwrap();
    let barrier = Arc::new(Barrier::new(6));
    let handles: Vec<_> = (0..6)
        .map(|t| {
            let db = db.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let mut errors = 0;
                for i in 0..50 {
                    let r = match t % 3 {
                        0 => db.publish("q", Message::new(format!("ok{i}"))),
                        1 => db.publish("nope", Message::new("x")),
                        _ => db.publish("q", Message::new("far too long for the limit")),
                    };
                    match r {
                        Ok(_) => {}
                        Err(Error::TopicNotFound(_) | Error::PayloadTooLarge { .. }) => errors += 1,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                errors
            })
        })
        .collect();
    let errors: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(errors, 200);
    assert_eq!(db.topic_stats("q").unwrap().messages, 100);
    assert_eq!(
        db.execute("CHECK").unwrap().rows[0][0],
        mqlite::Value::Text("ok".into())
    );
}

/// Many more writers than cores, mixing publishes and acks, hands the lead
/// from batch to batch thousands of times: every caller must get its own
/// result (none hangs, none is lost or doubled).
#[test]
fn leadership_passes_between_many_writers_without_losing_one() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::builder(dir.path().join("gc.db"))
        .durability(mqlite::Durability::Off)
        .open()
        .unwrap();
    db.execute("CREATE QUEUE q").unwrap();
    let threads = 16;
    let per = 150;
    let barrier = Arc::new(Barrier::new(threads + 2));
    let publishers: Vec<_> = (0..threads)
        .map(|t| {
            let db = db.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                (0..per)
                    .map(|i| {
                        db.publish("q", Message::new(format!("{t}-{i}")))
                            .unwrap()
                            .offset
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let consumers: Vec<_> = (0..2)
        .map(|_| {
            let db = db.clone();
            let barrier = Arc::clone(&barrier);
            std::thread::spawn(move || {
                barrier.wait();
                let req = mqlite::ConsumeRequest::queue("q")
                    .max(10)
                    .wait(std::time::Duration::from_millis(200));
                let mut got = Vec::new();
                loop {
                    let batch = db.consume(&req).unwrap();
                    if batch.is_empty() {
                        return got;
                    }
                    let ids: Vec<u64> = batch.iter().map(|d| d.id).collect();
                    db.ack(&ids).unwrap();
                    got.extend(batch.iter().map(|d| d.offset));
                }
            })
        })
        .collect();
    let mut published = HashSet::new();
    for h in publishers {
        for offset in h.join().unwrap() {
            assert!(published.insert(offset), "offset {offset} given twice");
        }
    }
    let mut consumed = HashSet::new();
    for h in consumers {
        for offset in h.join().unwrap() {
            assert!(consumed.insert(offset), "offset {offset} consumed twice");
        }
    }
    assert_eq!(published.len(), threads * per);
    assert_eq!(consumed, published, "every message consumed once");
    assert_eq!(db.topic_stats("q").unwrap().messages, 0);
}

/// A write queued while another caller's batch commits, with nobody else
/// coming, must still be led and committed (the finishing leader hands the
/// lead to it). Without the hand-off its caller would wait forever.
#[test]
fn a_write_queued_during_a_commit_is_led_when_nobody_else_comes() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("gc.db")).unwrap(); // fsync per commit
    db.execute("CREATE TOPIC t").unwrap();
    for round in 0..200u64 {
        let (tx, rx) = std::sync::mpsc::channel();
        for k in 0..2u64 {
            let db = db.clone();
            let tx = tx.clone();
            std::thread::spawn(move || {
                if k == 1 {
                    // Arrive somewhere inside the other's commit.
                    let until = std::time::Instant::now()
                        + std::time::Duration::from_micros(20 * (round % 20));
                    while std::time::Instant::now() < until {
                        std::hint::spin_loop();
                    }
                }
                let r = db.publish("t", Message::new(format!("{round}-{k}")));
                tx.send(r.map(|p| p.offset)).unwrap();
            });
        }
        for _ in 0..2 {
            rx.recv_timeout(std::time::Duration::from_secs(10))
                .expect("a writer was never woken")
                .unwrap();
        }
    }
    assert_eq!(db.topic_stats("t").unwrap().messages, 400);
}

/// Publishes remember topic definitions between commits; a CREATE, ALTER or
/// DROP through another connection (here a second handle; another process
/// is the same to the file) must be seen by the very next publish.
#[test]
fn a_publish_sees_topic_changes_made_through_another_connection() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("defs.db");
    let publisher = Database::open(&path).unwrap();
    let admin = Database::open(&path).unwrap();
    admin.execute("CREATE TOPIC ev").unwrap();
    publisher.publish("ev", Message::new("a")).unwrap();

    // More partitions: partition 2 exists at once.
    admin.execute("ALTER TOPIC ev SET PARTITIONS 3").unwrap();
    let p = publisher
        .publish("ev", Message::new("b").partition(2))
        .unwrap();
    assert_eq!((p.partition, p.offset), (2, 0));

    // A MAX LENGTH with REJECT: the next publish is refused.
    admin.execute("ALTER TOPIC ev SET MAX LENGTH 2").unwrap();
    assert!(matches!(
        publisher.publish("ev", Message::new("c")),
        Err(Error::TopicFull { .. })
    ));

    // Dropped: not found. Re-created with one partition: partition 2 is gone.
    admin.execute("DROP TOPIC ev").unwrap();
    assert!(matches!(
        publisher.publish("ev", Message::new("d")),
        Err(Error::TopicNotFound(_))
    ));
    admin.execute("CREATE TOPIC ev").unwrap();
    assert!(
        publisher
            .publish("ev", Message::new("e").partition(2))
            .is_err()
    );
    let p = publisher.publish("ev", Message::new("f")).unwrap();
    assert_eq!((p.partition, p.offset), (0, 0));
    assert_eq!(admin.topic_stats("ev").unwrap().messages, 1);

    // A change through the publishing handle itself is seen too.
    publisher
        .execute("ALTER TOPIC ev SET PARTITIONS 2")
        .unwrap();
    let p = publisher
        .publish("ev", Message::new("g").partition(1))
        .unwrap();
    assert_eq!((p.partition, p.offset), (1, 0));
}

/// Under durability full a batch of only ACKs commits without its fsync and
/// the leader fsyncs the WAL after releasing the connection (so a CONSUME of
/// another thread runs meanwhile); a publish always fsyncs inside its
/// commit, so no other connection can read a message that a power failure
/// would undo. Below full, nothing is fsynced at all.
#[test]
fn only_ack_batches_fsync_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("acks.db")).unwrap(); // durability full
    db.execute("CREATE QUEUE jobs").unwrap();
    for i in 0..3 {
        db.publish("jobs", Message::new(format!("{i}"))).unwrap();
    }
    assert_eq!(
        db.write_stats().deferred_syncs,
        0,
        "publishes sync in-commit"
    );
    let got = db
        .consume(&mqlite::ConsumeRequest::queue("jobs").max(3))
        .unwrap();
    assert_eq!(got.len(), 3);
    db.ack(&[got[0].id]).unwrap();
    db.ack(&[got[1].id, got[2].id]).unwrap();
    assert_eq!(db.write_stats().deferred_syncs, 2);
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 0);

    // Reopened, the acks held.
    drop(db);
    let db = Database::open(dir.path().join("acks.db")).unwrap();
    assert!(
        db.consume(&mqlite::ConsumeRequest::queue("jobs"))
            .unwrap()
            .is_empty()
    );

    let normal = Database::builder(dir.path().join("normal.db"))
        .durability(mqlite::Durability::Normal)
        .open()
        .unwrap();
    normal.execute("CREATE QUEUE jobs").unwrap();
    normal.publish("jobs", Message::new("x")).unwrap();
    let got = normal
        .consume(&mqlite::ConsumeRequest::queue("jobs"))
        .unwrap();
    normal.ack(&[got[0].id]).unwrap();
    assert_eq!(normal.write_stats().deferred_syncs, 0);
}

/// The language is a client of the typed API: PUBLISH and ACK statements
/// take the same group-commit path as `Database::publish` and
/// `Database::ack` (and so the ACK gets the deferred fsync).
#[test]
fn publish_and_ack_statements_go_through_group_commit() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("stmts.db")).unwrap(); // durability full
    db.execute("CREATE QUEUE jobs").unwrap();
    let before = db.write_stats();
    let published = db.execute("PUBLISH jobs 'a', 'b'").unwrap();
    assert_eq!(published.rows.len(), 2);
    let after_publish = db.write_stats();
    assert_eq!(after_publish.writes, before.writes + 1, "one grouped write");
    assert_eq!(after_publish.commits, before.commits + 1);
    let got = db.execute("CONSUME 2 FROM jobs").unwrap();
    let ids: Vec<String> = got.rows.iter().map(|r| r[0].to_string()).collect();
    db.execute(&format!("ACK {}", ids.join(", "))).unwrap();
    let after_ack = db.write_stats();
    assert_eq!(after_ack.writes, after_publish.writes + 1);
    assert_eq!(after_ack.deferred_syncs, after_publish.deferred_syncs + 1);
    assert_eq!(db.topic_stats("jobs").unwrap().messages, 0);
}

/// `execute_all` returns every statement's result, not only the last.
#[test]
fn execute_all_returns_every_result() {
    let dir = tempfile::tempdir().unwrap();
    let db = Database::open(dir.path().join("all.db")).unwrap();
    let results = db
        .execute_all("CREATE TOPIC t; PUBLISH t 'x'; PUBLISH t 'y'; SELECT COUNT(*) AS n FROM t")
        .unwrap();
    assert_eq!(results.len(), 4);
    assert!(results[0].rows.is_empty());
    assert_eq!(results[1].rows.len(), 1);
    assert_eq!(
        results[2].rows[0][2],
        mqlite::Value::Int(1),
        "offset of 'y'"
    );
    assert_eq!(results[3].rows[0][0], mqlite::Value::Int(2));
}
