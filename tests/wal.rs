//! The write-ahead log stays bounded while another process reads back to
//! back (issue #10, hole 3). Real processes: the test binary re-runs itself
//! as a publisher and as a reader.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mqlite::{Database, Durability, Message};

/// Single publishes of the publisher process (`MQLITE_WAL_PUBLISHES`
/// overrides). Enough that, with readers starving the checkpoints, the WAL
/// grows far past the bound (measured without the bound: see the commit).
const PUBLISHES: usize = 12_000;

/// Messages in the topic before the run, so that every read is long
/// compared with the gap between two reads (as in a growing production
/// topic), which is what starves SQLite's checkpoints.
const PREFILL: usize = 60_000;

/// The stated bound (docs/design.md, "Storage"): `storage::WAL_RESTART_FRAMES`
/// (4,096) frames, plus the three retry steps (1,024, 2,048 and 4,096
/// frames) that a reader may defeat (the truncating checkpoint then waits
/// for the reader's snapshot), plus the commits that land before the
/// checkpoint holds the write lock (256 frames of slack), of 4,096 + 24
/// bytes each, and the 32-byte WAL header: 47.5 MB.
///
/// History: two defeated tries (30.6 MB) were allowed until 2026-12-03,
/// when three defeated tries (46.4 MB) showed in two of three quiet runs,
/// and the code of before that day reached 29.5 MB in one of three. Without
/// the bound the log grows with every publish (37-55 MB after 6,000
/// publishes, 436 MB in the report that opened the issue), so the run is
/// twice as long as it was, which puts the unbounded log far past this
/// bound.
const WAL_BOUND: u64 = (4_096 + 1_024 + 2_048 + 4_096 + 256) * (4_096 + 24) + 32;

/// The child side: does nothing unless started by the parent test.
#[test]
fn child_process() {
    let Ok(role) = std::env::var("MQLITE_WAL_ROLE") else {
        return;
    };
    let path = std::env::var("MQLITE_WAL_DB").expect("db path");
    match role.as_str() {
        "publisher" => {
            let db = Database::builder(&path)
                .durability(Durability::Normal)
                .open()
                .expect("open");
            let payload = "x".repeat(200);
            for _ in 0..publishes() {
                db.publish("t", Message::new(payload.as_str()))
                    .expect("publish");
            }
        }
        "reader" => {
            // SELECTs back to back until the parent creates the stop file.
            let db = Database::builder(&path)
                .read_only(true)
                .open()
                .expect("open");
            let stop = format!("{path}.stop");
            let mut reads = 0u64;
            while !Path::new(&stop).exists() {
                db.execute("SELECT COUNT(*) FROM t").expect("select");
                reads += 1;
            }
            println!("READS {reads}");
        }
        other => panic!("unknown role {other}"),
    }
}

fn publishes() -> usize {
    std::env::var("MQLITE_WAL_PUBLISHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(PUBLISHES)
}

fn spawn(role: &str, db: &str) -> std::process::Child {
    Command::new(std::env::current_exe().expect("exe"))
        .args([
            "--exact",
            "child_process",
            "--nocapture",
            "--test-threads",
            "1",
        ])
        .env("MQLITE_WAL_ROLE", role)
        .env("MQLITE_WAL_DB", db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

fn wal_len(wal: &Path) -> u64 {
    std::fs::metadata(wal).map_or(0, |m| m.len())
}

#[test]
fn the_wal_stays_bounded_while_another_process_reads_back_to_back() {
    if std::env::var("MQLITE_WAL_ROLE").is_ok() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hot.db");
    let p = path.to_str().unwrap().to_string();
    let wal = dir.path().join("hot.db-wal");
    // Kept open for the whole run: the WAL is never removed by a last close.
    let db = Database::open(&path).unwrap();
    db.execute("CREATE TOPIC t").unwrap();
    // Long reads: each SELECT counts this many messages and more.
    let payload = "y".repeat(100);
    for _ in 0..PREFILL / 1000 {
        let batch = (0..1000).map(|_| Message::new(payload.as_str())).collect();
        db.publish_batch("t", batch).unwrap();
    }
    // Closing the only connection folds the prefill's WAL into the file.
    drop(db);
    assert_eq!(wal_len(&wal), 0);
    let db = Database::open(&path).unwrap();

    let reader = spawn("reader", &p);
    // The reader is reading before the first publish.
    let started = Instant::now();
    while wal_len(&wal) == 0 && started.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(100));
    let mut publisher = spawn("publisher", &p);
    let mut largest = 0;
    let mut samples = 0;
    let status = loop {
        largest = largest.max(wal_len(&wal));
        samples += 1;
        if let Some(status) = publisher.try_wait().unwrap() {
            break status;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let at_end = wal_len(&wal);
    std::fs::write(format!("{p}.stop"), b"").unwrap();
    let out = publisher.wait_with_output().unwrap();
    assert!(
        status.success(),
        "publisher failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = reader.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "reader failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let reads: u64 = stdout
        .lines()
        .find_map(|l| {
            l.split_once("READS ")
                .map(|(_, n)| n.trim().parse().unwrap())
        })
        .unwrap();
    eprintln!(
        "{} publishes, {reads} reads: largest WAL {largest} bytes over {samples} samples, {at_end} at the end (bound {WAL_BOUND})",
        publishes()
    );
    assert!(reads > 10, "the reader read only {reads} times");
    assert_eq!(
        db.topic_stats("t").unwrap().messages,
        (PREFILL + publishes()) as u64,
        "every publish is there"
    );
    assert!(
        largest <= WAL_BOUND,
        "the WAL reached {largest} bytes, over the bound of {WAL_BOUND}"
    );
    assert!(at_end <= WAL_BOUND, "the WAL ended at {at_end} bytes");
}
