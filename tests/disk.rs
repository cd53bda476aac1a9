//! Space on disk: PURGE and DROP give it back, publishing leaves a reserve
//! free so PURGE works on a disk that messages filled, and a full disk is
//! an error that names the statement and says nothing was applied.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use mqlite::{Database, Error, Message};

fn fill(db: &Database, topic: &str, n: usize) {
    let payload = "x".repeat(8000);
    for _ in 0..n / 100 {
        db.publish_batch(
            topic,
            (0..100).map(|_| Message::new(payload.clone())).collect(),
        )
        .unwrap();
    }
}

/// The file's size after the handle closed.
fn closed_size(db: Database) -> u64 {
    let path = db.path().to_path_buf();
    drop(db);
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn purge_and_drop_give_space_back() {
    let dir = tempfile::tempdir().unwrap();
    for statement in ["PURGE t", "DROP TOPIC t", "DROP QUEUE q"] {
        let path = dir
            .path()
            .join(format!("{}.db", statement.replace(' ', "_")));
        let open = || {
            Database::builder(&path)
                .durability(mqlite::Durability::Off)
                .open()
                .unwrap()
        };
        let db = open();
        db.execute("CREATE TOPIC t; CREATE QUEUE q; SUBSCRIBE GROUP g TO t")
            .unwrap();
        fill(&db, "t", 2000);
        fill(&db, "q", 2000);
        let other = if statement.ends_with('q') { "t" } else { "q" };
        let full = closed_size(db);
        assert!(full > 30_000_000, "{full}");
        let db = open();
        db.execute(&format!("{statement}; PURGE {other}")).unwrap();
        let after = closed_size(db);
        assert!(
            after < 1_000_000,
            "{statement}: {after} bytes left of {full}"
        );
    }
}

/// A small tmpfs mounted for one test, unmounted when dropped (root only).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Tmpfs(dir.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_disk_filled_by_messages_can_still_be_purged() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(dir.path(), "24m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root; the reserve is not exercised");
        return;
    };
    let path = dir.path().join("full.db");
    let db = Database::open(&path).unwrap();
    db.execute("CREATE QUEUE q").unwrap();
    let payload = "x".repeat(8000);
    let mut published = 0u64;
    let refused = loop {
        match db.publish("q", Message::new(payload.clone())) {
            Ok(_) => published += 1,
            Err(e) => break e,
        }
        assert!(published < 10_000, "a 24 MB disk never filled");
    };
    match &refused {
        Error::DiskFull { statement, reason } => {
            assert_eq!(statement, "PUBLISH");
            assert!(reason.contains("free"), "{reason}");
        }
        other => panic!("expected DiskFull, got {other:?}"),
    }
    let text = refused.to_string();
    assert!(
        text.contains("PUBLISH was not applied") && text.contains("PURGE"),
        "{text}"
    );
    // Nothing that was acknowledged is lost.
    let n = db.execute("SELECT COUNT(*) FROM q").unwrap().rows[0][0].clone();
    assert_eq!(n, mqlite::Value::Int(published as i64));
    // The statement a person reaches for works, and gives the space back.
    let purged = db.execute("PURGE q").unwrap().rows[0][0].clone();
    assert_eq!(purged, mqlite::Value::Int(published as i64));
    db.publish("q", Message::new("after")).unwrap();
    let size = closed_size(db);
    assert!(size < 1_000_000, "{size} bytes after PURGE");
}

#[test]
fn a_full_disk_is_reported_as_not_applied_naming_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_fs) = Tmpfs::mount(dir.path(), "8m") else {
        eprintln!("SKIPPED: mounting a tmpfs needs root; SQLITE_FULL is not exercised");
        return;
    };
    let path = dir.path().join("full.db");
    // No reserve: the disk really fills.
    let db = Database::builder(&path).disk_reserve(0).open().unwrap();
    db.execute("CREATE QUEUE q").unwrap();
    let payload = "x".repeat(8000);
    let mut published = 0i64;
    let failed = loop {
        match db.execute(&format!("PUBLISH q '{payload}'")) {
            Ok(_) => published += 1,
            Err(e) => break e,
        }
        assert!(published < 10_000, "an 8 MB disk never filled");
    };
    assert!(
        matches!(&failed, Error::DiskFull { statement, .. } if statement == "PUBLISH"),
        "{failed:?}"
    );
    assert!(failed.to_string().contains("not applied"), "{failed}");
    // A CONSUME that cannot write says so for CONSUME, not for publishes.
    let mut consumed = 0;
    while let Ok(d) = db.execute("CONSUME 100 FROM q") {
        consumed += d.rows.len();
        if d.rows.is_empty() {
            break;
        }
    }
    let e = db.execute("CONSUME 100 FROM q");
    if let Err(e) = e {
        assert!(!e.to_string().contains("dedup"), "{e}");
    }
    drop(db);
    // Every acknowledged publish is there.
    let db = Database::builder(&path).read_only(true).open().unwrap();
    let n = db.execute("SELECT COUNT(*) FROM q").unwrap().rows[0][0].clone();
    assert_eq!(n, mqlite::Value::Int(published), "consumed {consumed}");
}
