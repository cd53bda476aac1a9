//! The file: one 0600 SQLite file, refused when foreign or newer, read-only mode.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::os::unix::fs::PermissionsExt;

use mqlite::{Database, Durability, Error, Message};

fn files_in(dir: &std::path::Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn the_linked_sqlite_is_new_enough() {
    let v: Vec<u32> = mqlite::sqlite_version()
        .split('.')
        .map(|p| p.parse().unwrap())
        .collect();
    assert!(
        v >= vec![3, 51, 3],
        "SQLite {v:?} carries the WAL-reset bug; need 3.51.3 or newer"
    );
}

#[test]
fn a_new_database_is_one_0600_file_after_a_clean_close() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shop.db");
    {
        let db = Database::open(&path).unwrap();
        db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a'").unwrap();
        let clone = db.clone();
        std::thread::spawn(move || clone.execute("PUBLISH jobs 'b'").unwrap())
            .join()
            .unwrap();
        assert!(files_in(dir.path()).len() > 1, "WAL is in use while open");
    }
    assert_eq!(files_in(dir.path()), ["shop.db"]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let db = Database::open(&path).unwrap();
    assert_eq!(
        db.topic_stats("jobs").unwrap().messages,
        2,
        "survives reopen"
    );
}

#[test]
fn wal_mode_and_full_durability_by_default() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.db");
    drop(Database::open(&path).unwrap());
    let conn = header_modes(&path);
    assert_eq!(conn.0, "wal");
    // No auto-vacuum: a drain gives space back with VACUUM instead (see
    // space_comes_back_after_a_queue_is_drained).
    assert_eq!(conn.1, 0, "auto_vacuum = NONE");
}

/// Journal mode and auto_vacuum, read from the database header: bytes 18-19
/// are 2 in WAL mode; offset 52 (largest root page) is non-zero with
/// auto-vacuum, and offset 64 is non-zero for incremental vacuum.
fn header_modes(path: &std::path::Path) -> (String, i64) {
    let b = std::fs::read(path).expect("read db");
    let wal = if b[18] == 2 && b[19] == 2 {
        "wal"
    } else {
        "rollback"
    };
    let largest_root = u32::from_be_bytes([b[52], b[53], b[54], b[55]]);
    let incremental = u32::from_be_bytes([b[64], b[65], b[66], b[67]]);
    let av = match (largest_root, incremental) {
        (0, _) => 0,
        (_, 0) => 1,
        _ => 2,
    };
    (wal.to_string(), av)
}

