//! What the `mqlite` binary prints around results: progress, status lines,
//! the timer, TAIL in table mode, jsonl keys. Real child processes on real
//! files.

use std::path::Path;

use assert_cmd::Command;

fn mqlite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqlite"))
}

fn stdout(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stdout).into_owned()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// Runs `statements` on `db` with stdout and stderr piped.
fn run(db: &Path, args: &[&str], statements: &str) -> assert_cmd::assert::Assert {
    mqlite().args(args).arg(db).arg(statements).assert()
}

#[test]
fn long_statements_draw_no_progress_on_a_pipe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("p.db");
    let file = dir.path().join("in.jsonl");
    let lines: String = (0..3000)
        .map(|i| format!("{{\"payload\": \"m{i}\"}}\n"))
        .collect();
    std::fs::write(&file, lines).expect("write input");
    let out = dir.path().join("out.jsonl");
    let a = run(
        &db,
        &[],
        &format!(
            "CREATE TOPIC t; IMPORT '{}' INTO t; EXPORT t TO '{}';",
            file.display(),
            out.display()
        ),
    )
    .success();
    assert_eq!(stdout(&a), "{\"imported\":3000}\n{\"exported\":3000}\n");
    assert_eq!(stderr(&a), "", "no bar and no status on a pipe");
}

#[test]
fn jsonl_gives_a_repeated_column_a_key_of_its_own() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("k.db");
    let a = run(
        &db,
        &[],
        "CREATE TOPIC t; PUBLISH t KEY 'k' 'x'; SELECT *, key, TRUE AS t FROM t;",
    )
    .success();
    let out = stdout(&a);
    let last = out.lines().last().expect("a row");
    let row: serde_json::Value = serde_json::from_str(last).expect("JSON");
    assert_eq!(row["key"], "k");
    assert_eq!(row["key:1"], "k");
    assert_eq!(row["t"], true);
    assert_eq!(row.as_object().map(|o| o.len()), Some(8), "{last}");
}

#[test]
fn table_mode_prints_a_status_line_for_a_statement_without_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("s.db");
    let script = "CREATE TOPIC t; CREATE QUEUE q; SUBSCRIBE GROUP g TO t;
                  PUBLISH t 'a', 'b'; REPLAY t GROUP g FROM BEGINNING; DROP QUEUE q;
                  BEGIN; COMMIT; SELECT offset FROM t WHERE offset > 5;";
    let a = run(&db, &["--mode", "table"], script).success();
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    for status in [
        "CREATE TOPIC",
        "CREATE QUEUE",
        "SUBSCRIBE",
        "REPLAY 2",
        "DROP QUEUE",
        "BEGIN",
        "COMMIT",
    ] {
        assert!(lines.contains(&status), "{status} missing:\n{out}");
    }
    // Statements with rows print their table, an empty one included.
    assert_eq!(out.matches("(2 rows)").count(), 1, "{out}");
    assert_eq!(lines.last(), Some(&"(0 rows)"), "{out}");
    // jsonl (and csv) stay silent, as the contract says.
    let again = dir.path().join("j.db");
    let a = run(&again, &["--json"], script).success();
    let out = stdout(&a);
    assert_eq!(out.lines().count(), 2, "only the PUBLISH rows:\n{out}");
    let a = run(&dir.path().join("c.db"), &["--mode", "csv"], script).success();
    assert!(!stdout(&a).contains("CREATE"), "{}", stdout(&a));
}

#[test]
fn the_timer_shows_microseconds_and_its_state() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let a = mqlite()
        .arg(&db)
        .write_stdin(".timer\n.timer on\nCREATE TOPIC t;\n.timer\n")
        .assert()
        .success();
    let out = stdout(&a);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.first(), Some(&"timer: off"), "{out}");
    assert_eq!(lines.last(), Some(&"timer: on"), "{out}");
    let time = lines
        .iter()
        .find_map(|l| l.strip_prefix("Run Time: "))
        .unwrap_or_else(|| panic!("no run time:\n{out}"));
    let digits = time.strip_suffix('s').expect("ends in s");
    let (whole, frac) = digits.split_once('.').expect("a decimal point");
    assert!(whole.chars().all(|c| c.is_ascii_digit()), "{time}");
    assert_eq!(frac.len(), 6, "microseconds: {time}");
    assert!(digits.parse::<f64>().expect("a number") > 0.0, "{time}");
}
