//! Exactly-once consume-transform-produce inside one database: read
//! `order.placed`, insert an invoice row into the application's own table,
//! publish `invoice.created`, ack — one transaction, all or nothing.
//!
//! Run: `cargo run --example invoice -- /tmp/shop.db`

use mqlite::{ConsumeRequest, Database, Message, Subscription};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).unwrap_or_else(|| "shop.db".into());
    let db = Database::open(&path)?;
    db.execute(
        "CREATE TOPIC IF NOT EXISTS order.placed PARTITIONS 3;
         CREATE TOPIC IF NOT EXISTS invoice.created PARTITIONS 3;",
    )?;
    db.subscribe(
        "billing",
        &Subscription::topic("order.placed").from(mqlite::StartFrom::Beginning),
    )?;
    {
        let tx = db.transaction()?;
        tx.connection()?.execute_batch(
            "CREATE TABLE IF NOT EXISTS invoices (order_id TEXT PRIMARY KEY, total REAL NOT NULL)",
        )?;
        tx.commit()?;
    }
    db.publish(
        "order.placed",
        Message::new(r#"{"orderId": "ORD-7", "total": 42.5}"#).key("ORD-7"),
    )?;

    loop {
        let mut tx = db.transaction()?;
        let batch = tx.consume(
            &ConsumeRequest::from_topic("order.placed")
                .for_group("billing")
                .max(100),
        )?;
        if batch.is_empty() {
            break; // dropping the transaction rolls it back
        }
        for d in &batch {
            let order: serde_json::Value = serde_json::from_slice(&d.payload)
                .map_err(|e| format!("order {}: {e}", d.offset))?;
            let id = order["orderId"].as_str().unwrap_or_default().to_string();
            let total = order["total"].as_f64().unwrap_or(0.0);
            tx.connection()?.execute(
                "INSERT OR IGNORE INTO invoices (order_id, total) VALUES (?1, ?2)",
                mqlite::rusqlite::params![id, total],
            )?;
            tx.publish(
                "invoice.created",
                Message::new(format!(r#"{{"orderId": "{id}", "total": {total}}}"#)).key(id.clone()),
            )?;
        }
        tx.ack(&batch.iter().map(|d| d.id).collect::<Vec<_>>())?;
        // If this worker's leases had expired and the orders went to another
        // worker, the ack fails and commit rolls everything back.
        tx.commit()?;
        println!("invoiced {} order(s)", batch.len());
    }
    Ok(())
}
