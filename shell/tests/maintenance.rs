//! The `mqlite` binary with the session clock (SET CLOCK, ADVANCE): scripts
//! as arguments and on standard input.

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
