//! Replay, TAIL, EXPORT and IMPORT: reading history.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{fail, open, rows};
use mqlite::{ConsumeRequest, Error, FileProblem, Message, Value};
use serde_json::json;

fn payloads(db: &mqlite::Database, req: ConsumeRequest) -> Vec<String> {
    db.consume(&req.max(100))
        .unwrap()
        .iter()
        .map(|d| d.payload_str().into_owned())
        .collect()
}

#[test]
fn replay_moves_a_group_and_only_that_group() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC ev PARTITIONS 2; SUBSCRIBE GROUP a TO ev; SUBSCRIBE GROUP b TO ev")
        .unwrap();
    for i in 0..4 {
        db.publish("ev", Message::new(format!("m{i}")).partition(i % 2))
            .unwrap();
    }
    t.clock.advance(Duration::from_secs(3600));
    db.publish("ev", Message::new("late").partition(0)).unwrap();
    let all = db
        .consume(&ConsumeRequest::topic("ev", "a").max(100))
        .unwrap();
    assert_eq!(all.len(), 5);
    db.ack(&all.iter().map(|d| d.id).collect::<Vec<_>>())
        .unwrap();

    db.execute("REPLAY ev GROUP a FROM BEGINNING").unwrap();
    let mut again = payloads(db, ConsumeRequest::topic("ev", "a"));
    again.sort();
    assert_eq!(again, ["late", "m0", "m1", "m2", "m3"]);

    db.execute("REPLAY ev GROUP a FROM OFFSET 1 PARTITION 0")
        .unwrap();
    assert_eq!(
        payloads(db, ConsumeRequest::topic("ev", "a")),
        ["m2", "late"]
    );

    db.execute("REPLAY ev GROUP a FROM TIMESTAMP '-30m'")
        .unwrap();
    assert_eq!(payloads(db, ConsumeRequest::topic("ev", "a")), ["late"]);

    db.execute("REPLAY ev GROUP a FROM LATEST").unwrap();
    assert!(payloads(db, ConsumeRequest::topic("ev", "a")).is_empty());
    // In-flight deliveries past the new position are dropped: their ids are unknown now.
    db.execute("REPLAY ev GROUP a FROM BEGINNING").unwrap();
    let d = db.consume(&ConsumeRequest::topic("ev", "a")).unwrap();
    db.execute("REPLAY ev GROUP a FROM BEGINNING").unwrap();
    assert!(matches!(
        fail(db, &format!("ACK {}", d[0].id)),
        Error::UnknownDelivery(id) if id == d[0].id
    ));

    assert_eq!(
        payloads(db, ConsumeRequest::topic("ev", "b")).len(),
        5,
        "b untouched"
    );
    assert!(matches!(
        fail(db, "REPLAY ev GROUP nope FROM BEGINNING"),
        Error::GroupNotFound(g) if g == "nope"
    ));
    assert!(matches!(
        fail(db, "REPLAY nope GROUP a FROM BEGINNING"),
        Error::TopicNotFound(t) if t == "nope"
    ));
    let e = fail(db, "REPLAY ev GROUP a FROM OFFSET 0 PARTITION 7");
    assert!(
        matches!(
            &e,
            Error::PartitionOutOfRange { topic, partition: 7, statement, .. }
                if topic == "ev" && statement == "REPLAY"
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("partition 7 does not exist"), "{e}");
    assert!(matches!(fail(db, "REPLAY ev GROUP a"), Error::Syntax(_)));
}

