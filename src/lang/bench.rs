//! BENCH: throughput and latency of the library's hot paths.
//!
//! Every workload runs on its own scratch topic (or queue) in the open
//! database file, so commits pay the file's real fsync cost, and the scratch
//! topic is dropped afterwards, also when the workload fails. Only the work
//! named by the workload is timed: pre-filling a topic for `consume_ack` and
//! `replay` is not.
//!
//! Latency percentiles are per operation: one publish (`publish`,
//! `publish_concurrent`), one batch (`publish_batch`), one consume+ack round
//! (`consume_ack`), one page of [`REPLAY_PAGE`] rows (`replay`).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::lang::ast::{Bench, StartFrom, TopicKind, Workload};
use crate::{
    ConsumeRequest, DEFAULT_MAX_PAYLOAD, Database, Error, Message, Result, ResultSet, Subscription,
    TopicOptions, Value,
};

/// MESSAGES when not given.
const DEFAULT_MESSAGES: u64 = 10_000;
/// MESSAGES when not given for workloads that fsync once per message.
const DEFAULT_MESSAGES_PER_COMMIT: u64 = 2_000;
/// SIZE when not given, in bytes.
const DEFAULT_SIZE: u64 = 200;
/// The smallest SIZE: room for `{"i":N,"pad":""}` with a one-digit N.
const MIN_SIZE: u64 = 16;
/// BATCH when not given.
const DEFAULT_BATCH: u64 = 1_000;
/// PRODUCERS when not given.
const DEFAULT_PRODUCERS: u32 = 8;
/// The most PRODUCERS threads.
const MAX_PRODUCERS: u32 = 64;
/// Messages per CONSUME in `consume_ack` (each round is acked as one ACK).
const CONSUME_BATCH: usize = 100;
/// Rows per read in `replay`.
const REPLAY_PAGE: usize = 1_000;
/// Messages per transaction when pre-filling (untimed).
const FILL_BATCH: u64 = 1_000;
/// How often progress is reported while a workload runs.
const PROGRESS_EVERY: Duration = Duration::from_millis(50);

/// Every workload, in the order `BENCH` without a list runs them.
const ALL: [Workload; 5] = [
    Workload::Publish,
    Workload::PublishBatch,
    Workload::PublishConcurrent,
    Workload::ConsumeAck,
    Workload::Replay,
];

/// The result columns (part of the language contract).
const COLUMNS: [&str; 8] = [
    "workload",
    "messages",
    "size",
    "seconds",
    "msgs_per_sec",
    "mb_per_sec",
    "p50_us",
    "p99_us",
];

/// Scratch names are `__bench_<pid>_<n>`; `n` is unique within the process.
static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

/// Runs `BENCH`: one result row per workload, in the order given (default: all).
/// `progress(workload, done, total)` is called as messages are processed, and
/// once with `done == total` when a workload ends.
///
/// # Errors
/// `InvalidOption` for options out of range, `InvalidStatement` for a
/// workload listed twice, `BenchFailed` when a workload cannot run or
/// reads back other than it wrote,
/// `ReadOnly` on a read-only database, and any error of the operations
/// measured (the scratch topic is dropped in every case).
// Until the BENCH statement is wired into `lang::exec`; remove with that change.
pub(crate) fn run(
    db: &Database,
    spec: &Bench,
    progress: &mut dyn FnMut(&str, u64, u64),
) -> Result<ResultSet> {
    let cfg = Config::from_spec(spec)?;
    if db.is_read_only() {
        return Err(Error::ReadOnly("BENCH".into()));
    }
    let mut rs = ResultSet::with_columns(COLUMNS);
    for &w in &cfg.workloads {
        let name = w.to_string();
        let total = cfg.messages(w);
        let mut p = Progress::new(&name, total, progress);
        let kind = match w {
            Workload::ConsumeAck => TopicKind::Queue,
            _ => TopicKind::Topic,
        };
        let mut scratch = Scratch::create(db, kind)?;
        let measured = match w {
            Workload::Publish => publish(db, &scratch.name, &cfg, total, &mut p),
            Workload::PublishBatch => publish_batch(db, &scratch.name, &cfg, total, &mut p),
            Workload::PublishConcurrent => {
                publish_concurrent(db, &scratch.name, &cfg, total, &mut p)
            }
            Workload::ConsumeAck => consume_ack(db, &scratch.name, &cfg, total, &mut p),
            Workload::Replay => replay(db, &mut scratch, &cfg, total, &mut p),
        };
        let closed = scratch.close();
        let measured = measured?;
        closed?;
        p.finish();
        rs.rows.push(measured.row(&name, cfg.size));
    }
    Ok(rs)
}

