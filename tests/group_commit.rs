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
