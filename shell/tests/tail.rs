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
    // TAIL prints what is committed after it started: publish a marker
    // until it shows one, so every message of the script comes after.
    let mut first = None;
    for _ in 0..100 {
        let marked = Command::new(bin)
            .arg(&db)
            .arg("PUBLISH t KEY 'ready' 'ready';")
            .stdout(Stdio::null())
            .status()
            .expect("marker");
        assert!(marked.success());
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            first = Some(line);
            break;
        }
    }
    let first = first.expect("TAIL printed none of 100 markers");
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
    let mut payloads = Vec::new();
    let take = |line: &str, seen: &mut Vec<Vec<i64>>, payloads: &mut Vec<String>| {
        let v: serde_json::Value = serde_json::from_str(line).expect("jsonl row");
        let p = v["partition"].as_u64().expect("partition") as usize;
        seen[p].push(v["offset"].as_i64().expect("offset"));
        let payload = v["payload"].as_str().expect("payload").to_string();
        if payload != "ready" {
            payloads.push(payload);
        }
    };
    take(&first, &mut seen, &mut payloads);
    let deadline = Instant::now() + Duration::from_secs(60);
    while payloads.len() < MESSAGES && Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            take(&line, &mut seen, &mut payloads);
        }
    }
    while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
        take(&line, &mut seen, &mut payloads);
    }
    tail.kill().expect("stop tail");
    let _ = tail.wait();
    let _ = reader.join();
    // From the first row TAIL showed of each partition on, every offset
    // once and in order.
    for (p, offsets) in seen.iter().enumerate() {
        let from = offsets.first().copied().unwrap_or(0);
        let expected: Vec<i64> = (from..from + offsets.len() as i64).collect();
        assert_eq!(
            offsets, &expected,
            "partition {p}: gaps, repeats or disorder"
        );
    }
    // And every message of the script, exactly once.
    let total = payloads.len();
    payloads.sort();
    payloads.dedup();
    assert_eq!(payloads.len(), total, "TAIL printed a message twice");
    assert_eq!(total, MESSAGES, "TAIL printed {total} of {MESSAGES}");
}
