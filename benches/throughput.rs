//! Workload throughput of mqlite against plain rusqlite doing the same I/O,
//! in one run so the ratio means something on a noisy machine.
//!
//! ```text
//! cargo bench --bench throughput            # all groups, about 2 minutes
//! cargo bench --bench throughput -- replay  # one group
//! python3 scripts/bench_ratios.py           # table of mqlite / raw ratios
//! ```
//!
//! Groups are named after workloads, each with an `mqlite` and a `raw_sqlite`
//! function. Every file is in WAL mode with `synchronous=FULL` (mqlite's
//! `Durability::Full`), so each commit is a real fsync. Payloads are 200-byte
//! JSON documents. One element is one message.
//!
//! The raw baseline keeps only what any SQLite message log needs: a table
//! `(id, topic_id, partition, offset, ts, payload)` with a unique
//! `(topic_id, partition, offset)` index, the next offset computed in the
//! inserting transaction, and the page cache mqlite configures. The gap
//! between the two functions is what mqlite's bookkeeping (partition
//! counters, leases, cursors, retention) costs.

use std::hint::black_box;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mqlite::{ConsumeRequest, Database, Durability, Message, StartFrom, Subscription};
use rusqlite::{Connection, TransactionBehavior, params};
use tempfile::TempDir;

/// Payload bytes per message.
const SIZE: usize = 200;
/// Messages per transaction in `publish_batch` (and when pre-filling).
const BATCH: u64 = 1_000;
/// Threads in `publish_concurrent`.
const PRODUCERS: u64 = 8;
/// Messages per consume + ack round in `consume_ack`.
const CONSUME_BATCH: usize = 100;
/// Threads in `consume_ack_competing`.
const CONSUMERS: usize = 4;
/// Messages one `replay` scan reads.
const REPLAY_MESSAGES: u64 = 10_000;

/// A JSON document of exactly `SIZE` bytes: `{"i":123,"pad":"xxx..."}`.
fn payload(i: u64) -> String {
    let mut s = format!("{{\"i\":{i},\"pad\":\"");
    let pad = SIZE - s.len() - 2;
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    debug_assert_eq!(s.len(), SIZE);
    s
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

// ---------------------------------------------------------------- mqlite

/// A fresh database with one topic (or queue) named `bench`.
fn mq_open(queue: bool) -> (TempDir, Database) {
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

fn mq_fill(db: &Database, n: u64) {
    let mut done = 0;
    while done < n {
        let k = BATCH.min(n - done);
        let msgs = (done..done + k).map(|i| Message::new(payload(i))).collect();
        db.publish_batch("bench", msgs).expect("fill");
        done += k;
    }
}

// ---------------------------------------------------------------- raw SQLite

/// What mqlite sets besides the schema: WAL, fsync per commit, the same page cache.
const RAW_SETUP: &str = "
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA mmap_size = 0;
PRAGMA cache_size = -16384;
PRAGMA temp_store = MEMORY;
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
const RAW_NEXT_OFFSET: &str =
    "SELECT COALESCE(MAX(offset) + 1, 0) FROM msgs WHERE topic_id = 1 AND partition = 0";
const RAW_INSERT: &str =
    "INSERT INTO msgs (topic_id, partition, offset, ts, payload) VALUES (1, 0, ?1, ?2, ?3)";

fn raw_open() -> (TempDir, Connection) {
    let dir = tempfile::tempdir().expect("tempdir");
    let conn = Connection::open(dir.path().join("raw.db")).expect("open sqlite");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch(RAW_SETUP).expect("schema");
    (dir, conn)
}

/// Another connection to the raw file `raw_open` made, set up as `RAW_SETUP`
/// sets up its own (journal_mode is kept in the file).
fn raw_connect(path: &Path) -> Connection {
    let conn = Connection::open(path).expect("open sqlite");
    conn.busy_timeout(Duration::from_secs(10))
        .expect("busy timeout");
    conn.execute_batch(
        "PRAGMA synchronous = FULL;
         PRAGMA mmap_size = 0;
         PRAGMA cache_size = -16384;
         PRAGMA temp_store = MEMORY;",
    )
    .expect("pragmas");
    conn
}

fn raw_publish(conn: &mut Connection, first: u64, n: u64) {
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

fn raw_fill(conn: &mut Connection, n: u64) {
    let mut done = 0;
    while done < n {
        let k = BATCH.min(n - done);
        raw_publish(conn, done, k);
        done += k;
    }
}

// ---------------------------------------------------------------- workloads

/// One message per durable commit.
fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish");
    g.throughput(Throughput::Elements(1));
    g.bench_function("mqlite", |b| {
        let (_dir, db) = mq_open(false);
        let mut i = 0;
        b.iter(|| {
            i += 1;
            db.publish("bench", Message::new(payload(i)))
                .expect("publish")
        });
    });
    g.bench_function("raw_sqlite", |b| {
        let (_dir, mut conn) = raw_open();
        let mut i = 0;
        b.iter(|| {
            i += 1;
            raw_publish(&mut conn, i, 1);
        });
    });
    g.finish();
}

/// `BATCH` messages per transaction.
fn publish_batch(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_batch");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("mqlite", |b| {
        let (_dir, db) = mq_open(false);
        let mut i = 0;
        b.iter(|| {
            let msgs = (i..i + BATCH).map(|j| Message::new(payload(j))).collect();
            i += BATCH;
            db.publish_batch("bench", msgs).expect("publish_batch")
        });
    });
    g.bench_function("raw_sqlite", |b| {
        let (_dir, mut conn) = raw_open();
        let mut i = 0;
        b.iter(|| {
            raw_publish(&mut conn, i, BATCH);
            i += BATCH;
        });
    });
    g.finish();
}

