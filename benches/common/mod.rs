//! What the `throughput` (criterion) and `ratios` (interleaved A/B) benches
//! share: the payload, opening and filling an mqlite database and the raw
//! SQLite baseline, and one round of each workload on either side.
//!
//! The raw baseline keeps only what any SQLite message log needs: a table
//! `(id, topic_id, partition, offset, ts, payload)` with a unique
//! `(topic_id, partition, offset)` index, the next offset computed in the
//! inserting transaction, and the page cache mqlite configures. The gap
//! between the two sides is what mqlite's bookkeeping (partition counters,
//! leases, cursors, retention) costs.
//!
//! Each bench crate that includes this module uses a part of it.
#![allow(dead_code)]

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use mqlite::{ConsumeRequest, Database, Durability, Message};
use rusqlite::{Connection, TransactionBehavior, params};
use tempfile::TempDir;

/// Payload bytes per message.
pub const SIZE: usize = 200;
/// Messages per transaction in `publish_batch` (and when pre-filling).
pub const BATCH: u64 = 1_000;
/// Threads in `publish_concurrent`.
pub const PRODUCERS: u64 = 8;
/// Messages per consume + ack round in `consume_ack`.
pub const CONSUME_BATCH: usize = 100;
/// Threads in `consume_ack_competing`.
pub const CONSUMERS: usize = 4;
/// Messages one `replay` scan reads.
pub const REPLAY_MESSAGES: u64 = 10_000;

/// A JSON document of exactly `SIZE` bytes: `{"i":123,"pad":"xxx..."}`.
pub fn payload(i: u64) -> String {
    let mut s = format!("{{\"i\":{i},\"pad\":\"");
    let pad = SIZE - s.len() - 2;
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    debug_assert_eq!(s.len(), SIZE);
    s
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------- mqlite

/// A fresh database with one topic (or queue) named `bench`.
pub fn mq_open(queue: bool) -> (TempDir, Database) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::builder(dir.path().join("mq.db"))
        .durability(Durability::Full)
        .open()
        .expect("open mqlite");
    db.execute(if queue {
        "CREATE QUEUE bench"
    } else {
        "CREATE TOPIC bench"
    })
    .expect("create");
    (dir, db)
}

pub fn mq_fill(db: &Database, n: u64) {
    let mut done = 0;
    while done < n {
        let k = BATCH.min(n - done);
        let msgs = (done..done + k).map(|i| Message::new(payload(i))).collect();
        db.publish_batch("bench", msgs).expect("fill");
        done += k;
    }
}

// ---------------------------------------------------------------- raw SQLite

/// What mqlite sets on each connection besides WAL: fsync per commit, the
/// same page cache.
pub const RAW_PRAGMAS: &str = "
PRAGMA synchronous = FULL;
PRAGMA mmap_size = 0;
PRAGMA cache_size = -16384;
PRAGMA temp_store = MEMORY;
";

/// The file: WAL (kept in the file) and the message table.
pub const RAW_SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE msgs (
    id        INTEGER PRIMARY KEY,
    topic_id  INTEGER NOT NULL,
    partition INTEGER NOT NULL,
    offset    INTEGER NOT NULL,
    ts        INTEGER NOT NULL,
    payload   BLOB NOT NULL
);
CREATE UNIQUE INDEX msgs_position ON msgs (topic_id, partition, offset);
";

/// The next offset of topic 1, partition 0 (read once per transaction, as
/// mqlite reads its partition counter once per publish).
pub const RAW_NEXT_OFFSET: &str =
    "SELECT COALESCE(MAX(offset) + 1, 0) FROM msgs WHERE topic_id = 1 AND partition = 0";
pub const RAW_INSERT: &str =
    "INSERT INTO msgs (topic_id, partition, offset, ts, payload) VALUES (1, 0, ?1, ?2, ?3)";

pub fn raw_open() -> (TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::open(dir.path().join("raw.db")).expect("open sqlite");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch(RAW_PRAGMAS).expect("pragmas");
    conn.execute_batch(RAW_SCHEMA).expect("schema");
    (dir, conn)
}

/// Another connection to the raw file `raw_open` made, set up as its own.
pub fn raw_connect(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open sqlite");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch(RAW_PRAGMAS).expect("pragmas");
    conn
}

pub fn raw_publish(conn: &mut Connection, first: u64, n: u64) {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    {
        let next: i64 = tx
            .prepare_cached(RAW_NEXT_OFFSET)
            .expect("prepare")
            .query_row([], |r| r.get(0))
            .expect("next offset");
        let mut st = tx.prepare_cached(RAW_INSERT).expect("prepare");
        let ts = now_ms();
        for (k, i) in (first..first + n).enumerate() {
            let offset = next + k as i64;
            st.execute(params![offset, ts, payload(i)]).expect("insert");
        }
    }
    tx.commit().expect("commit");
}

pub fn raw_fill(conn: &mut Connection, n: u64) {
    let mut done = 0;
    while done < n {
        let k = BATCH.min(n - done);
        raw_publish(conn, done, k);
        done += k;
    }
}

/// One raw consume: in one `BEGIN IMMEDIATE` transaction, SELECT the `n`
/// oldest messages and DELETE them. Returns `(id, offset, payload)` rows.
pub fn raw_take(conn: &mut Connection, n: usize) -> Vec<(i64, i64, Vec<u8>)> {
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .expect("begin");
    let rows: Vec<(i64, i64, Vec<u8>)> = {
        let mut select = tx
            .prepare_cached(
                "SELECT id, offset, payload FROM msgs WHERE topic_id = 1 AND partition = 0
                 ORDER BY offset LIMIT ?1",
            )
            .expect("prepare");
        let rows: Vec<(i64, i64, Vec<u8>)> = select
            .query_map([n as i64], |r| {
                let payload = r.get_ref(2)?.as_bytes()?.to_vec();
                Ok((r.get(0)?, r.get(1)?, payload))
            })
            .expect("select")
            .collect::<rusqlite::Result<_>>()
            .expect("rows");
        let mut delete = tx
            .prepare_cached("DELETE FROM msgs WHERE id = ?1")
            .expect("prepare");
        for (id, _, _) in &rows {
            delete.execute([id]).expect("delete");
        }
        rows
    };
    tx.commit().expect("commit");
    rows
}

