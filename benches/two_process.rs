//! One publisher process and one consumer process on one file, mqlite against
//! plain rusqlite doing the same I/O.
//!
//! ```text
//! cargo bench --bench two_process      # 9 interleaved pairs, under a minute
//! MQLITE_TWO_PROCESS_MESSAGES=20000 cargo bench --bench two_process   # shorter
//! ```
//!
//! The publisher publishes batches of 1,000 200-byte JSON messages to a queue
//! while the consumer consumes batches of 100 and acks each batch, until all
//! M messages (default 100,000, or `MQLITE_TWO_PROCESS_MESSAGES`) are acked.
//! Both open the file with `Durability::Full` (WAL, `synchronous=FULL`), so
//! every commit is an fsync. The figure is M / the wall time from starting
//! the two processes to the consumer's exit, after it acked everything.
//! Under `--bench` it runs 9 pairs (mqlite then raw, raw then mqlite, ...)
//! and prints the median of the per-pair ratios, so machine drift cancels.
//!
//! The raw baseline uses the table of the `throughput` bench: the publisher
//! inserts 1,000 rows per `BEGIN IMMEDIATE` transaction, the consumer SELECTs
//! the 100 oldest and DELETEs them per `BEGIN IMMEDIATE` transaction (sleeping
//! 1 ms when it finds none, where mqlite's consumer blocks in
//! `ConsumeRequest::wait`).
//!
//! The two processes are this binary run again with `MQLITE_TWO_PROCESS_ROLE`
//! set (`mqlite-publisher`, `mqlite-consumer`, `raw-publisher`,
//! `raw-consumer`) and the file in `MQLITE_TWO_PROCESS_DB`. The consumer
//! checks that it got every message exactly once (by the index in the
//! payload) and exits non-zero otherwise; the parent fails if either child
//! fails. Run without `--bench` (as `cargo test --benches` does), it does a
//! 2,000-message smoke run.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::time::{Duration, Instant};

use common::{
    RAW_INSERT, RAW_NEXT_OFFSET, RAW_PRAGMAS, RAW_SCHEMA, SIZE, now_ms, payload, thousands,
};
use mqlite::{ConsumeRequest, Database, Durability, Message};
use rusqlite::{Connection, TransactionBehavior, params};

const ROLE_VAR: &str = "MQLITE_TWO_PROCESS_ROLE";
const DB_VAR: &str = "MQLITE_TWO_PROCESS_DB";
const MESSAGES_VAR: &str = "MQLITE_TWO_PROCESS_MESSAGES";

/// Messages when `MQLITE_TWO_PROCESS_MESSAGES` is unset.
const DEFAULT_MESSAGES: u64 = 100_000;
/// Interleaved mqlite / raw pairs under `--bench`.
const PAIRS: usize = 9;
/// Messages in the smoke run (without `--bench`).
const SMOKE_MESSAGES: u64 = 2_000;
/// Messages per publish transaction.
const PUBLISH_BATCH: u64 = 1_000;
/// Messages per consume + ack.
const CONSUME_BATCH: usize = 100;
/// The consumer gives up when nothing arrives for this long.
const STALL: Duration = Duration::from_secs(60);

/// The `i` of a `payload(i)`.
fn payload_index(p: &[u8]) -> Option<u64> {
    let rest = p.strip_prefix(b"{\"i\":")?;
    let end = rest.iter().position(|&b| b == b',')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Records which of `0..n` the consumer got; fails on a duplicate or a
/// stranger.
struct Seen {
    got: Vec<bool>,
    count: u64,
}

impl Seen {
    fn new(n: u64) -> Seen {
        Seen {
            got: vec![false; usize::try_from(n).expect("message count")],
            count: 0,
        }
    }

    fn record(&mut self, p: &[u8]) -> Result<(), String> {
        let i = payload_index(p)
            .ok_or_else(|| format!("bad payload {:?}", String::from_utf8_lossy(p)))?;
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| self.got.get_mut(i))
            .ok_or_else(|| format!("message {i} was never published"))?;
        if std::mem::replace(slot, true) {
            return Err(format!("message {i} consumed twice"));
        }
        self.count += 1;
        Ok(())
    }

    fn done(&self) -> bool {
        self.count == self.got.len() as u64
    }
}

