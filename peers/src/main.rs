//! mqlite side by side with Redis Streams, NATS JetStream and RabbitMQ, on
//! one machine, with the same 200-byte JSON messages.
//!
//! ```text
//! bash peers/run      # installs and starts the servers, then runs this; writes peers/RESULTS.md
//! ```
//!
//! Run by hand (servers already up; a system whose address is not given is
//! skipped, and mqlite needs only `--dir`):
//!
//! ```text
//! mqlite-peers --dir /tmp/p [--redis-always HOST:PORT] [--redis-everysec HOST:PORT]
//!              [--nats HOST:PORT] [--amqp HOST:PORT] [--rounds 3] [--quick]
//! ```
//!
//! Workloads, each on a fresh queue (stream) of its own:
//! - `publish_one`: publish one message at a time, each confirmed before the
//!   next (what a confirmation promises differs per system: see README).
//! - `publish_batch`: batches of 1,000, each batch confirmed as a whole.
//! - `consume_ack`: one consumer drains what `publish_batch` left, taking up
//!   to 100 at a time and acking them before it takes more.
//! - `competing`: 4 consumers, each with its own connection, drain a queue
//!   filled beforehand (not timed), in batches of 100 as above.
//! - `latency`: this process publishes one message every 5 ms (200/s) and a
//!   child process (this binary run again, see `latency`) waits for each and
//!   acks it; the figure is the time from the publish call's return to the
//!   consume call's return, in wall-clock time read by both processes.
//!
//! Every consumer checks that it got each message exactly once. Every network
//! step has a timeout; a stall of 30 s fails the run.

mod disk;
mod jetstream;
mod latency;
mod mq;
mod net;
mod rabbit;
mod redis_streams;
mod report;
mod system;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;

use report::Results;
use system::System;
use workload::{Sizes, Workload};

pub type Result<T, E = String> = std::result::Result<T, E>;

/// What the command line asked for.
struct Args {
    rounds: usize,
    /// mqlite's file and the disk probe's go here.
    dir: PathBuf,
    sizes: Sizes,
    systems: Vec<System>,
}

const USAGE: &str = "usage: mqlite-peers --dir DIR [--redis-always ADDR] [--redis-everysec ADDR] \
[--nats ADDR] [--amqp ADDR] [--rounds N] [--quick]";

fn parse_args(mut it: impl Iterator<Item = String>) -> Result<Args> {
    let mut rounds = 3;
    let mut sizes = Sizes::FULL;
    let mut dir = None;
    let (mut always, mut everysec, mut nats, mut amqp) = (None, None, None, None);
    while let Some(flag) = it.next() {
        if flag == "--quick" {
            sizes = Sizes::QUICK;
            continue;
        }
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--rounds" => {
                rounds =
                    value.parse().ok().filter(|&n| n > 0).ok_or_else(|| {
                        format!("--rounds {value}: expected a count of 1 or more")
                    })?;
            }
            "--dir" => dir = Some(PathBuf::from(value)),
            "--redis-always" => always = Some(value),
            "--redis-everysec" => everysec = Some(value),
            "--nats" => nats = Some(value),
            "--amqp" => amqp = Some(value),
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    let dir = dir.ok_or_else(|| format!("--dir is needed (mqlite's files go there)\n{USAGE}"))?;
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let mut systems = vec![System::Mqlite {
        file: dir.join("peers.db"),
    }];
    if let Some(addr) = always {
        systems.push(System::Redis {
            addr,
            fsync: system::Fsync::Always,
        });
    }
    if let Some(addr) = everysec {
        systems.push(System::Redis {
            addr,
            fsync: system::Fsync::Everysec,
        });
    }
    if let Some(addr) = nats {
        systems.push(System::Nats { addr });
    }
    if let Some(addr) = amqp {
        systems.push(System::Rabbit { addr });
    }
    Ok(Args {
        rounds,
        dir,
        sizes,
        systems,
    })
}

fn run(args: &Args) -> Result<Results> {
    let rt = net::runtime()?;
    let mut results = Results::new(args.systems.iter().map(System::label).collect());
    for round in 1..=args.rounds {
        // Systems take turns within a round, so a drift of the machine's
        // speed over minutes spreads over all of them.
        for (k, system) in args.systems.iter().enumerate() {
            let fsyncs = disk::fsyncs_per_second(&args.dir)?;
            eprintln!(
                "round {round}/{}: {} (disk: {fsyncs:.0} fsyncs/s)",
                args.rounds,
                system.label()
            );
            results.add_disk(k, fsyncs);
            let mut peer = system.connect(rt.handle())?;
            for workload in Workload::ALL {
                let queue = format!("r{round}_{}", workload.queue());
                let figure = workload::run(workload, peer.as_mut(), system, &queue, &args.sizes)
                    .map_err(|e| format!("{}, {}: {e}", system.label(), workload.name()))?;
                eprintln!("  {:<14} {figure}", workload.name());
                results.add(k, workload, figure);
            }
        }
    }
    Ok(results)
}

fn main() -> ExitCode {
    let mut argv = std::env::args().skip(1).peekable();
    if argv.peek().map(String::as_str) == Some(latency::CHILD_ARG) {
        argv.next();
        return latency::child(argv);
    }
    let args = match parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(results) => {
            print!("{}", results.render(args.rounds, &args.sizes));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("mqlite-peers: {e}");
            ExitCode::FAILURE
        }
    }
}