#[test]
fn a_foreign_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let text = b"these are my notes, not a database\n".repeat(10);
    std::fs::write(&path, &text).unwrap();
    match Database::open(&path) {
        Err(Error::NotADatabase { reason, .. }) => assert!(reason.contains("not an SQLite file")),
        other => panic!("expected NotADatabase, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), text);
    assert_eq!(files_in(dir.path()), ["notes.txt"]);
}

#[test]
fn another_applications_sqlite_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    // An SQLite database made by someone else: build it with mqlite's own
    // engine under a different application id is not possible, so write a
    // minimal valid SQLite file by copying an mqlite file and zeroing its
    // application id (offset 68) -- a file with tables and a foreign id.
    drop(Database::open(&path).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[68..72].copy_from_slice(&[0, 0, 0, 7]);
    std::fs::write(&path, &bytes).unwrap();
    match Database::open(&path) {
        Err(e @ Error::NotADatabase { .. }) => {
            assert!(e.to_string().contains("another application"), "{e}")
        }
        other => panic!("expected NotADatabase, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn a_file_from_a_newer_mqlite_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("future.db");
    drop(Database::open(&path).unwrap());
    let mut bytes = std::fs::read(&path).unwrap();
    // user_version is the big-endian u32 at offset 60.
    bytes[60..64].copy_from_slice(&99u32.to_be_bytes());
    std::fs::write(&path, &bytes).unwrap();
    match Database::open(&path) {
        Err(e @ Error::NewerSchema { found: 99, .. }) => {
            assert!(e.to_string().contains("newer mqlite"))
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

#[test]
fn read_only_never_creates_and_never_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("missing.db");
    assert!(Database::builder(&path).read_only(true).open().is_err());
    assert!(files_in(dir.path()).is_empty());

    drop(
        Database::open(&path)
            .unwrap()
            .execute("CREATE QUEUE jobs; PUBLISH jobs 'a'")
            .unwrap(),
    );
    let before = std::fs::read(&path).unwrap();
    let ro = Database::builder(&path).read_only(true).open().unwrap();
    assert_eq!(
        ro.execute("SELECT COUNT(*) AS n FROM jobs").unwrap().rows[0][0],
        mqlite::Value::Int(1)
    );
    let e = ro.execute("PUBLISH jobs 'b'").unwrap_err();
    assert!(matches!(e, Error::ReadOnly(_)), "{e}");
    assert!(ro.execute("CONSUME FROM jobs").is_err());
    drop(ro);
    assert_eq!(std::fs::read(&path).unwrap(), before);
    assert_eq!(
        files_in(dir.path()),
        ["missing.db"],
        "no -wal/-shm left behind"
    );
}

/// Fills a queue with 10 MB, drains it, and returns the file size before
/// and after the drain (each measured after closing the handle).
fn fill_and_drain(path: &std::path::Path) -> (u64, u64) {
    let open = || {
        Database::builder(path)
            .durability(mqlite::Durability::Off)
            .open()
            .unwrap()
    };
    let db = open();
    db.execute("CREATE QUEUE q").unwrap();
    let payload = "x".repeat(1000);
    for _ in 0..10 {
        db.publish_batch(
            "q",
            (0..1000)
                .map(|_| mqlite::Message::new(payload.clone()))
                .collect(),
        )
        .unwrap();
    }
    drop(db);
    let full = std::fs::metadata(path).unwrap().len();
    let db = open();
    loop {
        let got = db
            .consume(&mqlite::ConsumeRequest::queue("q").max(500))
            .unwrap();
        if got.is_empty() {
            break;
        }
        db.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
            .unwrap();
    }
    assert_eq!(db.topic_stats("q").unwrap().messages, 0);
    // The handle still works on the rewritten file.
    db.publish("q", mqlite::Message::new("after")).unwrap();
    let got = db.consume(&mqlite::ConsumeRequest::queue("q")).unwrap();
    assert_eq!(got[0].payload_str(), "after");
    db.ack(&[got[0].id]).unwrap();
    drop(db);
    (full, std::fs::metadata(path).unwrap().len())
}

#[test]
fn space_comes_back_after_a_queue_is_drained() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("drain.db");
    let (full, drained) = fill_and_drain(&path);
    assert!(full > 10_000_000, "{full}");
    assert!(
        drained < full / 4,
        "file is {drained} bytes after the drain, {full} before"
    );
}

/// Files made before new files dropped auto-vacuum have
/// `auto_vacuum = INCREMENTAL`; a drain still gives their space back.
#[test]
fn space_comes_back_in_an_incremental_vacuum_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        // An empty file whose auto_vacuum mode is set before mqlite makes
        // its tables, as older mqlite builds did.
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA auto_vacuum = INCREMENTAL;")
            .unwrap();
    }
    let (full, drained) = fill_and_drain(&path);
    assert_eq!(header_modes(&path).1, 2, "still incremental");
    assert!(full > 10_000_000, "{full}");
    assert!(
        drained < full / 4,
        "file is {drained} bytes after the drain, {full} before"
    );
}

#[test]
fn handles_are_send_sync_and_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Database>();
    fn send<T: Send>() {}
    send::<mqlite::Transaction>();
    send::<mqlite::Session>();
}

#[test]
fn a_damaged_file_is_refused_with_a_clear_error_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.db");
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(std::iter::repeat_n(0xA5u8, 8192));
    std::fs::write(&path, &bytes).unwrap();
    match Database::open(&path) {
        Err(e @ Error::NotADatabase { .. }) => assert!(e.to_string().contains("damaged"), "{e}"),
        other => panic!("expected NotADatabase, got {other:?}"),
    }
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}

