//! Feeds arbitrary bytes to `IMPORT 'file' INTO q` as the file's content.
//! It must never panic; a failed IMPORT leaves the queue unchanged; a
//! successful one adds exactly the number of messages it reports, one per
//! non-blank line.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use mqlite::{Database, Durability, Value};

/// One database and one input file per fuzzing process, in the temp dir.
fn setup() -> &'static (Database, PathBuf) {
    static SETUP: OnceLock<(Database, PathBuf)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("mqlite-fuzz-import-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let db = Database::builder(dir.join("import.db"))
            .durability(Durability::Off)
            .open()
            .expect("open");
        db.execute("CREATE QUEUE IF NOT EXISTS q").expect("create");
        (db, dir.join("input.jsonl"))
    })
}

fn count(db: &Database) -> i64 {
    match db.execute("SELECT COUNT(*) FROM q").expect("count").rows[0][0] {
        Value::Int(n) => n,
        ref other => panic!("COUNT(*) gave {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let (db, input) = setup();
    std::fs::write(input, data).expect("write input");
    let before = count(db);
    let statement = format!("IMPORT '{}' INTO q", input.display());
    match db.execute(&statement) {
        Ok(rs) => {
            let Value::Int(n) = rs.rows[0][0] else {
                panic!("IMPORT result {rs:?}");
            };
            assert_eq!(count(db), before + n, "IMPORT reported {n} messages");
            let text = String::from_utf8_lossy(data);
            let lines = text.lines().filter(|l| !l.trim().is_empty()).count();
            assert_eq!(n as usize, lines, "one message per non-blank line");
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_eq!(count(db), before, "a failed IMPORT changed the queue: {e}");
        }
    }
    if count(db) > 10_000 {
        db.execute("PURGE q").expect("purge");
    }
});