/// Validated options.
#[derive(Debug, Clone, PartialEq)]
struct Config {
    workloads: Vec<Workload>,
    messages: Option<u64>,
    size: usize,
    batch: u64,
    producers: u64,
}

impl Config {
    fn from_spec(spec: &Bench) -> Result<Config> {
        let workloads = if spec.workloads.is_empty() {
            ALL.to_vec()
        } else {
            let mut seen = Vec::new();
            for &w in &spec.workloads {
                if seen.contains(&w) {
                    return Err(Error::InvalidStatement(format!(
                        "BENCH workload '{w}' is listed twice"
                    )));
                }
                seen.push(w);
            }
            seen
        };
        if spec.messages == Some(0) {
            return Err(Error::option(
                "MESSAGES",
                "BENCH MESSAGES must be at least 1",
            ));
        }
        let size = spec.size.unwrap_or(DEFAULT_SIZE);
        let max = DEFAULT_MAX_PAYLOAD as u64;
        if !(MIN_SIZE..=max).contains(&size) {
            return Err(Error::option(
                "SIZE",
                format!(
                    "BENCH SIZE must be between {MIN_SIZE}B and 1MB (the payload limit), got {size} bytes"
                ),
            ));
        }
        let batch = spec.batch.unwrap_or(DEFAULT_BATCH);
        if batch == 0 {
            return Err(Error::option("BATCH", "BENCH BATCH must be at least 1"));
        }
        let producers = spec.producers.unwrap_or(DEFAULT_PRODUCERS);
        if !(1..=MAX_PRODUCERS).contains(&producers) {
            return Err(Error::option(
                "PRODUCERS",
                format!("BENCH PRODUCERS must be between 1 and {MAX_PRODUCERS}, got {producers}"),
            ));
        }
        Ok(Config {
            workloads,
            messages: spec.messages,
            // In range by the check above (at most 1 MB).
            size: usize::try_from(size).unwrap_or(DEFAULT_MAX_PAYLOAD),
            batch,
            producers: u64::from(producers),
        })
    }

    /// Messages a workload processes: MESSAGES, else a default that keeps one
    /// fsync per message to a few seconds.
    fn messages(&self, w: Workload) -> u64 {
        match (self.messages, w) {
            (Some(n), _) => n,
            (None, Workload::Publish | Workload::PublishConcurrent) => DEFAULT_MESSAGES_PER_COMMIT,
            (None, _) => DEFAULT_MESSAGES,
        }
    }
}

/// A JSON payload of exactly `size` bytes (`size >= MIN_SIZE`) that carries `i`:
/// `{"i":123,"pad":"xxxx"}`. When `i` does not fit, its last digits are kept.
fn payload(i: u64, size: usize) -> Vec<u8> {
    // `{"i":` + `,"pad":"` + `"}` is 15 bytes.
    let room = size.saturating_sub(15).clamp(1, 19);
    let n = match 10u64.checked_pow(u32::try_from(room).unwrap_or(19)) {
        Some(m) => i % m,
        None => i,
    };
    let mut s = format!("{{\"i\":{n},\"pad\":\"");
    let pad = size.saturating_sub(s.len() + 2);
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    s.into_bytes()
}

/// Reports progress at most every [`PROGRESS_EVERY`], and always at the end.
struct Progress<'a> {
    name: &'a str,
    total: u64,
    last: Instant,
    f: &'a mut dyn FnMut(&str, u64, u64),
}

