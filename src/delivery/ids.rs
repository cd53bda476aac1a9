//! Delivery ids: reserved in blocks by a transaction of their own, so an id
//! handed out in a transaction that rolls back is never issued again.

use std::sync::Mutex;

use rusqlite::Connection;

use crate::Result;
use crate::storage::tx::next_counter;
use crate::sync::lock;

/// A block of delivery ids reserved by a committed transaction of its own,
/// so ids handed out inside a transaction that rolls back are never issued
/// again. `next..end` are free.
#[derive(Debug, Default)]
pub(crate) struct IdBlock {
    pub next: i64,
    pub end: i64,
}

/// How many delivery ids one reservation takes.
const ID_BLOCK: i64 = 65_536;

pub(super) fn take_id(conn: &Connection, ids: &Mutex<IdBlock>) -> Result<i64> {
    let mut b = lock(ids);
    if b.next < b.end {
        b.next += 1;
        return Ok(b.next - 1);
    }
    // Only a transaction that leased more than a block lands here: take ids
    // from the counter inside it (they roll back with it).
    next_counter(conn, "next_delivery_id")
}

/// `n` consecutive delivery ids from the reserved block, if it has them.
pub(super) fn take_ids(ids: &Mutex<IdBlock>, n: usize) -> Option<i64> {
    let mut b = lock(ids);
    let n = i64::try_from(n).ok()?;
    if b.end - b.next < n {
        return None;
    }
    b.next += n;
    Some(b.next - n)
}

/// Makes sure `block` holds at least `want` ids, reserving a new block
/// from the file's counter if not. Runs inside a write transaction of its
/// own (the reservation must commit even if the consume rolls back).
pub(crate) fn refill(conn: &Connection, block: &Mutex<IdBlock>, want: i64) -> Result<()> {
    let mut b = lock(block);
    if b.end - b.next < want {
        let start: i64 = conn.query_row(
            "UPDATE mq_meta SET value = value + ?1 WHERE name = 'next_delivery_id' RETURNING value - ?1",
            [ID_BLOCK],
            |r| r.get(0),
        )?;
        *b = IdBlock {
            next: start,
            end: start + ID_BLOCK,
        };
    }
    Ok(())
}

/// True when `block` holds fewer than `want` ids.
pub(crate) fn low(block: &Mutex<IdBlock>, want: i64) -> bool {
    let b = lock(block);
    b.end - b.next < want
}
