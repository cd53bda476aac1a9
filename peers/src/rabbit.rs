//! RabbitMQ: one quorum queue per queue (on one node), publisher confirms on
//! the default exchange, consumers with manual acks and a prefetch of their
//! batch.
//!
//! What a confirm means: a quorum queue confirms a message once its Raft log
//! entry is written and fsynced on a majority of its members (here: the only
//! node). A consumer's ack has no reply in AMQP; the broker applies it to
//! the queue's log like any other command.

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};
use tokio::runtime::Handle;

use crate::Result;
use crate::net;

/// How long a consumer waits for the rest of its batch once the first
/// message of it came (the broker streams up to the prefetch at once).
const BATCH_GAP: Duration = Duration::from_millis(5);

pub struct Rabbit {
    rt: Handle,
    addr: String,
    // Kept open for `channel`.
    _conn: Connection,
    channel: Channel,
}

fn open(rt: &Handle, addr: &str) -> Result<(Connection, Channel)> {
    let uri = format!("amqp://guest:guest@{addr}/%2f");
    net::call(rt, "connect to rabbitmq", async {
        let conn = Connection::connect(&uri, ConnectionProperties::default()).await?;
        let channel = conn.create_channel().await?;
        Ok::<_, lapin::Error>((conn, channel))
    })
}

/// Persistent, as a durable message should be (a quorum queue keeps every
/// message on disk anyway).
fn properties() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn confirmed(c: Confirmation) -> Result<()> {
    if c.is_ack() {
        Ok(())
    } else {
        Err("the broker nacked a publish".into())
    }
}

impl Rabbit {
    pub fn connect(rt: &Handle, addr: &str) -> Result<Rabbit> {
        let (conn, channel) = open(rt, addr)?;
        net::call(
            rt,
            "confirm.select",
            channel.confirm_select(ConfirmSelectOptions::default()),
        )?;
        Ok(Rabbit {
            rt: rt.clone(),
            addr: addr.to_owned(),
            _conn: conn,
            channel,
        })
    }
}

impl crate::system::Peer for Rabbit {
    fn reset(&mut self, queue: &str) -> Result<()> {
        self.remove(queue)?;
        let mut args = FieldTable::default();
        args.insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        );
        net::call(
            &self.rt,
            "queue.declare",
            self.channel.queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                args,
            ),
        )?;
        Ok(())
    }

    fn publish(&mut self, queue: &str, payload: &str) -> Result<()> {
        let ch = &self.channel;
        let c = net::call(&self.rt, "publish", async {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                payload.as_bytes(),
                properties(),
            )
            .await?
            .await
        })?;
        confirmed(c)
    }

    /// Publishes the whole batch, then awaits every confirm.
    fn publish_batch(&mut self, queue: &str, payloads: &[String]) -> Result<()> {
        let ch = &self.channel;
        let confirms = net::call(&self.rt, "publish batch", async {
            let mut pending = Vec::with_capacity(payloads.len());
            for p in payloads {
                pending.push(
                    ch.basic_publish(
                        "".into(),
                        queue.into(),
                        BasicPublishOptions::default(),
                        p.as_bytes(),
                        properties(),
                    )
                    .await?,
                );
            }
            let mut confirms = Vec::with_capacity(pending.len());
            for c in pending {
                confirms.push(c.await?);
            }
            Ok::<_, lapin::Error>(confirms)
        })?;
        confirms.into_iter().try_for_each(confirmed)
    }

    fn consumer(
        &self,
        queue: &str,
        member: usize,
        batch: usize,
    ) -> Result<Box<dyn crate::system::Consumer>> {
        let (conn, channel) = open(&self.rt, &self.addr)?;
        let prefetch = u16::try_from(batch).map_err(|e| e.to_string())?;
        let consumer = net::call(&self.rt, "basic.consume", async {
            channel
                .basic_qos(prefetch, BasicQosOptions::default())
                .await?;
            channel
                .basic_consume(
                    queue.into(),
                    format!("c{member}").into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        })?;
        Ok(Box::new(RabbitConsumer {
            rt: self.rt.clone(),
            _conn: conn,
            channel,
            consumer,
            batch,
            last_tag: None,
        }))
    }

    fn remove(&mut self, queue: &str) -> Result<()> {
        // Deleting a queue that does not exist succeeds.
        net::call(
            &self.rt,
            "queue.delete",
            self.channel
                .queue_delete(queue.into(), QueueDeleteOptions::default()),
        )?;
        Ok(())
    }
}

struct RabbitConsumer {
    rt: Handle,
    _conn: Connection,
    channel: Channel,
    consumer: lapin::Consumer,
    batch: usize,
    /// The delivery tag of the last message taken and not acked.
    last_tag: Option<u64>,
}

impl crate::system::Consumer for RabbitConsumer {
    fn take(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>> {
        let (consumer, batch) = (&mut self.consumer, self.batch);
        let got = self.rt.block_on(async {
            let mut got = Vec::new();
            let mut limit = wait;
            while got.len() < batch {
                match tokio::time::timeout(limit, consumer.next()).await {
                    Err(_) => break,
                    Ok(None) => return Err("the broker cancelled the consumer".to_owned()),
                    Ok(Some(d)) => got.push(d.map_err(|e| format!("delivery: {e}"))?),
                }
                limit = BATCH_GAP;
            }
            Ok(got)
        })?;
        if let Some(d) = got.last() {
            self.last_tag = Some(d.delivery_tag);
        }
        Ok(got.into_iter().map(|d| d.data).collect())
    }

    /// One `basic.ack` with `multiple` for everything taken.
    fn ack(&mut self) -> Result<()> {
        let Some(tag) = self.last_tag.take() else {
            return Ok(());
        };
        net::call(
            &self.rt,
            "basic.ack",
            self.channel
                .basic_ack(tag, BasicAckOptions { multiple: true }),
        )
    }
}
