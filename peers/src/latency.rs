//! Cross-process latency: this process publishes one message at a time at a
//! fixed rate, a child process (this binary, run with `CHILD_ARG`) waits for
//! each and acks it. A sample is the wall-clock time from the publish call's
//! return in the parent to the consume call's return in the child, both read
//! from the system clock (`SystemTime`), which the two processes share.
//!
//! Child protocol, on its stdout: `ready` once it is connected and
//! subscribed, then after the last message one line `INDEX NANOS` per
//! message (NANOS: when the take that returned it returned), then `done`.

use std::fmt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Result;
use crate::system::{Peer, System};
use crate::workload::{STALL, Sizes, payload, payload_index};

/// The first argument that makes this binary the latency consumer.
pub const CHILD_ARG: &str = "latency-consumer";

/// How long the child may take to connect and subscribe.
const READY: Duration = Duration::from_secs(60);
/// How long the child's wait for one message lasts before it waits again.
const CHILD_WAIT: Duration = Duration::from_secs(1);

/// Nanoseconds since the epoch on the system clock.
fn wall_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// The percentiles of one round's samples, in nanoseconds.
#[derive(Clone, Debug)]
pub struct Percentiles {
    pub p50: i64,
    pub p99: i64,
    pub p999: i64,
    pub max: i64,
    pub samples: usize,
    /// Publishes per second actually reached (a publish slower than the
    /// interval delays the next).
    pub rate: f64,
}

impl Percentiles {
    /// Nearest-rank percentiles of `samples` (not empty).
    pub fn of(mut samples: Vec<i64>, rate: f64) -> Percentiles {
        samples.sort_unstable();
        let n = samples.len();
        let at = |q: f64| samples[((q * n as f64).ceil() as usize).clamp(1, n) - 1];
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            max: samples[n - 1],
            samples: n,
            rate,
        }
    }
}

/// Nanoseconds as milliseconds, with two decimals.
pub fn ms(ns: i64) -> String {
    format!("{:.2}", ns as f64 / 1e6)
}

impl fmt::Display for Percentiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {} ms, p99 {} ms, p999 {} ms, max {} ms ({} samples at {:.0}/s)",
            ms(self.p50),
            ms(self.p99),
            ms(self.p999),
            ms(self.max),
            self.samples,
            self.rate
        )
    }
}

/// Kills the child if the measurement fails before it exits.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The parent's side: starts the child on `queue`, publishes, and pairs the
/// child's receive times with the publish times.
pub fn measure(
    peer: &mut dyn Peer,
    system: &System,
    queue: &str,
    sizes: &Sizes,
) -> Result<Percentiles> {
    peer.reset(queue)?;
    let total = sizes.latency_warmup + sizes.latency;
    let exe = std::env::current_exe().map_err(|e| format!("find this binary: {e}"))?;
    let mut child = ChildGuard(
        Command::new(exe)
            .arg(CHILD_ARG)
            .args(system.to_args())
            .arg(queue)
            .arg(total.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("start the latency consumer: {e}"))?,
    );
    let stdout = child.0.stdout.take().ok_or("no stdout from the child")?;
    let lines = spawn_reader(stdout);
    match lines.recv_timeout(READY) {
        Ok(l) if l == "ready" => {}
        Ok(l) => return Err(format!("latency consumer said {l:?} instead of ready")),
        Err(_) => return Err(child_failed(&mut child, "did not get ready")),
    }

    let interval = Duration::from_nanos(1_000_000_000 / sizes.latency_rate);
    let payloads: Vec<String> = (0..total).map(payload).collect();
    let mut published = Vec::with_capacity(payloads.len());
    let start = Instant::now();
    for (k, p) in payloads.iter().enumerate() {
        let due = start + interval * u32::try_from(k).map_err(|e| e.to_string())?;
        if let Some(sleep) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(sleep);
        }
        peer.publish(queue, p)?;
        published.push(wall_ns());
    }
    let rate = total as f64 / start.elapsed().as_secs_f64();

    let mut received = vec![None; published.len()];
    loop {
        let line = match lines.recv_timeout(STALL) {
            Ok(l) => l,
            Err(_) => return Err(child_failed(&mut child, "stopped answering")),
        };
        if line == "done" {
            break;
        }
        let (i, t) = line
            .split_once(' ')
            .and_then(|(i, t)| Some((i.parse::<usize>().ok()?, t.parse::<i64>().ok()?)))
            .ok_or_else(|| format!("latency consumer said {line:?}"))?;
        *received
            .get_mut(i)
            .ok_or_else(|| format!("latency consumer got message {i}, never published"))? = Some(t);
    }
    let status = child.0.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("latency consumer failed: {status}"));
    }
    let warmup = usize::try_from(sizes.latency_warmup).map_err(|e| e.to_string())?;
    let samples = published
        .iter()
        .zip(&received)
        .skip(warmup)
        .enumerate()
        .map(|(k, (p, r))| {
            r.map(|r| r - p)
                .ok_or_else(|| format!("message {} never arrived", k + warmup))
        })
        .collect::<Result<Vec<i64>>>()?;
    Ok(Percentiles::of(samples, rate))
}

