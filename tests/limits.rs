//! Input limits of the command language: any statement, however long or
//! deep, gets an error on a 2 MiB thread (a default spawned thread), never a
//! stack overflow (issue #10, hole 5), and the edges of hole 13.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::path::Path;

use mqlite::{Database, Durability, Error, ManualClock, NameProblem};
use proptest::prelude::*;

/// The stack of a thread spawned with default settings.
const SMALL_STACK: usize = 2 << 20;

/// Runs `text` on the database at `path` from a thread with a 2 MiB stack;
/// Ok(rows) or the error. A stack overflow aborts the whole test binary.
fn run_small(path: &Path, text: String) -> Result<usize, Error> {
    let path = path.to_path_buf();
    std::thread::Builder::new()
        .stack_size(SMALL_STACK)
        .spawn(move || {
            let db = Database::builder(&path)
                .durability(Durability::Off)
                .clock(ManualClock::new(common::T0))
                .open()?;
            db.execute(&text).map(|rs| rs.rows.len())
        })
        .unwrap()
        .join()
        .unwrap()
}

fn setup() -> common::TestDb {
    let t = common::open();
    t.db.execute("CREATE TOPIC t; CREATE QUEUE q; PUBLISH t '{\"a\": 1}'; PUBLISH q 'x'")
        .unwrap();
    t
}

/// `first op first op ... first` with `n` operators.
fn chain(first: &str, op: &str, n: usize) -> String {
    let mut s = String::with_capacity((first.len() + op.len()) * (n + 1));
    s.push_str(first);
    for _ in 0..n {
        s.push_str(op);
        s.push_str(first);
    }
    s
}

#[test]
fn long_chains_are_errors_on_a_small_stack() {
    let t = setup();
    let plus = chain("1", "+", 131_793);
    let ands = chain("offset = 0", " AND ", 66_000);
    let ors = chain("offset = 0", " OR ", 66_000);
    let out = t.dir.path().join("never.jsonl");
    let cases = [
        format!("SELECT {plus} FROM t"),
        format!("SELECT {} FROM t", chain("1", "+", 40_000)),
        format!("SELECT * FROM t WHERE {ands}"),
        format!("SELECT * FROM t WHERE {ors}"),
        format!("SELECT * FROM t WHERE offset = {}", chain("2", "*", 50_000)),
        format!("SELECT COUNT(*) FROM t GROUP BY {plus}"),
        format!("SELECT * FROM t ORDER BY {plus}"),
        format!("SELECT SUM({plus}) FROM t"),
        format!("PURGE DLQ WHERE {ands}"),
        format!("REQUEUE DLQ WHERE {ands}"),
        format!("TAIL t WHERE {ands}"),
        format!("EXPORT t TO '{}' WHERE {ands}", out.display()),
    ];
    for text in cases {
        let err = run_small(&t.path, text.clone()).unwrap_err();
        assert!(
            matches!(err, Error::Syntax(_)),
            "{}...: {err:?}",
            &text[..40]
        );
        assert!(
            err.to_string()
                .contains("expression too long: more than 64 levels"),
            "{}...: {err}",
            &text[..40]
        );
    }
    assert!(!out.exists());
    assert_eq!(
        common::rows(&t.db, "SELECT COUNT(*) AS n FROM t")[0]["n"],
        1
    );
}

#[test]
fn deep_nesting_and_huge_lists_are_errors_on_a_small_stack() {
    let t = setup();
    let n = 100_000;
    let deep = |open: &str, close: &str| {
        format!(
            "SELECT * FROM t WHERE {}1{}",
            open.repeat(n),
            close.repeat(n)
        )
    };
    let nested = "expression nested too deeply";
    let large = "expression too large: more than 10000 terms";
    let in_list = format!(
        "SELECT * FROM t WHERE offset IN ({})",
        vec!["1"; 40_000].join(",")
    );
    let cases = [
        (deep("(", ")"), nested),
        (deep("NOT ", ""), nested),
        (deep("- ", ""), nested),
        (deep("SUM(", ")"), nested),
        (deep("offset IN (", ")"), nested),
        (in_list.clone(), large),
        (format!("PURGE DLQ WHERE {}", &in_list[22..]), large),
        (
            format!("SELECT COUNT({}) FROM t", vec!["1"; 50_000].join(",")),
            "expected ')'",
        ),
    ];
    for (text, want) in cases {
        let err = run_small(&t.path, text.clone()).unwrap_err();
        assert!(
            matches!(err, Error::Syntax(_)),
            "{}...: {err:?}",
            &text[..40]
        );
        assert!(err.to_string().contains(want), "{}...: {err}", &text[..40]);
    }
}

