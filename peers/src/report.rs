//! The figures of every round, and the Markdown tables made of them: the
//! median over rounds with the range (lowest–highest) beside it.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::latency::{Percentiles, ms};
use crate::workload::{CONSUME_BATCH, CONSUMERS, Figure, PUBLISH_BATCH, Sizes, Workload};

pub struct Results {
    systems: Vec<String>,
    /// (system index, workload) → one figure per round.
    figures: BTreeMap<(usize, Workload), Vec<Figure>>,
    /// System index → the disk's fsyncs per second before its turn, per round.
    disk: BTreeMap<usize, Vec<f64>>,
}

/// The median (the mean of the middle two for an even count); `xs` is not
/// empty.
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
fn thousands(x: f64) -> String {
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

/// "median (low–high)" of `xs`, each shown by `show`; just the figure for
/// one round.
fn summary(xs: Vec<f64>, show: impl Fn(f64) -> String) -> String {
    let low = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let high = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let one = xs.len() == 1;
    let mid = show(median(xs));
    // A dash between negative numbers reads as a minus.
    let to = if low < 0.0 { " to " } else { "–" };
    if one {
        mid
    } else {
        format!("{mid} ({}{to}{})", show(low), show(high))
    }
}

const THROUGHPUT: [(Workload, &str); 4] = [
    (Workload::PublishOne, "publish, one at a time"),
    (Workload::PublishBatch, "publish, batches of 1,000"),
    (Workload::ConsumeAck, "consume + ack, batches of 100"),
    (Workload::Competing, "4 competing consumers"),
];

impl Results {
    pub fn new(systems: Vec<String>) -> Results {
        Results {
            systems,
            figures: BTreeMap::new(),
            disk: BTreeMap::new(),
        }
    }

    pub fn add_disk(&mut self, system: usize, fsyncs_per_second: f64) {
        self.disk.entry(system).or_default().push(fsyncs_per_second);
    }

    pub fn add(&mut self, system: usize, workload: Workload, figure: Figure) {
        self.figures
            .entry((system, workload))
            .or_default()
            .push(figure);
    }

    fn rates(&self, system: usize, workload: Workload) -> Vec<f64> {
        self.figures
            .get(&(system, workload))
            .into_iter()
            .flatten()
            .filter_map(|f| match f {
                Figure::Rate(r) => Some(*r),
                Figure::Latency(_) => None,
            })
            .collect()
    }

    fn latencies(&self, system: usize) -> Vec<&Percentiles> {
        self.figures
            .get(&(system, Workload::Latency))
            .into_iter()
            .flatten()
            .filter_map(|f| match f {
                Figure::Latency(p) => Some(p),
                Figure::Rate(_) => None,
            })
            .collect()
    }

    pub fn render(&self, rounds: usize, sizes: &Sizes) -> String {
        let of = if rounds == 1 {
            "one round".to_owned()
        } else {
            format!("median of {rounds} rounds, lowest–highest in brackets")
        };
        let mut out = String::new();
        self.throughput(&mut out, &of, sizes);
        self.latency(&mut out, &of, sizes);
        self.each_round(&mut out, rounds);
        out
    }

    fn throughput(&self, out: &mut String, of: &str, sizes: &Sizes) {
        let _ = writeln!(out, "## Throughput, messages per second ({of})\n");
        let _ = writeln!(
            out,
            "Per round: {} single publishes; {} messages in batches of {}, then drained \
             by one consumer taking {} at a time and acking them; {} messages drained \
             the same way by {} consumers, each with its own connection.\n",
            thousands(sizes.publish_one as f64),
            thousands(sizes.publish_batch as f64),
            thousands(PUBLISH_BATCH as f64),
            CONSUME_BATCH,
            thousands(sizes.competing as f64),
            CONSUMERS,
        );
        let all: Vec<f64> = self.disk.values().flatten().copied().collect();
        if !all.is_empty() {
            let _ = writeln!(
                out,
                "Disk: {} fsyncs a second (one 4 KiB block rewritten and fdatasynced 200 \
                 times before each system's turn; median, lowest–highest). Every durable \
                 figure waits for it, and on a shared machine it moves tenfold within minutes.\n",
                summary(all, thousands)
            );
        }
        out.push_str("| system |");
        for (_, title) in THROUGHPUT {
            let _ = write!(out, " {title} |");
        }
        out.push_str("\n|---|");
        out.push_str(&"---:|".repeat(THROUGHPUT.len()));
        out.push('\n');
        for (k, name) in self.systems.iter().enumerate() {
            let _ = write!(out, "| {name} |");
            for (w, _) in THROUGHPUT {
                let rates = self.rates(k, w);
                let cell = if rates.is_empty() {
                    "–".to_owned()
                } else {
                    summary(rates, thousands)
                };
                let _ = write!(out, " {cell} |");
            }
            out.push('\n');
        }
    }

    fn latency(&self, out: &mut String, of: &str, sizes: &Sizes) {
        let _ = writeln!(
            out,
            "\n## Latency across processes, ms ({of})\n\n\
             From the publish call's return in one process to the consume call's return \
             in another, which waits for each message and acks it; one message every {} ms \
             ({}/s), {} samples a round after {} not counted. Below zero: the consumer had \
             the message before the publisher's call returned.\n",
            1000 / sizes.latency_rate,
            sizes.latency_rate,
            thousands(sizes.latency as f64),
            sizes.latency_warmup,
        );
        out.push_str("| system | p50 | p99 | p999 | max |\n|---|---:|---:|---:|---:|\n");
        let show_ms = |x: f64| ms(x as i64);
        for (k, name) in self.systems.iter().enumerate() {
            let lat = self.latencies(k);
            if lat.is_empty() {
                continue;
            }
            let col = |f: fn(&Percentiles) -> i64| {
                summary(lat.iter().map(|p| f(p) as f64).collect(), show_ms)
            };
            let _ = writeln!(
                out,
                "| {name} | {} | {} | {} | {} |",
                col(|p| p.p50),
                col(|p| p.p99),
                col(|p| p.p999),
                col(|p| p.max),
            );
        }
    }

    fn each_round(&self, out: &mut String, rounds: usize) {
        let _ = writeln!(out, "\n## Each round\n");
        out.push_str("| system | workload |");
        for r in 1..=rounds {
            let _ = write!(out, " round {r} |");
        }
        out.push_str("\n|---|---|");
        out.push_str(&"---|".repeat(rounds));
        out.push('\n');
        for (k, name) in self.systems.iter().enumerate() {
            if let Some(rates) = self.disk.get(&k) {
                let _ = write!(out, "| {name} | disk before its turn |");
                for r in rates {
                    let _ = write!(out, " {} fsyncs/s |", thousands(*r));
                }
                out.push('\n');
            }
            for w in Workload::ALL {
                let Some(figures) = self.figures.get(&(k, w)) else {
                    continue;
                };
                let _ = write!(out, "| {name} | {} |", w.name());
                for f in figures {
                    let cell = match f {
                        Figure::Rate(r) => format!("{} msgs/s", thousands(*r)),
                        Figure::Latency(p) => format!(
                            "{} / {} / {} / {} ms at {:.0}/s",
                            ms(p.p50),
                            ms(p.p99),
                            ms(p.p999),
                            ms(p.max),
                            p.rate
                        ),
                    };
                    let _ = write!(out, " {cell} |");
                }
                out.push('\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_summary() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
        assert_eq!(
            summary(vec![1500.0, 1000.0, 2000.0], thousands),
            "1,500 (1,000–2,000)"
        );
        assert_eq!(summary(vec![7.0], thousands), "7");
        assert_eq!(
            summary(vec![-2.0, 1.0, 0.0], |x| x.to_string()),
            "0 (-2 to 1)"
        );
        assert_eq!(thousands(1_234_567.8), "1,234,568");
    }
}
