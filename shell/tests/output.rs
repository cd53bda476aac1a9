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
