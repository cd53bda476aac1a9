//! Subscriptions: creating groups, the topics and patterns they read, and
//! the cursors that come with them.

use std::collections::HashSet;

use rusqlite::{Connection, OptionalExtension, params};

use super::pattern::{pattern_matches, validate_pattern};
use super::{GroupInfo, StartFrom, Subscription, cursor, get, pending, reads_topic};
use crate::storage::tx::{Ctx, next_counter};
use crate::topic::{self, TopicInfo, TopicKind};
use crate::units::Millis;
use crate::{Error, Result};

pub(crate) fn create_queue_group(
    conn: &Connection,
    now: i64,
    topic_id: i64,
    name: &str,
) -> Result<()> {
    let id = next_counter(conn, "next_group_id")?;
    conn.execute(
        "INSERT INTO mq_groups (id, name, queue_topic_id, start, created_at) VALUES (?1, ?2, ?3, 'beginning', ?4)",
        params![id, name, topic_id, now],
    )?;
    conn.execute(
        "INSERT INTO mq_subscriptions (group_id, target, is_pattern) VALUES (?1, ?2, 0)",
        params![id, name],
    )?;
    conn.execute(
        "INSERT INTO mq_cursors (group_id, topic_id, partition, next_offset) VALUES (?1, ?2, 0, 0)",
        params![id, topic_id],
    )?;
    Ok(())
}

pub(crate) fn drop_queue_group(conn: &Connection, topic_id: i64) -> Result<()> {
    if let Some(id) = conn
        .query_row(
            "SELECT id FROM mq_groups WHERE queue_topic_id = ?1",
            [topic_id],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
    {
        delete_group(conn, id)?;
    }
    Ok(())
}

fn delete_group(conn: &Connection, id: i64) -> Result<()> {
    pending::forget_group(conn, id)?;
    super::rotation::forget(conn, id)?;
    for sql in [
        "DELETE FROM mq_subscriptions WHERE group_id = ?1",
        "DELETE FROM mq_cursors WHERE group_id = ?1",
        "DELETE FROM mq_groups WHERE id = ?1",
    ] {
        conn.execute(sql, [id])?;
    }
    Ok(())
}

/// Gives a newly created topic to every group whose names or patterns match it;
/// they read it from its first message.
pub(crate) fn attach_new_topic(
    conn: &Connection,
    topic_id: i64,
    name: &str,
    partitions: u32,
) -> Result<()> {
    let mut st = conn.prepare_cached(
        "SELECT s.group_id, s.target, s.is_pattern FROM mq_subscriptions s
         JOIN mq_groups g ON g.id = s.group_id WHERE g.queue_topic_id IS NULL",
    )?;
    let subs: Vec<(i64, String, bool)> = st
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut groups = HashSet::new();
    for (g, target, is_pattern) in subs {
        let hit = if is_pattern {
            pattern_matches(&target, name)
        } else {
            target == name
        };
        if hit {
            groups.insert(g);
        }
    }
    for g in groups {
        for p in 0..partitions {
            conn.execute(
                "INSERT OR IGNORE INTO mq_cursors (group_id, topic_id, partition, next_offset) VALUES (?1, ?2, ?3, 0)",
                params![g, topic_id, p],
            )?;
        }
    }
    Ok(())
}

/// Gives the groups that read a topic its new partitions `from..to`
/// (ALTER ... PARTITIONS), read from their start.
pub(crate) fn add_partitions(conn: &Connection, topic_id: i64, from: u32, to: u32) -> Result<()> {
    for part in from..to {
        conn.execute(
            "INSERT OR IGNORE INTO mq_cursors (group_id, topic_id, partition, next_offset)
             SELECT DISTINCT group_id, topic_id, ?2, 0 FROM mq_cursors WHERE topic_id = ?1",
            params![topic_id, part],
        )?;
    }
    Ok(())
}

/// Forgets what every group holds of a dropped topic: cursors and deliveries.
pub(crate) fn forget_topic(conn: &Connection, topic_id: i64) -> Result<()> {
    conn.execute("DELETE FROM mq_cursors WHERE topic_id = ?1", [topic_id])?;
    pending::forget_topic(conn, topic_id)
}

/// SUBSCRIBE: creates the group or adds to it. Options given change the group.
pub(crate) fn subscribe(conn: &Connection, now: i64, group: &str, s: &Subscription) -> Result<()> {
    let named = check(conn, group, s)?;
    let from = s.from.unwrap_or(StartFrom::Latest);
    let gid = match super::find(conn, group)? {
        Some(g) => update_group(conn, &g, s)?,
        None => insert_group(conn, now, group, s, from)?,
    };
    for (target, is_pattern) in s
        .topics
        .iter()
        .map(|t| (t, false))
        .chain(s.patterns.iter().map(|p| (p, true)))
    {
        conn.execute(
            "INSERT OR IGNORE INTO mq_subscriptions (group_id, target, is_pattern) VALUES (?1, ?2, ?3)",
            params![gid, target, is_pattern],
        )?;
    }
    // Existing topics the subscription covers get cursors at the start position.
    let mut topics = named;
    if !s.patterns.is_empty() {
        for t in topic::list(conn)? {
            if t.kind == TopicKind::Topic && s.patterns.iter().any(|p| pattern_matches(p, &t.name))
            {
                topics.push(t);
            }
        }
    }
    for t in topics {
        if reads_topic(conn, gid, t.id)? {
            continue;
        }
        for p in 0..t.partitions {
            let off = cursor::start_offset(conn, now, t.id, p, from)?;
            conn.execute(
                "INSERT INTO mq_cursors (group_id, topic_id, partition, next_offset) VALUES (?1, ?2, ?3, ?4)",
                params![gid, t.id, p, off],
            )?;
        }
    }
    Ok(())
}

/// Checks a SUBSCRIBE; returns the topics it names.
fn check(conn: &Connection, group: &str, s: &Subscription) -> Result<Vec<TopicInfo>> {
    topic::validate_name("group", group)?;
    if s.topics.is_empty() && s.patterns.is_empty() {
        return Err(Error::Incomplete {
            statement: "SUBSCRIBE".into(),
            needs: "at least one topic or pattern".into(),
        });
    }
    if s.max_deliveries == Some(0) {
        return Err(Error::option(
            "MAX DELIVERIES",
            "MAX DELIVERIES must be at least 1",
        ));
    }
    if s.ack_wait.is_some_and(|d| d.is_zero()) {
        return Err(Error::option("ACK WAIT", "ACK WAIT must be longer than 0"));
    }
    let mut named = Vec::new();
    for name in &s.topics {
        let t = topic::get(conn, name)?;
        if t.kind == TopicKind::Queue {
            return Err(Error::WrongKind {
                name: name.clone(),
                is: t.kind,
                expected: TopicKind::Topic,
                statement: "SUBSCRIBE".into(),
            });
        }
        named.push(t);
    }
    for p in &s.patterns {
        validate_pattern(p)?;
    }
    Ok(named)
}

/// Applies the options a SUBSCRIBE gives to an existing group; returns its id.
fn update_group(conn: &Connection, g: &GroupInfo, s: &Subscription) -> Result<i64> {
    if g.queue_topic_id.is_some() {
        return Err(Error::ImplicitGroup {
            queue: g.name.clone(),
            statement: "SUBSCRIBE".into(),
        });
    }
    if s.ordered {
        conn.execute("UPDATE mq_groups SET ordered = 1 WHERE id = ?1", [g.id])?;
    }
    if let Some(m) = s.max_deliveries {
        conn.execute(
            "UPDATE mq_groups SET max_deliveries = ?2 WHERE id = ?1",
            params![g.id, m],
        )?;
    }
    if let Some(d) = s.ack_wait {
        conn.execute(
            "UPDATE mq_groups SET ack_wait_ms = ?2 WHERE id = ?1",
            params![g.id, Millis(d)],
        )?;
    }
    Ok(g.id)
}

/// Stores a new group; returns its id.
fn insert_group(
    conn: &Connection,
    now: i64,
    group: &str,
    s: &Subscription,
    from: StartFrom,
) -> Result<i64> {
    if topic::find(conn, group)?.is_some_and(|t| t.kind == TopicKind::Queue) {
        return Err(Error::NameTaken {
            name: group.to_string(),
            statement: "SUBSCRIBE".into(),
        });
    }
    let id = next_counter(conn, "next_group_id")?;
    let (start, start_value) = match from {
        StartFrom::Beginning => ("beginning", None),
        StartFrom::Latest => ("latest", None),
        StartFrom::Offset(n) => ("offset", Some(i64::try_from(n).unwrap_or(i64::MAX))),
        StartFrom::Timestamp(t) => ("timestamp", Some(cursor::resolve_time(now, t))),
    };
    conn.execute(
        "INSERT INTO mq_groups (id, name, ordered, max_deliveries, ack_wait_ms, start, start_value, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            id,
            group,
            s.ordered,
            s.max_deliveries,
            s.ack_wait.map(Millis),
            start,
            start_value,
            now
        ],
    )?;
    Ok(id)
}

