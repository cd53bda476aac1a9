//! Definition statements: CREATE, ALTER, DROP, SHOW, DESCRIBE.

use std::mem::discriminant;

use super::lex::{
    DURATION_EXPECTED, PResult, Quantity, at_keyword, end, expect, failure, keyword, maybe, name,
    punct, quantity, skip_ws, uint,
};
use crate::lang::ast::{
    Alter, Create, DropStmt, Overflow, Retention, Statement, TopicKind, TopicOption,
};

const OPTION_HINT: &str = "expected an option (PARTITIONS, RETENTION, MAX LENGTH, OVERFLOW, DEDUP WINDOW, MAX DELIVERIES, ACK WAIT) or ';'";
const QUEUE_OPTION_HINT: &str =
    "expected an option (MAX LENGTH, OVERFLOW, DEDUP WINDOW, MAX DELIVERIES, ACK WAIT) or ';'";

fn option_hint(kind: TopicKind) -> &'static str {
    match kind {
        TopicKind::Topic => OPTION_HINT,
        TopicKind::Queue => QUEUE_OPTION_HINT,
    }
}

fn topic_kind(input: &str) -> PResult<'_, TopicKind> {
    if let Ok((rest, _)) = keyword("TOPIC")(input) {
        return Ok((rest, TopicKind::Topic));
    }
    if let Ok((rest, _)) = keyword("QUEUE")(input) {
        return Ok((rest, TopicKind::Queue));
    }
    failure(skip_ws(input), "expected TOPIC or QUEUE")
}

fn kind_name(input: &str, kind: TopicKind) -> PResult<'_, String> {
    let message = match kind {
        TopicKind::Topic => "expected a topic name",
        TopicKind::Queue => "expected a queue name",
    };
    expect(name, message)(input)
}

/// `CREATE TOPIC|QUEUE [IF NOT EXISTS] name option...` (after CREATE).
pub(super) fn create(input: &str) -> PResult<'_, Statement> {
    let (i, kind) = topic_kind(input)?;
    let (i, if_not_exists) = match keyword("IF")(i) {
        Ok((rest, _)) => {
            let (rest, _) = expect(keyword("NOT"), "expected NOT EXISTS")(rest)?;
            let (rest, _) = expect(keyword("EXISTS"), "expected EXISTS")(rest)?;
            (rest, true)
        }
        Err(_) => (i, false),
    };
    let (i, name) = kind_name(i, kind)?;
    let (i, options) = options(i, kind)?;
    end(
        i,
        Statement::Create(Create {
            kind,
            if_not_exists,
            name,
            options,
        }),
        option_hint(kind),
    )
}

/// `ALTER TOPIC|QUEUE name SET option...` (after ALTER).
pub(super) fn alter(input: &str) -> PResult<'_, Statement> {
    let (i, kind) = topic_kind(input)?;
    let (i, name) = kind_name(i, kind)?;
    let (i, _) = expect(keyword("SET"), "expected SET")(i)?;
    let (i, options) = options(i, kind)?;
    if options.is_empty() {
        let hint = option_hint(kind);
        return failure(skip_ws(i), hint.strip_suffix(" or ';'").unwrap_or(hint));
    }
    end(
        i,
        Statement::Alter(Alter {
            kind,
            name,
            options,
        }),
        option_hint(kind),
    )
}

/// `DROP TOPIC|QUEUE [IF EXISTS] name` (after DROP).
pub(super) fn drop(input: &str) -> PResult<'_, Statement> {
    let (i, kind) = topic_kind(input)?;
    let (i, if_exists) = match keyword("IF")(i) {
        Ok((rest, _)) => (expect(keyword("EXISTS"), "expected EXISTS")(rest)?.0, true),
        Err(_) => (i, false),
    };
    let (i, name) = kind_name(i, kind)?;
    end(
        i,
        Statement::Drop(DropStmt {
            kind,
            if_exists,
            name,
        }),
        "expected ';' or end of input",
    )
}

/// `SHOW TOPICS | QUEUES | GROUPS [ON name]` (after SHOW).
pub(super) fn show(input: &str) -> PResult<'_, Statement> {
    if let Ok((i, _)) = keyword("TOPICS")(input) {
        return end(i, Statement::ShowTopics, "expected ';' or end of input");
    }
    if let Ok((i, _)) = keyword("QUEUES")(input) {
        return end(i, Statement::ShowQueues, "expected ';' or end of input");
    }
    if let Ok((i, _)) = keyword("CLOCK")(input) {
        return end(i, Statement::ShowClock, "expected ';' or end of input");
    }
    let (i, _) = expect(
        keyword("GROUPS"),
        "expected TOPICS, QUEUES, GROUPS or CLOCK",
    )(input)?;
    let (i, on) = match keyword("ON")(i) {
        Ok((rest, _)) => {
            let (rest, n) = expect(name, "expected a topic name")(rest)?;
            (rest, Some(n))
        }
        Err(_) => (i, None),
    };
    end(i, Statement::ShowGroups(on), "expected ON or ';'")
}

/// `DESCRIBE name` (after DESCRIBE).
pub(super) fn describe(input: &str) -> PResult<'_, Statement> {
    let (i, n) = expect(name, "expected a topic or queue name")(input)?;
    end(i, Statement::Describe(n), "expected ';' or end of input")
}

