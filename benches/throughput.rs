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
//! The raw baseline and the workload rounds are in `common/mod.rs`, shared
//! with the `ratios` bench, which measures the same workloads as
//! interleaved mqlite / raw pairs (the figures to trust on a noisy machine).

mod common;

use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use criterion::{Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use mqlite::{ConsumeRequest, Message};
use rusqlite::Connection;

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
        b.iter_custom(|iters| {
            let n = iters * CONSUME_BATCH as u64;
            mq_fill(&db, n);
            let start = Instant::now();
            let seen = mq_drain(&db, CONSUMERS);
            let elapsed = start.elapsed();
            assert_exactly_once(seen, n);
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
            let seen = raw_drain(&mut conns);
            let elapsed = start.elapsed();
            assert_exactly_once(seen, n);
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
        b.iter(|| mq_replay(&db));
    });
    g.bench_function("raw_sqlite", |b| {
        let (_dir, mut conn) = raw_open();
        raw_fill(&mut conn, REPLAY_MESSAGES);
        b.iter(|| raw_replay(&conn));
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