impl<'a> Progress<'a> {
    fn new(name: &'a str, total: u64, f: &'a mut dyn FnMut(&str, u64, u64)) -> Progress<'a> {
        f(name, 0, total);
        Progress {
            name,
            total,
            last: Instant::now(),
            f,
        }
    }

    fn tick(&mut self, done: u64) {
        if self.last.elapsed() >= PROGRESS_EVERY {
            (self.f)(self.name, done.min(self.total), self.total);
            self.last = Instant::now();
        }
    }

    fn finish(&mut self) {
        (self.f)(self.name, self.total, self.total);
    }
}

/// A scratch topic or queue, dropped (with its replay group) by `close` or on drop.
struct Scratch<'a> {
    db: &'a Database,
    kind: TopicKind,
    name: String,
    group: Option<String>,
    closed: bool,
}

impl<'a> Scratch<'a> {
    fn create(db: &'a Database, kind: TopicKind) -> Result<Scratch<'a>> {
        let pid = std::process::id();
        // A name can be taken by a run of an earlier process with the same pid
        // that did not clean up (it was killed): skip such names.
        for _ in 0..100 {
            let n = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
            let name = format!("__bench_{pid}_{n}");
            if db.create(kind, &name, true, &TopicOptions::default())? {
                return Ok(Scratch {
                    db,
                    kind,
                    name,
                    group: None,
                    closed: false,
                });
            }
        }
        Err(Error::BenchFailed(
            "BENCH found no free scratch topic name (__bench_<pid>_<n>): drop the old ones".into(),
        ))
    }

    /// Subscribes a scratch group to the topic from its first message.
    fn subscribe_from_beginning(&mut self) -> Result<()> {
        let group = format!("{}_replay", self.name);
        self.db.subscribe(
            &group,
            &Subscription::topic(&self.name).from(StartFrom::Beginning),
        )?;
        self.group = Some(group);
        Ok(())
    }

    fn close(mut self) -> Result<()> {
        self.closed = true;
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        let unsubscribed = match self.group.take() {
            Some(g) => self.db.unsubscribe(&g, None),
            None => Ok(()),
        };
        let dropped = self.db.drop_topic(self.kind, &self.name, true).map(|_| ());
        unsubscribed.and(dropped)
    }
}

impl Drop for Scratch<'_> {
    fn drop(&mut self) {
        if !self.closed {
            // Unwinding from a panic: best effort, nobody to report to.
            let _ = self.cleanup();
        }
    }
}

/// What a workload measured.
#[derive(Debug)]
struct Measured {
    messages: u64,
    elapsed: Duration,
    /// Per-operation latencies in nanoseconds.
    latencies: Vec<u64>,
}

impl Measured {
    fn row(mut self, workload: &str, size: usize) -> Vec<Value> {
        self.latencies.sort_unstable();
        let secs = self.elapsed.as_secs_f64().max(1e-9);
        let msgs = self.messages as f64;
        let bytes = msgs * size as f64;
        vec![
            Value::Text(workload.to_string()),
            Value::Int(i64::try_from(self.messages).unwrap_or(i64::MAX)),
            Value::Int(i64::try_from(size).unwrap_or(i64::MAX)),
            Value::Float(round(secs, 6)),
            Value::Float(round(msgs / secs, 1)),
            // MB as everywhere in the language: 1024 * 1024 bytes.
            Value::Float(round(bytes / secs / (1024.0 * 1024.0), 2)),
            Value::Int(micros(percentile(&self.latencies, 50))),
            Value::Int(micros(percentile(&self.latencies, 99))),
        ]
    }
}

/// Nearest-rank percentile of sorted values (0 when empty).
/// Rounds for display: benchmark figures carry no more precision than this.
fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

fn percentile(sorted: &[u64], p: usize) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (sorted.len() * p).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

