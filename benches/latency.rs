//! Wake-up latency: how long after a publish returns does a consumer that
//! waits in `CONSUME ... WAIT` have the message, across processes and in
//! one process, and what an idle waiter costs.
//!
//! ```text
//! cargo bench --bench latency                       # 2,000 messages each way
//! MQLITE_LATENCY_MESSAGES=5000 cargo bench --bench latency
//! ```
//!
//! Cross-process: this binary runs again as a publisher child
//! (`MQLITE_LATENCY_ROLE=publisher`) that publishes one 200-byte JSON
//! message at a time at 200/s, so each finds the consumer idle, and prints
//! the wall-clock time each publish returned; the parent waits in
//! `consume(.. .wait(..))`, notes the time it returned, and acks. Same
//! process: a publisher thread and a waiting thread share one handle. Both
//! files are `Durability::Full`. Reported: p50, p99, p999 and max of
//! publish-return → consume-return. Timers: how long after a 20 ms DELAY
//! runs out the waiter has the message (the publish wakes it, it finds the
//! message not yet due and sleeps until it is). Idle: the CPU time this process spends
//! over 10 s of a waiter waiting for nothing, as a share of one core.
//! Without `--bench` (as `cargo test --benches` does) it runs 50 messages
//! each way and a 1 s idle wait, as a smoke test.

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mqlite::{ConsumeRequest, Database, Durability, Message};

const RATE_PER_SEC: u64 = 200;

fn wall_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros() as i64
}

