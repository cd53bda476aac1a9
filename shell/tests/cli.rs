//! The `mqlite` binary run non-interactively: exit codes, output, files.

use std::fs;
use std::path::Path;

use assert_cmd::Command;
use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};

fn mqlite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqlite"))
}

/// Runs `statements` on `db` with piped stdout (so the default mode is jsonl).
fn run(db: &Path, statements: &str) -> assert_cmd::assert::Assert {
    mqlite().arg(db).arg(statements).assert()
}

fn stdout_lines(assert: &assert_cmd::assert::Assert) -> Vec<String> {
    String::from_utf8_lossy(&assert.get_output().stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn stderr(assert: &assert_cmd::assert::Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// The keys of a JSON object in the order they are written.
fn keys_in_order(line: &str) -> Vec<String> {
    struct Keys;
    impl<'de> Visitor<'de> for Keys {
        type Value = Vec<String>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Vec<String>, A::Error> {
            let mut keys = Vec::new();
            while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                keys.push(key);
            }
            Ok(keys)
        }
    }
    let mut de = serde_json::Deserializer::from_str(line);
    de.deserialize_map(Keys)
        .unwrap_or_else(|e| panic!("not a JSON object: {line}: {e}"))
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"))
}

/// Files in `dir`, sorted.
fn files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read temp dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    names.sort();
    names
}

#[test]
fn statements_on_the_command_line_print_jsonl_rows() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = run(
        &db,
        "CREATE QUEUE jobs; PUBLISH jobs 'a', 'b'; CONSUME 2 FROM jobs;",
    )
    .success();
    let lines = stdout_lines(&assert);
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for line in &lines[..2] {
        assert_eq!(
            keys_in_order(line),
            ["topic", "partition", "offset", "duplicate"]
        );
        assert_eq!(json(line)["duplicate"], false);
    }
    for (line, payload) in lines[2..].iter().zip(["a", "b"]) {
        assert_eq!(
            keys_in_order(line),
            [
                "delivery",
                "topic",
                "partition",
                "offset",
                "key",
                "attempt",
                "timestamp",
                "headers",
                "payload"
            ]
        );
        let row = json(line);
        assert!(row["delivery"].is_u64(), "{line}");
        assert_eq!(row["topic"], "jobs");
        assert_eq!(row["payload"], payload);
        assert!(row["headers"].is_object(), "{line}");
        let ts = row["timestamp"].as_str().expect("timestamp is a string");
        assert!(ts.parse::<jiff::Timestamp>().is_ok(), "not RFC 3339: {ts}");
    }
}

#[test]
fn json_payloads_come_out_as_strings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = run(
        &db,
        r#"CREATE QUEUE jobs; PUBLISH jobs HEADERS (source = 'web') {"orderId": "ORD-1"}; CONSUME FROM jobs;"#,
    )
    .success();
    let lines = stdout_lines(&assert);
    let row = json(lines.last().expect("a CONSUME row"));
    let payload = row["payload"].as_str().expect("payload is a JSON string");
    assert_eq!(json(payload)["orderId"], "ORD-1");
    assert_eq!(row["headers"]["source"], "web");
}

#[test]
fn statements_from_stdin_run_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = mqlite()
        .arg(&db)
        .write_stdin(
            "CREATE TOPIC orders PARTITIONS 2;\n-- a comment\nPUBLISH orders KEY 'k' 'x';\n",
        )
        .assert()
        .success();
    let lines = stdout_lines(&assert);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(json(&lines[0])["topic"], "orders");
}

#[test]
fn empty_input_does_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    mqlite()
        .arg(&db)
        .write_stdin("")
        .assert()
        .success()
        .stdout("");
    mqlite().arg(&db).arg("  ").assert().success().stdout("");
}

#[test]
fn an_engine_error_stops_the_script_with_exit_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = run(
        &db,
        "CREATE QUEUE jobs; PUBLISH nope 'x'; PUBLISH jobs 'never';",
    )
    .code(1);
    let err = stderr(&assert);
    assert!(err.starts_with("Error: "), "{err}");
    assert!(err.contains("nope"), "{err}");
    // The statement before the error ran, the one after did not.
    run(&db, "CONSUME 10 FROM jobs;").success().stdout("");
}

#[test]
fn a_syntax_error_shows_a_caret_and_runs_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = run(&db, "CREATE QUEUE jobs;\nPUBLISH jobs 'a' 'b';").code(1);
    assert_eq!(stdout_lines(&assert), Vec::<String>::new());
    let err = stderr(&assert);
    assert!(err.contains("PUBLISH jobs 'a' 'b'"), "{err}");
    let caret_line = err
        .lines()
        .find(|l| l.trim() == "^")
        .unwrap_or_else(|| panic!("no caret line in {err}"));
    assert_eq!(
        caret_line.find('^'),
        Some("PUBLISH jobs 'a' ".len()),
        "{err}"
    );
    // CREATE QUEUE did not run either.
    let assert = run(&db, "SHOW QUEUES;").success();
    assert_eq!(stdout_lines(&assert), Vec::<String>::new());
}

