//! Multi-process soak: 8 processes of mixed roles on one file (library
//! publishers, a shell publisher fed on stdin, consumers that ack, nack and
//! dead-letter, a DLQ mover), plus a read-only process running SELECTs back
//! to back and `mqlite --readonly db "TAIL t"`, for `MQLITE_SOAK_SECS`
//! (default 20). At the end: published = acked + dead + pending exactly, no
//! process saw an error (no BUSY, no locked), the WAL stayed under its bound
//! all along, and TAIL printed every offset once, in order, per partition.
#![allow(clippy::unwrap_used)] // tests may unwrap, helpers included

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Finished, Rng, Running, child_command, env_num, shell};
use mqlite::{ConsumeRequest, Database, Durability, Error, Message, NackAction, Value};

/// The WAL may never be larger than this while the soak runs. With one
/// reader the bound is 30.6 MB (tests/wal.rs); here 8 writing processes and
/// two that read without pause leave the truncating checkpoint fewer gaps
/// (55 MB seen before its retries were capped at every 4,096 frames).
const WAL_BOUND: u64 = 64 * 1024 * 1024;
const PARTITIONS: i64 = 3;
const SETUP: &str = "CREATE TOPIC t PARTITIONS 3 RETENTION FOREVER MAX DELIVERIES 3;
                     SUBSCRIBE GROUP g TO t FROM BEGINNING";

