//! The workloads, written once against `Peer` and `Consumer`, and what one
//! round of each measured (`Figure`).

use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Result;
use crate::latency::{self, Percentiles};
use crate::system::{Consumer, Peer, System};

/// Payload bytes per message.
pub const SIZE: usize = 200;
/// Messages per batch in `publish_batch`.
pub const PUBLISH_BATCH: usize = 1_000;
/// Messages per take (and per ack) in `consume_ack` and `competing`.
pub const CONSUME_BATCH: usize = 100;
/// Consumers in `competing`.
pub const CONSUMERS: usize = 4;
/// A drain fails when no message arrives for this long.
pub const STALL: Duration = Duration::from_secs(30);
/// How long a draining consumer's take waits for a first message before it
/// looks whether the others have finished.
const TAKE_WAIT: Duration = Duration::from_millis(100);

/// A JSON document of exactly `SIZE` bytes, `{"i":123,"pad":"xxx..."}`: the
/// payload of mqlite's own benches (benches/common/mod.rs).
pub fn payload(i: u64) -> String {
    let mut s = format!("{{\"i\":{i},\"pad\":\"");
    let pad = SIZE - s.len() - 2;
    s.extend(std::iter::repeat_n('x', pad));
    s.push_str("\"}");
    debug_assert_eq!(s.len(), SIZE);
    s
}

/// The `i` of a `payload(i)`.
pub fn payload_index(p: &[u8]) -> Option<u64> {
    let rest = p.strip_prefix(b"{\"i\":")?;
    let end = rest.iter().position(|&b| b == b',')?;
    std::str::from_utf8(&rest[..end]).ok()?.parse().ok()
}

/// Messages per round of each workload.
pub struct Sizes {
    pub publish_one: u64,
    pub publish_batch: u64,
    pub competing: u64,
    /// Latency samples kept, after `latency_warmup` that are not.
    pub latency: u64,
    pub latency_warmup: u64,
    /// Latency publishes per second.
    pub latency_rate: u64,
}

impl Sizes {
    pub const FULL: Sizes = Sizes {
        publish_one: 2_000,
        publish_batch: 50_000,
        competing: 50_000,
        latency: 2_000,
        latency_warmup: 100,
        latency_rate: 200,
    };

    /// A smoke run: every step once, small.
    pub const QUICK: Sizes = Sizes {
        publish_one: 200,
        publish_batch: 5_000,
        competing: 5_000,
        latency: 200,
        latency_warmup: 20,
        latency_rate: 200,
    };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Workload {
    PublishOne,
    PublishBatch,
    ConsumeAck,
    Competing,
    Latency,
}

impl Workload {
    /// In the order they run; `ConsumeAck` drains what `PublishBatch` left.
    pub const ALL: [Workload; 5] = [
        Workload::PublishOne,
        Workload::PublishBatch,
        Workload::ConsumeAck,
        Workload::Competing,
        Workload::Latency,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::PublishOne => "publish_one",
            Workload::PublishBatch => "publish_batch",
            Workload::ConsumeAck => "consume_ack",
            Workload::Competing => "competing",
            Workload::Latency => "latency",
        }
    }

    /// The queue's name within a round.
    pub fn queue(self) -> &'static str {
        match self {
            Workload::ConsumeAck => Workload::PublishBatch.name(),
            w => w.name(),
        }
    }
}

/// What one round of a workload measured.
#[derive(Clone, Debug)]
pub enum Figure {
    /// Messages per second.
    Rate(f64),
    Latency(Percentiles),
}

impl fmt::Display for Figure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Figure::Rate(r) => write!(f, "{:.0} msgs/s", r),
            Figure::Latency(p) => write!(f, "{p}"),
        }
    }
}

/// Runs one round of `workload` on `queue`; every workload but
/// `PublishBatch` removes its queue afterwards (`ConsumeAck` drains it).
pub fn run(
    workload: Workload,
    peer: &mut dyn Peer,
    system: &System,
    queue: &str,
    sizes: &Sizes,
) -> Result<Figure> {
    let figure = match workload {
        Workload::PublishOne => Figure::Rate(publish_one(peer, queue, sizes.publish_one)?),
        Workload::PublishBatch => {
            return Ok(Figure::Rate(publish_batch(
                peer,
                queue,
                sizes.publish_batch,
            )?));
        }
        Workload::ConsumeAck => {
            let consumer = peer.consumer(queue, 0, CONSUME_BATCH)?;
            Figure::Rate(drain(vec![consumer], sizes.publish_batch)?)
        }
        Workload::Competing => {
            peer.reset(queue)?;
            fill(peer, queue, sizes.competing)?;
            let consumers = (0..CONSUMERS)
                .map(|k| peer.consumer(queue, k, CONSUME_BATCH))
                .collect::<Result<Vec<_>>>()?;
            Figure::Rate(drain(consumers, sizes.competing)?)
        }
        Workload::Latency => Figure::Latency(latency::measure(peer, system, queue, sizes)?),
    };
    peer.remove(queue)?;
    Ok(figure)
}