/// Lines from the child's stdout, read on a thread of their own so that the
/// parent can wait for them with a timeout.
fn spawn_reader(stdout: std::process::ChildStdout) -> Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// An error that says how the child ended (it has printed its own error to
/// stderr), after a moment for it to do so.
fn child_failed(child: &mut ChildGuard, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(2);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = child.0.try_wait() {
            return format!("latency consumer {what}: it exited ({status})");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    format!("latency consumer {what}: killed")
}

/// The child's side: `latency-consumer KIND PLACE QUEUE COUNT`.
pub fn child(mut args: impl Iterator<Item = String>) -> ExitCode {
    let mut next = |what: &str| args.next().ok_or_else(|| format!("missing {what}"));
    let result = (|| {
        let system = System::from_args(&next("system")?, next("address")?)?;
        let queue = next("queue")?;
        let count: usize = next("count")?.parse().map_err(|e| format!("count: {e}"))?;
        consume(&system, &queue, count)
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mqlite-peers latency consumer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn consume(system: &System, queue: &str, count: usize) -> Result<()> {
    let rt = crate::net::runtime()?;
    let peer = system.connect(rt.handle())?;
    let mut consumer = peer.consumer(queue, 0, 1)?;
    let out = std::io::stdout();
    let say = |line: &str| -> Result<()> {
        let mut out = out.lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| format!("write to the parent: {e}"))
    };
    say("ready")?;
    let mut got: Vec<(u64, i64)> = Vec::with_capacity(count);
    let mut last = Instant::now();
    while got.len() < count {
        let msgs = consumer.take(CHILD_WAIT)?;
        let t = wall_ns();
        if msgs.is_empty() {
            if last.elapsed() > STALL {
                return Err(format!(
                    "nothing for {} s after {} of {count} messages",
                    STALL.as_secs(),
                    got.len()
                ));
            }
            continue;
        }
        last = Instant::now();
        for m in &msgs {
            let i = payload_index(m)
                .ok_or_else(|| format!("bad payload {:?}", String::from_utf8_lossy(m)))?;
            got.push((i, t));
        }
        consumer.ack()?;
    }
    let mut lines = String::new();
    for (i, t) in got {
        lines.push_str(&format!("{i} {t}\n"));
    }
    lines.push_str("done");
    say(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let p = Percentiles::of((1..=1000).rev().collect(), 200.0);
        assert_eq!((p.p50, p.p99, p.p999, p.max), (500, 990, 999, 1000));
        let one = Percentiles::of(vec![7], 1.0);
        assert_eq!((one.p50, one.p999, one.max), (7, 7, 7));
    }
}