fn open(path: &str) -> Database {
    Database::builder(path)
        .durability(Durability::Normal)
        .open()
        .expect("open")
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The child side: does nothing unless started by the parent test. Every
/// role works until `MQLITE_UNTIL` (ms since the epoch), prints its totals
/// and exits 0; any error is printed as `ERR` and exits 3.
#[test]
fn child_process() {
    let Ok(role) = std::env::var("MQLITE_ROLE") else {
        return;
    };
    println!(); // after the harness's "test child_process ... "
    let path = std::env::var("MQLITE_DB").expect("db");
    let until = env_num("MQLITE_UNTIL", 0);
    let mut rng = Rng(env_num("MQLITE_SEED", 7) | 1);
    match role.as_str() {
        "publisher" => publisher(&open(&path), until, &mut rng),
        "consumer" => consumer(&open(&path), until, &mut rng),
        "mover" => mover(&open(&path), until),
        "reader" => {
            let db = Database::builder(&path)
                .read_only(true)
                .open()
                .unwrap_or_else(|e| fail("open read-only", &e));
            reader(&db, until);
        }
        other => panic!("unknown role {other}"),
    }
}

fn fail(what: &str, e: &Error) -> ! {
    println!("ERR {what}: {e}");
    std::process::exit(3)
}

fn publisher(db: &Database, until: u64, rng: &mut Rng) {
    let mut n = 0u64;
    while now_ms() < until {
        let count = 1 + rng.below(3) as usize;
        let batch = (0..count)
            .map(|k| Message::new(format!("{n}-{k}")))
            .collect();
        db.publish_batch("t", batch)
            .unwrap_or_else(|e| fail("publish", &e));
        n += count as u64;
    }
    println!("PUBLISHED {n}");
}

/// Acks 90%, nacks 6% (redelivered; MAX DELIVERIES 3 sends it to the DLQ
/// in the end), dead-letters 4%. Stops at the deadline with nothing leased.
fn consumer(db: &Database, until: u64, rng: &mut Rng) {
    let mut acked = 0u64;
    while now_ms() < until {
        let req = ConsumeRequest::topic("t", "g")
            .max(1 + rng.below(20) as usize)
            .wait(Duration::from_millis(20));
        let got = db.consume(&req).unwrap_or_else(|e| fail("consume", &e));
        let mut acks = Vec::new();
        for d in &got {
            let r = rng.below(100);
            let action = match r {
                0..90 => {
                    acks.push(d.id);
                    continue;
                }
                90..96 => NackAction::Now,
                _ => NackAction::Dead(Some("soak".into())),
            };
            db.nack(&[d.id], &action)
                .unwrap_or_else(|e| fail("nack", &e));
        }
        db.ack(&acks).unwrap_or_else(|e| fail("ack", &e));
        acked += acks.len() as u64;
    }
    println!("ACKED {acked}");
}

fn mover(db: &Database, until: u64) {
    let mut requeued = 0;
    while now_ms() < until {
        let rs = db
            .execute("REQUEUE DLQ t GROUP g LIMIT 5")
            .unwrap_or_else(|e| fail("requeue", &e));
        if let Some(Value::Int(n)) = rs.rows.first().and_then(|r| r.first()) {
            requeued += n;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("REQUEUED {requeued}");
}

/// SELECTs back to back, never pausing: the load that starves checkpoints.
fn reader(db: &Database, until: u64) {
    let mut reads = 0u64;
    while now_ms() < until {
        for q in [
            "SELECT COUNT(*) FROM t",
            "SELECT partition, offset, payload FROM t WHERE partition = 1 ORDER BY offset DESC LIMIT 20",
        ] {
            db.execute(q).unwrap_or_else(|e| fail("select", &e));
            reads += 1;
        }
    }
    println!("READS {reads}");
}

fn total(f: &Finished, word: &str) -> u64 {
    f.lines
        .iter()
        .filter_map(|l| l.strip_prefix(word))
        .filter_map(|n| n.trim().parse::<u64>().ok())
        .sum()
}

/// A shell process fed single and multi-payload PUBLISH statements until
/// the deadline; each jsonl row is one published message. The feeder keeps
/// at most 20 statements ahead of the rows printed, so the shell never
/// queues a backlog that outlives the deadline.
fn shell_publisher(db: &str, until: u64) -> Running {
    let mut c = shell();
    c.arg(db)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut running = Running::start("shell publisher", c);
    let mut stdin = running.child.stdin.take().expect("stdin piped");
    let rows = running.lines_handle();
    std::thread::spawn(move || {
        use std::io::Write;
        let (mut n, mut sent) = (0, 0usize);
        while now_ms() < until {
            if sent > rows.lock().unwrap().len() + 20 {
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            let (s, k) = if n % 5 == 0 {
                (format!("PUBLISH t 's{n}-a', 's{n}-b';\n"), 2)
            } else {
                (format!("PUBLISH t 's{n}';\n"), 1)
            };
            if stdin.write_all(s.as_bytes()).is_err() {
                return;
            }
            n += 1;
            sent += k;
        }
    });
    running
}

/// Offsets TAIL printed, per partition, in the order printed.
fn tail_offsets(lines: &[String]) -> BTreeMap<i64, Vec<i64>> {
    let mut by: BTreeMap<i64, Vec<i64>> = BTreeMap::new();
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).expect("TAIL prints jsonl");
        by.entry(v["partition"].as_i64().unwrap())
            .or_default()
            .push(v["offset"].as_i64().unwrap());
    }
    by
}

/// What one soak run saw.
struct Soak {
    published: u64,
    acked: u64,
    dead: u64,
    pending: u64,
    errors: Vec<String>,
    wal_max: u64,
    /// Per partition: offsets TAIL printed, and how many are stored.
    tail: BTreeMap<i64, Vec<i64>>,
    stored: BTreeMap<i64, i64>,
}

/// Samples the WAL's size every 20 ms until `stop`; returns the largest.
fn sample_wal(wal: String, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<u64> {
    let max = AtomicU64::new(0);
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            if let Ok(m) = std::fs::metadata(&wal) {
                max.fetch_max(m.len(), Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        max.load(Ordering::Relaxed)
    })
}

/// Starts TAIL and waits until it printed a marker published after it
/// started (TAIL follows messages published after it starts).
fn start_tail(db: &str) -> Running {
    let mut c = shell();
    c.args(["--readonly", db, "TAIL t"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let tail = Running::start("tail", c);
    let started = Instant::now();
    let parent = open(db);
    loop {
        parent
            .publish("t", Message::new("marker").partition(0))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        if !tail.lines_so_far().is_empty() {
            return tail;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "TAIL never printed"
        );
    }
}

fn run_soak(secs: u64) -> Soak {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("soak.db").to_str().unwrap().to_string();
    open(&db).execute(SETUP).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let wal = sample_wal(format!("{db}-wal"), stop.clone());
    let tail = start_tail(&db);
    let until = now_ms() + secs * 1000;
    let mut rng = Rng::from_env("soak");
    let mut children = Vec::new();
    for (role, n) in [
        ("publisher", 3),
        ("consumer", 3),
        ("mover", 1),
        ("reader", 1),
    ] {
        for k in 0..n {
            let mut c = child_command(role, &db);
            c.env("MQLITE_UNTIL", until.to_string())
                .env("MQLITE_SEED", rng.below(u64::MAX).to_string());
            children.push(Running::start(format!("{role} {k}"), c));
        }
    }
    children.push(shell_publisher(&db, until));
    let finished: Vec<Finished> = children.into_iter().map(Running::wait).collect();
    let mut errors = Vec::new();
    let mut published = 0;
    for f in &finished {
        if !f.status.is_some_and(|s| s.success()) || f.lines.iter().any(|l| l.starts_with("ERR")) {
            errors.push(format!(
                "{}: {:?} {:?} {}",
                f.name, f.status, f.lines, f.stderr
            ));
        }
        published += match f.name.as_str() {
            "shell publisher" => f.lines.iter().filter(|l| l.contains("\"offset\"")).count() as u64,
            _ => total(f, "PUBLISHED"),
        };
    }
    let acked = finished.iter().map(|f| total(f, "ACKED")).sum();
    let check = open(&db);
    // Markers (partition 0) are published and never consumed.
    let markers = check
        .execute("SELECT COUNT(*) FROM t WHERE payload = 'marker'")
        .unwrap()
        .rows[0][0]
        .to_string()
        .parse::<u64>()
        .unwrap();
    let g = check
        .execute("SELECT pending, lag, dead FROM GROUPS")
        .unwrap();
    let num = |i: usize| g.rows[0][i].to_string().parse::<u64>().unwrap();
    let stored: BTreeMap<i64, i64> = (0..PARTITIONS)
        .map(|p| {
            let q = format!("SELECT COUNT(*) FROM t WHERE partition = {p}");
            (
                p,
                check.execute(&q).unwrap().rows[0][0]
                    .to_string()
                    .parse()
                    .unwrap(),
            )
        })
        .collect();
    // TAIL has until 10 s after the end to print the last messages.
    let want: i64 = stored.values().sum();
    let t0 = Instant::now();
    while (tail.lines_so_far().len() as i64) < want && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let tail = tail.kill();
    if tail.status.is_some() {
        errors.push(format!("TAIL exited {:?}: {}", tail.status, tail.stderr));
    }
    stop.store(true, Ordering::Relaxed);
    Soak {
        published: published + markers,
        acked,
        dead: num(2),
        pending: num(0) + num(1),
        errors,
        wal_max: wal.join().unwrap(),
        tail: tail_offsets(&tail.lines),
        stored,
    }
}

/// One soak run shared by the tests below (the first to ask runs it).
fn soak() -> &'static Soak {
    static SOAK: OnceLock<Soak> = OnceLock::new();
    SOAK.get_or_init(|| {
        let started = Instant::now();
        let s = run_soak(env_num("MQLITE_SOAK_SECS", 20));
        let tail_printed: usize = s.tail.values().map(Vec::len).sum();
        eprintln!(
            "soak {:.1} s: published {}, acked {}, dead {}, pending {}, WAL max {} KB \
             (bound {} KB), TAIL printed {tail_printed} of {:?} stored per partition, errors {}",
            started.elapsed().as_secs_f64(),
            s.published,
            s.acked,
            s.dead,
            s.pending,
            s.wal_max / 1024,
            WAL_BOUND / 1024,
            s.stored,
            s.errors.len()
        );
        s
    })
}

fn is_child() -> bool {
    std::env::var("MQLITE_ROLE").is_ok()
}

#[test]
fn soak_counts_exactly_and_no_process_sees_busy_or_any_error() {
    if is_child() {
        return;
    }
    let s = soak();
    assert!(s.errors.is_empty(), "processes failed: {:#?}", s.errors);
    assert!(s.published > 100 && s.acked > 0, "the processes did work");
    assert_eq!(
        s.published,
        s.acked + s.dead + s.pending,
        "published = acked + dead + pending"
    );
}

#[test]
fn soak_wal_stays_under_its_bound() {
    if is_child() {
        return;
    }
    let s = soak();
    assert!(s.wal_max <= WAL_BOUND, "WAL reached {} bytes", s.wal_max);
}

#[test]
fn soak_tail_prints_every_offset_once_in_order() {
    if is_child() {
        return;
    }
    let s = soak();
    for (p, n) in &s.stored {
        let got = s.tail.get(p).cloned().unwrap_or_default();
        // TAIL follows what is published after it starts: in partition 0
        // the markers published before it started are not its to print.
        let first = if *p == 0 {
            got.first().copied().unwrap_or(0)
        } else {
            0
        };
        let want: Vec<i64> = (first..*n).collect();
        assert!(
            got == want,
            "TAIL of partition {p}: printed {} of {} offsets; first difference at index {:?}",
            got.len(),
            want.len(),
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
}
