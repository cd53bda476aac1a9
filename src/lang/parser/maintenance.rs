//! Replay, dead letters and maintenance: REPLAY, REQUEUE DLQ, PURGE, EXPORT,
//! IMPORT, BACKUP, BENCH.

use super::expr::expr;
use super::lex::{
    PResult, SIZE_EXPECTED, end, expect, failure, ident, keyword, maybe, name, name_unless, punct,
    size, skip_ws, string, timestamp, uint,
};
use crate::lang::ast::{
    Backup, Bench, DlqOp, Export, Import, Replay, ReplayFrom, Statement, Workload,
};

const END: &str = "expected ';' or end of input";

/// `REPLAY name GROUP g FROM ...` (after REPLAY).
pub(super) fn replay(input: &str) -> PResult<'_, Statement> {
    let (i, topic) = expect(name, "expected a topic name")(input)?;
    let (i, _) = expect(keyword("GROUP"), "expected GROUP")(i)?;
    let (i, group) = expect(name, "expected a group name")(i)?;
    let (i, _) = expect(keyword("FROM"), "expected FROM")(i)?;
    let (i, from, hint) = if let Ok((i, _)) = keyword("BEGINNING")(i) {
        (i, ReplayFrom::Beginning, END)
    } else if let Ok((i, _)) = keyword("LATEST")(i) {
        (i, ReplayFrom::Latest, END)
    } else if let Ok((i, _)) = keyword("OFFSET")(i) {
        let (i, offset) = expect(uint::<u64>("OFFSET"), "expected an offset")(i)?;
        let (i, partition) = match keyword("PARTITION")(i) {
            Ok((rest, _)) => {
                let (rest, p) =
                    expect(uint::<u32>("PARTITION"), "expected a partition number")(rest)?;
                (rest, Some(p))
            }
            Err(_) => (i, None),
        };
        let hint = if partition.is_some() {
            END
        } else {
            "expected PARTITION or ';'"
        };
        (i, ReplayFrom::Offset { offset, partition }, hint)
    } else {
        let (i, _) = expect(
            keyword("TIMESTAMP"),
            "expected BEGINNING, LATEST, OFFSET n or TIMESTAMP 't'",
        )(i)?;
        let (i, t) = timestamp(i)?;
        (i, ReplayFrom::Timestamp(t), END)
    };
    end(i, Statement::Replay(Replay { topic, group, from }), hint)
}

/// `[name [GROUP g]] [WHERE expr] [LIMIT n] [DRY RUN]` after `REQUEUE DLQ` /
/// `PURGE DLQ`. `DRY` starts DRY RUN only when RUN follows, so a topic
/// named `dry` keeps working.
fn dlq_op(input: &str, with_limit: bool) -> PResult<'_, DlqOp> {
    let (i, topic) = if at_dry_run(input) {
        (input, None)
    } else {
        maybe(name_unless(&["WHERE", "LIMIT"]), input)?
    };
    let (i, group) = match topic {
        Some(_) => match keyword("GROUP")(i) {
            Ok((rest, _)) => {
                let (rest, g) = expect(name, "expected a group name")(rest)?;
                (rest, Some(g))
            }
            Err(_) => (i, None),
        },
        None => (i, None),
    };
    let (i, filter) = match keyword("WHERE")(i) {
        Ok((rest, _)) => {
            let (rest, e) = expect(expr, "expected an expression")(rest)?;
            (rest, Some(e))
        }
        Err(_) => (i, None),
    };
    let (i, limit) = match keyword("LIMIT")(i) {
        Ok((rest, _)) if with_limit => {
            let (rest, n) = expect(uint::<u64>("LIMIT"), "expected a number")(rest)?;
            (rest, Some(n))
        }
        _ => (i, None),
    };
    let (i, dry_run) = match keyword("DRY")(i) {
        Ok((rest, _)) => {
            let (rest, _) = expect(keyword("RUN"), "expected RUN (DRY RUN)")(rest)?;
            (rest, true)
        }
        Err(_) => (i, false),
    };
    Ok((
        i,
        DlqOp {
            topic,
            group,
            filter,
            limit,
            dry_run,
        },
    ))
}

/// True when the next tokens are `DRY RUN`.
fn at_dry_run(input: &str) -> bool {
    keyword("DRY")(input)
        .and_then(|(rest, _)| keyword("RUN")(rest))
        .is_ok()
}

/// `REQUEUE DLQ ...` (after REQUEUE).
pub(super) fn requeue(input: &str) -> PResult<'_, Statement> {
    let (i, _) = expect(keyword("DLQ"), "expected DLQ")(input)?;
    let (i, op) = dlq_op(i, true)?;
    let hint = match (&op.topic, &op.group, &op.filter, &op.limit) {
        _ if op.dry_run => END,
        (_, _, _, Some(_)) => "expected DRY RUN or ';'",
        (_, _, Some(_), None) => "expected LIMIT, DRY RUN or ';'",
        (Some(_), None, None, None) => "expected GROUP, WHERE, LIMIT, DRY RUN or ';'",
        _ => "expected WHERE, LIMIT, DRY RUN or ';'",
    };
    end(i, Statement::RequeueDlq(op), hint)
}

/// `PURGE DLQ ...` or `PURGE name` (after PURGE).
pub(super) fn purge(input: &str) -> PResult<'_, Statement> {
    if let Ok((i, _)) = keyword("DLQ")(input) {
        let (i, op) = dlq_op(i, false)?;
        let hint = match (&op.topic, &op.group, &op.filter) {
            _ if op.dry_run => END,
            (_, _, Some(_)) => "expected DRY RUN or ';'",
            (Some(_), None, None) => "expected GROUP, WHERE, DRY RUN or ';'",
            _ => "expected WHERE, DRY RUN or ';'",
        };
        return end(i, Statement::PurgeDlq(op), hint);
    }
    let (i, n) = expect(name, "expected DLQ or a topic or queue name")(input)?;
    end(i, Statement::Purge(n), END)
}

