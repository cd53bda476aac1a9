//! Consuming: SUBSCRIBE, UNSUBSCRIBE, CONSUME, ACK, NACK.

use nom::Parser;
use nom::multi::separated_list1;

use super::lex::{
    DURATION_EXPECTED, PResult, duration, end, expect, failure, keyword, maybe, name, punct,
    skip_ws, string, timestamp, uint,
};
use crate::lang::ast::{
    Consume, ConsumeSource, Nack, NackAction, StartFrom, Statement, Subscribe, SubscribeTarget,
    Unsubscribe,
};

const END: &str = "expected ';' or end of input";

/// `SUBSCRIBE GROUP g TO target, ... [options]` (after SUBSCRIBE).
pub(super) fn subscribe(input: &str) -> PResult<'_, Statement> {
    let (i, _) = expect(keyword("GROUP"), "expected GROUP")(input)?;
    let (i, group) = expect(name, "expected a group name")(i)?;
    let (i, _) = expect(keyword("TO"), "expected TO")(i)?;
    let (mut i, targets) = separated_list1(
        punct(','),
        expect(target, "expected a topic name or a 'pattern'"),
    )
    .parse(i)?;
    let mut s = Subscribe {
        group,
        targets,
        from: None,
        ordered: false,
        max_deliveries: None,
        ack_wait: None,
    };
    loop {
        let start = skip_ws(i);
        let twice = |label: &str| failure(start, format!("{label} given twice"));
        if let Ok((rest, _)) = keyword("FROM")(i) {
            if s.from.is_some() {
                return twice("FROM");
            }
            let (rest, from) = start_from(rest)?;
            s.from = Some(from);
            i = rest;
        } else if let Ok((rest, _)) = keyword("ORDERED")(i) {
            if s.ordered {
                return twice("ORDERED");
            }
            s.ordered = true;
            i = rest;
        } else if let Ok((rest, _)) = keyword("MAX")(i) {
            if s.max_deliveries.is_some() {
                return twice("MAX DELIVERIES");
            }
            let (rest, _) = expect(keyword("DELIVERIES"), "expected DELIVERIES")(rest)?;
            let (rest, n) = expect(
                uint::<u32>("MAX DELIVERIES"),
                "expected a number of deliveries",
            )(rest)?;
            s.max_deliveries = Some(n);
            i = rest;
        } else if let Ok((rest, _)) = keyword("ACK")(i) {
            if s.ack_wait.is_some() {
                return twice("ACK WAIT");
            }
            let (rest, _) = expect(keyword("WAIT"), "expected WAIT")(rest)?;
            let (rest, d) = expect(duration, DURATION_EXPECTED)(rest)?;
            s.ack_wait = Some(d);
            i = rest;
        } else {
            break;
        }
    }
    end(
        i,
        Statement::Subscribe(s),
        "expected ',' and another topic, an option (FROM, ORDERED, MAX DELIVERIES, ACK WAIT) or ';'",
    )
}

fn target(input: &str) -> PResult<'_, SubscribeTarget> {
    if let Ok((i, p)) = string(input) {
        return Ok((i, SubscribeTarget::Pattern(p)));
    }
    let (i, n) = name(input)?;
    Ok((i, SubscribeTarget::Name(n)))
}

/// What follows FROM in SUBSCRIBE.
fn start_from(input: &str) -> PResult<'_, StartFrom> {
    if let Ok((i, _)) = keyword("BEGINNING")(input) {
        return Ok((i, StartFrom::Beginning));
    }
    if let Ok((i, _)) = keyword("LATEST")(input) {
        return Ok((i, StartFrom::Latest));
    }
    if let Ok((i, _)) = keyword("OFFSET")(input) {
        let (i, n) = expect(uint::<u64>("OFFSET"), "expected an offset")(i)?;
        return Ok((i, StartFrom::Offset(n)));
    }
    let (i, _) = expect(
        keyword("TIMESTAMP"),
        "expected BEGINNING, LATEST, OFFSET n or TIMESTAMP 't'",
    )(input)?;
    let (i, t) = timestamp(i)?;
    Ok((i, StartFrom::Timestamp(t)))
}

/// `UNSUBSCRIBE GROUP g [FROM name]` (after UNSUBSCRIBE).
pub(super) fn unsubscribe(input: &str) -> PResult<'_, Statement> {
    let (i, _) = expect(keyword("GROUP"), "expected GROUP")(input)?;
    let (i, group) = expect(name, "expected a group name")(i)?;
    let (i, from) = match keyword("FROM")(i) {
        Ok((rest, _)) => {
            let (rest, t) = expect(target, "expected a topic name or a 'pattern'")(rest)?;
            let t = match t {
                SubscribeTarget::Name(n) | SubscribeTarget::Pattern(n) => n,
            };
            (rest, Some(t))
        }
        Err(_) => (i, None),
    };
    end(
        i,
        Statement::Unsubscribe(Unsubscribe { group, from }),
        "expected FROM or ';'",
    )
}