#[test]
fn expressions_at_the_limits_still_run_on_a_small_stack() {
    let t = setup();
    // 63 operators: a tree of 64 levels, the most allowed.
    let text = format!("SELECT * FROM t WHERE {}", chain("offset = 0", " AND ", 62));
    assert_eq!(run_small(&t.path, text).unwrap(), 1);
    let text = format!("SELECT {} AS n FROM t", chain("data.a", "+", 63));
    assert_eq!(run_small(&t.path, text).unwrap(), 1);
    let text = format!("SELECT {} AS n FROM t", chain("1", "+", 64));
    let err = run_small(&t.path, text).unwrap_err();
    assert!(matches!(err, Error::Syntax(_)), "{err:?}");
    assert!(err.to_string().contains("64 levels"), "{err}");
    // 63 nested parentheses and a chain, in every statement with a WHERE.
    let inner = format!("{}offset = 0{}", "(".repeat(63), ")".repeat(63));
    let filter = format!("{inner} AND {}", chain("data.a", " + ", 60));
    for text in [
        format!("SELECT * FROM t WHERE {filter} >= 0"),
        format!("PURGE DLQ WHERE {filter} >= 0"),
        format!("REQUEUE DLQ WHERE {filter} >= 0"),
        format!(
            "EXPORT t TO '{}' WHERE {filter} >= 0",
            t.dir.path().join("out.jsonl").display()
        ),
    ] {
        assert!(run_small(&t.path, text.clone()).is_ok(), "{text}");
    }
    let items = vec!["0"; 9_998].join(",");
    let text = format!("SELECT * FROM t WHERE offset IN ({items})");
    assert_eq!(run_small(&t.path, text).unwrap(), 1);
}

