//! BACKUP TO and `Database::backup`: a consistent copy of all state, taken
//! while publishers and consumers keep running.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{fail, rows, snapshot};
use mqlite::{
    ConsumeRequest, Database, Durability, Error, FileProblem, Message, NackAction, Subscription,
};
use serde_json::json;

fn open(path: &std::path::Path) -> Database {
    Database::builder(path)
        .durability(Durability::Off)
        .open()
        .unwrap()
}

#[test]
fn the_copy_holds_every_kind_of_state_and_opens_as_a_database() {
    let t = common::open();
    let db = &t.db;
    db.execute(
        "CREATE TOPIC orders PARTITIONS 2; CREATE QUEUE jobs ACK WAIT 1m;
         SUBSCRIBE GROUP billing TO orders FROM BEGINNING;
         PUBLISH orders KEY 'a' DEDUP 'd-1' {\"n\": 1};
         PUBLISH orders KEY 'b' {\"n\": 2}, {\"n\": 3};
         PUBLISH jobs 'j1', 'j2', 'j3'",
    )
    .unwrap();
    let leased = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    let dead = db.consume(&ConsumeRequest::queue("jobs")).unwrap();
    db.nack(&[dead[0].id], &NackAction::dead("broken")).unwrap();
    let b = db
        .consume(&ConsumeRequest::topic("orders", "billing").max(1))
        .unwrap();
    db.ack(&[b[0].id]).unwrap();
    assert!(db.mark_processed("billing", "email-1").unwrap());

    let copy = t.dir.path().join("copy.db");
    let out = rows(db, &format!("BACKUP TO '{}'", copy.display()));
    let pages = out[0]["pages"].as_i64().unwrap();
    assert!(pages > 1, "{out:?}");
    assert_eq!(
        out[0]["bytes"].as_i64().unwrap(),
        i64::try_from(std::fs::metadata(&copy).unwrap().len()).unwrap()
    );
    let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let c = Database::builder(&copy)
        .durability(Durability::Off)
        .clock(t.clock.clone())
        .open()
        .unwrap();
    assert_eq!(rows(&c, "CHECK"), [json!({"result": "ok"})]);
    assert_eq!(snapshot(&c), snapshot(db), "topics, groups, DLQ, messages");
    assert_eq!(
        rows(&c, "SELECT * FROM PROCESSED"),
        rows(db, "SELECT * FROM PROCESSED")
    );
    // Cursors: billing goes on after the message it acked.
    let next = c
        .consume(&ConsumeRequest::topic("orders", "billing").max(5))
        .unwrap();
    assert_eq!(next.len(), 2);
    // Leases: the copy's lease has the source's delivery id.
    c.ack(&[leased[0].id]).unwrap();
    // Dedup ids and processed keys.
    let dup = c
        .publish("orders", Message::new("again").key("a").dedup_id("d-1"))
        .unwrap();
    assert!(dup.duplicate);
    assert!(!c.mark_processed("billing", "email-1").unwrap());
    // Dead letters requeue in the copy.
    assert_eq!(
        rows(&c, "REQUEUE DLQ jobs"),
        [json!({"requeued": 1, "skipped": 0})]
    );
    // The source is untouched by all that.
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM DLQ"), [json!({"n": 1})]);
}

#[test]
fn backup_never_replaces_a_file_nor_writes_the_database_files() {
    let t = common::open();
    let db = &t.db;
    db.execute("CREATE QUEUE q; PUBLISH q 'x'").unwrap();
    let existing = t.dir.path().join("keep.db");
    std::fs::write(&existing, b"precious").unwrap();
    let e = fail(db, &format!("BACKUP TO '{}'", existing.display()));
    assert!(
        matches!(&e, Error::OutputFile { problem: FileProblem::BackupExists, path } if *path == existing),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("BACKUP never replaces a file"),
        "{e}"
    );
    assert_eq!(std::fs::read(&existing).unwrap(), b"precious");

    let path = t.path.display().to_string();
    for own in [
        path.clone(),
        format!("{path}-wal"),
        format!("{path}-shm"),
        format!("{}/./test.db", t.dir.path().display()),
    ] {
        let e = fail(db, &format!("BACKUP TO '{own}'"));
        assert!(
            matches!(
                &e,
                Error::OutputFile {
                    problem: FileProblem::DatabaseFile,
                    ..
                }
            ),
            "{own}: {e:?}"
        );
    }
    let e = fail(
        db,
        &format!("BACKUP TO '{}/no/such/dir/x.db'", t.dir.path().display()),
    );
    assert!(
        matches!(
            &e,
            Error::OutputFile {
                problem: FileProblem::Io(_),
                ..
            }
        ),
        "{e:?}"
    );

    let mut s = db.session();
    s.execute_statement(&mqlite::lang::parse_statement("BEGIN").unwrap())
        .unwrap();
    let e = s
        .execute_statement(
            &mqlite::lang::parse_statement(&format!(
                "BACKUP TO '{}/in-tx.db'",
                t.dir.path().display()
            ))
            .unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotAllowedInTransaction { statement } if statement == "BACKUP"),
        "{e:?}"
    );
    assert!(!t.dir.path().join("in-tx.db").exists());
}

#[test]
fn a_read_only_handle_can_back_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.db");
    let db = open(&path);
    db.execute("CREATE QUEUE q; PUBLISH q 'x'").unwrap();
    let ro = Database::builder(&path).read_only(true).open().unwrap();
    let copy = dir.path().join("copy.db");
    let mut calls = Vec::new();
    let stats = ro
        .backup(&copy, |done, total| calls.push((done, total)))
        .unwrap();
    assert_eq!(calls.last(), Some(&(stats.pages, stats.pages)));
    let c = open(&copy);
    assert_eq!(rows(&c, "SELECT payload FROM q"), [json!({"payload": "x"})]);
}

