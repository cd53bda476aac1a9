//! Helpers shared by the integration tests: real files in temp dirs.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included
#![allow(dead_code)]

use std::path::PathBuf;

use mqlite::{Database, Durability, ManualClock};
use tempfile::TempDir;

/// A fresh database file in its own temp dir, with a manual clock.
pub struct TestDb {
    pub dir: TempDir,
    pub path: PathBuf,
    pub db: Database,
    pub clock: ManualClock,
}

pub const T0: i64 = 1_700_000_000_000;

pub fn open() -> TestDb {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("test.db");
    let clock = ManualClock::new(T0);
    let db = Database::builder(&path)
        .durability(Durability::Off)
        .clock(clock.clone())
        .open()
        .expect("open");
    TestDb {
        dir,
        path,
        db,
        clock,
    }
}

/// Runs statements and returns the last result's rows as JSON objects.
pub fn rows(db: &Database, sql: &str) -> Vec<serde_json::Value> {
    let rs = db.execute(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    rs.rows
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            for (c, v) in rs.columns.iter().zip(r) {
                m.insert(c.clone(), v.to_json());
            }
            serde_json::Value::Object(m)
        })
        .collect()
}

/// The error text of a statement that must fail.
pub fn err(db: &Database, sql: &str) -> String {
    match db.execute(sql) {
        Ok(rs) => panic!("{sql}: expected an error, got {rs:?}"),
        Err(e) => e.to_string(),
    }
}

/// The error of a statement that must fail.
pub fn fail(db: &Database, sql: &str) -> mqlite::Error {
    match db.execute(sql) {
        Ok(rs) => panic!("{sql}: expected an error, got {rs:?}"),
        Err(e) => e,
    }
}

/// The bytes of every table that matters, to prove a failed statement changed nothing.
pub fn snapshot(db: &Database) -> String {
    let mut s = String::new();
    for q in [
        "SELECT * FROM TOPICS",
        "SELECT * FROM GROUPS",
        "SELECT * FROM DLQ",
    ] {
        s.push_str(&format!("{:?}\n", db.execute(q).expect(q)));
    }
    for t in db.topic_names().expect("names") {
        let q = format!("SELECT * FROM \"{t}\"");
        s.push_str(&format!("{:?}\n", db.execute(&q).expect("select")));
    }
    s
}