/// Checks that `seen` (one key per consumed message, from every consumer)
/// holds `n` distinct keys: every message of the pre-filled queue was
/// consumed exactly once.
pub fn assert_exactly_once<K: Ord + std::fmt::Debug>(mut seen: Vec<K>, n: u64) {
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        panic!("message {:?} consumed twice", w[0]);
    }
    assert_eq!(seen.len() as u64, n, "messages consumed");
}

/// Runs `n` publishes spread over `PRODUCERS` threads, each with its own
/// publisher from `producer`; returns the wall time.
pub fn concurrently<P: FnMut(u64) + Send>(n: u64, producer: impl Fn() -> P + Sync) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for k in 0..PRODUCERS {
            let mut publish_one = producer();
            s.spawn(move || {
                let mut i = k;
                while i < n {
                    publish_one(i);
                    i += PRODUCERS;
                }
            });
        }
    });
    start.elapsed()
}

/// Drains the queue `bench` with `consumers` threads sharing clones of `db`,
/// each consuming batches of `CONSUME_BATCH` and acking each batch, until a
/// consume comes back empty. Returns the `(partition, offset)` of every
/// message consumed, from every thread.
pub fn mq_drain(db: &Database, consumers: usize) -> Vec<(u32, u64)> {
    let req = ConsumeRequest::queue("bench").max(CONSUME_BATCH);
    let seen: Vec<Vec<(u32, u64)>> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..consumers)
            .map(|_| {
                let db = db.clone();
                let req = &req;
                s.spawn(move || {
                    let mut seen = Vec::new();
                    loop {
                        // Empty: the rest is acked or leased by another
                        // consumer, which will ack it.
                        let got = db.consume(req).expect("consume");
                        if got.is_empty() {
                            return seen;
                        }
                        let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
                        db.ack(&ids).expect("ack");
                        seen.extend(got.iter().map(|d| (d.partition, d.offset)));
                        black_box(got);
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("consumer"))
            .collect()
    });
    seen.concat()
}

/// `raw_take` in a loop on each of `conns` (one thread each) until a take
/// comes back empty. Returns the id of every row taken.
pub fn raw_drain(conns: &mut [Connection]) -> Vec<i64> {
    let seen: Vec<Vec<i64>> = std::thread::scope(|s| {
        let threads: Vec<_> = conns
            .iter_mut()
            .map(|conn| {
                s.spawn(move || {
                    let mut seen = Vec::new();
                    loop {
                        let rows = raw_take(conn, CONSUME_BATCH);
                        if rows.is_empty() {
                            return seen;
                        }
                        seen.extend(rows.iter().map(|r| r.0));
                        black_box(rows);
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|h| h.join().expect("consumer"))
            .collect()
    });
    seen.concat()
}

/// Reads the topic `bench` from the beginning with `Database::scan`; returns
/// the payload bytes seen. Panics unless it read `REPLAY_MESSAGES` messages.
pub fn mq_replay(db: &Database) -> usize {
    let mut bytes = 0usize;
    let n = db
        .scan("bench", |m| {
            bytes += m.payload().len();
            true
        })
        .expect("scan");
    assert_eq!(n, REPLAY_MESSAGES);
    bytes
}

/// The raw side of `mq_replay`: every row in offset order.
pub fn raw_replay(conn: &Connection) -> usize {
    let mut st = conn
        .prepare_cached(
            "SELECT offset, payload FROM msgs WHERE topic_id = 1 AND partition = 0 ORDER BY offset",
        )
        .expect("prepare");
    let mut rows = st.query([]).expect("select");
    let (mut n, mut bytes) = (0u64, 0usize);
    while let Some(r) = rows.next().expect("row") {
        let _offset: i64 = r.get(0).expect("offset");
        bytes += r
            .get_ref(1)
            .expect("payload")
            .as_bytes()
            .expect("text")
            .len();
        n += 1;
    }
    assert_eq!(n, REPLAY_MESSAGES);
    bytes
}

/// What `pairs` measured: the median rate of each side, the median of the
/// per-pair ratios A / B, and the lowest and highest of those ratios.
pub struct Paired {
    pub a_rate: f64,
    pub b_rate: f64,
    pub ratio: f64,
    pub low: f64,
    pub high: f64,
}

/// Runs `n` pairs of `a` and `b` (each returning a rate), B first in every
/// other pair, so drift of the machine's speed cancels in each pair's ratio.
pub fn pairs(n: usize, mut a: impl FnMut() -> f64, mut b: impl FnMut() -> f64) -> Paired {
    let (mut a_rates, mut b_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for k in 0..n {
        let (ra, rb) = if k % 2 == 0 {
            let ra = a();
            (ra, b())
        } else {
            let rb = b();
            (a(), rb)
        };
        a_rates.push(ra);
        b_rates.push(rb);
        ratios.push(ra / rb);
    }
    Paired {
        a_rate: median(a_rates),
        b_rate: median(b_rates),
        low: ratios.iter().copied().fold(f64::INFINITY, f64::min),
        high: ratios.iter().copied().fold(0.0, f64::max),
        ratio: median(ratios),
    }
}

/// The median (the mean of the middle two for an even count).
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::new();
    for (k, ch) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}