/// Options separated by spaces or commas, each at most once.
fn options(input: &str, kind: TopicKind) -> PResult<'_, Vec<TopicOption>> {
    let mut out: Vec<TopicOption> = Vec::new();
    let mut i = input;
    loop {
        let (j, comma) = if out.is_empty() {
            (i, None)
        } else {
            maybe(punct(','), i)?
        };
        let start = skip_ws(j);
        match maybe(|x| option(x, kind), j)? {
            (rest, Some((option, label))) => {
                if out.iter().any(|o| discriminant(o) == discriminant(&option)) {
                    return failure(start, format!("{label} given twice"));
                }
                out.push(option);
                i = rest;
            }
            (_, None) if comma.is_some() => {
                let hint = option_hint(kind);
                return failure(start, hint.strip_suffix(" or ';'").unwrap_or(hint));
            }
            (_, None) => return Ok((i, out)),
        }
    }
}

/// One option and its label (for "given twice").
fn option(input: &str, kind: TopicKind) -> PResult<'_, (TopicOption, &'static str)> {
    let start = skip_ws(input);
    if let Ok((i, _)) = keyword("PARTITIONS")(input) {
        if kind == TopicKind::Queue {
            return failure(start, "a queue has no PARTITIONS option");
        }
        let (i, n) = expect(uint::<u32>("PARTITIONS"), "expected a number of partitions")(i)?;
        if n == 0 {
            return failure(
                skip_ws(&start["PARTITIONS".len()..]),
                "PARTITIONS must be at least 1",
            );
        }
        return Ok((i, (TopicOption::Partitions(n), "PARTITIONS")));
    }
    if let Ok((i, _)) = keyword("RETENTION")(input) {
        if kind == TopicKind::Queue {
            return failure(
                start,
                "a queue has no RETENTION option: it keeps messages until consumed",
            );
        }
        let (i, r) = retention(i)?;
        return Ok((i, (TopicOption::Retention(r), "RETENTION")));
    }
    if let Ok((i, _)) = keyword("MAX")(input) {
        if let Ok((i, _)) = keyword("LENGTH")(i) {
            let (i, n) = expect(uint::<u64>("MAX LENGTH"), "expected a number of messages")(i)?;
            return Ok((i, (TopicOption::MaxLength(n), "MAX LENGTH")));
        }
        let (i, _) = expect(keyword("DELIVERIES"), "expected LENGTH or DELIVERIES")(i)?;
        let (i, n) = expect(
            uint::<u32>("MAX DELIVERIES"),
            "expected a number of deliveries",
        )(i)?;
        return Ok((i, (TopicOption::MaxDeliveries(n), "MAX DELIVERIES")));
    }
    if let Ok((i, _)) = keyword("OVERFLOW")(input) {
        if let Ok((i, _)) = keyword("REJECT")(i) {
            return Ok((i, (TopicOption::Overflow(Overflow::Reject), "OVERFLOW")));
        }
        let (i, _) = expect(keyword("DROP"), "expected REJECT or DROP OLDEST")(i)?;
        let (i, _) = expect(keyword("OLDEST"), "expected OLDEST")(i)?;
        return Ok((i, (TopicOption::Overflow(Overflow::DropOldest), "OVERFLOW")));
    }
    if let Ok((i, _)) = keyword("DEDUP")(input) {
        let (i, _) = expect(keyword("WINDOW"), "expected WINDOW")(i)?;
        let (i, d) = expect(super::lex::duration, DURATION_EXPECTED)(i)?;
        return Ok((i, (TopicOption::DedupWindow(d), "DEDUP WINDOW")));
    }
    if let Ok((i, _)) = keyword("ACK")(input) {
        let (i, _) = expect(keyword("WAIT"), "expected WAIT")(i)?;
        let (i, d) = expect(super::lex::duration, DURATION_EXPECTED)(i)?;
        return Ok((i, (TopicOption::AckWait(d), "ACK WAIT")));
    }
    super::lex::backtrack(start)
}

const RETENTION_EXPECTED: &str =
    "expected a retention like 7d, 10MB, 1000 MESSAGES, UNTIL CONSUMED or FOREVER";

/// What follows RETENTION.
fn retention(input: &str) -> PResult<'_, Retention> {
    if let Ok((i, _)) = keyword("FOREVER")(input) {
        return Ok((i, Retention::Forever));
    }
    if let Ok((i, _)) = keyword("UNTIL")(input) {
        let (i, _) = expect(keyword("CONSUMED"), "expected CONSUMED")(i)?;
        return Ok((i, Retention::UntilConsumed));
    }
    match expect(quantity, RETENTION_EXPECTED)(input)? {
        (i, Quantity::Duration(d)) => Ok((i, Retention::Age(d))),
        (i, Quantity::Size(n)) => Ok((i, Retention::Size(n))),
        (i, Quantity::Count(n)) => {
            if at_keyword(i, "MESSAGES") {
                let (i, _) = keyword("MESSAGES")(i)?;
                Ok((i, Retention::Messages(n)))
            } else {
                failure(skip_ws(input), RETENTION_EXPECTED)
            }
        }
    }
}
