//! Several real processes on one file: producers and a consumer, nothing lost
//! or duplicated. The test binary re-runs itself as the child processes.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::Duration;

use mqlite::{ConsumeRequest, Database, Durability, Message};

const PER_PRODUCER: usize = 300;
const PRODUCERS: usize = 4;

fn open(path: &str) -> Database {
    Database::builder(path)
        .durability(Durability::Normal)
        .open()
        .expect("open")
}

/// The child side: does nothing unless started by the parent test.
#[test]
fn child_process() {
    let Ok(role) = std::env::var("MQLITE_TEST_ROLE") else {
        return;
    };
    let path = std::env::var("MQLITE_TEST_DB").expect("db path");
    if role == "create" {
        create_together(&path);
        return;
    }
    let db = open(&path);
    match role.as_str() {
        "producer" => {
            let id: usize = std::env::var("MQLITE_TEST_ID")
                .expect("id")
                .parse()
                .expect("id");
            let mut i = 0;
            while i < PER_PRODUCER {
                // Mix single publishes and small batches.
                if i % 10 == 0 && i + 3 <= PER_PRODUCER {
                    let batch = (i..i + 3)
                        .map(|k| Message::new(format!("p{id}-{k}")))
                        .collect();
                    db.publish_batch("jobs", batch).expect("publish batch");
                    i += 3;
                } else {
                    db.publish("jobs", Message::new(format!("p{id}-{i}")))
                        .expect("publish");
                    i += 1;
                }
            }
        }
        "consumer" => {
            let want = PER_PRODUCER * PRODUCERS;
            let mut got = 0;
            let deadline = std::time::Instant::now() + Duration::from_secs(120);
            while got < want && std::time::Instant::now() < deadline {
                let batch = db
                    .consume(
                        &ConsumeRequest::queue("jobs")
                            .max(50)
                            .wait(Duration::from_secs(2)),
                    )
                    .expect("consume");
                for d in &batch {
                    println!("GOT {}", d.payload_str());
                }
                db.ack(&batch.iter().map(|d| d.id).collect::<Vec<_>>())
                    .expect("ack");
                got += batch.len();
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn spawn(role: &str, db: &str, id: usize) -> std::process::Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MQLITE_TEST_ROLE", role)
        .env("MQLITE_TEST_DB", db)
        .env("MQLITE_TEST_ID", id.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[test]
fn four_producer_processes_and_a_consumer_lose_and_duplicate_nothing() {
    if std::env::var("MQLITE_TEST_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let p = path.to_str().unwrap().to_string();
    open(&p).execute("CREATE QUEUE jobs").unwrap();

    let consumer = spawn("consumer", &p, 0);
    let producers: Vec<_> = (0..PRODUCERS).map(|i| spawn("producer", &p, i)).collect();
    for child in producers {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "producer failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = consumer.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "consumer failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let got: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.split_once("GOT ").map(|(_, p)| p)) // the harness may print "test child_process ... " before the first GOT
        .collect();
    let unique: HashSet<&str> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no message delivered twice");
    let want: HashSet<String> = (0..PRODUCERS)
        .flat_map(|id| (0..PER_PRODUCER).map(move |k| format!("p{id}-{k}")))
        .collect();
    let unique: HashSet<String> = unique.into_iter().map(String::from).collect();
    let mut missing: Vec<&String> = want.difference(&unique).collect();
    missing.sort();
    assert!(
        missing.is_empty(),
        "{} of {} messages never delivered, e.g. {:?}",
        missing.len(),
        want.len(),
        &missing[..missing.len().min(10)]
    );
    assert_eq!(unique.len(), want.len(), "nothing unexpected");

    // Per producer, the queue kept publish order.
    for id in 0..PRODUCERS {
        let seq: Vec<usize> = got
            .iter()
            .filter_map(|g| g.strip_prefix(&format!("p{id}-")))
            .map(|n| n.parse().unwrap())
            .collect();
        assert!(seq.windows(2).all(|w| w[0] < w[1]), "producer {id} order");
    }
    let db = open(&p);
    assert_eq!(
        db.topic_stats("jobs").unwrap().messages,
        0,
        "all acked and trimmed"
    );
    assert_eq!(
        db.execute("CHECK").unwrap().rows[0][0],
        mqlite::Value::Text("ok".into())
    );
}

/// Processes released at once on a missing file (`create_together` each),
/// per round; `MQLITE_CREATE_ROUNDS` overrides the number of rounds.
const CREATE_ROUNDS: usize = 40;
const CREATORS: usize = 8;

/// The child side of the creation race: says it is ready, waits for the go
/// file, then opens (creating) the file and writes to it. Exits 1 with the
/// error on stderr on any failure.
fn create_together(path: &str) {
    let id = std::env::var("MQLITE_TEST_ID").expect("id");
    std::fs::write(format!("{path}.ready{id}"), b"").expect("ready file");
    let go = format!("{path}.go");
    while !std::path::Path::new(&go).exists() {
        std::thread::sleep(Duration::from_micros(100));
    }
    let result = Database::open(path)
        .and_then(|db| db.execute("CREATE TOPIC IF NOT EXISTS t; PUBLISH t 'x'"));
    if let Err(e) = result {
        eprintln!("CREATE FAILED: {e}");
        std::process::exit(1);
    }
}

#[test]
fn processes_creating_a_new_file_together_all_succeed() {
    if std::env::var("MQLITE_TEST_ROLE").is_ok() {
        return;
    }
    let rounds = std::env::var("MQLITE_CREATE_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CREATE_ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    let mut failures = Vec::new();
    for round in 0..rounds {
        let path = dir.path().join(format!("new{round}.db"));
        let p = path.to_str().unwrap().to_string();
        let children: Vec<_> = (0..CREATORS).map(|i| spawn("create", &p, i)).collect();
        // Release them together once every one waits for the go file.
        let ready = |i: usize| std::path::Path::new(&format!("{p}.ready{i}")).exists();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !(0..CREATORS).all(ready) && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_micros(200));
        }
        std::fs::write(format!("{p}.go"), b"").unwrap();
        let mut ok = 0;
        for child in children {
            let out = child.wait_with_output().unwrap();
            if out.status.success() {
                ok += 1;
            } else {
                failures.push(format!(
                    "round {round}: {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
        }
        let db = open(&p);
        assert_eq!(db.topic_stats("t").unwrap().messages, ok, "round {round}");
    }
    eprintln!(
        "{} of {} processes failed in {rounds} rounds",
        failures.len(),
        rounds * CREATORS
    );
    assert!(
        failures.is_empty(),
        "{} of {} processes failed, e.g.:\n{}",
        failures.len(),
        rounds * CREATORS,
        failures
            .iter()
            .take(5)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