fn payload(i: u64) -> String {
    let head = format!(r#"{{"i":{i},"pad":""#);
    format!("{head}{}\"}}", "x".repeat(200 - head.len() - 2))
}

fn open(path: &str) -> Database {
    Database::builder(path)
        .durability(Durability::Full)
        .open()
        .expect("open")
}

/// The publisher child: `n` publishes at the fixed rate, each time printed.
fn publisher(path: &str, n: u64) {
    let db = open(path);
    let mut out = std::io::stdout().lock();
    let gap = Duration::from_micros(1_000_000 / RATE_PER_SEC);
    let start = Instant::now();
    for i in 0..n {
        let at = start + gap * u32::try_from(i).expect("count");
        if let Some(wait) = at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        db.publish("lat", Message::new(payload(i)))
            .expect("publish");
        writeln!(out, "{i} {}", wall_us()).expect("stdout");
        out.flush().expect("flush");
    }
}

/// Waits for `n` messages; returns each one's wake-up time by its index.
fn wait_all(db: &Database, n: u64) -> Vec<i64> {
    let mut woke = vec![0; n as usize];
    let mut got = 0;
    while got < n {
        let batch = db
            .consume(
                &ConsumeRequest::queue("lat")
                    .max(10)
                    .wait(Duration::from_secs(30)),
            )
            .expect("consume");
        let now = wall_us();
        assert!(!batch.is_empty(), "no message within 30 s");
        for d in &batch {
            let text = d.payload_str();
            let i: usize = text[5..text.find(',').expect("index")]
                .parse()
                .expect("index");
            woke[i] = now;
            got += 1;
        }
        db.ack(&batch.iter().map(|d| d.id).collect::<Vec<_>>())
            .expect("ack");
    }
    woke
}

fn cross_process(dir: &std::path::Path, n: u64) -> Vec<i64> {
    let path = dir.join("cross.db");
    let path = path.to_str().expect("utf-8").to_string();
    let db = open(&path);
    db.execute("CREATE QUEUE lat").expect("create");
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env("MQLITE_LATENCY_ROLE", "publisher")
        .env("MQLITE_LATENCY_DB", &path)
        .env("MQLITE_LATENCY_N", n.to_string())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let out = BufReader::new(child.stdout.take().expect("stdout"));
    let reader = std::thread::spawn(move || {
        let mut published = vec![0i64; n as usize];
        for line in out.lines() {
            let line = line.expect("line");
            let mut it = line.split(' ');
            let i: usize = it.next().expect("i").parse().expect("i");
            published[i] = it.next().expect("t").parse().expect("t");
        }
        published
    });
    let woke = wait_all(&db, n);
    let published = reader.join().expect("reader");
    assert!(child.wait().expect("child").success(), "publisher failed");
    woke.iter().zip(&published).map(|(w, p)| w - p).collect()
}

fn same_process(dir: &std::path::Path, n: u64) -> Vec<i64> {
    let db = open(dir.join("same.db").to_str().expect("utf-8"));
    db.execute("CREATE QUEUE lat").expect("create");
    let publisher = {
        let db = db.clone();
        std::thread::spawn(move || {
            let gap = Duration::from_micros(1_000_000 / RATE_PER_SEC);
            let start = Instant::now();
            let mut published = Vec::with_capacity(n as usize);
            for i in 0..n {
                let at = start + gap * u32::try_from(i).expect("count");
                if let Some(wait) = at.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                db.publish("lat", Message::new(payload(i)))
                    .expect("publish");
                published.push(wall_us());
            }
            published
        })
    };
    let woke = wait_all(&db, n);
    let published = publisher.join().expect("publisher");
    woke.iter().zip(&published).map(|(w, p)| w - p).collect()
}

/// How late a waiter wakes for a delayed message: each of `n` messages is
/// published with a 20 ms DELAY by another handle (as another process's
/// would be); the waiter finds it not yet due, sleeps until it is, and its
/// consume returns some time after that.
fn delay_lateness(dir: &std::path::Path, n: u64) -> Vec<i64> {
    let path = dir.join("delay.db");
    let path = path.to_str().expect("utf-8");
    let waiter = open(path);
    waiter.execute("CREATE QUEUE lat").expect("create");
    let publisher = open(path);
    let delay = Duration::from_millis(20);
    let mut late = Vec::with_capacity(n as usize);
    for i in 0..n {
        publisher
            .publish("lat", Message::new(payload(i)).delay(delay))
            .expect("publish");
        let due = wall_us() + delay.as_micros() as i64;
        let got = waiter
            .consume(&ConsumeRequest::queue("lat").wait(Duration::from_secs(5)))
            .expect("consume");
        late.push(wall_us() - due);
        assert_eq!(got.len(), 1, "the delayed message did not come");
        waiter.ack(&[got[0].id]).expect("ack");
    }
    late
}

/// This process's CPU time (user + system) so far, from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<u64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 of stat (utime, stime), counted after the name.
    let ticks = f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn idle_share(dir: &std::path::Path, wait: Duration) -> f64 {
    let db = open(dir.join("idle.db").to_str().expect("utf-8"));
    db.execute("CREATE QUEUE lat").expect("create");
    let before = cpu_time();
    let start = Instant::now();
    let got = db
        .consume(&ConsumeRequest::queue("lat").wait(wait))
        .expect("consume");
    assert!(got.is_empty());
    (cpu_time() - before).as_secs_f64() / start.elapsed().as_secs_f64()
}

fn report(name: &str, mut lat: Vec<i64>) {
    lat.sort_unstable();
    let at = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).clamp(1, lat.len()) - 1];
    let ms = |us: i64| us as f64 / 1000.0;
    println!(
        "{name:<14} {:>6} msgs  p50 {:>7.3} ms  p99 {:>7.3} ms  p999 {:>7.3} ms  max {:>7.3} ms",
        lat.len(),
        ms(at(0.50)),
        ms(at(0.99)),
        ms(at(0.999)),
        ms(*lat.last().expect("some")),
    );
}

fn main() {
    if std::env::var("MQLITE_LATENCY_ROLE").as_deref() == Ok("publisher") {
        let path = std::env::var("MQLITE_LATENCY_DB").expect("db");
        let n = std::env::var("MQLITE_LATENCY_N")
            .expect("n")
            .parse()
            .expect("n");
        publisher(&path, n);
        return;
    }
    let full = std::env::args().any(|a| a == "--bench");
    let n = if full {
        std::env::var("MQLITE_LATENCY_MESSAGES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000)
    } else {
        50
    };
    let dir = tempfile::tempdir().expect("dir");
    println!(
        "# wake-up latency, publish-return -> consume-return, {RATE_PER_SEC} msgs/s, durability full"
    );
    report("cross-process", cross_process(dir.path(), n));
    report("same process", same_process(dir.path(), n));
    report(
        "delay, late by",
        delay_lateness(dir.path(), if full { 200 } else { 10 }),
    );
    let idle = if full {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(1)
    };
    let share = idle_share(dir.path(), idle);
    println!(
        "idle waiter    {:.2}% of a core over {} s",
        share * 100.0,
        idle.as_secs()
    );
}