#[test]
fn mode_flags_choose_the_format() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE QUEUE jobs; PUBLISH jobs 'a';").success();

    let publish = "PUBLISH jobs 'b';";
    let jsonl = mqlite()
        .arg("--json")
        .arg(&db)
        .arg(publish)
        .assert()
        .success();
    assert_eq!(keys_in_order(&stdout_lines(&jsonl)[0])[0], "topic");

    let csv = mqlite()
        .args(["--mode", "csv"])
        .arg(&db)
        .arg(publish)
        .assert()
        .success();
    assert_eq!(
        String::from_utf8_lossy(&csv.get_output().stdout),
        "topic,partition,offset,duplicate\r\njobs,0,2,false\r\n"
    );

    let table = mqlite()
        .args(["--mode", "table"])
        .arg(&db)
        .arg(publish)
        .assert()
        .success();
    let lines = stdout_lines(&table);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("(1 row)"),
        "{lines:#?}"
    );

    let line = mqlite()
        .args(["--mode", "line"])
        .arg(&db)
        .arg(publish)
        .assert()
        .success();
    assert_eq!(stdout_lines(&line)[0], "    topic = jobs");

    mqlite()
        .args(["--mode", "xml"])
        .arg(&db)
        .arg(publish)
        .assert()
        .code(2);
}

#[test]
fn dot_commands_work_in_scripts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let script = dir.path().join("setup.mql");
    fs::write(&script, "CREATE QUEUE jobs;\nPUBLISH jobs 'from file';\n").expect("write script");
    let assert = mqlite()
        .arg(&db)
        .write_stdin(format!(
            ".read {}\n.mode csv\n.timer on\nCONSUME FROM jobs;\n.quit\nPUBLISH jobs 'never';\n",
            script.display()
        ))
        .assert()
        .success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    let lines: Vec<&str> = out.lines().collect();
    // The PUBLISH row from the .read file is jsonl; .mode csv applies after it.
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!(json(lines[0])["topic"], "jobs");
    assert!(lines[1].starts_with("delivery,topic,"), "{out}");
    assert!(lines[2].ends_with(",from file"), "{out}");
    assert!(lines[3].starts_with("Run Time: "), "{out}");
    run(&db, "CONSUME FROM jobs;").success().stdout("");
}

#[test]
fn an_unknown_dot_command_is_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = mqlite()
        .arg(&db)
        .write_stdin(".frobnicate\n")
        .assert()
        .code(1);
    assert!(stderr(&assert).contains("unknown command '.frobnicate'"));
    let assert = mqlite()
        .arg(&db)
        .write_stdin(".mode xml\n")
        .assert()
        .code(1);
    assert!(stderr(&assert).contains("unknown mode 'xml'"));
}

#[test]
fn help_lists_statements_and_commands() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = run(&db, ".help").success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    for needle in ["PUBLISH", "CONSUME", "SELECT", ".mode", ".read", ".quit"] {
        assert!(out.contains(needle), "{needle} missing from .help:\n{out}");
    }
}

#[test]
fn readonly_on_a_missing_file_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("missing.db");
    let assert = mqlite()
        .arg("--readonly")
        .arg(&db)
        .arg("SHOW TOPICS;")
        .assert()
        .code(1);
    assert!(
        stderr(&assert).starts_with("Error: "),
        "{}",
        stderr(&assert)
    );
    assert_eq!(files(dir.path()), Vec::<String>::new());
}

#[test]
fn readonly_reads_but_does_not_write() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE QUEUE jobs;").success();
    let before = fs::read(&db).expect("read db");
    mqlite()
        .arg("--readonly")
        .arg(&db)
        .arg("SHOW QUEUES;")
        .assert()
        .success();
    let assert = mqlite()
        .arg("--readonly")
        .arg(&db)
        .arg("PUBLISH jobs 'x';")
        .assert()
        .code(1);
    assert!(stderr(&assert).starts_with("Error: "));
    assert_eq!(fs::read(&db).expect("read db"), before);
}

#[test]
fn readonly_leaves_no_files_behind() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE QUEUE jobs;").success();
    assert_eq!(files(dir.path()), ["shop.db"]);
    mqlite()
        .arg("--readonly")
        .arg(&db)
        .arg("SHOW QUEUES;")
        .assert()
        .success();
    assert_eq!(
        files(dir.path()),
        ["shop.db"],
        "a read-only run must not write files"
    );
}

