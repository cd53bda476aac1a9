//! Where a group's next consume starts among its partitions with messages
//! waiting. The point is kept in the file, in `mq_meta` under
//! `rotation.<group id>`, so consumers in different processes take turns as
//! well as those of one process: each consume with a choice starts at the
//! first partition (in topic id, partition order, wrapping) after the one
//! the group's previous consume started at, and records it. A consume with
//! one partition to read writes nothing here.

use rusqlite::{Connection, OptionalExtension, params};

use crate::Result;

/// The `mq_meta` name of a group's rotation point.
fn name(group_id: i64) -> String {
    format!("rotation.{group_id}")
}

/// A (topic id, partition) as one integer; None past i32 topic ids.
fn pack((topic_id, partition): (i64, u32)) -> Option<i64> {
    (0..=i64::from(i32::MAX))
        .contains(&topic_id)
        .then(|| topic_id << 32 | i64::from(partition))
}

/// Index into `candidates` (sorted by topic id, partition) where the group's
/// consume starts, recorded for the next one when there is a choice.
pub(crate) fn start(conn: &Connection, group_id: i64, candidates: &[(i64, u32)]) -> Result<usize> {
    if candidates.len() < 2 {
        return Ok(0);
    }
    let key = name(group_id);
    let last: Option<i64> = conn
        .prepare_cached("SELECT value FROM mq_meta WHERE name = ?1")?
        .query_row([&key], |r| r.get(0))
        .optional()?;
    let after = |c: &(i64, u32)| match (last, pack(*c)) {
        (Some(last), Some(c)) => c > last,
        _ => false,
    };
    let i = candidates.iter().position(after).unwrap_or(0);
    if let Some(v) = pack(candidates[i]) {
        conn.prepare_cached(
            "INSERT INTO mq_meta (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
        )?
        .execute(params![key, v])?;
    }
    Ok(i)
}

/// Forgets a deleted group's rotation point.
pub(crate) fn forget(conn: &Connection, group_id: i64) -> Result<()> {
    conn.prepare_cached("DELETE FROM mq_meta WHERE name = ?1")?
        .execute([name(group_id)])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Connection {
        let c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        c.execute_batch("CREATE TABLE mq_meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
            .unwrap_or_else(|e| panic!("{e}"));
        c
    }

    #[test]
    fn starts_take_turns_and_survive_a_changing_set() {
        let c = meta();
        let all = [(1, 0), (1, 1), (2, 0)];
        let starts: Vec<usize> = (0..4).map(|_| start(&c, 7, &all).unwrap_or(9)).collect();
        assert_eq!(starts, [0, 1, 2, 0]);
        // (1, 0) was the last start: (1, 1) has nothing waiting now.
        assert_eq!(start(&c, 7, &[(1, 0), (2, 0)]).unwrap_or(9), 1);
        // Another group has its own turn.
        assert_eq!(start(&c, 8, &all).unwrap_or(9), 0);
        // One candidate: no choice, nothing recorded.
        assert_eq!(start(&c, 7, &[(1, 1)]).unwrap_or(9), 0);
        assert_eq!(start(&c, 7, &all).unwrap_or(9), 0);
        forget(&c, 7).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(start(&c, 7, &all).unwrap_or(9), 0);
    }

    #[test]
    fn packing_orders_like_the_pairs() {
        assert!(pack((1, u32::MAX)) < pack((2, 0)));
        assert_eq!(pack((i64::from(i32::MAX) + 1, 0)), None);
        assert_eq!(pack((-1, 0)), None);
    }
}
