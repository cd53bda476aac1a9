//! A session's clock: SET CLOCK, ADVANCE, SET CLOCK SYSTEM and SHOW CLOCK.
//! Leases run out and delayed messages come due by the session's clock,
//! without sleeping.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::time::Duration;

use mqlite::lang::parse_statement;
use mqlite::{Clock, Value};
use mqlite::{ConsumeRequest, Database, Durability, Error, ManualClock, Session, SystemClock};
use serde_json::{Value as Json, json};

/// 2030-01-01T00:00:00Z, later than the machine's clock.
const Y2030: i64 = 1_893_456_000_000;

fn system_db(dir: &tempfile::TempDir) -> Database {
    Database::builder(dir.path().join("clock.db"))
        .durability(Durability::Off)
        .open()
        .unwrap()
}

/// Runs one statement in `s`; its rows as JSON objects.
fn run(s: &mut Session, sql: &str) -> Vec<Json> {
    let stmt = parse_statement(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rs = s
        .execute_statement(&stmt)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rs.rows
        .iter()
        .map(|r| {
            let mut m = serde_json::Map::new();
            for (c, v) in rs.columns.iter().zip(r) {
                m.insert(c.clone(), v.to_json());
            }
            Json::Object(m)
        })
        .collect()
}

fn fail(s: &mut Session, sql: &str) -> Error {
    let stmt = parse_statement(sql).unwrap_or_else(|e| panic!("{sql}: {e}"));
    match s.execute_statement(&stmt) {
        Ok(rs) => panic!("{sql}: expected an error, got {rs:?}"),
        Err(e) => e,
    }
}

/// The session's clock in ms, read with SHOW CLOCK, and its source.
fn clock(s: &mut Session) -> (i64, String) {
    let stmt = parse_statement("SHOW CLOCK").unwrap();
    let rs = s.execute_statement(&stmt).unwrap();
    assert_eq!(rs.columns, ["clock", "source"]);
    let ms = match rs.rows[0][0] {
        Value::Timestamp(ms) => ms,
        ref other => panic!("{other:?}"),
    };
    (ms, rs.rows[0][1].to_json().as_str().unwrap().to_string())
}

fn payloads(rows: &[Json]) -> Vec<String> {
    let mut p: Vec<String> = rows
        .iter()
        .map(|r| r["payload"].as_str().unwrap().to_string())
        .collect();
    p.sort();
    p
}

#[test]
fn a_lease_runs_out_and_a_delayed_message_comes_due_after_advance() {
    let dir = tempfile::tempdir().unwrap();
    let db = system_db(&dir);
    let mut s = db.session();
    assert_eq!(
        run(&mut s, "SET CLOCK '2030-01-01T00:00:00Z'"),
        [json!({"clock": "2030-01-01T00:00:00.000Z", "source": "manual"})]
    );
    run(&mut s, "CREATE QUEUE jobs ACK WAIT 30s");
    run(&mut s, "PUBLISH jobs 'now'");
    run(&mut s, "PUBLISH jobs DELAY 1h 'later'");
    let first = run(&mut s, "CONSUME 5 FROM jobs");
    assert_eq!(payloads(&first), ["now"], "the delayed one is not due");
    assert_eq!(first[0]["attempt"], 1);
    assert_eq!(first[0]["timestamp"], "2030-01-01T00:00:00.000Z");

    run(&mut s, "ADVANCE 29s");
    assert!(
        run(&mut s, "CONSUME 5 FROM jobs").is_empty(),
        "leased 1 s more"
    );
    assert_eq!(
        run(&mut s, "ADVANCE 2s"),
        [json!({"clock": "2030-01-01T00:00:31.000Z", "source": "manual"})]
    );
    let again = run(&mut s, "CONSUME 5 FROM jobs");
    assert_eq!(payloads(&again), ["now"], "the lease ran out");
    assert_eq!(again[0]["attempt"], 2);

    // The handle on the machine's clock (2026) judges by its own clock:
    // the lease taken in 2030 has not run out, the delay not passed.
    assert!(
        db.consume(&ConsumeRequest::queue("jobs").max(5))
            .unwrap()
            .is_empty()
    );

    run(&mut s, "ADVANCE 1h");
    let later = run(&mut s, "CONSUME 5 FROM jobs");
    assert_eq!(
        payloads(&later),
        ["later", "now"],
        "due, and the lease ran out again"
    );

    // Back on the machine's clock: a new message's timestamp does not go
    // back below the partition's 2030 ones.
    assert_eq!(run(&mut s, "SET CLOCK SYSTEM")[0]["source"], "system");
    let (now, source) = clock(&mut s);
    assert_eq!(source, "system");
    assert!((now - SystemClock.now_ms()).abs() < 5_000, "{now}");
    run(&mut s, "PUBLISH jobs 'after'");
    let ts = run(&mut s, "SELECT timestamp FROM jobs WHERE payload = 'after'");
    assert_eq!(ts, [json!({"timestamp": "2030-01-01T00:00:00.000Z"})]);
}

#[test]
fn advance_without_set_clock_starts_from_now() {
    let dir = tempfile::tempdir().unwrap();
    let db = system_db(&dir);
    let mut s = db.session();
    let before = SystemClock.now_ms();
    run(&mut s, "ADVANCE 1h");
    let (at, source) = clock(&mut s);
    assert_eq!(source, "manual");
    let want = before + 3_600_000;
    assert!((want..want + 5_000).contains(&at), "{at} vs {want}");
    // It stands still until moved.
    assert_eq!(clock(&mut s).0, at);
    // A relative SET CLOCK counts from the session's clock.
    run(&mut s, "SET CLOCK '-30m'");
    assert_eq!(clock(&mut s).0, at - 1_800_000);
}

#[test]
fn the_clock_is_the_sessions_own() {
    let dir = tempfile::tempdir().unwrap();
    let db = system_db(&dir);
    let mut a = db.session();
    let mut b = db.session();
    run(&mut a, "SET CLOCK '2030-01-01T00:00:00Z'");
    assert_eq!(clock(&mut a), (Y2030, "manual".into()));
    assert_eq!(clock(&mut b).1, "system");
    assert_eq!(a.database().now_ms(), Y2030);
    assert!(
        db.now_ms() < Y2030,
        "the handle the session came from keeps its clock"
    );
    // Database::execute runs one session per call.
    db.execute("ADVANCE 1d").unwrap();
    assert_eq!(
        db.execute("SHOW CLOCK").unwrap().rows[0][1],
        Value::Text("system".into())
    );
    let rs = db
        .execute("SET CLOCK '2030-01-01T00:00:00Z'; ADVANCE 1s; SHOW CLOCK")
        .unwrap();
    assert_eq!(rs.rows[0][0], Value::Timestamp(Y2030 + 1000));
}

#[test]
fn a_handle_built_on_a_manual_clock_shows_it() {
    let t = common::open();
    let rs = t.db.execute("SHOW CLOCK").unwrap();
    assert_eq!(
        rs.rows[0],
        [Value::Timestamp(common::T0), Value::Text("manual".into())]
    );
    t.clock.advance(Duration::from_secs(1));
    let mut s = t.db.session();
    assert_eq!(clock(&mut s).0, common::T0 + 1000);
    // SET CLOCK gives the session a clock of its own; the program's stays.
    run(&mut s, "ADVANCE 1m");
    assert_eq!(clock(&mut s).0, common::T0 + 61_000);
    assert_eq!(t.clock.now_ms(), common::T0 + 1000);
}

#[test]
fn the_session_clock_keeps_the_handles_options() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("opts.db");
    let db = Database::builder(&path)
        .durability(Durability::Off)
        .max_payload(8)
        .open()
        .unwrap();
    db.execute("CREATE QUEUE q").unwrap();
    let mut s = db.session();
    run(&mut s, "ADVANCE 1s");
    assert!(
        matches!(
            fail(&mut s, "PUBLISH q 'more than eight bytes'"),
            Error::PayloadTooLarge { .. }
        ),
        "the payload limit carries over"
    );
    run(&mut s, "PUBLISH q 'eight'");

    let ro = Database::builder(&path).read_only(true).open().unwrap();
    let mut s = ro.session();
    run(&mut s, "SET CLOCK '2030-01-01T00:00:00Z'");
    assert!(
        matches!(fail(&mut s, "PUBLISH q 'x'"), Error::ReadOnly(_)),
        "read-only carries over"
    );
    assert_eq!(
        run(&mut s, "SELECT payload FROM q"),
        [json!({"payload": "eight"})]
    );
}

