//! The systems compared, what a workload asks of each (`Peer`, `Consumer`),
//! and how a child process names the system it connects to.

use std::path::PathBuf;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::{Result, jetstream, mq, rabbit, redis_streams};

/// Redis's `appendfsync` setting of the server at an address (the run script
/// starts one server per setting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// The AOF is fsynced before a write command's reply is sent.
    Always,
    /// The AOF is fsynced once a second in the background.
    Everysec,
}

/// One row of the tables: a system and its settings, and where it is.
#[derive(Clone, Debug)]
pub enum System {
    /// An mqlite file, durability full (an fsync per commit).
    Mqlite {
        file: PathBuf,
    },
    Redis {
        addr: String,
        fsync: Fsync,
    },
    Nats {
        addr: String,
    },
    Rabbit {
        addr: String,
    },
}

impl System {
    pub fn label(&self) -> String {
        match self {
            System::Mqlite { .. } => "mqlite (durability full)".into(),
            System::Redis {
                fsync: Fsync::Always,
                ..
            } => "Redis Streams (appendfsync always)".into(),
            System::Redis {
                fsync: Fsync::Everysec,
                ..
            } => "Redis Streams (appendfsync everysec)".into(),
            System::Nats { .. } => "NATS JetStream (file storage)".into(),
            System::Rabbit { .. } => "RabbitMQ (quorum queue, confirms)".into(),
        }
    }

    /// Connects (mqlite: opens the file), with a timeout on each network step.
    pub fn connect(&self, rt: &Handle) -> Result<Box<dyn Peer>> {
        Ok(match self {
            System::Mqlite { file } => Box::new(mq::Mqlite::open(file)?),
            System::Redis { addr, .. } => Box::new(redis_streams::Redis::connect(rt, addr)?),
            System::Nats { addr } => Box::new(jetstream::Nats::connect(rt, addr)?),
            System::Rabbit { addr } => Box::new(rabbit::Rabbit::connect(rt, addr)?),
        })
    }

    /// The arguments that name this system to a child process; `from_args`
    /// reads them back.
    pub fn to_args(&self) -> Vec<String> {
        match self {
            System::Mqlite { file } => vec!["mqlite".into(), file.display().to_string()],
            System::Redis { addr, fsync } => vec![
                match fsync {
                    Fsync::Always => "redis-always".into(),
                    Fsync::Everysec => "redis-everysec".into(),
                },
                addr.clone(),
            ],
            System::Nats { addr } => vec!["nats".into(), addr.clone()],
            System::Rabbit { addr } => vec!["rabbitmq".into(), addr.clone()],
        }
    }

    pub fn from_args(kind: &str, place: String) -> Result<System> {
        Ok(match kind {
            "mqlite" => System::Mqlite {
                file: PathBuf::from(place),
            },
            "redis-always" => System::Redis {
                addr: place,
                fsync: Fsync::Always,
            },
            "redis-everysec" => System::Redis {
                addr: place,
                fsync: Fsync::Everysec,
            },
            "nats" => System::Nats { addr: place },
            "rabbitmq" => System::Rabbit { addr: place },
            _ => return Err(format!("unknown system {kind:?}")),
        })
    }
}

/// What the workloads need from a system. Each call returns once the system
/// confirmed it, or fails (a network step that takes longer than
/// `net::TIMEOUT` fails).
pub trait Peer {
    /// Makes `queue` exist and hold nothing.
    fn reset(&mut self, queue: &str) -> Result<()>;
    /// Publishes one message.
    fn publish(&mut self, queue: &str, payload: &str) -> Result<()>;
    /// Publishes all of `payloads` at once (one transaction, pipeline or
    /// window of confirms), returning when every one is confirmed.
    fn publish_batch(&mut self, queue: &str, payloads: &[String]) -> Result<()>;
    /// A consumer of `queue` with a connection of its own (mqlite: a handle
    /// on the same file), which takes up to `batch` messages at a time.
    fn consumer(&self, queue: &str, member: usize, batch: usize) -> Result<Box<dyn Consumer>>;
    /// Removes `queue` and its messages.
    fn remove(&mut self, queue: &str) -> Result<()>;
}

/// One consumer, used from one thread.
pub trait Consumer: Send {
    /// Up to the consumer's batch of messages (their payloads), waiting up
    /// to `wait` for the first; empty if none came.
    fn take(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>>;
    /// Acknowledges everything `take` returned since the last `ack`.
    fn ack(&mut self) -> Result<()>;
}
