//! NATS JetStream: one file-storage stream per queue (its subject is the
//! queue's name), publishes awaited for the stream's ack, one durable pull
//! consumer with explicit acks shared by all consumers.
//!
//! What an ack means on the packaged server (2.9): the message is in the
//! stream's file, written but not fsynced; the server fsyncs its files every
//! `sync_interval` (2 minutes by default, not changed here), so a confirmed
//! message can be lost if the machine (not the process) goes down. A
//! consumer's ack is a fire-and-forget message with no reply; the consumer
//! flushes its connection after each batch of acks, so the server has them
//! when `ack` returns.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, PullConsumer, pull};
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::stream::{self, StorageType};
use async_nats::jetstream::{self, Context, ErrorCode, Message};
use futures_util::StreamExt;
use tokio::runtime::Handle;

use crate::Result;
use crate::net::{self, TIMEOUT};
use crate::system::{Consumer, Peer};

/// The durable consumer every consumer pulls from.
const CONSUMER: &str = "g";

pub struct Nats {
    rt: Handle,
    addr: String,
    js: Context,
}

fn connect(rt: &Handle, addr: &str) -> Result<(async_nats::Client, Context)> {
    let client = net::call(
        rt,
        "connect to nats",
        async_nats::ConnectOptions::new()
            .connection_timeout(TIMEOUT)
            .request_timeout(Some(TIMEOUT))
            .connect(addr),
    )?;
    // The context spawns its ack task on the runtime.
    let _in_rt = rt.enter();
    let mut js = jetstream::new(client.clone());
    js.set_timeout(TIMEOUT);
    Ok((client, js))
}

impl Nats {
    pub fn connect(rt: &Handle, addr: &str) -> Result<Nats> {
        let (_, js) = connect(rt, addr)?;
        Ok(Nats {
            rt: rt.clone(),
            addr: addr.to_owned(),
            js,
        })
    }
}

impl Peer for Nats {
    fn reset(&mut self, queue: &str) -> Result<()> {
        self.remove(queue)?;
        let stream = net::call(
            &self.rt,
            "create stream",
            self.js.create_stream(stream::Config {
                name: queue.to_owned(),
                subjects: vec![queue.to_owned()],
                storage: StorageType::File,
                ..Default::default()
            }),
        )?;
        net::call(
            &self.rt,
            "create consumer",
            stream.create_consumer(pull::Config {
                durable_name: Some(CONSUMER.to_owned()),
                ack_policy: AckPolicy::Explicit,
                ack_wait: Duration::from_secs(30),
                // The default (1,000) would cap 4 consumers' batches of 100
                // only loosely; set it so it never binds.
                max_ack_pending: 100_000,
                ..Default::default()
            }),
        )?;
        Ok(())
    }

    fn publish(&mut self, queue: &str, payload: &str) -> Result<()> {
        let js = &self.js;
        net::call(&self.rt, "publish", async {
            js.publish(queue.to_owned(), payload.to_owned().into())
                .await?
                .await
        })?;
        Ok(())
    }

    /// Sends the whole batch, then awaits every ack.
    fn publish_batch(&mut self, queue: &str, payloads: &[String]) -> Result<()> {
        let js = &self.js;
        net::call(&self.rt, "publish batch", async {
            let mut acks = Vec::with_capacity(payloads.len());
            for p in payloads {
                acks.push(js.publish(queue.to_owned(), p.clone().into()).await?);
            }
            for ack in acks {
                ack.await?;
            }
            Ok::<_, async_nats::jetstream::context::PublishError>(())
        })
    }

    fn consumer(&self, queue: &str, _member: usize, batch: usize) -> Result<Box<dyn Consumer>> {
        let (client, js) = connect(&self.rt, &self.addr)?;
        let consumer: PullConsumer = net::call(&self.rt, "get consumer", async {
            js.get_stream(queue)
                .await
                .map_err(|e| e.to_string())?
                .get_consumer(CONSUMER)
                .await
                .map_err(|e| e.to_string())
        })?;
        Ok(Box::new(NatsConsumer {
            rt: self.rt.clone(),
            client,
            consumer,
            batch,
            taken: Vec::new(),
        }))
    }

    fn remove(&mut self, queue: &str) -> Result<()> {
        let js = &self.js;
        net::call(&self.rt, "delete stream", async {
            match js.delete_stream(queue).await {
                Ok(_) => Ok(()),
                Err(e)
                    if matches!(e.kind(), GetStreamErrorKind::JetStream(j)
                        if j.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
                {
                    Ok(())
                }
                Err(e) => Err(e),
            }
        })
    }
}

struct NatsConsumer {
    rt: Handle,
    client: async_nats::Client,
    consumer: PullConsumer,
    batch: usize,
    /// Messages taken and not acked yet.
    taken: Vec<Message>,
}

impl Consumer for NatsConsumer {
    /// One pull request for up to the batch, which the server holds for up
    /// to `wait`; it ends as soon as the batch is full.
    fn take(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>> {
        let (consumer, batch) = (&self.consumer, self.batch);
        let got: Vec<Message> = self.rt.block_on(async {
            tokio::time::timeout(wait + TIMEOUT, async {
                let mut msgs = consumer
                    .batch()
                    .max_messages(batch)
                    .expires(wait)
                    .messages()
                    .await
                    .map_err(|e| format!("pull: {e}"))?;
                let mut got = Vec::new();
                while let Some(m) = msgs.next().await {
                    got.push(m.map_err(|e| format!("pull: {e}"))?);
                }
                Ok::<_, String>(got)
            })
            .await
            .map_err(|_| format!("pull: no answer in {} s", (wait + TIMEOUT).as_secs()))?
        })?;
        let payloads = got.iter().map(|m| m.payload.to_vec()).collect();
        self.taken.extend(got);
        Ok(payloads)
    }

    fn ack(&mut self) -> Result<()> {
        let (taken, client) = (&self.taken, &self.client);
        net::call(&self.rt, "ack", async {
            for m in taken {
                m.ack().await.map_err(|e| e.to_string())?;
            }
            client.flush().await.map_err(|e| e.to_string())
        })?;
        self.taken.clear();
        Ok(())
    }
}