/// UNSUBSCRIBE: drops one target of the group (and its cursors on topics no
/// longer covered), or the whole group.
pub(crate) fn unsubscribe(ctx: &Ctx<'_>, group: &str, from: Option<&str>) -> Result<()> {
    let g = get(ctx, group)?;
    if g.queue_topic_id.is_some() {
        return Err(Error::ImplicitGroup {
            queue: group.to_string(),
            statement: "UNSUBSCRIBE".into(),
        });
    }
    let Some(target) = from else {
        return delete_group(ctx, g.id);
    };
    let n = ctx.execute(
        "DELETE FROM mq_subscriptions WHERE group_id = ?1 AND target = ?2",
        params![g.id, target],
    )?;
    if n == 0 {
        return Err(Error::NotSubscribed {
            group: group.to_string(),
            topic: target.to_string(),
        });
    }
    let subs: Vec<(String, bool)> = ctx
        .prepare_cached("SELECT target, is_pattern FROM mq_subscriptions WHERE group_id = ?1")?
        .query_map([g.id], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))?
        .collect::<rusqlite::Result<_>>()?;
    let read: Vec<i64> = ctx
        .prepare_cached("SELECT DISTINCT topic_id FROM mq_cursors WHERE group_id = ?1")?
        .query_map([g.id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    for tid in read {
        let Some(t) = topic::by_id(ctx, tid)? else {
            continue;
        };
        let covered = subs.iter().any(|(s, pat)| {
            if *pat {
                pattern_matches(s, &t.name)
            } else {
                *s == t.name
            }
        });
        if !covered {
            ctx.execute(
                "DELETE FROM mq_cursors WHERE group_id = ?1 AND topic_id = ?2",
                params![g.id, tid],
            )?;
            pending::forget_group_topic(ctx, g.id, tid)?;
            for p in 0..t.partitions {
                cursor::trim_consumed(ctx, &t, p)?;
            }
        }
    }
    Ok(())
}
