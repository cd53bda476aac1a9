//! Waiting for the write lock: a transaction that can no longer commit
//! releases it at once, and a thread never waits for a lock it holds itself.
//! (A lock wait past the busy timeout, `Error::LockTimeout`, is tested in
//! `src/db.rs`, where the timeout can be shortened.)
//!
//! The test binary re-runs itself as the child processes.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::path::Path;
use std::process::Command;

use mqlite::{ConsumeRequest, Database, Durability, Error, Message, NackAction, Session};
use serde_json::json;

const ROLE: &str = "MQLITE_LOCKING_ROLE";
const DB: &str = "MQLITE_LOCKING_DB";

/// The child side: does nothing unless started by a parent test.
#[test]
fn child_process() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let path = std::env::var(DB).expect("db path");
    match role.as_str() {
        // A writer in another process, with the normal busy timeout: it
        // waits as long as mqlite waits for a lock (4 x 10 s), then fails.
        "publish" => {
            let db = Database::open(&path).expect("open");
            db.publish("t", Message::new("from another process"))
                .unwrap_or_else(|e| panic!("publish from another process: {e}"));
        }
        other => panic!("unknown role {other}"),
    }
}

/// Publishes 'from another process' to `t` from a child process; panics
/// with the child's stderr when it fails.
fn publish_from_another_process(path: &Path) {
    let out = Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env(ROLE, "publish")
        .env(DB, path)
        .output()
        .expect("spawn");
    assert!(
        out.status.success(),
        "the other process could not publish: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn is_child() -> bool {
    std::env::var(ROLE).is_ok()
}

fn open(path: &Path) -> Database {
    Database::builder(path)
        .durability(Durability::Off)
        .open()
        .expect("open")
}

fn payloads(db: &Database) -> Vec<serde_json::Value> {
    let rs = db.execute("SELECT payload FROM t").unwrap();
    rs.rows.iter().map(|r| r[0].to_json()).collect()
}

fn run(s: &mut Session, sql: &str) -> mqlite::Result<mqlite::ResultSet> {
    s.execute_statement(&mqlite::lang::parse_statement(sql).unwrap())
}

/// The shell's case: `BEGIN; PUBLISH t 'q'; ACK 12345;` and the user has
/// not typed ROLLBACK yet. Without the release, the other process waits
/// 40 s and fails.
#[test]
fn a_fenced_transaction_in_a_session_releases_the_write_lock_at_once() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fenced.db");
    let db = open(&path);
    db.execute("CREATE QUEUE t").unwrap();

    let mut s = db.session();
    run(&mut s, "BEGIN").unwrap();
    run(&mut s, "PUBLISH t 'q'").unwrap();
    let e = run(&mut s, "ACK 12345").unwrap_err();
    assert!(matches!(e, Error::UnknownDelivery(12345)), "{e}");
    assert!(s.in_transaction(), "the session still has its transaction");

    publish_from_another_process(&path);

    let e = run(&mut s, "PUBLISH t 'r'").unwrap_err();
    assert!(matches!(e, Error::TransactionAborted(_)), "{e}");
    let e = run(&mut s, "COMMIT").unwrap_err();
    assert!(matches!(e, Error::TransactionAborted(_)), "{e}");
    assert!(
        e.to_string()
            .contains("it was rolled back and its write lock released"),
        "{e}"
    );
    assert!(e.to_string().contains("delivery 12345 is unknown"), "{e}");
    assert!(!s.in_transaction());
    assert_eq!(payloads(&db), [json!("from another process")]);
}

