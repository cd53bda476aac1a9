//! The `mqlite` binary with the session clock (SET CLOCK, ADVANCE), BACKUP
//! and DLQ previews (DRY RUN): scripts as arguments and on standard input.

use std::path::Path;

use assert_cmd::Command;
use serde_json::{Value, json};

fn mqlite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqlite"))
}

fn lines(out: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

/// A script that tests an application's timeouts without sleeping.
const CLOCK_SCRIPT: &str = "
CREATE QUEUE jobs ACK WAIT 30s;
SET CLOCK '2030-01-01T00:00:00Z';
PUBLISH jobs 'work';
PUBLISH jobs DELAY 1m 'later';
CONSUME 5 FROM jobs;
ADVANCE 31s;
CONSUME 5 FROM jobs;
ADVANCE 1m;
SHOW CLOCK;
CONSUME 5 FROM jobs;
SET CLOCK SYSTEM;
";

/// What CLOCK_SCRIPT prints, as (payload, attempt) per CONSUME row and the clock rows.
fn check_clock_output(rows: &[Value]) {
    let clocks: Vec<&Value> = rows.iter().filter(|r| r.get("clock").is_some()).collect();
    assert_eq!(clocks.len(), 5, "{rows:#?}");
    assert_eq!(
        *clocks[0],
        json!({"clock": "2030-01-01T00:00:00.000Z", "source": "manual"})
    );
    assert_eq!(clocks[1]["clock"], "2030-01-01T00:00:31.000Z");
    assert_eq!(clocks[3]["clock"], "2030-01-01T00:01:31.000Z");
    assert_eq!(clocks[4]["source"], "system");
    let mut consumed: Vec<(String, i64)> = rows
        .iter()
        .filter(|r| r.get("delivery").is_some())
        .map(|r| {
            (
                r["payload"].as_str().unwrap_or_default().to_string(),
                r["attempt"].as_i64().unwrap_or_default(),
            )
        })
        .collect();
    // The last CONSUME returns two rows, in the order they came due.
    consumed[2..].sort();
    assert_eq!(
        consumed,
        [
            ("work".to_string(), 1),
            ("work".to_string(), 2),
            ("later".to_string(), 1),
            ("work".to_string(), 3),
        ],
        "the lease runs out at +30s, the delay at +1m"
    );
}

#[test]
fn a_script_moves_the_clock_as_an_argument_and_on_standard_input() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("clock.db");
    let out = mqlite().arg(&db).arg(CLOCK_SCRIPT).assert().success();
    check_clock_output(&lines(&out.get_output().stdout));

    let db = dir.path().join("clock-stdin.db");
    let out = mqlite()
        .arg(&db)
        .write_stdin(CLOCK_SCRIPT)
        .assert()
        .success();
    check_clock_output(&lines(&out.get_output().stdout));
}

#[test]
fn the_clock_cannot_move_inside_begin() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("tx.db");
    let out = mqlite()
        .arg(&db)
        .write_stdin("BEGIN;\nADVANCE 1s;\n")
        .assert()
        .failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("ADVANCE is not allowed inside a transaction"),
        "{err}"
    );
}

fn backup(db: &Path, to: &Path) -> assert_cmd::assert::Assert {
    mqlite()
        .arg(db)
        .arg(format!("BACKUP TO '{}'", to.display()))
        .assert()
}

#[test]
fn backup_makes_a_copy_that_checks_and_never_overwrites() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    mqlite()
        .arg(&db)
        .arg("CREATE QUEUE jobs; PUBLISH jobs 'a', 'b'; CONSUME FROM jobs")
        .assert()
        .success();
    let copy = dir.path().join("copy.db");
    let out = backup(&db, &copy).success();
    let row = &lines(&out.get_output().stdout)[0];
    assert!(row["pages"].as_i64().unwrap_or(0) > 0, "{row}");
    assert_eq!(
        row["bytes"].as_u64(),
        Some(std::fs::metadata(&copy).expect("copy").len())
    );
    let out = mqlite()
        .arg(&copy)
        .arg("CHECK; SELECT payload FROM jobs")
        .assert()
        .success();
    assert_eq!(
        lines(&out.get_output().stdout),
        [
            json!({"result": "ok"}),
            json!({"payload": "a"}),
            json!({"payload": "b"})
        ],
        "a was delivered and not acked, so it is still there"
    );

    let before = std::fs::read(&copy).expect("copy");
    let out = backup(&db, &copy).failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(
        err.contains("exists: BACKUP never replaces a file"),
        "{err}"
    );
    assert_eq!(std::fs::read(&copy).expect("copy"), before);
}

#[test]
fn dlq_dry_run_in_the_shell() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("dlq.db");
    let out = mqlite()
        .arg(&db)
        .arg(
            "CREATE QUEUE jobs; PUBLISH jobs 'a'; CONSUME FROM jobs; NACK 1 DEAD 'bad';
             CREATE TOPIC t; SUBSCRIBE GROUP g TO t; PUBLISH t 'x'; CONSUME FROM t GROUP g;",
        )
        .assert()
        .success();
    let delivered: Vec<i64> = lines(&out.get_output().stdout)
        .iter()
        .filter_map(|r| r["delivery"].as_i64())
        .collect();
    let out = mqlite()
        .arg(&db)
        .arg(format!(
            "NACK {} DEAD 'gone'; DROP TOPIC t; REQUEUE DLQ DRY RUN; REQUEUE DLQ; SELECT reason FROM DLQ",
            delivered[1]
        ))
        .assert()
        .success();
    let rows = lines(&out.get_output().stdout);
    let preview: Vec<(Value, Value)> = rows
        .iter()
        .filter(|r| r.get("failed_at").is_some())
        .map(|r| (r["topic"].clone(), r["skipped"].clone()))
        .collect();
    assert_eq!(
        preview,
        [
            (json!("jobs"), Value::Null),
            (json!("t"), json!("topic 't' was dropped"))
        ]
    );
    assert!(
        rows.contains(&json!({"requeued": 1, "skipped": 1})),
        "{rows:#?}"
    );
    assert_eq!(rows.last(), Some(&json!({"reason": "gone"})));

    let out = mqlite().arg(&db).arg("PURGE DLQ nosuch").assert().failure();
    let err = String::from_utf8_lossy(&out.get_output().stderr).into_owned();
    assert!(err.contains("topic 'nosuch' does not exist"), "{err}");
}