#[test]
fn tail_follows_new_messages_until_interrupted() {
    let t = open();
    let db = t.db.clone();
    db.execute("CREATE TOPIC logs PARTITIONS 2; PUBLISH logs 'before'")
        .unwrap();
    let mut session = db.session();
    let stop = session.interrupt_flag();
    let publisher = {
        let db = db.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            db.execute(
                "PUBLISH logs {\"level\": \"info\"}, {\"level\": \"error\", \"msg\": \"disk\"}",
            )
            .unwrap();
        })
    };
    let stmt = mqlite::lang::parse_statement("TAIL logs WHERE level = 'error'").unwrap();
    let mut seen = Vec::new();
    session
        .run(&stmt, &mut |rs| {
            for r in &rs.rows {
                seen.push(r[5].to_string());
            }
            stop.store(true, Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    publisher.join().unwrap();
    assert_eq!(seen, ["{\"level\": \"error\", \"msg\": \"disk\"}"]);
    assert!(matches!(fail(&db, "TAIL nope"), Error::TopicNotFound(t) if t == "nope"));
}

#[test]
fn export_then_import_round_trips_messages() {
    let t = open();
    let db = &t.db;
    let file = t.dir.path().join("orders.jsonl");
    let f = file.to_str().unwrap();
    db.execute("CREATE TOPIC orders; CREATE TOPIC copy")
        .unwrap();
    db.execute("PUBLISH orders KEY 'k1' HEADERS (src = 'web') {\"n\": 1}, {\"n\": 2}")
        .unwrap();
    db.execute("PUBLISH orders 'plain text'").unwrap();
    assert_eq!(
        rows(
            db,
            &format!("EXPORT orders TO '{f}' WHERE n > 1 OR key IS NULL")
        ),
        [json!({"exported": 2})]
    );
    let e = fail(db, &format!("EXPORT orders TO '{f}'"));
    assert!(
        matches!(&e, Error::OutputFile { path, problem: FileProblem::Exists } if path == &file),
        "an existing file is refused: {e:?}"
    );
    assert!(e.to_string().contains("exists: add OVERWRITE"), "{e}");
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 2);
    assert_eq!(
        rows(db, &format!("EXPORT orders TO '{f}' OVERWRITE")),
        [json!({"exported": 3})]
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().lines().count(), 3);
    assert_eq!(
        rows(db, &format!("IMPORT '{f}' INTO copy")),
        [json!({"imported": 3})]
    );
    let a = rows(db, "SELECT key, headers, payload FROM orders");
    let b = rows(db, "SELECT key, headers, payload FROM copy");
    assert_eq!(a, b);

    std::fs::write(&file, "{\"payload\": \"ok\"}\nnot json\n").unwrap();
    let e = fail(db, &format!("IMPORT '{f}' INTO copy"));
    assert!(
        matches!(&e, Error::ImportLine { path, line: 2, reason } if path == &file && reason.starts_with("not JSON")),
        "{e:?}"
    );
    assert!(e.to_string().contains("line 2"), "{e}");
    assert_eq!(
        rows(db, "SELECT COUNT(*) AS n FROM copy")[0]["n"],
        3,
        "all or nothing"
    );
    let e = fail(db, "IMPORT '/nonexistent/x.jsonl' INTO copy");
    assert!(
        matches!(&e, Error::ImportFile { source, .. } if source.kind() == std::io::ErrorKind::NotFound),
        "{e:?}"
    );
    assert!(e.to_string().contains("cannot read"), "{e}");
    assert!(matches!(
        fail(db, "EXPORT nope TO '/tmp/x.jsonl'"),
        Error::TopicNotFound(t) if t == "nope"
    ));
}

#[test]
fn export_then_import_is_lossless() {
    let t = open();
    let db = &t.db;
    let file = t.dir.path().join("bin.jsonl");
    let f = file.to_str().unwrap();
    db.execute("CREATE TOPIC src PARTITIONS 2; CREATE TOPIC copy PARTITIONS 2")
        .unwrap();
    db.publish(
        "src",
        Message::new(vec![0xff, 0x00, 0xfe])
            .key("bin")
            .header("type", "raw"),
    )
    .unwrap();
    t.clock.advance(Duration::from_secs(60));
    db.publish("src", Message::new("{\"n\": 1}").partition(1))
        .unwrap();
    t.clock.advance(Duration::from_secs(60));
    db.publish("src", Message::new("héllo").partition(0))
        .unwrap();
    rows(db, &format!("EXPORT src TO '{f}'"));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(r#""payload_base64":"/wD+""#), "{text}");
    assert!(text.contains(r#""payload":"héllo""#), "{text}");
    assert!(!text.contains('\u{fffd}'), "{text}");

    // An hour later: the copies keep the original times, not the import's.
    t.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        rows(db, &format!("IMPORT '{f}' INTO copy")),
        [json!({"imported": 3})]
    );
    let all = "SELECT partition, offset, timestamp, key, headers, payload";
    let a = db.execute(&format!("{all} FROM src")).unwrap();
    let b = db.execute(&format!("{all} FROM copy")).unwrap();
    assert_eq!(
        a, b,
        "byte for byte, with keys, headers, times and partitions"
    );
    let bin = b.iter().find(|r| r.get_str("key") == Some("bin")).unwrap();
    assert_eq!(bin.get_bytes("payload"), Some(&[0xff, 0x00, 0xfe][..]));
    assert_eq!(
        bin.get("payload"),
        Some(&Value::Bytes(vec![0xff, 0x00, 0xfe]))
    );

    // Importing again: times never go back within a partition, so the
    // copies of older messages take their partition's latest time.
    rows(db, &format!("IMPORT '{f}' INTO copy"));
    let times = db
        .execute("SELECT partition, timestamp FROM copy WHERE offset >= 1")
        .unwrap();
    for row in &times {
        let p = row.get_i64("partition").unwrap();
        let latest = b
            .iter()
            .filter(|r| r.get_i64("partition") == Some(p))
            .filter_map(|r| r.get("timestamp").cloned())
            .next_back()
            .unwrap();
        assert!(row.get("timestamp").unwrap().as_timestamp() >= latest.as_timestamp());
    }
    // A time in the future comes in as now.
    std::fs::write(
        &file,
        "{\"payload\": \"later\", \"timestamp\": \"2999-01-01T00:00:00Z\"}\n",
    )
    .unwrap();
    db.execute("CREATE TOPIC one").unwrap();
    rows(db, &format!("IMPORT '{f}' INTO one"));
    let now = Value::Timestamp(db.now_ms());
    assert_eq!(
        db.execute("SELECT timestamp FROM one").unwrap().rows[0][0],
        now
    );
}

#[test]
fn export_never_writes_the_database_or_its_files() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC t; PUBLISH t 'important'").unwrap();
    let dir = t.dir.path();
    let path = db.path().to_path_buf();
    let name = path.file_name().unwrap().to_str().unwrap().to_string();
    std::os::unix::fs::symlink(&path, dir.join("link.db")).unwrap();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let wal = dir.join(format!("{name}-wal"));
    std::fs::hard_link(&wal, dir.join("hard")).unwrap();
    let d = dir.to_str().unwrap();
    let mut targets = vec![
        path.to_str().unwrap().to_string(),
        format!("{d}/./{name}"),
        format!("{d}/sub/../{name}"),
        format!("{d}/link.db"),
        format!("{d}/hard"),
    ];
    for suffix in ["-wal", "-shm", "-journal"] {
        targets.push(format!("{d}/sub/../{name}{suffix}"));
    }
    for target in &targets {
        for overwrite in ["", " OVERWRITE"] {
            let e = fail(db, &format!("EXPORT t TO '{target}'{overwrite}"));
            assert!(
                matches!(
                    e,
                    Error::OutputFile {
                        problem: FileProblem::DatabaseFile,
                        ..
                    }
                ),
                "{target}{overwrite}: {e:?}"
            );
            assert!(e.to_string().contains("database file"), "{e}");
        }
    }
    assert!(!dir.join(format!("{name}-journal")).exists());
    let again = mqlite::Database::open(&path).unwrap();
    assert_eq!(
        rows(&again, "SELECT payload FROM t"),
        [json!({"payload": "important"})]
    );
}

#[test]
fn export_files_are_private_and_a_failed_overwrite_keeps_the_old_file() {
    use std::os::unix::fs::PermissionsExt;
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC t; PUBLISH t 'a'").unwrap();
    let file = t.dir.path().join("out.jsonl");
    let f = file.to_str().unwrap();
    rows(db, &format!("EXPORT t TO '{f}'"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "EXPORT creates 0600 files");
    // OVERWRITE of an existing file also leaves a 0600 file.
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    rows(db, &format!("EXPORT t TO '{f}' OVERWRITE"));
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    // A failing EXPORT (no such topic) leaves the old file and no temporary one.
    let before = std::fs::read(&file).unwrap();
    assert!(matches!(
        fail(db, &format!("EXPORT nope TO '{f}' OVERWRITE")),
        Error::TopicNotFound(_)
    ));
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let names: Vec<_> = std::fs::read_dir(t.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.contains("out.jsonl"))
        .collect();
    assert_eq!(names, ["out.jsonl"]);
}

#[test]
fn import_reads_in_bounded_memory_and_stays_all_or_nothing() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC copy").unwrap();
    // An endless line is refused at the line limit instead of filling memory.
    let e = fail(db, "IMPORT '/dev/zero' INTO copy");
    assert!(
        matches!(&e, Error::ImportLine { line: 1, reason, .. } if reason.contains("longer than")),
        "{e:?}"
    );
    assert!(e.to_string().starts_with("/dev/zero line 1: "), "{e}");
    // Several chunks of lines, the last one bad: nothing is imported.
    let file = t.dir.path().join("in.jsonl");
    let mut text: String = (0..2500)
        .map(|i| format!("{{\"payload\": \"m{i}\"}}\n"))
        .collect();
    text.push_str("{\"key\": 5, \"payload\": \"x\"}\n");
    std::fs::write(&file, &text).unwrap();
    let f = file.to_str().unwrap();
    let e = fail(db, &format!("IMPORT '{f}' INTO copy"));
    assert!(matches!(e, Error::ImportLine { line: 2501, .. }), "{e:?}");
    assert_eq!(rows(db, "SELECT COUNT(*) AS n FROM copy")[0]["n"], 0);
    // Without the bad line, every chunk lands, in order.
    text.truncate(text.rfind("{\"key\"").unwrap());
    std::fs::write(&file, &text).unwrap();
    assert_eq!(
        rows(db, &format!("IMPORT '{f}' INTO copy")),
        [json!({"imported": 2500})]
    );
    assert_eq!(
        rows(db, "SELECT payload FROM copy WHERE offset = 2499"),
        [json!({"payload": "m2499"})]
    );
}

#[test]
fn scan_reads_every_message_in_order_without_touching_groups() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC big PARTITIONS 2; SUBSCRIBE GROUP g TO big")
        .unwrap();
    let msgs: Vec<Message> = (0..2500u32)
        .map(|i| {
            Message::new(format!("m{i}"))
                .partition(i % 2)
                .key(format!("k{i}"))
                .header("n", i.to_string())
        })
        .collect();
    db.publish_batch("big", msgs).unwrap();
    let mut seen = Vec::new();
    let mut meta = Vec::new();
    let n = db
        .scan("big", |r| {
            seen.push((
                r.partition(),
                r.offset(),
                r.key().map(String::from),
                r.payload().to_vec(),
            ));
            meta.push((r.timestamp(), r.headers().map(String::from)));
            true
        })
        .unwrap();
    assert_eq!(n, 2500);
    assert_eq!(seen.len(), 2500);
    assert!(
        seen.windows(2).all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)),
        "partition, offset order"
    );
    assert_eq!(seen[0], (0, 0, Some("k0".into()), b"m0".to_vec()));
    assert_eq!(seen[1250], (1, 0, Some("k1".into()), b"m1".to_vec()));
    assert!(meta[0].0 > 0, "timestamp read");
    assert_eq!(meta[1250].1.as_deref(), Some(r#"{"n":"1"}"#));
    let mut first = 0;
    assert_eq!(
        db.scan("big", |_| {
            first += 1;
            first < 10
        })
        .unwrap(),
        10,
        "stops when told"
    );
    assert_eq!(
        rows(db, "SELECT lag FROM GROUPS")[0]["lag"],
        2500,
        "no group state changed"
    );
    assert!(db.scan("nope", |_| true).is_err());
}

use proptest::prelude::Strategy as _;

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// The IMPORT fuzz target's property (fuzz/fuzz_targets/import.rs), in
    /// every `cargo test`: any file content gives an error that leaves the
    /// topic unchanged, or exactly one message per non-blank line.
    #[test]
    fn import_of_any_bytes_is_all_or_nothing(
        lines in proptest::collection::vec(
            proptest::prop_oneof![
                "[a-z ]{0,12}".prop_map(|s| format!("{{\"payload\": \"{s}\"}}").into_bytes()),
                "[a-z]{0,6}".prop_map(|k| format!("{{\"key\": \"{k}\", \"headers\": {{\"h\": \"v\"}}, \"payload\": {{\"n\": 1}}}}").into_bytes()),
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40),
                proptest::prelude::Just(b"   ".to_vec()),
            ],
            0..12,
        )
    ) {
        let t = open();
        let db = &t.db;
        db.execute("CREATE TOPIC copy").unwrap();
        let file = t.dir.path().join("in.jsonl");
        let data = lines.join(&b'\n');
        std::fs::write(&file, &data).unwrap();
        let before = rows(db, "SELECT COUNT(*) AS n FROM copy")[0]["n"].as_i64().unwrap();
        match db.execute(&format!("IMPORT '{}' INTO copy", file.display())) {
            Ok(rs) => {
                let n = rs.rows[0][0].clone();
                let text = String::from_utf8_lossy(&data);
                let lines = text.lines().filter(|l| !l.trim().is_empty()).count() as i64;
                proptest::prop_assert_eq!(n, mqlite::Value::Int(lines));
                let after = rows(db, "SELECT COUNT(*) AS n FROM copy")[0]["n"].as_i64().unwrap();
                proptest::prop_assert_eq!(after, before + lines);
            }
            Err(e) => {
                proptest::prop_assert!(!e.to_string().is_empty());
                let after = rows(db, "SELECT COUNT(*) AS n FROM copy")[0]["n"].as_i64().unwrap();
                proptest::prop_assert_eq!(after, before);
            }
        }
    }
}