/// Runs `n` publishes spread over `PRODUCERS` threads, each with its own
/// publisher from `producer`; returns the wall time.
fn concurrently<P: FnMut(u64) + Send>(n: u64, producer: impl Fn() -> P + Sync) -> Duration {
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

/// `PRODUCERS` threads, each waiting for its own durable commit. mqlite's
/// clones share one connection and group concurrent publishes into one
/// commit. The baseline is the plain way to share SQLite between threads:
/// one connection behind a mutex, one commit per message (a connection per
/// thread would mostly measure SQLite's busy-handler sleeps). The ratio is
/// what group commit buys.
fn publish_concurrent(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_concurrent");
    g.throughput(Throughput::Elements(1));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("mqlite", |b| {
        let (_dir, db) = mq_open(false);
        b.iter_custom(|iters| {
            concurrently(iters, || {
                let db = db.clone();
                move |i| {
                    db.publish("bench", Message::new(payload(i)))
                        .expect("publish");
                }
            })
        });
    });
    g.bench_function("raw_sqlite", |b| {
        let (_dir, conn) = raw_open();
        let conn = Mutex::new(conn);
        b.iter_custom(|iters| {
            concurrently(iters, || {
                |i| {
                    let mut conn = conn.lock().expect("lock");
                    raw_publish(&mut conn, i, 1);
                }
            })
        });
    });
    g.finish();
}

/// Batches of `CONSUME_BATCH`: lease + ack in mqlite (two commits),
/// SELECT + DELETE in one transaction in raw SQLite. Filling is not timed.
fn consume_ack(c: &mut Criterion) {
    let mut g = c.benchmark_group("consume_ack");
    g.throughput(Throughput::Elements(CONSUME_BATCH as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("mqlite", |b| {
        let (_dir, db) = mq_open(true);
        let req = ConsumeRequest::queue("bench").max(CONSUME_BATCH);
        b.iter_custom(|iters| {
            mq_fill(&db, iters * CONSUME_BATCH as u64);
            let start = Instant::now();
            for _ in 0..iters {
                let got = db.consume(&req).expect("consume");
                assert_eq!(got.len(), CONSUME_BATCH);
                let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
                db.ack(&ids).expect("ack");
                black_box(got);
            }
            start.elapsed()
        });
    });
    g.bench_function("raw_sqlite", |b| {
        let (_dir, mut conn) = raw_open();
        b.iter_custom(|iters| {
            raw_fill(&mut conn, iters * CONSUME_BATCH as u64);
            let start = Instant::now();
            for _ in 0..iters {
                let rows = raw_take(&mut conn, CONSUME_BATCH);
                assert_eq!(rows.len(), CONSUME_BATCH);
                black_box(rows);
            }
            start.elapsed()
        });
    });
    g.finish();
}

/// One raw consume: in one `BEGIN IMMEDIATE` transaction, SELECT the `n`
/// oldest messages and DELETE them. Returns `(id, offset, payload)` rows.
fn raw_take(conn: &mut Connection, n: usize) -> Vec<(i64, i64, Vec<u8>)> {
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
fn assert_exactly_once<K: Ord + std::fmt::Debug>(mut seen: Vec<K>, n: u64) {
    seen.sort_unstable();
    if let Some(w) = seen.windows(2).find(|w| w[0] == w[1]) {
        panic!("message {:?} consumed twice", w[0]);
    }
    assert_eq!(seen.len() as u64, n, "messages consumed");
}

/// `consume_ack` with `CONSUMERS` threads competing for one queue until a
/// pre-filled backlog of `iters * CONSUME_BATCH` messages is drained; each
/// message must be consumed exactly once. mqlite's threads share clones of
/// one `Database`; each raw thread has its own connection and takes batches
/// in `BEGIN IMMEDIATE` transactions (so it waits in SQLite's busy handler
/// while another holds the write lock). Filling is not timed.
fn consume_ack_competing(c: &mut Criterion) {
    let mut g = c.benchmark_group("consume_ack_competing");
    g.throughput(Throughput::Elements(CONSUME_BATCH as u64));
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("mqlite", |b| {
        let (_dir, db) = mq_open(true);
        let req = ConsumeRequest::queue("bench").max(CONSUME_BATCH);
        b.iter_custom(|iters| {
            let n = iters * CONSUME_BATCH as u64;
            mq_fill(&db, n);
            let start = Instant::now();
            let seen: Vec<Vec<(u32, u64)>> = std::thread::scope(|s| {
                let consumers: Vec<_> = (0..CONSUMERS)
                    .map(|_| {
                        let db = db.clone();
                        let req = &req;
                        s.spawn(move || {
                            let mut seen = Vec::new();
                            loop {
                                // Empty: the rest is acked or leased by
                                // another consumer, which will ack it.
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
                consumers
                    .into_iter()
                    .map(|h| h.join().expect("consumer"))
                    .collect()
            });
            let elapsed = start.elapsed();
            assert_exactly_once(seen.concat(), n);
            elapsed
        });
    });
    g.bench_function("raw_sqlite", |b| {
        let (dir, mut conn) = raw_open();
        let mut conns: Vec<Connection> = (0..CONSUMERS)
            .map(|_| raw_connect(&dir.path().join("raw.db")))
            .collect();
        b.iter_custom(|iters| {
            let n = iters * CONSUME_BATCH as u64;
            raw_fill(&mut conn, n);
            let start = Instant::now();
            let seen: Vec<Vec<i64>> = std::thread::scope(|s| {
                let consumers: Vec<_> = conns
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
                consumers
                    .into_iter()
                    .map(|h| h.join().expect("consumer"))
                    .collect()
            });
            let elapsed = start.elapsed();
            assert_exactly_once(seen.concat(), n);
            elapsed
        });
    });
    g.finish();
}

/// A full scan in offset order of `REPLAY_MESSAGES` messages. mqlite reads
/// through `Database::scan` (pages of 1,000, no group state changed).
fn replay(c: &mut Criterion) {
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(REPLAY_MESSAGES));
    g.bench_function("mqlite", |b| {
        let (_dir, db) = mq_open(false);
        mq_fill(&db, REPLAY_MESSAGES);
        db.subscribe(
            "replayer",
            &Subscription::topic("bench").from(StartFrom::Beginning),
        )
        .expect("subscribe");
        b.iter(|| {
            let mut bytes = 0usize;
            let n = db
                .scan("bench", |m| {
                    bytes += m.payload().len();
                    true
                })
                .expect("scan");
            assert_eq!(n, REPLAY_MESSAGES);
            bytes
        });
    });
    g.bench_function("raw_sqlite", |b| {
        let (_dir, mut conn) = raw_open();
        raw_fill(&mut conn, REPLAY_MESSAGES);
        b.iter(|| {
            let mut st = conn
                .prepare_cached(
                    "SELECT offset, payload FROM msgs WHERE topic_id = 1 AND partition = 0 ORDER BY offset",
                )
                .expect("prepare");
            let mut rows = st.query([]).expect("select");
            let (mut n, mut bytes) = (0u64, 0usize);
            while let Some(r) = rows.next().expect("row") {
                let _offset: i64 = r.get(0).expect("offset");
                bytes += r.get_ref(1).expect("payload").as_bytes().expect("text").len();
                n += 1;
            }
            assert_eq!(n, REPLAY_MESSAGES);
            bytes
        });
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
}

criterion_group! {
    name = benches;
    config = config();
    targets = publish, publish_batch, publish_concurrent, consume_ack, consume_ack_competing, replay
}
criterion_main!(benches);
