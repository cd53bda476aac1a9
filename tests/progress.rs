//! Long statements tell a session's progress callback how far they are
//! (the shell draws a bar from it on a terminal): EXPORT, IMPORT and a
//! REQUEUE DLQ of more than 1,000 dead letters.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::sync::{Arc, Mutex};

use common::open;
use mqlite::{ConsumeRequest, Message, NackAction, Value};

type Calls = Arc<Mutex<Vec<(String, u64, u64)>>>;

/// Runs `text` in a session whose progress callback records every call.
fn run(session: &mut mqlite::Session, text: &str) -> mqlite::ResultSet {
    let stmts = mqlite::lang::parse_script(text).unwrap();
    session.execute_statement(&stmts[0].statement).unwrap()
}

fn recording(db: &mqlite::Database) -> (mqlite::Session, Calls) {
    let calls: Calls = Arc::default();
    let mut session = db.session();
    let sink = calls.clone();
    session.set_progress(move |step, done, total| {
        sink.lock().unwrap().push((step.to_string(), done, total));
    });
    (session, calls)
}

#[test]
fn export_and_import_report_progress_to_the_end() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC big; CREATE TOPIC copy").unwrap();
    let msgs: Vec<Message> = (0..2500).map(|i| Message::new(format!("m{i}"))).collect();
    db.publish_batch("big", msgs).unwrap();
    let (mut session, calls) = recording(db);
    let file = t.dir.path().join("big.jsonl");
    let f = file.to_str().unwrap();

    let rs = run(&mut session, &format!("EXPORT big TO '{f}'"));
    assert_eq!(rs.rows[0][0], Value::Int(2500));
    let got = std::mem::take(&mut *calls.lock().unwrap());
    let want: Vec<(String, u64, u64)> = [1000, 2000, 2500]
        .map(|done| ("EXPORT".to_string(), done, 2500))
        .into();
    assert_eq!(got, want, "one call per page of 1,000");

    let rs = run(&mut session, &format!("IMPORT '{f}' INTO copy"));
    assert_eq!(rs.rows[0][0], Value::Int(2500));
    let got = std::mem::take(&mut *calls.lock().unwrap());
    let size = std::fs::metadata(&file).unwrap().len();
    assert_eq!(got.len(), 3, "one call per chunk of 1,000 lines: {got:?}");
    assert!(
        got.iter()
            .all(|(s, _, total)| s == "IMPORT" && *total == size)
    );
    assert!(got.windows(2).all(|w| w[0].1 < w[1].1), "{got:?}");
    assert_eq!(
        got.last().map(|c| c.1),
        Some(size),
        "ends at the file's size"
    );
}

#[test]
fn a_large_requeue_reports_progress() {
    let t = open();
    let db = &t.db;
    db.execute("CREATE TOPIC t; SUBSCRIBE GROUP g TO t")
        .unwrap();
    let msgs: Vec<Message> = (0..1600).map(|i| Message::new(format!("m{i}"))).collect();
    db.publish_batch("t", msgs).unwrap();
    let d = db
        .consume(&ConsumeRequest::topic("t", "g").max(1600))
        .unwrap();
    let ids: Vec<u64> = d.iter().map(|d| d.id).collect();
    db.nack(&ids, &NackAction::dead("broken")).unwrap();
    let (mut session, calls) = recording(db);

    // 1,000 or fewer: one write, no progress.
    let rs = run(&mut session, "REQUEUE DLQ t LIMIT 10");
    assert_eq!(rs.rows[0][0], Value::Int(10));
    assert!(calls.lock().unwrap().is_empty());

    let rs = run(&mut session, "REQUEUE DLQ t");
    assert_eq!(rs.rows[0][0], Value::Int(1590));
    let got = std::mem::take(&mut *calls.lock().unwrap());
    assert_eq!(
        got,
        [
            ("REQUEUE".to_string(), 1000, 1590),
            ("REQUEUE".to_string(), 1590, 1590)
        ]
    );
    let left = db.execute("SELECT COUNT(*) AS n FROM DLQ").unwrap();
    assert_eq!(left.rows[0][0], Value::Int(0));
    let back = db
        .consume(&ConsumeRequest::topic("t", "g").max(2000))
        .unwrap();
    assert_eq!(back.len(), 1600, "every dead letter is back");
}