fn rate(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

fn publish_one(peer: &mut dyn Peer, queue: &str, n: u64) -> Result<f64> {
    peer.reset(queue)?;
    let payloads: Vec<String> = (0..n).map(payload).collect();
    let start = Instant::now();
    for p in &payloads {
        peer.publish(queue, p)?;
    }
    Ok(rate(n, start.elapsed()))
}

/// Payloads `0..n` in batches of `PUBLISH_BATCH`.
fn batches(n: u64) -> Vec<Vec<String>> {
    let all: Vec<String> = (0..n).map(payload).collect();
    all.chunks(PUBLISH_BATCH).map(<[String]>::to_vec).collect()
}

fn publish_batch(peer: &mut dyn Peer, queue: &str, n: u64) -> Result<f64> {
    peer.reset(queue)?;
    let batches = batches(n);
    let start = Instant::now();
    for b in &batches {
        peer.publish_batch(queue, b)?;
    }
    Ok(rate(n, start.elapsed()))
}

/// Publishes `0..n` to `queue`, untimed.
fn fill(peer: &mut dyn Peer, queue: &str, n: u64) -> Result<()> {
    for b in &batches(n) {
        peer.publish_batch(queue, b)?;
    }
    Ok(())
}

/// Which of `0..n` the consumers got; a duplicate or a stranger is an error.
struct Seen {
    got: Mutex<Vec<bool>>,
}

impl Seen {
    fn record(&self, payloads: &[Vec<u8>]) -> Result<()> {
        let mut got = self.got.lock().map_err(|_| "a consumer panicked")?;
        for p in payloads {
            let i = payload_index(p)
                .ok_or_else(|| format!("bad payload {:?}", String::from_utf8_lossy(p)))?;
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| got.get_mut(i))
                .ok_or_else(|| format!("message {i} was never published"))?;
            if std::mem::replace(slot, true) {
                return Err(format!("message {i} consumed twice"));
            }
        }
        Ok(())
    }
}

/// The consumers, one thread each, drain messages `0..n` from their queue,
/// taking a batch and acking it before taking more; the rate is `n` over the
/// time from the start until the last ack returned.
fn drain(consumers: Vec<Box<dyn Consumer>>, n: u64) -> Result<f64> {
    let seen = Seen {
        got: Mutex::new(vec![false; usize::try_from(n).map_err(|e| e.to_string())?]),
    };
    let acked = AtomicU64::new(0);
    let failed = AtomicBool::new(false);
    let end = Mutex::new(None);
    let start = Instant::now();
    let results: Vec<Result<()>> = std::thread::scope(|s| {
        let threads: Vec<_> = consumers
            .into_iter()
            .map(|mut c| {
                let (seen, acked, failed, end) = (&seen, &acked, &failed, &end);
                s.spawn(move || {
                    let r = drain_one(c.as_mut(), n, seen, acked, failed, end);
                    if r.is_err() {
                        failed.store(true, Ordering::Relaxed);
                    }
                    r
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a consumer panicked".into()))
            })
            .collect()
    });
    for r in results {
        r?;
    }
    let end = end
        .into_inner()
        .map_err(|_| "a consumer panicked")?
        .ok_or("the drain ended before every message was acked")?;
    Ok(rate(n, end - start))
}

fn drain_one(
    c: &mut dyn Consumer,
    n: u64,
    seen: &Seen,
    acked: &AtomicU64,
    failed: &AtomicBool,
    end: &Mutex<Option<Instant>>,
) -> Result<()> {
    let mut last = Instant::now();
    while acked.load(Ordering::Acquire) < n && !failed.load(Ordering::Relaxed) {
        let got = c.take(TAKE_WAIT)?;
        if got.is_empty() {
            if last.elapsed() > STALL {
                return Err(format!(
                    "stalled: nothing for {} s with {} of {n} acked",
                    STALL.as_secs(),
                    acked.load(Ordering::Acquire)
                ));
            }
            continue;
        }
        last = Instant::now();
        seen.record(&got)?;
        c.ack()?;
        let k = got.len() as u64;
        if acked.fetch_add(k, Ordering::AcqRel) + k == n {
            *end.lock().map_err(|_| "a consumer panicked")? = Some(Instant::now());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_is_200_bytes_of_json_with_its_index() {
        for i in [0, 7, 123_456, u64::MAX] {
            let p = payload(i);
            assert_eq!(p.len(), SIZE);
            assert_eq!(payload_index(p.as_bytes()), Some(i));
        }
        assert_eq!(payload_index(b"{\"j\":1,"), None);
    }

    #[test]
    fn seen_refuses_duplicates_and_strangers() {
        let seen = Seen {
            got: Mutex::new(vec![false; 3]),
        };
        assert!(seen.record(&[payload(0).into_bytes()]).is_ok());
        assert!(seen.record(&[payload(0).into_bytes()]).is_err());
        assert!(seen.record(&[payload(3).into_bytes()]).is_err());
    }
}
