//! The shell on abusive input: long and deep expressions (issue #10,
//! hole 5) end with exit 1 and a message naming the limit, not a signal.

use assert_cmd::Command;

fn mqlite() -> Command {
    Command::new(env!("CARGO_BIN_EXE_mqlite"))
}

#[test]
fn long_expressions_exit_1_with_the_limit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    mqlite()
        .arg(&db)
        .arg("CREATE TOPIC t; PUBLISH t 'x'")
        .assert()
        .success();
    let plus = format!("SELECT {}1 FROM t\n", "1+".repeat(131_793));
    let ands = "offset = 0 AND ".repeat(66_000);
    let nots = format!("SELECT * FROM t WHERE {}1\n", "NOT ".repeat(100_000));
    let cases = [
        (plus, "expression too long"),
        (format!("PURGE DLQ WHERE {ands}1\n"), "expression too long"),
        (format!("TAIL t WHERE {ands}1\n"), "expression too long"),
        (nots, "expression nested too deeply"),
    ];
    for (script, want) in cases {
        let out = mqlite().arg(&db).write_stdin(script).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains(want), "{stderr}");
    }
}

/// A script saved with a UTF-8 byte order mark runs, from standard input
/// and through `.read`, even when it starts with a dot-command.
#[test]
fn a_leading_byte_order_mark_is_skipped() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("t.db");
    let script = dir.path().join("s.sql");
    std::fs::write(
        &script,
        "\u{feff}.mode jsonl\nSELECT COUNT(*) AS n FROM t;\n",
    )
    .expect("write");
    mqlite().arg(&db).arg("CREATE TOPIC t").assert().success();
    for stdin in [
        std::fs::read_to_string(&script).expect("read"),
        format!(".read {}\n", script.display()),
        "\u{feff}SELECT COUNT(*) AS n FROM t".to_string(),
    ] {
        let out = mqlite().arg(&db).write_stdin(stdin).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert_eq!(String::from_utf8_lossy(&out.stdout), "{\"n\":0}\n");
    }
}
