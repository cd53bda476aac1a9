//! Queries: SELECT and TAIL.

use nom::Parser;
use nom::multi::separated_list1;

use super::expr::expr;
use super::lex::{PResult, end, expect, keyword, name, punct, skip_ws, uint};
use crate::lang::ast::{OrderBy, Select, SelectItem, Source, Statement, Tail};

const EXPR: &str = "expected an expression";

fn item(input: &str) -> PResult<'_, SelectItem> {
    let i = skip_ws(input);
    if let Some(rest) = i.strip_prefix('*') {
        return Ok((rest, SelectItem::Star));
    }
    let (i, e) = expr(i)?;
    let (i, alias) = match keyword("AS")(i) {
        Ok((rest, _)) => {
            let (rest, a) = expect(name, "expected a column name after AS")(rest)?;
            (rest, Some(a))
        }
        Err(_) => (i, None),
    };
    Ok((i, SelectItem::Expr { expr: e, alias }))
}

fn source(input: &str) -> PResult<'_, Source> {
    for (kw, s) in [
        ("DLQ", Source::Dlq),
        ("TOPICS", Source::Topics),
        ("GROUPS", Source::Groups),
        ("PROCESSED", Source::Processed),
        ("DELIVERIES", Source::Deliveries),
    ] {
        if let Ok((rest, _)) = keyword(kw)(input) {
            return Ok((rest, s));
        }
    }
    let (rest, n) = expect(
        name,
        "expected a topic name, DLQ, TOPICS, GROUPS, PROCESSED or DELIVERIES",
    )(input)?;
    Ok((rest, Source::Topic(n)))
}

fn order_by(input: &str) -> PResult<'_, OrderBy> {
    let (i, e) = expect(expr, EXPR)(input)?;
    if let Ok((rest, _)) = keyword("DESC")(i) {
        return Ok((
            rest,
            OrderBy {
                expr: e,
                desc: true,
            },
        ));
    }
    if let Ok((rest, _)) = keyword("ASC")(i) {
        return Ok((
            rest,
            OrderBy {
                expr: e,
                desc: false,
            },
        ));
    }
    Ok((
        i,
        OrderBy {
            expr: e,
            desc: false,
        },
    ))
}

/// `SELECT items FROM source [WHERE] [GROUP BY] [ORDER BY] [LIMIT n [OFFSET m]]` (after SELECT).
pub(super) fn select(input: &str) -> PResult<'_, Statement> {
    let (i, items) = separated_list1(
        punct(','),
        expect(item, "expected a column: * or an expression"),
    )
    .parse(input)?;
    let (i, _) = expect(
        keyword("FROM"),
        "expected ',' and another column, AS or FROM",
    )(i)?;
    let (i, source) = source(i)?;
    let mut hint = "expected WHERE, GROUP BY, ORDER BY, LIMIT or ';'";
    let (i, filter) = match keyword("WHERE")(i) {
        Ok((rest, _)) => {
            let (rest, e) = expect(expr, EXPR)(rest)?;
            hint = "expected GROUP BY, ORDER BY, LIMIT or ';'";
            (rest, Some(e))
        }
        Err(_) => (i, None),
    };
    let (i, group_by) = match keyword("GROUP")(i) {
        Ok((rest, _)) => {
            let (rest, _) = expect(keyword("BY"), "expected BY")(rest)?;
            hint = "expected ',', ORDER BY, LIMIT or ';'";
            separated_list1(punct(','), expect(expr, EXPR)).parse(rest)?
        }
        Err(_) => (i, Vec::new()),
    };
    let (i, order) = match keyword("ORDER")(i) {
        Ok((rest, _)) => {
            let (rest, _) = expect(keyword("BY"), "expected BY")(rest)?;
            hint = "expected ',', ASC, DESC, LIMIT or ';'";
            separated_list1(punct(','), order_by).parse(rest)?
        }
        Err(_) => (i, Vec::new()),
    };
    let (i, limit, offset) = match keyword("LIMIT")(i) {
        Ok((rest, _)) => {
            let (rest, n) = expect(uint::<u64>("LIMIT"), "expected a number")(rest)?;
            hint = "expected OFFSET or ';'";
            match keyword("OFFSET")(rest) {
                Ok((rest, _)) => {
                    let (rest, m) = expect(uint::<u64>("OFFSET"), "expected a number")(rest)?;
                    hint = "expected ';' or end of input";
                    (rest, Some(n), Some(m))
                }
                Err(_) => (rest, Some(n), None),
            }
        }
        Err(_) => (i, None, None),
    };
    let select = Select {
        items,
        source,
        filter,
        group_by,
        order_by: order,
        limit,
        offset,
    };
    end(i, Statement::Select(select), hint)
}

/// `TAIL name [WHERE expr]` (after TAIL).
pub(super) fn tail(input: &str) -> PResult<'_, Statement> {
    let (i, topic) = expect(name, "expected a topic name")(input)?;
    let (i, filter) = match keyword("WHERE")(i) {
        Ok((rest, _)) => {
            let (rest, e) = expect(expr, EXPR)(rest)?;
            (rest, Some(e))
        }
        Err(_) => (i, None),
    };
    let hint = if filter.is_some() {
        "expected ';' or end of input"
    } else {
        "expected WHERE or ';'"
    };
    end(i, Statement::Tail(Tail { topic, filter }), hint)
}