#[test]
fn a_foreign_file_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("notes.txt");
    let text = b"these are my notes, not a database\n".repeat(200);
    fs::write(&path, &text).expect("write foreign file");
    for args in [&[][..], &["--readonly"][..]] {
        let assert = mqlite()
            .args(args)
            .arg(&path)
            .arg("CREATE QUEUE jobs;")
            .assert()
            .code(1);
        assert!(
            stderr(&assert).starts_with("Error: "),
            "{}",
            stderr(&assert)
        );
        assert_eq!(fs::read(&path).expect("read foreign file"), text);
        assert_eq!(files(dir.path()), ["notes.txt"]);
    }
}

#[cfg(unix)]
#[test]
fn a_created_database_is_private_and_alone() {
    use std::os::unix::fs::PermissionsExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE TOPIC orders; PUBLISH orders 'x';").success();
    let mode = fs::metadata(&db).expect("db exists").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "mode {mode:o}");
    assert_eq!(files(dir.path()), ["shop.db"], "no -wal/-shm left behind");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE QUEUE jobs;").success();
    let payloads = vec!["'x'"; 2000].join(", ");
    run(&db, &format!("PUBLISH jobs {payloads};")).success();
    // `head -c 10` closes the pipe after a few bytes.
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg("\"$0\" \"$1\" 'CONSUME 2000 FROM jobs;' | head -c 10 >/dev/null")
        .arg(env!("CARGO_BIN_EXE_mqlite"))
        .arg(&db)
        .output()
        .expect("run sh");
    assert!(status.status.success());
    assert_eq!(String::from_utf8_lossy(&status.stderr), "");
}

#[test]
fn statements_may_start_with_a_comment() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "-- set up\nCREATE QUEUE jobs;")
        .success()
        .stdout("");
    run(&db, "-- nothing to do").success().stdout("");
}

#[test]
fn line_mode_separates_rows_of_consecutive_statements() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let assert = mqlite()
        .args(["--mode", "line"])
        .arg(&db)
        .arg("CREATE QUEUE jobs; PUBLISH jobs 'a'; PUBLISH jobs 'b';")
        .assert()
        .success();
    let out = String::from_utf8_lossy(&assert.get_output().stdout).into_owned();
    assert_eq!(
        out,
        "    topic = jobs\npartition = 0\n   offset = 0\nduplicate = false\n\n\
         \x20   topic = jobs\npartition = 0\n   offset = 1\nduplicate = false\n"
    );
}

#[test]
fn transactions_in_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("tx.db");
    run(
        &db,
        "CREATE QUEUE jobs; BEGIN; PUBLISH jobs 'a'; PUBLISH jobs 'b'; COMMIT",
    )
    .success();
    // A fenced ACK inside BEGIN: exit 1 and the transaction is rolled back.
    let a = run(&db, "BEGIN; PUBLISH jobs 'c'; ACK 424242; COMMIT")
        .failure()
        .code(1);
    assert!(
        stderr(&a).contains("delivery 424242 is unknown"),
        "{}",
        stderr(&a)
    );
    // A script that never commits: exit 1, rolled back.
    let a = run(&db, "BEGIN; PUBLISH jobs 'd'").failure().code(1);
    assert!(
        stderr(&a).contains("BEGIN without COMMIT"),
        "{}",
        stderr(&a)
    );
    let a = run(&db, "SELECT payload FROM jobs").success();
    assert_eq!(
        stdout_lines(&a),
        [r#"{"payload":"a"}"#, r#"{"payload":"b"}"#]
    );
}

#[test]
fn piped_statements_run_as_soon_as_each_is_complete() {
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Command as Std, Stdio};
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    let mut child = Std::new(env!("CARGO_BIN_EXE_mqlite"))
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn mqlite");
    let mut stdin = child.stdin.take().expect("stdin");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdin
        .write_all(b"CREATE QUEUE jobs;\nPUBLISH jobs\n  'a';\n")
        .expect("write");
    stdin.flush().expect("flush");
    // The row arrives while standard input is still open.
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read row");
    assert_eq!(json(&line)["offset"], 0, "{line}");
    stdin
        .write_all(b".mode csv\nSELECT offset FROM jobs;\n")
        .expect("write");
    drop(stdin);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).expect("read rest");
    assert_eq!(rest, "offset\r\n0\r\n");
    assert!(child.wait().expect("wait").success());
}