/// A single publish does not rewrite its partition's counters row (one page
/// less per commit); the counters may lag by up to 64 messages. Everything
/// that reads them must still see the true figures, through this handle or
/// another connection, before and after the lag is caught up, and after
/// messages are removed.
#[test]
fn counters_are_exact_while_single_publishes_leave_them_behind() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("counters.db");
    let db = Database::builder(&path)
        .durability(mqlite::Durability::Off)
        .open()
        .unwrap();
    let other = Database::open(&path).unwrap();
    db.execute("CREATE QUEUE q").unwrap();
    let check = |n: u64, bytes: u64, low: u64, next: u64| {
        for h in [&db, &other] {
            let s = h.topic_stats("q").unwrap();
            assert_eq!((s.messages, s.bytes), (n, bytes), "stats");
            let d = h.execute("DESCRIBE q").unwrap();
            let offsets = d
                .rows
                .iter()
                .find(|r| r[0].to_string() == "partition 0")
                .map(|r| r[1].to_string())
                .unwrap();
            assert_eq!(offsets, format!("offsets {low}..{next}"));
            let c = h.execute("CHECK").unwrap();
            assert_eq!(c.rows[0][0].to_string(), "ok");
        }
    };
    // Payloads of i + 1 bytes: 10 of them make 55 bytes.
    let payload = |i: usize| "x".repeat(i + 1);
    for i in 0..10 {
        let p = db.publish("q", mqlite::Message::new(payload(i))).unwrap();
        assert_eq!(p.offset, i as u64);
    }
    check(10, 55, 0, 10);
    // A group subscribing from the end starts after the lagging messages.
    db.execute("CREATE TOPIC t").unwrap();
    for _ in 0..3 {
        db.publish("t", mqlite::Message::new("a")).unwrap();
    }
    db.subscribe(
        "late",
        &mqlite::Subscription::topic("t").from(mqlite::StartFrom::Latest),
    )
    .unwrap();
    db.publish("t", mqlite::Message::new("b")).unwrap();
    let got = db
        .consume(&mqlite::ConsumeRequest::topic("t", "late"))
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].offset, got[0].payload_str().as_ref()), (3, "b"));

    // Past the lag limit: the counters are caught up along the way.
    for i in 10..150 {
        other
            .publish("q", mqlite::Message::new(payload(i)))
            .unwrap();
    }
    let total: u64 = (1..=150).sum();
    check(150, total, 0, 150);

    // Removing messages (ACKs of a queue) counts the lagging ones first.
    let got = db
        .consume(&mqlite::ConsumeRequest::queue("q").max(100))
        .unwrap();
    db.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
        .unwrap();
    let left: u64 = (101..=150).sum();
    check(50, left, 100, 150);
    db.publish("q", mqlite::Message::new("yy")).unwrap();
    check(51, left + 2, 100, 151);
    let got = db
        .consume(&mqlite::ConsumeRequest::queue("q").max(100))
        .unwrap();
    assert_eq!(got.len(), 51);
    db.ack(&got.iter().map(|d| d.id).collect::<Vec<_>>())
        .unwrap();
    check(0, 0, 151, 151);
    let p = db.publish("q", mqlite::Message::new("z")).unwrap();
    assert_eq!(p.offset, 151, "offsets go on after a drain");
}

/// A copy of `tests/fixtures/v2.db` (written by the version 2 build, see
/// tests/fixtures/README.md) in a temp dir, with `user_version` set.
fn old_file(version: i64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/v2.db"),
        &path,
    )
    .unwrap();
    let c = rusqlite::Connection::open(&path).unwrap();
    c.execute_batch(&format!("PRAGMA user_version = {version};"))
        .unwrap();
    drop(c);
    (dir, path)
}

fn user_version(p: &std::path::Path) -> i64 {
    rusqlite::Connection::open(p)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap()
}

/// A version 1 file (partition counters always exact) opens, keeps its
/// messages and becomes version 3 (counters may lag), which builds that
/// only know version 1 refuse.
#[test]
fn a_version_1_file_is_migrated() {
    let (_dir, path) = old_file(1);
    assert_eq!(user_version(&path), 1);

    // Read-only: readable as it is, left at version 1.
    let ro = Database::builder(&path).read_only(true).open().unwrap();
    assert_eq!(ro.topic_stats("orders").unwrap().messages, 3);
    drop(ro);
    assert_eq!(user_version(&path), 1);

    let db = Database::open(&path).unwrap();
    assert_eq!(user_version(&path), 3);
    let p = db.publish("orders", Message::new("c")).unwrap();
    assert_eq!(p.offset, 3);
    db.check().unwrap();
}

/// What the fixture's groups hold, as (topic, offset, state, delivery,
/// leased_at is set).
fn states(db: &Database) -> Vec<(String, u64, String, Option<u64>, bool)> {
    db.deliveries(None)
        .unwrap()
        .into_iter()
        .map(|d| {
            let state = d.state.to_string();
            (d.topic, d.offset, state, d.delivery, d.leased_at.is_some())
        })
        .collect()
}