/// Counters a worker thread keeps: bumped before a call and after it returned.
#[derive(Default)]
struct Counts {
    attempted: AtomicU64,
    confirmed: AtomicU64,
}

/// Waits up to 20 s for `cond`.
fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "waited for {what}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A publisher and a consumer run throughout the backup. The copy must be
/// the database at one commit: its live messages are exactly the first n
/// the publisher sent, n between what was confirmed before the copy began
/// and what was attempted by the time it had taken its snapshot, and the
/// same for the consumer's acks; every partition's offsets are dense
/// (CHECK). Publishes confirmed during the copy are in the source and not
/// in the copy.
#[test]
fn a_backup_under_load_is_the_database_at_one_point_in_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("busy.db");
    let db = open(&path);
    db.execute("CREATE TOPIC ev PARTITIONS 3").unwrap();
    db.subscribe("g", &Subscription::topic("ev")).unwrap();
    // About 8 MB, so the copy takes several steps.
    let filler = "x".repeat(4000);
    for chunk in 0..4 {
        let batch = (0..500)
            .map(|i| {
                Message::new(format!(
                    "{{\"fill\": {}, \"pad\": \"{filler}\"}}",
                    chunk * 500 + i
                ))
            })
            .collect();
        db.publish_batch("ev", batch).unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let published = Arc::new(Counts::default());
    let acked = Arc::new(Counts::default());
    let publisher = {
        let (db, stop, n) = (db.clone(), stop.clone(), published.clone());
        std::thread::spawn(move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n.attempted.fetch_add(1, Ordering::SeqCst);
                db.publish("ev", Message::new(format!("{{\"seq\": {seq}}}")))
                    .unwrap();
                n.confirmed.fetch_add(1, Ordering::SeqCst);
                seq += 1;
            }
        })
    };
    let consumer = {
        let (db, stop, n) = (db.clone(), stop.clone(), acked.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                let got = db
                    .consume(&ConsumeRequest::topic("ev", "g").max(20))
                    .unwrap();
                let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
                n.attempted.fetch_add(ids.len() as u64, Ordering::SeqCst);
                db.ack(&ids).unwrap();
                n.confirmed.fetch_add(ids.len() as u64, Ordering::SeqCst);
            }
        })
    };
    wait_for("the first publishes", || {
        published.confirmed.load(Ordering::SeqCst) >= 20
            && acked.confirmed.load(Ordering::SeqCst) >= 20
    });

    let before = (
        published.confirmed.load(Ordering::SeqCst),
        acked.confirmed.load(Ordering::SeqCst),
    );
    let mut at_snapshot = None;
    let copy = dir.path().join("copy.db");
    let mut steps = 0;
    let stats = db
        .backup(&copy, |_, _| {
            steps += 1;
            if at_snapshot.is_none() {
                // The snapshot is taken before the first step reports:
                // nothing attempted after this can be in the copy. Let the
                // workers go on while the copy runs.
                at_snapshot = Some((
                    published.attempted.load(Ordering::SeqCst),
                    acked.attempted.load(Ordering::SeqCst),
                ));
                let p = published.confirmed.load(Ordering::SeqCst);
                let a = acked.confirmed.load(Ordering::SeqCst);
                wait_for("publishes and acks during the copy", || {
                    published.confirmed.load(Ordering::SeqCst) >= p + 50
                        && acked.confirmed.load(Ordering::SeqCst) >= a + 50
                });
            }
        })
        .unwrap();
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    consumer.join().unwrap();
    let (pub_hi, ack_hi) = at_snapshot.unwrap();
    assert!(steps > 2, "{steps} steps for {stats:?}");

    let c = open(&copy);
    c.check().unwrap();
    let live = rows(
        &c,
        "SELECT COUNT(*) AS n, MIN(seq) AS lo, MAX(seq) AS hi FROM ev WHERE seq IS NOT NULL",
    );
    let n = live[0]["n"].as_u64().unwrap();
    assert!(
        (before.0..=pub_hi).contains(&n),
        "{n} not in {}..={pub_hi}",
        before.0
    );
    assert_eq!(
        (live[0]["lo"].as_u64(), live[0]["hi"].as_u64()),
        (Some(0), Some(n - 1))
    );
    let total = c.topic_stats("ev").unwrap().messages;
    assert_eq!(total, 2000 + n);
    let g = &c.group_stats(Some("ev")).unwrap()[0];
    let acked_in_copy = total - g.pending - g.lag;
    assert!(
        (before.1..=ack_hi).contains(&acked_in_copy),
        "{acked_in_copy} acked, not in {}..={ack_hi}",
        before.1
    );
    // The source went on past the copy.
    let source_total = db.topic_stats("ev").unwrap().messages;
    assert!(source_total >= total + 50, "{source_total} vs {total}");
}