// ---------------------------------------------------------------- mqlite

fn mq_open(path: &Path) -> Database {
    Database::builder(path)
        .durability(Durability::Full)
        .open()
        .expect("open mqlite")
}

fn mq_setup(path: &Path) {
    mq_open(path).execute("CREATE QUEUE bench").expect("create");
}

fn mq_publisher(path: &Path, n: u64) -> Result<(), String> {
    let db = mq_open(path);
    let mut done = 0;
    while done < n {
        let k = PUBLISH_BATCH.min(n - done);
        let msgs = (done..done + k).map(|i| Message::new(payload(i))).collect();
        db.publish_batch("bench", msgs)
            .map_err(|e| format!("publish: {e}"))?;
        done += k;
    }
    Ok(())
}

fn mq_consumer(path: &Path, n: u64) -> Result<(), String> {
    let db = mq_open(path);
    let req = ConsumeRequest::queue("bench")
        .max(CONSUME_BATCH)
        .wait(Duration::from_secs(1));
    let mut seen = Seen::new(n);
    let mut last = Instant::now();
    while !seen.done() {
        let got = db.consume(&req).map_err(|e| format!("consume: {e}"))?;
        if got.is_empty() {
            if last.elapsed() > STALL {
                return Err(format!("stalled after {} of {n} messages", seen.count));
            }
            continue;
        }
        last = Instant::now();
        for d in &got {
            seen.record(&d.payload)?;
        }
        let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
        db.ack(&ids).map_err(|e| format!("ack: {e}"))?;
    }
    Ok(())
}

// ---------------------------------------------------------------- raw SQLite

const RAW_SELECT: &str = "SELECT id, payload FROM msgs WHERE topic_id = 1 AND partition = 0
     ORDER BY offset LIMIT ?1";
const RAW_DELETE: &str = "DELETE FROM msgs WHERE id = ?1";

fn raw_open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch(RAW_PRAGMAS)?;
    Ok(conn)
}

fn raw_setup(path: &Path) {
    raw_open(path)
        .and_then(|c| c.execute_batch(RAW_SCHEMA))
        .expect("raw schema");
}

fn raw_publisher(path: &Path, n: u64) -> rusqlite::Result<()> {
    let mut conn = raw_open(path)?;
    let mut done = 0;
    while done < n {
        let k = PUBLISH_BATCH.min(n - done);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let next: i64 = tx
                .prepare_cached(RAW_NEXT_OFFSET)?
                .query_row([], |r| r.get(0))?;
            let mut st = tx.prepare_cached(RAW_INSERT)?;
            let ts = now_ms();
            for (j, i) in (done..done + k).enumerate() {
                st.execute(params![next + j as i64, ts, payload(i)])?;
            }
        }
        tx.commit()?;
        done += k;
    }
    Ok(())
}

fn raw_consumer(path: &Path, n: u64) -> Result<(), String> {
    let mut conn = raw_open(path).map_err(|e| e.to_string())?;
    let mut seen = Seen::new(n);
    let mut last = Instant::now();
    while !seen.done() {
        let rows = raw_take(&mut conn).map_err(|e| format!("consume: {e}"))?;
        if rows.is_empty() {
            if last.elapsed() > STALL {
                return Err(format!("stalled after {} of {n} messages", seen.count));
            }
            std::thread::sleep(Duration::from_millis(1));
            continue;
        }
        last = Instant::now();
        for (_, p) in &rows {
            seen.record(p)?;
        }
    }
    Ok(())
}

