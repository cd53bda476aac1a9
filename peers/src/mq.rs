//! mqlite through its typed API, `Durability::Full`: every publish, publish
//! batch and ack is one commit, fsynced before the call returns.

use std::path::Path;
use std::time::Duration;

use mqlite::{ConsumeRequest, Database, Durability, Message, TopicKind};

use crate::Result;
use crate::system::{Consumer, Peer};

pub struct Mqlite {
    db: Database,
}

fn open(file: &Path) -> Result<Database> {
    Database::builder(file)
        .durability(Durability::Full)
        .open()
        .map_err(|e| format!("open {}: {e}", file.display()))
}

impl Mqlite {
    pub fn open(file: &Path) -> Result<Mqlite> {
        Ok(Mqlite { db: open(file)? })
    }
}

impl Peer for Mqlite {
    fn reset(&mut self, queue: &str) -> Result<()> {
        self.remove(queue)?;
        self.db
            .execute(&format!("CREATE QUEUE {queue}"))
            .map_err(|e| format!("create queue {queue}: {e}"))?;
        Ok(())
    }

    fn publish(&mut self, queue: &str, payload: &str) -> Result<()> {
        self.db
            .publish(queue, Message::new(payload))
            .map_err(|e| format!("publish: {e}"))?;
        Ok(())
    }

    fn publish_batch(&mut self, queue: &str, payloads: &[String]) -> Result<()> {
        let msgs = payloads.iter().map(|p| Message::new(p.as_str())).collect();
        self.db
            .publish_batch(queue, msgs)
            .map_err(|e| format!("publish batch: {e}"))?;
        Ok(())
    }

    /// A clone of this handle (same process, one connection pool), as in
    /// mqlite's own `ratios` bench; the latency child opens the file itself.
    fn consumer(&self, queue: &str, _member: usize, batch: usize) -> Result<Box<dyn Consumer>> {
        Ok(Box::new(MqliteConsumer {
            db: self.db.clone(),
            queue: queue.to_owned(),
            batch,
            taken: Vec::new(),
        }))
    }

    fn remove(&mut self, queue: &str) -> Result<()> {
        self.db
            .drop_topic(TopicKind::Queue, queue, true)
            .map_err(|e| format!("drop queue {queue}: {e}"))?;
        Ok(())
    }
}

struct MqliteConsumer {
    db: Database,
    queue: String,
    batch: usize,
    /// Delivery ids taken and not acked yet.
    taken: Vec<u64>,
}

impl Consumer for MqliteConsumer {
    /// A blocking `CONSUME ... WAIT`.
    fn take(&mut self, wait: Duration) -> Result<Vec<Vec<u8>>> {
        let req = ConsumeRequest::queue(self.queue.as_str())
            .max(self.batch)
            .wait(wait);
        let got = self.db.consume(&req).map_err(|e| format!("consume: {e}"))?;
        self.taken.extend(got.iter().map(|d| d.id));
        Ok(got.into_iter().map(|d| d.payload).collect())
    }

    fn ack(&mut self) -> Result<()> {
        self.db.ack(&self.taken).map_err(|e| format!("ack: {e}"))?;
        self.taken.clear();
        Ok(())
    }
}