#[test]
fn endless_input_is_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE QUEUE jobs;").success();
    // With 1 GB of address space the old read-everything code died of it.
    for script in [".read /dev/zero\n", "IMPORT '/dev/zero' INTO jobs;\n"] {
        let assert = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "ulimit -v 1000000; exec {} \"$0\"",
                env!("CARGO_BIN_EXE_mqlite")
            ))
            .arg(&db)
            .write_stdin(script)
            .assert()
            .code(1);
        let err = stderr(&assert);
        assert!(
            err.contains("line 1") && err.contains("longer than"),
            "{script}: {err}"
        );
    }
    let assert = mqlite()
        .arg(&db)
        .write_stdin(&b"PUBLISH jobs 'a';\nPUBLISH jobs 'b\xff';\n"[..])
        .assert()
        .code(1);
    assert!(
        stderr(&assert).contains("line 2: not UTF-8"),
        "{}",
        stderr(&assert)
    );
}

#[cfg(unix)]
#[test]
fn export_files_are_0600_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE TOPIC t; PUBLISH t 'x';").success();
    for umask in ["000", "022", "077"] {
        let out = dir.path().join(format!("out-{umask}.jsonl"));
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "umask {umask}; exec {} \"$0\" \"$1\"",
                env!("CARGO_BIN_EXE_mqlite")
            ))
            .arg(&db)
            .arg(format!("EXPORT t TO '{}';", out.display()))
            .assert()
            .success();
        let mode = fs::metadata(&out).expect("exported").permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "umask {umask}: mode {mode:o}");
    }
}

/// A process whose clock is faked (libfaketime, as `faketime` runs it) may
/// read but not write: its time would move leases, delays, dedup windows and
/// retention for every process sharing the file.
#[test]
fn a_process_with_a_faked_clock_is_refused_before_it_writes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("shop.db");
    run(&db, "CREATE QUEUE q; PUBLISH q 'a';").success();
    if Command::new("faketime")
        .args(["-f", "+0s", "true"])
        .ok()
        .is_err()
    {
        eprintln!("SKIPPED: faketime is not installed (.ci/run installs it)");
        return;
    }
    let before = fs::read(&db).expect("read db");
    for (offset, word) in [("+1h", "ahead of"), ("-2h", "behind")] {
        for statement in ["PUBLISH q 'b';", "CONSUME FROM q;"] {
            let assert = Command::new("faketime")
                .args(["-f", offset])
                .arg(env!("CARGO_BIN_EXE_mqlite"))
                .arg(&db)
                .arg(statement)
                .assert()
                .code(1);
            let err = stderr(&assert);
            assert!(
                err.contains(word) && err.contains("clock"),
                "{offset} {statement}: {err}"
            );
        }
        // Reading is fine.
        let assert = Command::new("faketime")
            .args(["-f", offset])
            .arg(env!("CARGO_BIN_EXE_mqlite"))
            .arg(&db)
            .arg("SELECT COUNT(*) AS n FROM q;")
            .assert()
            .success();
        assert_eq!(stdout_lines(&assert), [r#"{"n":1}"#]);
    }
    assert_eq!(
        fs::read(&db).expect("read db"),
        before,
        "nothing was written"
    );
}

#[test]
fn check_on_a_damaged_file_exits_1_and_lists_the_damage() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("damaged.db");
    let payloads: Vec<String> = (0..2000).map(|i| format!("'message {i:>40}'")).collect();
    run(
        &db,
        &format!(
            "CREATE TOPIC ev PARTITIONS 1; PUBLISH ev {};",
            payloads.join(", ")
        ),
    )
    .success();
    run(&db, "CHECK;").success().stdout("{\"result\":\"ok\"}\n");

    // Garbage over the root page of an index CHECK's own queries do not read:
    // only SQLite's integrity check sees it (CHECK used to exit 0 then).
    let c = mqlite::rusqlite::Connection::open(&db).expect("open");
    let page_size: i64 = c
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .expect("page size");
    let root: i64 = c
        .query_row(
            "SELECT rootpage FROM sqlite_schema WHERE name = 'mq_dlq_group'",
            [],
            |r| r.get(0),
        )
        .expect("root page");
    drop(c);
    let mut bytes = fs::read(&db).expect("read");
    let (root, page_size) = (
        usize::try_from(root).expect("page"),
        usize::try_from(page_size).expect("size"),
    );
    bytes[(root - 1) * page_size..root * page_size].fill(0xA5);
    fs::write(&db, bytes).expect("write");

    let assert = run(&db, "CHECK;").code(1);
    let err = stderr(&assert);
    assert!(err.starts_with("Error: CHECK found "), "{err}");
    assert!(err.lines().count() >= 2, "one line per problem: {err}");
    assert!(!stdout_lines(&assert).iter().any(|l| l.contains("\"ok\"")));
}