/// SELECT the `CONSUME_BATCH` oldest and DELETE them, in one transaction.
fn raw_take(conn: &mut Connection) -> rusqlite::Result<Vec<(i64, Vec<u8>)>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let rows = {
        let rows: Vec<(i64, Vec<u8>)> = tx
            .prepare_cached(RAW_SELECT)?
            .query_map([CONSUME_BATCH as i64], |r| {
                Ok((r.get(0)?, r.get_ref(1)?.as_bytes()?.to_vec()))
            })?
            .collect::<rusqlite::Result<_>>()?;
        let mut delete = tx.prepare_cached(RAW_DELETE)?;
        for (id, _) in &rows {
            delete.execute([id])?;
        }
        rows
    };
    tx.commit()?;
    Ok(rows)
}

// ---------------------------------------------------------------- driver

/// Runs one child role; the process's exit code.
fn child(role: &str) -> ExitCode {
    let path = PathBuf::from(std::env::var_os(DB_VAR).expect("MQLITE_TWO_PROCESS_DB"));
    let n: u64 = std::env::var(MESSAGES_VAR)
        .expect("MQLITE_TWO_PROCESS_MESSAGES")
        .parse()
        .expect("message count");
    let result = match role {
        "mqlite-publisher" => mq_publisher(&path, n),
        "mqlite-consumer" => mq_consumer(&path, n),
        "raw-publisher" => raw_publisher(&path, n).map_err(|e| format!("publish: {e}")),
        "raw-consumer" => raw_consumer(&path, n),
        _ => Err(format!("unknown {ROLE_VAR} {role:?}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("two_process {role}: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn spawn(role: &str, path: &Path, n: u64) -> Child {
    Command::new(std::env::current_exe().expect("current_exe"))
        .env(ROLE_VAR, role)
        .env(DB_VAR, path)
        .env(MESSAGES_VAR, n.to_string())
        .spawn()
        .expect("spawn child")
}

fn wait(mut child: Child, role: &str) {
    let status = child.wait().expect("wait for child");
    assert!(status.success(), "{role} process failed: {status}");
}

/// Messages per second of one publisher + one consumer process over `n`
/// messages of the `kind` ("mqlite" or "raw") roles, on a fresh file.
fn run(kind: &str, n: u64) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(format!("{kind}.db"));
    match kind {
        "mqlite" => mq_setup(&path),
        _ => raw_setup(&path),
    }
    let (publisher, consumer) = (format!("{kind}-publisher"), format!("{kind}-consumer"));
    let start = Instant::now();
    let p = spawn(&publisher, &path, n);
    let c = spawn(&consumer, &path, n);
    wait(c, &consumer);
    let elapsed = start.elapsed();
    wait(p, &publisher);
    n as f64 / elapsed.as_secs_f64()
}

fn main() -> ExitCode {
    if let Ok(role) = std::env::var(ROLE_VAR) {
        return child(&role);
    }
    let bench = std::env::args().any(|a| a == "--bench");
    let n = match std::env::var(MESSAGES_VAR) {
        Ok(v) => v.parse().expect("MQLITE_TWO_PROCESS_MESSAGES: a number"),
        Err(_) if bench => DEFAULT_MESSAGES,
        Err(_) => SMOKE_MESSAGES,
    };
    assert!(n > 0, "MQLITE_TWO_PROCESS_MESSAGES must be positive");
    let pairs = if bench { PAIRS } else { 1 };
    // The verdict is the median of the per-pair ratios.
    let p = common::pairs(pairs, || run("mqlite", n), || run("raw", n));
    println!(
        "# two_process: 1 publisher (batches of {}) + 1 consumer (batches of {CONSUME_BATCH}, \
         acked), {} messages of {SIZE} bytes, durability full; median of {pairs} interleaved pairs",
        thousands(PUBLISH_BATCH as f64),
        thousands(n as f64)
    );
    println!(
        "two_process  mqlite {} msgs/s  raw {} msgs/s  ratio {:.2} (pairs {:.2}-{:.2})",
        thousands(p.a_rate),
        thousands(p.b_rate),
        p.ratio,
        p.low,
        p.high
    );
    ExitCode::SUCCESS
}
