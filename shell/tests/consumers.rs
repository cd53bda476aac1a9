//! Competing consumer processes share one group's state through the file,
//! fairness included: a process that runs one `CONSUME 1 FROM GROUP g` and
//! exits takes its turn after the previous one, as calls in one process do.

use std::path::Path;

use assert_cmd::Command;

fn mqlite(db: &Path, statements: &str) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_mqlite"))
        .arg(db)
        .arg(statements)
        .assert()
        .success();
    String::from_utf8_lossy(&out.get_output().stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

#[test]
fn one_shot_consumer_processes_take_turns_across_topics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("f.db");
    mqlite(
        &db,
        "CREATE TOPIC a; CREATE TOPIC b; SUBSCRIBE GROUP g TO a, b FROM BEGINNING;
         PUBLISH a 'a1', 'a2'; PUBLISH b 'b1', 'b2', 'b3', 'b4';",
    );
    let mut order = Vec::new();
    for _ in 0..6 {
        let rows = mqlite(&db, "CONSUME 1 FROM GROUP g");
        assert_eq!(rows.len(), 1, "{rows:?}");
        let payload = rows[0]["payload"].as_str().expect("payload").to_string();
        let delivery = rows[0]["delivery"].as_u64().expect("delivery");
        mqlite(&db, &format!("ACK {delivery}"));
        order.push(payload);
    }
    // Each process reserves a fresh block of delivery ids; the turn used to
    // follow them, so every process started at the same topic.
    assert_eq!(order, ["a1", "b1", "a2", "b2", "b3", "b4"]);
    // One process alternates the same way, going on from the last turn
    // that had a choice (it started at a).
    mqlite(&db, "PUBLISH a 'a3', 'a4'; PUBLISH b 'b5', 'b6';");
    let rows = mqlite(
        &db,
        "CONSUME 1 FROM GROUP g; CONSUME 1 FROM GROUP g; CONSUME 1 FROM GROUP g; CONSUME 1 FROM GROUP g;",
    );
    let payloads: Vec<&str> = rows.iter().filter_map(|r| r["payload"].as_str()).collect();
    assert_eq!(payloads, ["b5", "a3", "b6", "a4"]);
}
