//! The #5 targets as interleaved A/B ratios: each workload runs in pairs of
//! rounds, one round of side A then one of side B (B first in every other
//! pair), and the verdict is the median of the per-pair ratios A / B.
//!
//! ```text
//! cargo bench --bench ratios                          # 15 pairs, about a minute
//! MQLITE_RATIO_PAIRS=31 cargo bench --bench ratios    # more pairs
//! cargo bench --bench ratios -- replay publish        # only these workloads
//! ```
//!
//! Why not criterion's two functions: criterion measures mqlite for seconds,
//! then raw SQLite for seconds, and on a shared VM whose speed drifts by
//! minutes the ratio of two such figures moved by ±30% between runs of the
//! same code. A pair's two rounds are a fraction of a second apart, so drift
//! cancels in the ratio, and the median over pairs drops the pairs a burst
//! of noise hit.
//!
//! Sides: mqlite against raw SQLite doing the same I/O (`common/mod.rs`),
//! except `publish_concurrent` (8 publishing threads against mqlite's own
//! single publisher) and `consume_ack_competing` (4 consuming threads
//! against mqlite's own single consumer), whose targets are relative to
//! mqlite itself. Every file is WAL with `synchronous=FULL`. Filling a queue
//! before a consume round is not timed.
//!
//! Run without `--bench` (as `cargo test --benches` does) it runs one small
//! pair of each workload, as a smoke test.

mod common;

use std::time::{Duration, Instant};

use common::*;
use mqlite::{Database, Message};

/// Pairs of rounds per workload unless `MQLITE_RATIO_PAIRS` says otherwise.
const DEFAULT_PAIRS: usize = 15;

/// Messages in one round of each workload, at full size and in the smoke run.
struct Sizes {
    publish: u64,
    batches: u64,
    concurrent: u64,
    drain: u64,
    scans: u64,
}

const FULL: Sizes = Sizes {
    publish: 600,
    batches: 40,
    concurrent: 3_200,
    drain: 20_000,
    scans: 8,
};

const SMOKE: Sizes = Sizes {
    publish: 20,
    batches: 2,
    concurrent: 64,
    drain: 1_000,
    scans: 1,
};

/// One timed round: messages handled and the time they took.
struct Round {
    messages: u64,
    elapsed: Duration,
}

impl Round {
    fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    fn timed(messages: u64, work: impl FnOnce()) -> Round {
        let start = Instant::now();
        work();
        Round {
            messages,
            elapsed: start.elapsed(),
        }
    }
}

/// What one workload's pairs gave.
struct Outcome {
    name: &'static str,
    a: &'static str,
    b: &'static str,
    paired: Paired,
    target: f64,
}