/// `BACKUP TO 'file'` (after BACKUP).
pub(super) fn backup(input: &str) -> PResult<'_, Statement> {
    let (i, _) = expect(keyword("TO"), "expected TO")(input)?;
    let (i, file) = expect(string, "expected a file name in quotes like 'copy.db'")(i)?;
    end(i, Statement::Backup(Backup { file }), END)
}

/// `EXPORT name TO 'file' [WHERE expr] [OVERWRITE]` (after EXPORT).
pub(super) fn export(input: &str) -> PResult<'_, Statement> {
    let (i, topic) = expect(name, "expected a topic name")(input)?;
    let (i, _) = expect(keyword("TO"), "expected TO")(i)?;
    let (i, file) = expect(string, "expected a file name in quotes like 'out.jsonl'")(i)?;
    let (i, filter) = match keyword("WHERE")(i) {
        Ok((rest, _)) => {
            let (rest, e) = expect(expr, "expected an expression")(rest)?;
            (rest, Some(e))
        }
        Err(_) => (i, None),
    };
    let (i, overwrite) = match keyword("OVERWRITE")(i) {
        Ok((rest, _)) => (rest, true),
        Err(_) => (i, false),
    };
    let hint = match (filter.is_some(), overwrite) {
        (_, true) => END,
        (true, false) => "expected OVERWRITE or ';'",
        (false, false) => "expected WHERE, OVERWRITE or ';'",
    };
    end(
        i,
        Statement::Export(Export {
            topic,
            file,
            filter,
            overwrite,
        }),
        hint,
    )
}

/// `IMPORT 'file' INTO name` (after IMPORT).
pub(super) fn import(input: &str) -> PResult<'_, Statement> {
    let (i, file) = expect(string, "expected a file name in quotes like 'in.jsonl'")(input)?;
    let (i, _) = expect(keyword("INTO"), "expected INTO")(i)?;
    let (i, topic) = expect(name, "expected a topic name")(i)?;
    end(i, Statement::Import(Import { file, topic }), END)
}

const WORKLOADS: &[(&str, Workload)] = &[
    ("publish", Workload::Publish),
    ("publish_batch", Workload::PublishBatch),
    ("publish_concurrent", Workload::PublishConcurrent),
    ("consume_ack", Workload::ConsumeAck),
    ("replay", Workload::Replay),
];
const BENCH_OPTIONS: &[&str] = &["MESSAGES", "SIZE", "BATCH", "PRODUCERS"];

fn workload(input: &str) -> PResult<'_, Workload> {
    let start = skip_ws(input);
    let (rest, word) = ident(input)?;
    if BENCH_OPTIONS.iter().any(|o| o.eq_ignore_ascii_case(word)) {
        return super::lex::backtrack(start);
    }
    match WORKLOADS.iter().find(|(n, _)| n.eq_ignore_ascii_case(word)) {
        Some((_, w)) => Ok((rest, *w)),
        None => failure(
            start,
            format!(
                "unknown workload '{word}' (expected publish, publish_batch, publish_concurrent, consume_ack or replay)"
            ),
        ),
    }
}

/// `BENCH [workload, ...] [MESSAGES n] [SIZE size] [BATCH n] [PRODUCERS n]` (after BENCH).
pub(super) fn bench(input: &str) -> PResult<'_, Statement> {
    let mut b = Bench {
        workloads: Vec::new(),
        messages: None,
        size: None,
        batch: None,
        producers: None,
    };
    let mut i = input;
    if let (rest, Some(w)) = maybe(workload, i)? {
        b.workloads.push(w);
        i = rest;
        while let Ok((rest, _)) = punct(',')(i) {
            let (rest, w) = expect(
                workload,
                "expected a workload (publish, publish_batch, publish_concurrent, consume_ack, replay)",
            )(rest)?;
            b.workloads.push(w);
            i = rest;
        }
    }
    loop {
        let start = skip_ws(i);
        let twice = |label: &str| failure(start, format!("{label} given twice"));
        if let Ok((rest, _)) = keyword("MESSAGES")(i) {
            if b.messages.is_some() {
                return twice("MESSAGES");
            }
            let (rest, n) = expect(uint::<u64>("MESSAGES"), "expected a number of messages")(rest)?;
            b.messages = Some(n);
            i = rest;
        } else if let Ok((rest, _)) = keyword("SIZE")(i) {
            if b.size.is_some() {
                return twice("SIZE");
            }
            let (rest, n) = expect(size, SIZE_EXPECTED)(rest)?;
            b.size = Some(n);
            i = rest;
        } else if let Ok((rest, _)) = keyword("BATCH")(i) {
            if b.batch.is_some() {
                return twice("BATCH");
            }
            let (rest, n) = expect(uint::<u64>("BATCH"), "expected a batch size (a number)")(rest)?;
            b.batch = Some(n);
            i = rest;
        } else if let Ok((rest, _)) = keyword("PRODUCERS")(i) {
            if b.producers.is_some() {
                return twice("PRODUCERS");
            }
            let (rest, n) =
                expect(uint::<u32>("PRODUCERS"), "expected a number of producers")(rest)?;
            b.producers = Some(n);
            i = rest;
        } else {
            break;
        }
    }
    end(
        i,
        Statement::Bench(b),
        "expected an option (MESSAGES, SIZE, BATCH, PRODUCERS) or ';'",
    )
}