/// The library's case, and what ends the transaction afterwards: rollback,
/// drop and commit still work, and the connection the application changed
/// serves the next transaction only as mqlite set it up.
#[test]
fn a_fenced_transaction_releases_the_write_lock_and_still_ends_cleanly() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fenced.db");
    let db = open(&path);
    db.execute("CREATE QUEUE t").unwrap();
    let busy_timeout = |tx: &mqlite::Transaction| -> i64 {
        tx.connection()
            .unwrap()
            .query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap()
    };

    // Rolled back by the caller after the fence.
    let mut tx = db.transaction().unwrap();
    let normal = busy_timeout(&tx);
    tx.connection()
        .unwrap()
        .busy_timeout(std::time::Duration::from_millis(1))
        .unwrap();
    tx.publish("t", Message::new("q")).unwrap();
    assert!(matches!(
        tx.ack(&[12345]),
        Err(Error::UnknownDelivery(12345))
    ));
    publish_from_another_process(&path);
    // The lock is gone, so this thread may write through the handle too.
    db.publish("t", Message::new("same thread")).unwrap();
    assert!(matches!(tx.connection(), Err(Error::TransactionAborted(_))));
    assert!(matches!(
        tx.consume(&ConsumeRequest::queue("t")),
        Err(Error::TransactionAborted(_))
    ));
    tx.rollback().unwrap();
    assert_eq!(
        payloads(&db),
        [json!("from another process"), json!("same thread")]
    );

    // The next transaction works, on a connection as mqlite set it up.
    let mut tx = db.transaction().unwrap();
    assert_eq!(busy_timeout(&tx), normal);
    tx.publish("t", Message::new("next")).unwrap();
    tx.commit().unwrap();

    // Dropped after the fence, and committed after the fence.
    let mut tx = db.transaction().unwrap();
    assert!(tx.nack(&[777], &NackAction::Now).is_err());
    drop(tx);
    let mut tx = db.transaction().unwrap();
    tx.publish("t", Message::new("never")).unwrap();
    assert!(tx.ack(&[12345]).is_err());
    let e = tx.commit().unwrap_err();
    assert!(matches!(e, Error::TransactionAborted(_)), "{e}");
    db.publish("t", Message::new("last")).unwrap();
    assert_eq!(
        payloads(&db),
        [
            json!("from another process"),
            json!("same thread"),
            json!("next"),
            json!("last")
        ]
    );
}

/// Without the check each of these writes waits 4 x 10 s for the lock the
/// thread's own transaction holds, and then fails as `CommitAmbiguous`.
#[test]
fn a_write_on_the_thread_that_holds_a_transaction_fails_at_once() {
    if is_child() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("self.db");
    let db = open(&path);
    db.execute("CREATE QUEUE t").unwrap();

    let mut tx = db.transaction().unwrap();
    let refused = |r: Result<(), Error>, what: &str| match r {
        Err(Error::WouldDeadlock { statement }) => assert_eq!(statement, what),
        other => panic!("{what}: expected WouldDeadlock, got {other:?}"),
    };
    refused(db.publish("t", Message::new("x")).map(|_| ()), "PUBLISH");
    refused(
        db.clone().publish("t", Message::new("x")).map(|_| ()),
        "PUBLISH",
    );
    refused(db.ack(&[1]), "ACK");
    refused(
        db.consume(&ConsumeRequest::queue("t")).map(|_| ()),
        "CONSUME",
    );
    refused(db.execute("CREATE QUEUE u").map(|_| ()), "CREATE");
    refused(db.mark_processed("g", "k").map(|_| ()), "MARK PROCESSED");
    refused(db.transaction().map(|_| ()), "BEGIN");
    refused(db.execute("BEGIN").map(|_| ()), "BEGIN");
    let e = db.publish("t", Message::new("x")).unwrap_err();
    assert!(
        matches!(&e, Error::WouldDeadlock { statement } if statement == "PUBLISH"),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .contains("this thread holds an open transaction of this database"),
        "{e}"
    );
    // Reads do not wait for the lock.
    assert_eq!(db.topic_names().unwrap(), ["t"]);

    // Another thread of the same handle waits for the lock as before.
    let other = {
        let db = db.clone();
        std::thread::spawn(move || db.publish("t", Message::new("other thread")))
    };
    tx.publish("t", Message::new("in the transaction")).unwrap();
    tx.commit().unwrap();
    other.join().unwrap().unwrap();
    db.publish("t", Message::new("after the commit")).unwrap();
    assert_eq!(
        payloads(&db),
        [
            json!("in the transaction"),
            json!("other thread"),
            json!("after the commit")
        ]
    );

    // Ended on another thread, a transaction frees the thread that opened it.
    let tx = db.transaction().unwrap();
    std::thread::spawn(move || tx.rollback())
        .join()
        .unwrap()
        .unwrap();
    db.publish("t", Message::new("after the rollback")).unwrap();
    // And dropping it does too.
    drop(db.transaction().unwrap());
    db.execute("CREATE QUEUE u").unwrap();
    assert_eq!(db.consume(&ConsumeRequest::queue("t")).unwrap().len(), 1);
}