/// Runs one untimed warm-up pair, then `n` pairs of `a` and `b`.
fn interleave(
    name: &'static str,
    (a_name, mut a): (&'static str, impl FnMut() -> Round),
    (b_name, mut b): (&'static str, impl FnMut() -> Round),
    n: usize,
    target: f64,
) -> Outcome {
    a();
    b();
    Outcome {
        name,
        a: a_name,
        b: b_name,
        paired: pairs(n, || a().rate(), || b().rate()),
        target,
    }
}

fn publish(sizes: &Sizes, pairs: usize) -> Outcome {
    let (_d1, db) = mq_open(false);
    let (_d2, mut conn) = raw_open();
    let mut i = 0;
    let mut j = 0;
    interleave(
        "publish",
        ("mqlite", || {
            Round::timed(sizes.publish, || {
                for _ in 0..sizes.publish {
                    i += 1;
                    db.publish("bench", Message::new(payload(i)))
                        .expect("publish");
                }
            })
        }),
        ("raw", || {
            Round::timed(sizes.publish, || {
                for _ in 0..sizes.publish {
                    j += 1;
                    raw_publish(&mut conn, j, 1);
                }
            })
        }),
        pairs,
        0.9,
    )
}

fn publish_batch(sizes: &Sizes, pairs: usize) -> Outcome {
    let (_d1, db) = mq_open(false);
    let (_d2, mut conn) = raw_open();
    let n = sizes.batches * BATCH;
    let mut i = 0;
    let mut j = 0;
    interleave(
        "publish_batch",
        ("mqlite", || {
            // Payloads are built inside the timed part, as raw_publish does.
            Round::timed(n, || {
                for _ in 0..sizes.batches {
                    let msgs = (i..i + BATCH).map(|k| Message::new(payload(k))).collect();
                    i += BATCH;
                    db.publish_batch("bench", msgs).expect("publish_batch");
                }
            })
        }),
        ("raw", || {
            Round::timed(n, || {
                for _ in 0..sizes.batches {
                    raw_publish(&mut conn, j, BATCH);
                    j += BATCH;
                }
            })
        }),
        pairs,
        0.9,
    )
}

/// mqlite with `PRODUCERS` threads against mqlite with one, on one database.
fn publish_concurrent(sizes: &Sizes, pairs: usize) -> Outcome {
    let (_d, db) = mq_open(false);
    let one = sizes.concurrent / PRODUCERS;
    let mut i = 0;
    let many = |db: &Database| {
        let elapsed = concurrently(sizes.concurrent, || {
            let db = db.clone();
            move |i| {
                db.publish("bench", Message::new(payload(i)))
                    .expect("publish");
            }
        });
        Round {
            messages: sizes.concurrent,
            elapsed,
        }
    };
    interleave(
        "publish_concurrent",
        ("8 threads", || many(&db)),
        ("1 thread", || {
            Round::timed(one, || {
                for _ in 0..one {
                    i += 1;
                    db.publish("bench", Message::new(payload(i)))
                        .expect("publish");
                }
            })
        }),
        pairs,
        5.0,
    )
}

fn consume_ack(sizes: &Sizes, pairs: usize) -> Outcome {
    let (_d1, db) = mq_open(true);
    let (d2, mut conn) = raw_open();
    let mut conns = vec![raw_connect(&d2.path().join("raw.db"))];
    let n = sizes.drain;
    interleave(
        "consume_ack",
        ("mqlite", || {
            mq_fill(&db, n);
            let mut seen = Vec::new();
            let round = Round::timed(n, || seen = mq_drain(&db, 1));
            assert_exactly_once(seen, n);
            round
        }),
        ("raw", || {
            raw_fill(&mut conn, n);
            let mut seen = Vec::new();
            let round = Round::timed(n, || seen = raw_drain(&mut conns));
            assert_exactly_once(seen, n);
            round
        }),
        pairs,
        0.6,
    )
}

/// mqlite with `CONSUMERS` threads against mqlite with one, on one queue.
fn consume_ack_competing(sizes: &Sizes, pairs: usize) -> Outcome {
    let (_d, db) = mq_open(true);
    let n = sizes.drain;
    let drain = |consumers: usize| {
        mq_fill(&db, n);
        let mut seen = Vec::new();
        let round = Round::timed(n, || seen = mq_drain(&db, consumers));
        assert_exactly_once(seen, n);
        round
    };
    interleave(
        "consume_ack_competing",
        ("4 threads", || drain(CONSUMERS)),
        ("1 thread", || drain(1)),
        pairs,
        1.0,
    )
}

fn replay(sizes: &Sizes, pairs: usize) -> Outcome {
    let (_d1, db) = mq_open(false);
    mq_fill(&db, REPLAY_MESSAGES);
    let (_d2, mut conn) = raw_open();
    raw_fill(&mut conn, REPLAY_MESSAGES);
    let n = sizes.scans * REPLAY_MESSAGES;
    interleave(
        "replay",
        ("mqlite", || {
            Round::timed(n, || {
                for _ in 0..sizes.scans {
                    std::hint::black_box(mq_replay(&db));
                }
            })
        }),
        ("raw", || {
            Round::timed(n, || {
                for _ in 0..sizes.scans {
                    std::hint::black_box(raw_replay(&conn));
                }
            })
        }),
        pairs,
        0.7,
    )
}

type Workload = fn(&Sizes, usize) -> Outcome;

const WORKLOADS: [(&str, Workload); 6] = [
    ("publish", publish),
    ("publish_batch", publish_batch),
    ("publish_concurrent", publish_concurrent),
    ("consume_ack", consume_ack),
    ("consume_ack_competing", consume_ack_competing),
    ("replay", replay),
];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let bench = args.iter().any(|a| a == "--bench");
    let (sizes, pairs) = if bench {
        let pairs = match std::env::var("MQLITE_RATIO_PAIRS") {
            Ok(v) => v.parse().expect("MQLITE_RATIO_PAIRS: a number"),
            Err(_) => DEFAULT_PAIRS,
        };
        (&FULL, pairs)
    } else {
        (&SMOKE, 1)
    };
    assert!(pairs > 0, "MQLITE_RATIO_PAIRS must be positive");
    let filters: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    println!("# ratios: median of {pairs} interleaved pairs per workload, durability full");
    println!(
        "{:<22} {:>10} {:>13} {:>10} {:>13} {:>6} {:>11} {:>7}  verdict",
        "workload", "A", "A msgs/s", "B", "B msgs/s", "A/B", "range", "target"
    );
    for (name, workload) in WORKLOADS {
        if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        let o = workload(sizes, pairs);
        println!(
            "{:<22} {:>10} {:>13} {:>10} {:>13} {:>6.2} {:>5.2}-{:<5.2} {:>7.2}  {}",
            o.name,
            o.a,
            thousands(o.paired.a_rate),
            o.b,
            thousands(o.paired.b_rate),
            o.paired.ratio,
            o.paired.low,
            o.paired.high,
            o.target,
            if o.paired.ratio >= o.target {
                "met"
            } else {
                "MISSED"
            }
        );
    }
}
