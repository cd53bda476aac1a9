//! Wake-up of waiting consumers: across processes by the file's signal (no
//! polling), and on time for leases and delays that run out. These tests
//! use the real clock with tolerances wide enough for a loaded CI machine;
//! the figures themselves are measured by `cargo bench --bench latency`.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqlite::{ConsumeRequest, Database, Durability, Message};

fn open(path: &str) -> Database {
    Database::builder(path)
        .durability(Durability::Normal)
        .open()
        .expect("open")
}

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

/// The child side: does nothing unless started by a test below.
#[test]
fn child_process() {
    let Ok(role) = std::env::var("MQLITE_WAKE_ROLE") else {
        return;
    };
    let db = open(&std::env::var("MQLITE_WAKE_DB").expect("db"));
    match role.as_str() {
        // One publish per line on stdin; prints when each returned.
        "publisher" => {
            for line in std::io::stdin().lock().lines() {
                let line = line.expect("stdin");
                db.publish("jobs", Message::new(line)).expect("publish");
                println!("PUBLISHED {}", wall_us());
                std::io::stdout().flush().expect("flush");
            }
        }
        // Leases one message for 300 ms and never acks it.
        "leaser" => {
            let got = db
                .consume(&ConsumeRequest::queue("jobs").ack_wait(Duration::from_millis(300)))
                .expect("consume");
            assert_eq!(got.len(), 1);
            println!("LEASED {}", wall_us());
        }
        other => panic!("unknown role {other}"),
    }
}

fn child(role: &str, db: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MQLITE_WAKE_ROLE", role)
        .env("MQLITE_WAKE_DB", db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn")
}

/// Reads the child's stdout up to a line starting with `tag`; returns its number.
fn expect_line(out: &mut impl BufRead, tag: &str) -> i64 {
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            out.read_line(&mut line).expect("read") > 0,
            "child ended before {tag}"
        );
        // The test harness may print "test child_process ... " before it.
        if let Some(at) = line.find(tag) {
            return line[at + tag.len()..].trim().parse().expect("number");
        }
    }
}

/// A waiter in this process wakes for each publish of another process at
/// once, although it has been idle long enough for any polling to have
/// backed off (before this, polling backed off to 100 ms: a median of about
/// 50 ms). Each publish lands while the waiter sleeps, after its last check.
#[test]
fn a_publish_in_another_process_wakes_a_waiter_at_once() {
    if std::env::var("MQLITE_WAKE_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("wake.db");
    let path = path.to_str().expect("utf-8");
    let db = open(path);
    db.execute("CREATE QUEUE jobs").expect("create");
    let mut publisher = child("publisher", path);
    let mut to_child = publisher.stdin.take().expect("stdin");
    let mut from_child = BufReader::new(publisher.stdout.take().expect("stdout"));

    let rounds = 15;
    let waiter = {
        let db = db.clone();
        std::thread::spawn(move || {
            let mut woke = Vec::new();
            for _ in 0..rounds {
                let got = db
                    .consume(&ConsumeRequest::queue("jobs").wait(Duration::from_secs(20)))
                    .expect("consume");
                woke.push(wall_us());
                assert_eq!(got.len(), 1, "the wait ended without a message");
                db.ack(&[got[0].id]).expect("ack");
            }
            woke
        })
    };
    let mut published = Vec::new();
    for i in 0..rounds {
        // Long enough for a poller to back off fully.
        std::thread::sleep(Duration::from_millis(250));
        writeln!(to_child, "m{i}").expect("to child");
        published.push(expect_line(&mut from_child, "PUBLISHED"));
    }
    drop(to_child);
    let woke = waiter.join().expect("waiter");
    publisher.wait().expect("child");
    let mut lat: Vec<i64> = woke.iter().zip(&published).map(|(w, p)| w - p).collect();
    lat.sort_unstable();
    let median_ms = lat[lat.len() / 2] as f64 / 1000.0;
    assert!(
        median_ms < 20.0,
        "median wake-up {median_ms} ms after the other process's publish returned (all, µs: {lat:?})"
    );
}

/// A delayed message wakes its waiter when it becomes due, not at the next
/// poll (before this, a waiter looked again only every 500 ms).
#[test]
fn a_waiter_wakes_when_a_delay_ends() {
    if std::env::var("MQLITE_WAKE_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let db = open(dir.path().join("delay.db").to_str().expect("utf-8"));
    db.execute("CREATE QUEUE jobs").expect("create");
    let start = Instant::now();
    db.publish(
        "jobs",
        Message::new("later").delay(Duration::from_millis(200)),
    )
    .expect("publish");
    let got = db
        .consume(&ConsumeRequest::queue("jobs").wait(Duration::from_secs(5)))
        .expect("consume");
    let took = start.elapsed();
    assert_eq!(got.len(), 1);
    assert!(
        took >= Duration::from_millis(199),
        "delivered early: {took:?}"
    );
    assert!(
        took < Duration::from_millis(300),
        "woke {took:?} after a 200 ms delay"
    );
}

/// A lease taken by another process that runs out wakes a waiter here when
/// it runs out.
#[test]
fn a_waiter_wakes_when_another_process_lease_runs_out() {
    if std::env::var("MQLITE_WAKE_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("lease.db");
    let path = path.to_str().expect("utf-8");
    let db = open(path);
    db.execute("CREATE QUEUE jobs").expect("create");
    db.publish("jobs", Message::new("job")).expect("publish");
    let mut leaser = child("leaser", path);
    let mut out = BufReader::new(leaser.stdout.take().expect("stdout"));
    let leased = expect_line(&mut out, "LEASED");
    leaser.wait().expect("child");
    let got = db
        .consume(&ConsumeRequest::queue("jobs").wait(Duration::from_secs(5)))
        .expect("consume");
    let after_ms = (wall_us() - leased) as f64 / 1000.0;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].attempt, 2);
    assert!(
        after_ms >= 299.0,
        "redelivered {after_ms} ms after a 300 ms lease"
    );
    assert!(
        after_ms < 400.0,
        "woke {after_ms} ms after a 300 ms lease was taken"
    );
}
