//! TAIL against a publisher in another process: every message exactly once,
//! in offset order per partition.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const MESSAGES: usize = 2000;

#[test]
fn tail_prints_every_message_another_process_commits_exactly_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("t.db");
    let bin = env!("CARGO_BIN_EXE_mqlite");
    let created = Command::new(bin)
        .arg(&db)
        .arg("CREATE TOPIC t PARTITIONS 2;")
        .status()
        .expect("create");
    assert!(created.success());
    let mut tail = Command::new(bin)
        .arg("--readonly")
        .arg(&db)
        .arg("TAIL t")
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let stdout = tail.stdout.take().expect("tail stdout");
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // One commit per message, as a busy producer would.
    let script: String = (0..MESSAGES)
        .map(|i| format!("PUBLISH t KEY 'k{}' 'm{i}';\n", i % 7))
        .collect();
    let publisher = Command::new(bin)
        .arg(&db)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn publisher");
    let mut stdin = publisher.stdin.as_ref().expect("stdin");
    std::io::Write::write_all(&mut stdin, script.as_bytes()).expect("feed publisher");
    let out = publisher.wait_with_output().expect("publisher");
    assert!(out.status.success());

    let mut seen: Vec<Vec<i64>> = vec![Vec::new(), Vec::new()];
    let mut total = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while total < MESSAGES && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            let v: serde_json::Value = serde_json::from_str(&line).expect("jsonl row");
            let p = v["partition"].as_u64().expect("partition") as usize;
            seen[p].push(v["offset"].as_i64().expect("offset"));
            total += 1;
        }
    }
    // A little longer: nothing may come twice.
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        let v: serde_json::Value = serde_json::from_str(&line).expect("jsonl row");
        let p = v["partition"].as_u64().expect("partition") as usize;
        seen[p].push(v["offset"].as_i64().expect("offset"));
        total += 1;
    }
    tail.kill().expect("stop tail");
    let _ = tail.wait();
    let _ = reader.join();
    for (p, offsets) in seen.iter().enumerate() {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {p}: gaps, repeats or disorder"
        );
    }
    assert_eq!(total, MESSAGES, "TAIL printed {total} of {MESSAGES}");
}