fn micros(ns: u64) -> i64 {
    i64::try_from(ns / 1_000).unwrap_or(i64::MAX)
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A latency vector that does not reserve absurd amounts for huge MESSAGES.
fn latencies(ops: u64) -> Vec<u64> {
    Vec::with_capacity(usize::try_from(ops.min(1 << 20)).unwrap_or(0))
}

/// One message per durable commit.
fn publish(
    db: &Database,
    topic: &str,
    cfg: &Config,
    n: u64,
    p: &mut Progress<'_>,
) -> Result<Measured> {
    let mut lat = latencies(n);
    let start = Instant::now();
    for i in 0..n {
        let m = Message::new(payload(i, cfg.size));
        let t = Instant::now();
        db.publish(topic, m)?;
        lat.push(nanos(t.elapsed()));
        p.tick(i + 1);
    }
    Ok(Measured {
        messages: n,
        elapsed: start.elapsed(),
        latencies: lat,
    })
}

/// Batches of `size` messages per transaction, until `n` are written.
fn publish_batches(
    db: &Database,
    topic: &str,
    size: usize,
    batch: u64,
    n: u64,
    mut each: impl FnMut(u64, Duration),
) -> Result<()> {
    let mut done = 0;
    while done < n {
        let k = batch.min(n - done);
        let msgs: Vec<Message> = (done..done + k)
            .map(|i| Message::new(payload(i, size)))
            .collect();
        let t = Instant::now();
        db.publish_batch(topic, msgs)?;
        done += k;
        each(done, t.elapsed());
    }
    Ok(())
}

/// BATCH messages per transaction.
fn publish_batch(
    db: &Database,
    topic: &str,
    cfg: &Config,
    n: u64,
    p: &mut Progress<'_>,
) -> Result<Measured> {
    let mut lat = latencies(n.div_ceil(cfg.batch));
    let start = Instant::now();
    publish_batches(db, topic, cfg.size, cfg.batch, n, |done, d| {
        lat.push(nanos(d));
        p.tick(done);
    })?;
    Ok(Measured {
        messages: n,
        elapsed: start.elapsed(),
        latencies: lat,
    })
}

/// PRODUCERS threads, each publishing its share one message per commit
/// through its own clone of the handle.
fn publish_concurrent(
    db: &Database,
    topic: &str,
    cfg: &Config,
    n: u64,
    p: &mut Progress<'_>,
) -> Result<Measured> {
    let producers = cfg.producers;
    let done = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let start = Instant::now();
    type Outcome = Result<(Vec<u64>, Instant)>;
    let outcomes: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..producers)
            .map(|k| {
                // Producer k publishes messages k, k + producers, k + 2 * producers, ...
                let count = n / producers + u64::from(k < n % producers);
                let db = db.clone();
                let (done, failed, size) = (&done, &failed, cfg.size);
                s.spawn(move || -> Outcome {
                    let mut lat = latencies(count);
                    for j in 0..count {
                        if failed.load(Ordering::Relaxed) {
                            break;
                        }
                        let m = Message::new(payload(k + j * producers, size));
                        let t = Instant::now();
                        if let Err(e) = db.publish(topic, m) {
                            failed.store(true, Ordering::Relaxed);
                            return Err(e);
                        }
                        lat.push(nanos(t.elapsed()));
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok((lat, Instant::now()))
                })
            })
            .collect();
        while !handles.iter().all(|h| h.is_finished()) {
            p.tick(done.load(Ordering::Relaxed));
            std::thread::sleep(Duration::from_millis(5));
        }
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(Error::BenchFailed(
                        "a BENCH producer thread panicked".into(),
                    ))
                })
            })
            .collect()
    });
    let mut lat = latencies(n);
    let mut end = start;
    for o in outcomes {
        let (l, finished) = o?;
        lat.extend(l);
        end = end.max(finished);
    }
    Ok(Measured {
        messages: n,
        elapsed: end - start,
        latencies: lat,
    })
}

/// Writes `n` messages in big transactions, untimed.
fn fill(db: &Database, topic: &str, cfg: &Config, n: u64) -> Result<()> {
    publish_batches(db, topic, cfg.size, FILL_BATCH, n, |_, _| {})
}