/// A piece of a statement: keywords, operators, operands, or one of them
/// repeated many times (deep or long expressions). No TAIL: a valid one
/// follows the topic until interrupted (its long WHERE is tested above).
fn fragment() -> impl Strategy<Value = String> {
    let pieces = proptest::sample::select(vec![
        "SELECT * FROM t WHERE ",
        "SELECT ",
        " FROM t",
        "PURGE DLQ WHERE ",
        "REQUEUE DLQ WHERE ",
        "SELECT COUNT(*) FROM q GROUP BY ",
        " ORDER BY ",
        "(",
        ")",
        "NOT ",
        "-",
        " AND ",
        " OR ",
        "+",
        "*",
        " IN (",
        ",",
        "1",
        "offset",
        "data.a",
        "'x'",
        "SUM(",
        " BETWEEN 1 AND ",
        " IS NULL",
        ";",
        "PUBLISH t 'y'",
        "CONSUME FROM q",
        "ACK 1",
        "@",
        "\u{feff}",
    ]);
    prop_oneof![
        3 => pieces.prop_map(str::to_string),
        1 => (
            proptest::sample::select(vec!["(", "NOT ", "- ", "SUM(", "1+", "a AND ", "x IN (", "1,"]),
            1usize..40_000
        )
            .prop_map(|(s, n)| s.repeat(n)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Any mix of fragments, on a 2 MiB thread: Ok or Err, never a panic or
    /// an abort.
    #[test]
    fn generated_statements_never_abort(parts in proptest::collection::vec(fragment(), 1..10)) {
        let t = setup();
        let _ = run_small(&t.path, parts.concat());
    }
}

// ---------------------------------------------------------------- hole 13: edges

#[test]
fn numbers_above_i64_are_refused_not_clamped() {
    let t = setup();
    let before = common::rows(&t.db, "SHOW TOPICS");
    for text in [
        "CREATE TOPIC u ACK WAIT 18446744073709551615ms",
        "CREATE TOPIC u ACK WAIT 9223372036854775808ms",
        "CREATE TOPIC u DEDUP WINDOW 9223372036854775807s",
        "CREATE TOPIC u RETENTION 9223372036854775807GB",
        "CREATE TOPIC u RETENTION 9223372036854775808 MESSAGES",
        "CREATE TOPIC u MAX LENGTH 9223372036854775808",
        "ALTER TOPIC t SET RETENTION 106751991167301d",
    ] {
        let err = common::fail(&t.db, text);
        assert!(
            matches!(err, Error::InvalidOption { .. } | Error::Syntax(_)),
            "{text}: {err:?}"
        );
        assert!(err.to_string().contains("too large"), "{text}: {err}");
    }
    assert_eq!(common::rows(&t.db, "SHOW TOPICS"), before);
    // Every other duration of the language as well.
    for text in [
        "PUBLISH q DELAY 18446744073709551615ms 'late'",
        "CONSUME FROM q WAIT 9223372036854775808ms",
        "CONSUME FROM q ACK WAIT 106751991167301d",
        "NACK 1 DELAY 9223372036854776s",
        "SUBSCRIBE GROUP g TO t ACK WAIT 18446744073709551615ms",
        "REPLAY t GROUP g FROM TIMESTAMP '-18446744073709551615ms'",
    ] {
        let err = common::err(&t.db, text);
        let refused = err.contains("too large") || err.contains("expected a timestamp");
        assert!(refused, "{text}: {err}");
    }
    assert_eq!(
        common::rows(&t.db, "SELECT COUNT(*) AS n FROM q")[0]["n"],
        1
    );
    // Through the library too.
    let o = mqlite::TopicOptions {
        ack_wait: Some(std::time::Duration::MAX),
        ..Default::default()
    };
    let err = t.db.create_topic("u", &o).unwrap_err();
    assert!(
        matches!(&err, Error::InvalidOption { option, .. } if option == "ACK WAIT"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ACK WAIT (in ms) is too large"),
        "{err}"
    );
    // The largest value that fits still works.
    t.db.execute("CREATE TOPIC u ACK WAIT 9223372036854775807ms")
        .unwrap();
}

#[test]
fn a_leading_byte_order_mark_is_skipped() {
    let t = setup();
    let rows = common::rows(&t.db, "\u{feff}SELECT * FROM t");
    assert_eq!(rows.len(), 1);
    assert!(mqlite::lang::parse_statement("\u{feff}CHECK").is_ok());
    // Only at the start: elsewhere it is still not a token.
    assert!(
        t.db.execute("SELECT * FROM t;\u{feff}SELECT * FROM t")
            .is_err()
    );
}

#[test]
fn system_source_names_are_refused_as_topic_names() {
    let t = setup();
    for name in [
        "TOPICS",
        "groups",
        "Processed",
        "dlq",
        "DELIVERIES",
        "\"DLQ\"",
    ] {
        for kind in ["TOPIC", "QUEUE"] {
            let err = common::fail(&t.db, &format!("CREATE {kind} {name}"));
            assert!(
                matches!(
                    err,
                    Error::InvalidName {
                        problem: NameProblem::Reserved,
                        ..
                    }
                ),
                "{name}: {err:?}"
            );
            assert!(err.to_string().contains("reserved name"), "{name}: {err}");
        }
    }
    let err = t.db.create_queue("Dlq", &Default::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "'Dlq' is a reserved name (DLQ is a system source of SELECT): choose another name"
    );
    assert_eq!(common::rows(&t.db, "SHOW TOPICS").len(), 1);
    // Names that only contain them stay fine.
    t.db.execute("CREATE TOPIC dlq.orders; CREATE TOPIC my_groups")
        .unwrap();
}

#[test]
fn too_many_values_are_a_clear_error_without_sql() {
    let t = setup();
    let items = vec!["1"; 32_767].join(",");
    let err = common::err(&t.db, &format!("SELECT * FROM t WHERE offset IN ({items})"));
    assert!(err.contains("more than 10000 terms"), "{err}");
    assert!(!err.contains("mq_"), "{err}");
    // Many expressions each under the limit: the statement's total is checked.
    let list = format!("offset IN ({})", vec!["1"; 9_000].join(","));
    let text = format!("SELECT {list}, {list}, {list}, {list} FROM t");
    let err = common::fail(&t.db, &text);
    assert!(matches!(err, Error::InvalidStatement(_)), "{err:?}");
    let err = err.to_string();
    assert!(err.contains("statement too large: it needs"), "{err}");
    assert!(!err.contains("mq_"), "{err}");
}

#[test]
fn timestamps_cover_all_four_digit_years_and_nothing_past_them() {
    let t = setup();
    for (ts, ok) in [
        ("0000-01-01T00:00:00Z", true),
        ("9999-12-31T23:59:59Z", true),
        ("9999-12-31T23:59:59.999Z", true),
        ("9999-12-31T22:00:00-01:59", true),
        ("9999-12-30T22:00:00Z", true),
        ("0000-01-01T00:00:00+00:01", false),
        ("9999-12-31T23:59:59-00:01", false),
        ("-000001-12-31T23:59:59Z", false),
        ("2024-01-15T10:30:00+02:00", true),
        ("2024-01-15", false),
    ] {
        let text = format!("SELECT COUNT(*) AS n FROM t WHERE timestamp < '{ts}'");
        assert_eq!(t.db.execute(&text).is_ok(), ok, "{ts}");
        let text = format!("REPLAY t GROUP g FROM TIMESTAMP '{ts}'");
        let parsed = mqlite::lang::parse_statement(&text);
        assert_eq!(parsed.is_ok(), ok, "{ts}: {parsed:?}");
        if let Ok(s) = parsed {
            // Display gives RFC 3339 text that parses back to the same time.
            assert_eq!(mqlite::lang::parse_statement(&s.to_string()), Ok(s));
        }
    }
    let rows = common::rows(
        &t.db,
        "SELECT COUNT(*) AS n FROM t WHERE timestamp < '9999-12-31T23:59:59Z'",
    );
    assert_eq!(rows[0]["n"], 1);
}

#[test]
fn an_acked_queue_message_is_gone_from_select_at_once() {
    let t = setup();
    t.db.execute("PUBLISH q 'b', 'c', 'd'").unwrap();
    // One CONSUME of 4: one range lease.
    let rs = t.db.execute("CONSUME 4 FROM q").unwrap();
    let ids: Vec<String> = common::rows(&t.db, "CONSUME 4 FROM q")
        .iter()
        .map(|r| r["delivery"].to_string())
        .collect();
    assert!(ids.is_empty(), "all four are leased: {ids:?}");
    let col = rs.columns.iter().position(|c| c == "delivery").unwrap();
    let id = |i: usize| rs.rows[i][col].to_json().to_string();
    let payloads = |db: &Database| -> Vec<String> {
        common::rows(db, "SELECT payload FROM q")
            .iter()
            .map(|r| r["payload"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(payloads(&t.db), ["x", "b", "c", "d"]);
    t.db.execute(&format!("ACK {}, {}", id(1), id(3))).unwrap();
    assert_eq!(payloads(&t.db), ["x", "c"]);
    let n = common::rows(&t.db, "SELECT COUNT(*) AS n FROM q WHERE payload <> 'x'");
    assert_eq!(n[0]["n"], 1);
    t.db.execute(&format!("ACK {}", id(0))).unwrap();
    assert_eq!(payloads(&t.db), ["c"]);
    t.db.execute(&format!("ACK {}", id(2))).unwrap();
    assert!(payloads(&t.db).is_empty());

    // Per-message pending rows (a NACK splits a lease into them) likewise.
    t.db.execute("PUBLISH q 'e', 'f', 'g'").unwrap();
    let rs = t.db.execute("CONSUME 3 FROM q").unwrap();
    let id = |i: usize| rs.rows[i][col].to_json().to_string();
    t.db.execute(&format!("NACK {} DELAY 1h", id(0))).unwrap();
    t.db.execute(&format!("ACK {}", id(1))).unwrap();
    assert_eq!(payloads(&t.db), ["e", "g"]);
    t.db.execute(&format!("NACK {} DEAD", id(2))).unwrap();
    assert_eq!(payloads(&t.db), ["e"]);
    t.db.execute("PUBLISH q 'h'").unwrap();
    assert_eq!(payloads(&t.db), ["e", "h"]);
}
