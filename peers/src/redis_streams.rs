//! Redis Streams: `XADD` to publish, a consumer group read with
//! `XREADGROUP ... BLOCK` to consume, `XACK` to ack. The server's
//! `appendfsync` (set by the run script) decides what a reply means: with
//! `always` the AOF holding the command is fsynced before any reply of that
//! event-loop turn is sent; with `everysec` a background thread fsyncs once
//! a second, so a confirmed write can be lost in a crash.

use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamReadOptions, StreamReadReply};
use redis::{AsyncCommands, AsyncConnectionConfig, Client};
use tokio::runtime::Handle;

use crate::Result;
use crate::net::{self, TIMEOUT};
use crate::system::{Consumer, Peer};

/// The consumer group every consumer joins.
const GROUP: &str = "g";
/// The stream entry's one field.
const FIELD: &str = "d";

pub struct Redis {
    rt: Handle,
    client: Client,
    con: MultiplexedConnection,
}

fn connect(rt: &Handle, client: &Client) -> Result<MultiplexedConnection> {
    // The client's own response timeout covers a blocked XREADGROUP too.
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    net::call(
        rt,
        "connect to redis",
        client.get_multiplexed_async_connection_with_config(&config),
    )
}

impl Redis {
    pub fn connect(rt: &Handle, addr: &str) -> Result<Redis> {
        let client =
            Client::open(format!("redis://{addr}/")).map_err(|e| format!("redis {addr}: {e}"))?;
        let con = connect(rt, &client)?;
        Ok(Redis {
            rt: rt.clone(),
            client,
            con,
        })
    }
}

impl Peer for Redis {
    fn reset(&mut self, queue: &str) -> Result<()> {
        self.remove(queue)?;
        let con = &mut self.con;
        net::call(
            &self.rt,
            "XGROUP CREATE",
            con.xgroup_create_mkstream::<_, _, _, ()>(queue, GROUP, "$"),
        )
    }

    fn publish(&mut self, queue: &str, payload: &str) -> Result<()> {
        let con = &mut self.con;
        net::call(
            &self.rt,
            "XADD",
            con.xadd::<_, _, _, _, String>(queue, "*", &[(FIELD, payload)]),
        )?;
        Ok(())
    }

    /// One pipeline of XADDs (not a MULTI): the server runs them in a row
    /// and, with `appendfsync always`, fsyncs them together.
    fn publish_batch(&mut self, queue: &str, payloads: &[String]) -> Result<()> {
        let mut pipe = redis::pipe();
        for p in payloads {
            pipe.xadd(queue, "*", &[(FIELD, p.as_str())]);
        }
        let con = &mut self.con;
        let ids: Vec<String> = net::call(&self.rt, "XADD pipeline", pipe.query_async(con))?;
        if ids.len() != payloads.len() {
            return Err(format!("{} XADDs gave {} ids", payloads.len(), ids.len()));
        }
        Ok(())
    }

    fn consumer(&self, queue: &str, member: usize, batch: usize) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(RedisConsumer {
            rt: self.rt.clone(),
            con: connect(&self.rt, &self.client)?,
            queue: queue.to_owned(),
            name: format!("c{member}"),
            batch,
            taken: Vec::new(),
        }))
    }

    fn remove(&mut self, queue: &str) -> Result<()> {
        let con = &mut self.con;
        net::call(&self.rt, "DEL", con.del::<_, ()>(queue))
    }
}

struct RedisConsumer {
    rt: Handle,
    con: MultiplexedConnection,
    queue: String,
    name: String,
    batch: usize,
    /// Entry ids taken and not acked yet.
    taken: Vec<String>,
}

impl Consumer for RedisConsumer {
    fn take(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>> {
        // BLOCK 0 would block forever.
        let block = usize::try_from(wait.as_millis())
            .unwrap_or(usize::MAX)
            .max(1);
        let opts = StreamReadOptions::default()
            .group(GROUP, &self.name)
            .count(self.batch)
            .block(block);
        let con = &mut self.con;
        let reply: Option<StreamReadReply> = net::call(
            &self.rt,
            "XREADGROUP",
            con.xread_options(&[self.queue.as_str()], &[">"], &opts),
        )?;
        let mut payloads = Vec::new();
        for key in reply.map(|r| r.keys).unwrap_or_default() {
            for entry in key.ids {
                let p: Vec<u8> = entry
                    .get(FIELD)
                    .ok_or_else(|| format!("entry {} has no field {FIELD}", entry.id))?;
                payloads.push(p);
                self.taken.push(entry.id);
            }
        }
        Ok(payloads)
    }

    fn ack(&mut self) -> Result<()> {
        if self.taken.is_empty() {
            return Ok(());
        }
        let con = &mut self.con;
        let n: usize = net::call(
            &self.rt,
            "XACK",
            con.xack(self.queue.as_str(), GROUP, &self.taken),
        )?;
        if n != self.taken.len() {
            return Err(format!("XACK of {} ids acked {n}", self.taken.len()));
        }
        self.taken.clear();
        Ok(())
    }
}