/// Pre-fills a queue, then consumes batches of [`CONSUME_BATCH`] and acks each batch.
fn consume_ack(
    db: &Database,
    queue: &str,
    cfg: &Config,
    n: u64,
    p: &mut Progress<'_>,
) -> Result<Measured> {
    fill(db, queue, cfg, n)?;
    let req = ConsumeRequest::queue(queue).max(CONSUME_BATCH);
    let mut lat = latencies(n.div_ceil(CONSUME_BATCH as u64));
    let mut done = 0u64;
    let mut bytes = 0u64;
    let start = Instant::now();
    while done < n {
        let t = Instant::now();
        let got = db.consume(&req)?;
        if got.is_empty() {
            return Err(Error::BenchFailed(format!(
                "BENCH consume_ack: the scratch queue ran dry after {done} of {n} messages"
            )));
        }
        let ids: Vec<u64> = got.iter().map(|d| d.id).collect();
        db.ack(&ids)?;
        lat.push(nanos(t.elapsed()));
        done += got.len() as u64;
        bytes += got.iter().map(|d| d.payload.len() as u64).sum::<u64>();
        p.tick(done);
    }
    let elapsed = start.elapsed();
    check_read(Workload::ConsumeAck, done, bytes, n, cfg.size)?;
    Ok(Measured {
        messages: done,
        elapsed,
        latencies: lat,
    })
}

/// Pre-fills a topic, subscribes a group from the beginning, then reads every
/// message in offset order, [`REPLAY_PAGE`] rows per read.
fn replay(
    db: &Database,
    scratch: &mut Scratch<'_>,
    cfg: &Config,
    n: u64,
    p: &mut Progress<'_>,
) -> Result<Measured> {
    fill(db, &scratch.name, cfg, n)?;
    scratch.subscribe_from_beginning()?;
    let t = db.topic(&scratch.name)?;
    let mut lat = latencies(n.div_ceil(REPLAY_PAGE as u64));
    let (mut rows, mut bytes) = (0u64, 0u64);
    let start = Instant::now();
    for partition in 0..t.partitions {
        let mut from = 0i64;
        loop {
            let op = Instant::now();
            let (count, size, last) = db.page_sizes(t.id, partition, from, REPLAY_PAGE as i64)?;
            if count > 0 {
                lat.push(nanos(op.elapsed()));
            }
            rows += count;
            bytes += size;
            p.tick(rows);
            match last {
                Some(off) if count == REPLAY_PAGE as u64 => from = off + 1,
                _ => break,
            }
        }
    }
    let elapsed = start.elapsed();
    check_read(Workload::Replay, rows, bytes, n, cfg.size)?;
    Ok(Measured {
        messages: rows,
        elapsed,
        latencies: lat,
    })
}