/// `CONSUME [n] FROM name [GROUP g] | FROM GROUP g [options]` (after CONSUME).
pub(super) fn consume(input: &str) -> PResult<'_, Statement> {
    let count_at = skip_ws(input);
    let (i, count) = maybe(uint::<u32>("CONSUME"), input)?;
    if count == Some(0) {
        return failure(count_at, "CONSUME needs a count of at least 1");
    }
    let from_msg = if count.is_some() {
        "expected FROM"
    } else {
        "expected a count or FROM"
    };
    let (i, _) = expect(keyword("FROM"), from_msg)(i)?;
    let (i, source) = match keyword("GROUP")(i) {
        Ok((rest, _)) => {
            let (rest, g) = expect(name, "expected a group name")(rest)?;
            (rest, ConsumeSource::Group(g))
        }
        Err(_) => {
            let (rest, n) = expect(name, "expected a topic or queue name, or GROUP")(i)?;
            let (rest, group) = match keyword("GROUP")(rest) {
                Ok((rest, _)) => {
                    let (rest, g) = expect(name, "expected a group name")(rest)?;
                    (rest, Some(g))
                }
                Err(_) => (rest, None),
            };
            (rest, ConsumeSource::Topic { name: n, group })
        }
    };
    let mut c = Consume {
        count,
        source,
        member: None,
        wait: None,
        ack_wait: None,
    };
    let mut i = i;
    loop {
        let start = skip_ws(i);
        let twice = |label: &str| failure(start, format!("{label} given twice"));
        if let Ok((rest, _)) = keyword("MEMBER")(i) {
            if c.member.is_some() {
                return twice("MEMBER");
            }
            let (rest, m) =
                expect(string, "expected a member name in quotes like 'worker-1'")(rest)?;
            c.member = Some(m);
            i = rest;
        } else if let Ok((rest, _)) = keyword("WAIT")(i) {
            if c.wait.is_some() {
                return twice("WAIT");
            }
            let (rest, d) = expect(duration, DURATION_EXPECTED)(rest)?;
            c.wait = Some(d);
            i = rest;
        } else if let Ok((rest, _)) = keyword("ACK")(i) {
            if c.ack_wait.is_some() {
                return twice("ACK WAIT");
            }
            let (rest, _) = expect(keyword("WAIT"), "expected WAIT")(rest)?;
            let (rest, d) = expect(duration, DURATION_EXPECTED)(rest)?;
            c.ack_wait = Some(d);
            i = rest;
        } else {
            break;
        }
    }
    let hint = match c.source {
        ConsumeSource::Topic { group: None, .. } => {
            "expected GROUP, an option (MEMBER, WAIT, ACK WAIT) or ';'"
        }
        _ => "expected an option (MEMBER, WAIT, ACK WAIT) or ';'",
    };
    end(i, Statement::Consume(c), hint)
}

fn ids(input: &str) -> PResult<'_, Vec<u64>> {
    separated_list1(
        punct(','),
        expect(
            uint::<u64>("delivery id"),
            "expected a delivery id (a number)",
        ),
    )
    .parse(input)
}

/// `ACK id, ...` (after ACK).
pub(super) fn ack(input: &str) -> PResult<'_, Statement> {
    let (i, ids) = ids(input)?;
    end(
        i,
        Statement::Ack(ids),
        "expected ',' and another delivery id, or ';'",
    )
}

/// `NACK id, ... [DELAY d] ['reason'] | NACK id, ... DEAD ['reason']` (after NACK).
pub(super) fn nack(input: &str) -> PResult<'_, Statement> {
    let (i, ids) = ids(input)?;
    let (i, action) = if let Ok((rest, _)) = keyword("DELAY")(i) {
        let (rest, d) = expect(duration, DURATION_EXPECTED)(rest)?;
        (rest, NackAction::Delay(d))
    } else if let Ok((rest, _)) = keyword("DEAD")(i) {
        let (rest, reason) = maybe(string, rest)?;
        (rest, NackAction::Dead(reason))
    } else {
        (i, NackAction::Now)
    };
    let (i, reason) = match action {
        NackAction::Dead(_) => (i, None),
        _ => maybe(string, i)?,
    };
    let hint = match (&action, &reason) {
        (NackAction::Now, None) => {
            "expected ',' and another delivery id, DELAY, DEAD, a reason in quotes or ';'"
        }
        (NackAction::Dead(None) | NackAction::Delay(_), None) => {
            "expected a reason in quotes or ';'"
        }
        _ => END,
    };
    let nack = Nack {
        ids,
        action,
        reason,
    };
    end(i, Statement::Nack(nack), hint)
}