/// A version 2 file (no attempt history, no lease start times) is read
/// as it is by a read-only handle, history and start times NULL, and is
/// upgraded in place by a read-write open: its leases, dead letters and
/// waiting messages carry on, and new attempts are remembered.
#[test]
fn a_version_2_file_is_read_read_only_and_upgraded_in_place() {
    const T0: i64 = 1_700_000_000_000;
    let (_dir, path) = old_file(2);
    let clock = mqlite::ManualClock::new(T0 + 1_000);
    let bytes = std::fs::read(&path).unwrap();
    let want = |s: &str, o, st: &str, d| (s.to_string(), o, st.to_string(), d, false);
    // By group: billing (on orders), then the queue's group jobs.
    let expected = vec![
        want("orders", 0, "in_flight", Some(5)),
        want("orders", 1, "blocked", None),
        want("orders", 2, "delayed", None),
        want("jobs", 1, "in_flight", Some(2)),
        want("jobs", 2, "waiting", Some(3)),
    ];
    {
        let ro = Database::builder(&path)
            .read_only(true)
            .clock(clock.clone())
            .open()
            .unwrap();
        assert_eq!(states(&ro), expected);
        let rs = ro.execute("SELECT id, reason, history FROM DLQ").unwrap();
        assert_eq!(rs.rows.len(), 1);
        assert!(rs.rows[0][2].is_null());
        let rs = ro
            .execute("SELECT state, COUNT(*) FROM DELIVERIES GROUP BY state ORDER BY state")
            .unwrap();
        assert_eq!(rs.rows.len(), 4);
    }
    assert_eq!(user_version(&path), 2);
    assert_eq!(std::fs::read(&path).unwrap(), bytes, "read-only wrote");

    let db = Database::builder(&path)
        .durability(Durability::Off)
        .clock(clock.clone())
        .open()
        .unwrap();
    assert_eq!(user_version(&path), 3);
    assert_eq!(states(&db), expected);
    db.check().unwrap();
    // The old lease's message is acked by its id; the waiting one comes
    // back as attempt 2, its first attempt remembered (without a length:
    // version 2 did not record when it was leased).
    db.ack(&[2]).unwrap();
    let got = db
        .consume(&mqlite::ConsumeRequest::queue("jobs").member("w3"))
        .unwrap();
    assert_eq!((got[0].offset, got[0].attempt), (2, 2));
    db.nack(&[got[0].id], &mqlite::NackAction::dead("still bad"))
        .unwrap();
    let rs = db
        .execute("SELECT id, history FROM DLQ ORDER BY id")
        .unwrap();
    assert!(rs.rows[0][1].is_null(), "the old dead letter has none");
    assert_eq!(
        rs.rows[1][1].as_str(),
        Some("1: w2 lease expired; 2: w3 dead 'still bad'")
    );
    // New leases record when they began.
    let got = db
        .consume(&mqlite::ConsumeRequest::topic("orders", "billing").member("b2"))
        .unwrap();
    assert!(got.is_empty(), "k1-2 still waits behind delivery 5");
    db.ack(&[5]).unwrap();
    let got = db
        .consume(&mqlite::ConsumeRequest::topic("orders", "billing").member("b2"))
        .unwrap();
    assert_eq!(got[0].offset, 1);
    let d = db.deliveries(Some("billing")).unwrap();
    assert_eq!(d[0].leased_at, Some(T0 + 1_000));
    assert_eq!(d[0].member.as_deref(), Some("b2"));
}

/// Writes garbage over the root page of `index` in a closed mqlite file
/// (the pages of the schema and the file header stay intact, so it opens).
fn damage_index(path: &std::path::Path, index: &str) {
    let c = mqlite::rusqlite::Connection::open(path).unwrap();
    let page_size: i64 = c.query_row("PRAGMA page_size", [], |r| r.get(0)).unwrap();
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = ?1",
            [index],
            |r| r.get(0),
        )
        .unwrap();
    drop(c);
    let mut bytes = std::fs::read(path).unwrap();
    let (root, page_size) = (
        usize::try_from(root).unwrap(),
        usize::try_from(page_size).unwrap(),
    );
    bytes[(root - 1) * page_size..root * page_size].fill(0xA5);
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn check_on_a_damaged_file_is_an_error_listing_the_damage() {
    // mq_dlq_group: integrity_check lists the damage and the other checks
    // run (CHECK used to return those rows as a success); the messages'
    // index: the checks themselves hit the damage.
    for index in ["mq_dlq_group", "mq_messages_position"] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("damaged.db");
        {
            let db = Database::builder(&path)
                .durability(Durability::Off)
                .open()
                .unwrap();
            db.execute("CREATE TOPIC ev PARTITIONS 1").unwrap();
            let batch: Vec<Message> = (0..2000)
                .map(|i| Message::new(format!("message {i:>40}")).key(format!("k{i}")))
                .collect();
            db.publish_batch("ev", batch).unwrap();
            assert_eq!(
                db.execute("CHECK").unwrap().rows,
                [[mqlite::Value::Text("ok".into())]]
            );
        } // closed: the WAL is checkpointed into the file and removed
        damage_index(&path, index);

        let db = Database::open(&path).unwrap();
        match db.execute("CHECK") {
            Err(e @ Error::CheckFailed { .. }) => {
                let Error::CheckFailed { problems } = &e else {
                    unreachable!()
                };
                assert!(!problems.is_empty(), "{index}");
                assert!(!problems.iter().any(|p| p == "ok"), "{problems:?}");
                let text = e.to_string();
                assert!(text.starts_with("CHECK found"), "{text}");
                assert!(text.contains(&problems[0]), "{text}");
            }
            other => panic!("{index}: expected CheckFailed, got {other:?}"),
        }
    }
}