/// A reading workload must see every message it wrote, each of exactly SIZE bytes.
fn check_read(w: Workload, rows: u64, bytes: u64, n: u64, size: usize) -> Result<()> {
    let want = n.saturating_mul(size as u64);
    if rows != n || bytes != want {
        return Err(Error::BenchFailed(format!(
            "BENCH {w}: read {rows} messages of {bytes} bytes, expected {n} of {want} bytes"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Durability;

    fn temp_db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::builder(dir.path().join("bench.db"))
            .durability(Durability::Off)
            .open()
            .expect("open");
        (dir, db)
    }

    fn spec(messages: u64, size: u64) -> Bench {
        Bench {
            workloads: Vec::new(),
            messages: Some(messages),
            size: Some(size),
            batch: Some(7),
            producers: Some(3),
        }
    }

    fn assert_no_scratch(db: &Database) {
        let topics = db.topic_names().expect("topics");
        assert!(
            topics.iter().all(|t| !t.starts_with("__bench_")),
            "{topics:?}"
        );
        let groups = db.group_names().expect("groups");
        assert!(
            groups.iter().all(|g| !g.starts_with("__bench_")),
            "{groups:?}"
        );
    }

    #[test]
    fn every_workload_reports_one_row_and_cleans_up() {
        let (_dir, db) = temp_db();
        db.execute("CREATE TOPIC keep").expect("create");
        let mut calls: Vec<(String, u64, u64)> = Vec::new();
        let rs = run(&db, &spec(50, 64), &mut |w, d, t| {
            calls.push((w.into(), d, t))
        })
        .expect("bench");
        assert_eq!(rs.columns, COLUMNS);
        let names: Vec<String> = rs.rows.iter().map(|r| r[0].to_string()).collect();
        assert_eq!(
            names,
            [
                "publish",
                "publish_batch",
                "publish_concurrent",
                "consume_ack",
                "replay"
            ]
        );
        for (i, row) in rs.rows.iter().enumerate() {
            assert_eq!(row.len(), COLUMNS.len());
            assert_eq!(rs.get(i, "messages"), Some(&Value::Int(50)));
            assert_eq!(rs.get(i, "size"), Some(&Value::Int(64)));
            for col in ["seconds", "msgs_per_sec", "mb_per_sec"] {
                assert!(
                    matches!(rs.get(i, col), Some(Value::Float(x)) if *x > 0.0),
                    "{col} of row {i}: {row:?}"
                );
            }
            let (Some(Value::Int(p50)), Some(Value::Int(p99))) =
                (rs.get(i, "p50_us"), rs.get(i, "p99_us"))
            else {
                panic!("latencies of row {i}: {row:?}");
            };
            assert!(0 <= *p50 && p50 <= p99, "{row:?}");
        }
        // Each workload reports its start and its end.
        for w in &names {
            assert!(calls.contains(&(w.clone(), 0, 50)), "{calls:?}");
            assert!(calls.contains(&(w.clone(), 50, 50)), "{calls:?}");
        }
        assert!(calls.iter().all(|(_, d, t)| d <= t));
        assert_no_scratch(&db);
        assert_eq!(db.topic_names().expect("topics"), ["keep"]);
    }

    #[test]
    fn chosen_workloads_run_in_the_order_given() {
        let (_dir, db) = temp_db();
        let mut s = spec(10, 16);
        s.workloads = vec![Workload::Replay, Workload::Publish];
        let rs = run(&db, &s, &mut |_, _, _| {}).expect("bench");
        let names: Vec<String> = rs.rows.iter().map(|r| r[0].to_string()).collect();
        assert_eq!(names, ["replay", "publish"]);
        assert_no_scratch(&db);
    }

    #[test]
    fn more_producers_than_messages_and_uneven_batches_still_count_every_message() {
        let (_dir, db) = temp_db();
        let mut s = spec(5, 100);
        s.producers = Some(8);
        s.batch = Some(3);
        let rs = run(&db, &s, &mut |_, _, _| {}).expect("bench");
        for i in 0..rs.rows.len() {
            assert_eq!(rs.get(i, "messages"), Some(&Value::Int(5)));
        }
    }

    #[test]
    fn payloads_are_json_of_exactly_size_bytes() {
        for size in (16..=300).chain([1000, 4096, DEFAULT_MAX_PAYLOAD]) {
            for i in [0, 7, 42, 9_999, 123_456_789, u64::MAX] {
                let p = payload(i, size);
                assert_eq!(p.len(), size, "size {size}, i {i}");
                let v: serde_json::Value = serde_json::from_slice(&p).expect("valid JSON");
                assert!(v["i"].is_u64(), "{v}");
            }
        }
        assert_eq!(payload(123, 24), br#"{"i":123,"pad":"xxxxxx"}"#);
        // Big sizes keep the whole index.
        let v: serde_json::Value =
            serde_json::from_slice(&payload(123_456, 200)).expect("valid JSON");
        assert_eq!(v["i"], 123_456);
    }

    #[test]
    fn the_replay_and_consume_checks_see_size_bytes_per_message() {
        let (_dir, db) = temp_db();
        let mut s = spec(30, 333);
        s.workloads = vec![Workload::ConsumeAck, Workload::Replay];
        // Both workloads fail unless they read back 30 messages of 333 bytes.
        run(&db, &s, &mut |_, _, _| {}).expect("bench");
        assert!(check_read(Workload::Replay, 30, 30 * 333, 30, 333).is_ok());
        assert!(matches!(
            check_read(Workload::Replay, 30, 30 * 333 - 1, 30, 333),
            Err(Error::BenchFailed(m)) if m.contains("expected 30 of 9990 bytes")
        ));
    }

    #[test]
    fn options_out_of_range_are_refused() {
        let (_dir, db) = temp_db();
        // The option refused, or None for the workload listed twice.
        let cases: Vec<(Bench, Option<&str>)> = vec![
            (
                Bench {
                    messages: Some(0),
                    ..spec(1, 16)
                },
                Some("MESSAGES"),
            ),
            (spec(1, 15), Some("SIZE")),
            (spec(1, DEFAULT_MAX_PAYLOAD as u64 + 1), Some("SIZE")),
            (
                Bench {
                    batch: Some(0),
                    ..spec(1, 16)
                },
                Some("BATCH"),
            ),
            (
                Bench {
                    producers: Some(0),
                    ..spec(1, 16)
                },
                Some("PRODUCERS"),
            ),
            (
                Bench {
                    producers: Some(65),
                    ..spec(1, 16)
                },
                Some("PRODUCERS"),
            ),
            (
                Bench {
                    workloads: vec![Workload::Publish, Workload::Replay, Workload::Publish],
                    ..spec(1, 16)
                },
                None,
            ),
        ];
        for (s, want) in cases {
            match (run(&db, &s, &mut |_, _, _| {}), want) {
                (Err(Error::InvalidOption { option, message }), Some(want)) => {
                    assert_eq!(option, want, "{message}");
                    assert!(message.starts_with(&format!("BENCH {want} ")), "{message}");
                }
                (Err(Error::InvalidStatement(m)), None) => assert!(m.contains("twice"), "{m}"),
                (other, _) => panic!("{s}: expected {want:?} refused, got {other:?}"),
            }
        }
        assert!(Config::from_spec(&spec(1, DEFAULT_MAX_PAYLOAD as u64)).is_ok());
        assert_no_scratch(&db);
    }

    #[test]
    fn defaults_keep_per_commit_workloads_short() {
        let none = Bench {
            workloads: Vec::new(),
            messages: None,
            size: None,
            batch: None,
            producers: None,
        };
        let cfg = Config::from_spec(&none).expect("defaults");
        assert_eq!(cfg.workloads, ALL);
        assert_eq!(cfg.size, 200);
        assert_eq!(cfg.batch, 1000);
        assert_eq!(cfg.producers, 8);
        assert_eq!(cfg.messages(Workload::Publish), 2_000);
        assert_eq!(cfg.messages(Workload::PublishConcurrent), 2_000);
        assert_eq!(cfg.messages(Workload::PublishBatch), 10_000);
        assert_eq!(cfg.messages(Workload::ConsumeAck), 10_000);
        assert_eq!(cfg.messages(Workload::Replay), 10_000);
        let given = Config::from_spec(&Bench {
            messages: Some(5_000),
            ..none
        })
        .expect("given");
        assert_eq!(given.messages(Workload::Publish), 5_000);
    }

    #[test]
    fn a_failing_workload_still_drops_its_scratch_topic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Database::builder(dir.path().join("small.db"))
            .durability(Durability::Off)
            .max_payload(100)
            .open()
            .expect("open");
        for w in ALL {
            let s = Bench {
                workloads: vec![w],
                ..spec(20, 200)
            };
            let r = run(&db, &s, &mut |_, _, _| {});
            assert!(
                matches!(r, Err(Error::PayloadTooLarge { size: 200, .. })),
                "{w}: {r:?}"
            );
            assert_no_scratch(&db);
        }
    }

    #[test]
    fn a_read_only_database_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ro.db");
        drop(Database::open(&path).expect("create"));
        let db = Database::builder(&path)
            .read_only(true)
            .open()
            .expect("open");
        assert!(matches!(
            run(&db, &spec(1, 16), &mut |_, _, _| {}),
            Err(Error::ReadOnly(_))
        ));
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), 50);
        assert_eq!(percentile(&v, 99), 99);
        assert_eq!(percentile(&[7], 99), 7);
        assert_eq!(percentile(&[], 50), 0);
        assert_eq!(percentile(&[1, 2], 50), 1);
        assert_eq!(percentile(&[1, 2], 99), 2);
    }
}
