//! The catalog: creating, changing and dropping topics and queues together
//! with what groups hold of them (a queue's implicit group, the cursors of
//! groups whose names or patterns cover a new topic, per-message state),
//! and PURGE.

use crate::group::{self, pending};
use crate::storage::space::give_back_free_pages;
use crate::storage::tx::Ctx;
use crate::topic::{self, TopicKind, TopicOptions, definitions_changed};
use crate::{Error, Result};

/// Creates a topic or queue. Returns false if it existed and `if_not_exists`.
pub(crate) fn create(
    ctx: &Ctx<'_>,
    kind: TopicKind,
    name: &str,
    if_not_exists: bool,
    o: &TopicOptions,
) -> Result<bool> {
    topic::check_new(kind, name, o)?;
    if topic::find(ctx, name)?.is_some() {
        if if_not_exists {
            return Ok(false);
        }
        return Err(Error::TopicExists(name.to_string()));
    }
    if kind == TopicKind::Queue && group::find_id(ctx, name)?.is_some() {
        return Err(Error::NameTaken {
            name: name.to_string(),
            statement: "CREATE QUEUE".into(),
        });
    }
    let id = topic::insert(ctx, ctx.now, kind, name, o)?;
    match kind {
        TopicKind::Queue => group::create_queue_group(ctx, ctx.now, id, name)?,
        TopicKind::Topic => {
            group::attach_new_topic(ctx, id, name, o.partitions.unwrap_or(1))?;
        }
    }
    definitions_changed(ctx)?;
    Ok(true)
}

/// Changes options of an existing topic or queue. New partitions are read
/// from their start by every group that reads the topic.
pub(crate) fn alter(ctx: &Ctx<'_>, kind: TopicKind, name: &str, o: &TopicOptions) -> Result<()> {
    let t = topic::find(ctx, name)?.ok_or_else(|| Error::not_found(kind, name))?;
    topic::check_alter(&t, kind, o)?;
    definitions_changed(ctx)?;
    if let Some(p) = o.partitions {
        topic::add_partitions(ctx, &t, p)?;
        group::add_partitions(ctx, t.id, t.partitions, p)?;
    }
    topic::update(ctx, &t, o)
}

/// Drops a topic or queue with its messages and group state. Returns false
/// if missing and `if_exists`.
pub(crate) fn drop(ctx: &Ctx<'_>, kind: TopicKind, name: &str, if_exists: bool) -> Result<bool> {
    let Some(t) = topic::find(ctx, name)? else {
        if if_exists {
            return Ok(false);
        }
        return Err(Error::not_found(kind, name));
    };
    if t.kind != kind {
        return Err(Error::WrongKind {
            name: name.to_string(),
            is: t.kind,
            expected: kind,
            statement: "DROP".into(),
        });
    }
    topic::delete(ctx, t.id)?;
    group::forget_topic(ctx, t.id)?;
    if t.kind == TopicKind::Queue {
        group::drop_queue_group(ctx, t.id)?;
    }
    definitions_changed(ctx)?;
    give_back_free_pages(ctx)?;
    Ok(true)
}

/// Deletes every message of a topic, and every group's deliveries of them;
/// returns how many messages.
pub(crate) fn purge(ctx: &Ctx<'_>, name: &str) -> Result<u64> {
    let t = topic::get(ctx, name)?;
    let mut total = 0;
    for p in 0..t.partitions {
        total += topic::trim_partition(ctx, t.id, p, i64::MAX, Some(false))?;
    }
    pending::forget_topic(ctx, t.id)?;
    give_back_free_pages(ctx)?;
    Ok(total)
}