#[test]
fn the_clock_cannot_move_inside_a_transaction_or_past_year_9999() {
    let dir = tempfile::tempdir().unwrap();
    let db = system_db(&dir);
    let mut s = db.session();
    run(&mut s, "SET CLOCK '2030-01-01T00:00:00Z'");
    run(&mut s, "BEGIN");
    for sql in [
        "SET CLOCK SYSTEM",
        "ADVANCE 1s",
        "SET CLOCK '2031-01-01T00:00:00Z'",
    ] {
        let e = fail(&mut s, sql);
        assert!(
            matches!(&e, Error::NotAllowedInTransaction { statement } if sql.starts_with(statement.as_str())),
            "{sql}: {e:?}"
        );
    }
    // The transaction runs on the session's clock, which it can show.
    assert_eq!(clock(&mut s), (Y2030, "manual".into()));
    run(&mut s, "ROLLBACK");

    let mut tx = db.transaction().unwrap();
    assert!(matches!(
        tx.execute("ADVANCE 1s"),
        Err(Error::NotAllowedInTransaction { .. })
    ));
    drop(tx);

    let e = fail(&mut s, "ADVANCE 3000000d");
    assert!(
        matches!(&e, Error::InvalidOption { option, .. } if option == "ADVANCE"),
        "{e:?}"
    );
    assert!(e.to_string().contains("9999-12-31T23:59:59.999Z"), "{e}");
    assert_eq!(clock(&mut s).0, Y2030, "unchanged");
    let e = fail(&mut s, "SET CLOCK '-800000d'");
    assert!(
        matches!(&e, Error::InvalidOption { option, .. } if option == "SET CLOCK"),
        "{e:?}"
    );
    assert_eq!(clock(&mut s).0, Y2030, "unchanged");
    run(&mut s, "SET CLOCK '9999-12-31T23:59:59.999Z'");
    assert!(matches!(
        fail(&mut s, "ADVANCE 1ms"),
        Error::InvalidOption { .. }
    ));
}

/// A program's own ManualClock handle and `with_clock` work the same way.
#[test]
fn with_clock_opens_a_second_handle_on_that_clock() {
    let dir = tempfile::tempdir().unwrap();
    let db = system_db(&dir);
    db.execute("CREATE QUEUE jobs ACK WAIT 10s; PUBLISH jobs 'x'")
        .unwrap();
    let clock = ManualClock::new(Y2030);
    let later = db.with_clock(clock.clone()).unwrap();
    let d = later.consume(&ConsumeRequest::queue("jobs")).unwrap();
    assert_eq!(d.len(), 1);
    clock.advance(Duration::from_secs(11));
    let again = later.consume(&ConsumeRequest::queue("jobs")).unwrap();
    assert_eq!(again[0].attempt, 2);
    assert!(matches!(
        db.ack(&[d[0].id]),
        Err(Error::StaleDelivery { .. })
    ));
    later.ack(&[again[0].id]).unwrap();
}
