//! Expressions of WHERE, SELECT, GROUP BY and ORDER BY, loosest first:
//! OR, AND, NOT, comparisons, `+ -`, `* / %`, unary minus, primaries.
//!
//! Each nesting level (parenthesis, NOT, unary minus, function argument)
//! adds one to a depth counter; past [`MAX_DEPTH`] parsing stops with an
//! error instead of overflowing the stack.

use nom::Parser;

use super::lex::{
    PResult, expect, failure, ident, ident_len, keyword, name, punct, skip_ws, string, uint,
};
use crate::lang::ast::{BinaryOp, Expr, Function, Literal, PathSegment, UnaryOp};

/// How deeply expressions may nest.
pub(crate) const MAX_DEPTH: usize = 64;

/// Words that cannot start a path without double quotes: they are operators
/// or literals, or they end an expression.
pub(crate) const RESERVED_IN_EXPR: &[&str] = &[
    "AND", "OR", "NOT", "NULL", "TRUE", "FALSE", "IS", "IN", "LIKE", "BETWEEN", "AS", "FROM",
    "WHERE", "LIMIT",
];

const EXPR_EXPECTED: &str = "expected an expression";

/// An expression.
pub(crate) fn expr(input: &str) -> PResult<'_, Expr> {
    or_expr(input, 0)
}

fn binary(left: Expr, op: BinaryOp, right: Expr) -> Expr {
    Expr::Binary {
        left: Box::new(left),
        op,
        right: Box::new(right),
    }
}

fn deeper(input: &str, depth: usize) -> PResult<'_, usize> {
    if depth >= MAX_DEPTH {
        failure(skip_ws(input), "expression nested too deeply")
    } else {
        Ok((input, depth + 1))
    }
}

fn or_expr(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (mut i, mut left) = and_expr(input, depth)?;
    while let Ok((rest, _)) = keyword("OR")(i) {
        let (rest, right) = expect(|i| and_expr(i, depth), EXPR_EXPECTED)(rest)?;
        left = binary(left, BinaryOp::Or, right);
        i = rest;
    }
    Ok((i, left))
}

fn and_expr(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (mut i, mut left) = not_expr(input, depth)?;
    while let Ok((rest, _)) = keyword("AND")(i) {
        let (rest, right) = expect(|i| not_expr(i, depth), EXPR_EXPECTED)(rest)?;
        left = binary(left, BinaryOp::And, right);
        i = rest;
    }
    Ok((i, left))
}

fn not_expr(input: &str, depth: usize) -> PResult<'_, Expr> {
    if let Ok((rest, _)) = keyword("NOT")(input) {
        let (rest, depth) = deeper(rest, depth)?;
        let (rest, operand) = expect(|i| not_expr(i, depth), EXPR_EXPECTED)(rest)?;
        return Ok((
            rest,
            Expr::Unary {
                op: UnaryOp::Not,
                expr: Box::new(operand),
            },
        ));
    }
    comparison(input, depth)
}

fn comparison_op(input: &str) -> PResult<'_, BinaryOp> {
    let i = skip_ws(input);
    const OPS: &[(&str, BinaryOp)] = &[
        ("<=", BinaryOp::LtEq),
        (">=", BinaryOp::GtEq),
        ("<>", BinaryOp::NotEq),
        ("!=", BinaryOp::NotEq),
        ("=", BinaryOp::Eq),
        ("<", BinaryOp::Lt),
        (">", BinaryOp::Gt),
    ];
    for (text, op) in OPS {
        if let Some(rest) = i.strip_prefix(text) {
            return Ok((rest, *op));
        }
    }
    if let Ok((rest, _)) = keyword("LIKE")(i) {
        return Ok((rest, BinaryOp::Like));
    }
    super::lex::backtrack(i)
}

fn comparison(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (i, left) = additive(input, depth)?;
    let operand = |i| additive(i, depth);
    if let Ok((rest, _)) = keyword("IS")(i) {
        let (rest, negated) = nom::combinator::opt(keyword("NOT")).parse(rest)?;
        let (rest, _) = expect(keyword("NULL"), "expected NULL or NOT NULL after IS")(rest)?;
        return Ok((
            rest,
            Expr::IsNull {
                expr: Box::new(left),
                negated: negated.is_some(),
            },
        ));
    }
    let (j, negated) = match keyword("NOT")(i) {
        Ok((rest, _)) => (rest, true),
        Err(_) => (i, false),
    };
    if let Ok((rest, _)) = keyword("IN")(j) {
        let (rest, _) = expect(punct('('), "expected '(' and a list of values")(rest)?;
        let (rest, list) =
            nom::multi::separated_list1(punct(','), expect(|i| or_expr(i, depth), EXPR_EXPECTED))
                .parse(rest)?;
        let (rest, _) = expect(punct(')'), "expected ',' or ')'")(rest)?;
        return Ok((
            rest,
            Expr::InList {
                expr: Box::new(left),
                list,
                negated,
            },
        ));
    }
    if let Ok((rest, _)) = keyword("BETWEEN")(j) {
        let (rest, low) = expect(operand, EXPR_EXPECTED)(rest)?;
        let (rest, _) = expect(keyword("AND"), "expected AND")(rest)?;
        let (rest, high) = expect(operand, EXPR_EXPECTED)(rest)?;
        return Ok((
            rest,
            Expr::Between {
                expr: Box::new(left),
                low: Box::new(low),
                high: Box::new(high),
                negated,
            },
        ));
    }
    if negated {
        let (rest, _) = expect(keyword("LIKE"), "expected LIKE, IN or BETWEEN after NOT")(j)?;
        let (rest, right) = expect(operand, EXPR_EXPECTED)(rest)?;
        return Ok((rest, binary(left, BinaryOp::NotLike, right)));
    }
    match comparison_op(i) {
        Ok((rest, op)) => {
            let (rest, right) = expect(operand, EXPR_EXPECTED)(rest)?;
            Ok((rest, binary(left, op, right)))
        }
        Err(_) => Ok((i, left)),
    }
}

fn additive(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (mut i, mut left) = multiplicative(input, depth)?;
    loop {
        let j = skip_ws(i);
        let op = match j.as_bytes().first() {
            Some(b'+') => BinaryOp::Add,
            Some(b'-') => BinaryOp::Sub,
            _ => return Ok((i, left)),
        };
        let (rest, right) = expect(|i| multiplicative(i, depth), EXPR_EXPECTED)(&j[1..])?;
        left = binary(left, op, right);
        i = rest;
    }
}

fn multiplicative(input: &str, depth: usize) -> PResult<'_, Expr> {
    let (mut i, mut left) = unary(input, depth)?;
    loop {
        let j = skip_ws(i);
        let op = match j.as_bytes().first() {
            Some(b'*') => BinaryOp::Mul,
            Some(b'/') => BinaryOp::Div,
            Some(b'%') => BinaryOp::Mod,
            _ => return Ok((i, left)),
        };
        let (rest, right) = expect(|i| unary(i, depth), EXPR_EXPECTED)(&j[1..])?;
        left = binary(left, op, right);
        i = rest;
    }
}

fn unary(input: &str, depth: usize) -> PResult<'_, Expr> {
    let i = skip_ws(input);
    if let Some(rest) = i.strip_prefix('-') {
        // `-5` is a negative literal; `-x`, `-(5)` negate.
        if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return number(i).map(|(r, l)| (r, Expr::Literal(l)));
        }
        let (rest, depth) = deeper(rest, depth)?;
        let (rest, operand) = expect(|i| unary(i, depth), EXPR_EXPECTED)(rest)?;
        return Ok((
            rest,
            Expr::Unary {
                op: UnaryOp::Neg,
                expr: Box::new(operand),
            },
        ));
    }
    primary(i, depth)
}

/// An integer or decimal literal, optionally negative: `42`, `-1.5`, `1e-7`.
fn number(input: &str) -> PResult<'_, Literal> {
    let i = skip_ws(input);
    let b = i.as_bytes();
    let digits_from = |mut n: usize| {
        while b.get(n).is_some_and(u8::is_ascii_digit) {
            n += 1;
        }
        n
    };
    let mut n = usize::from(b.first() == Some(&b'-'));
    n = digits_from(n);
    let mut float = false;
    if b.get(n) == Some(&b'.') && b.get(n + 1).is_some_and(u8::is_ascii_digit) {
        float = true;
        n = digits_from(n + 1);
    }
    if matches!(b.get(n), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(b.get(n + 1), Some(b'+' | b'-')));
        if b.get(n + 1 + sign).is_some_and(u8::is_ascii_digit) {
            float = true;
            n = digits_from(n + 1 + sign);
        }
    }
    let text = &i[..n];
    let rest = &i[n..];
    if super::lex::ident_tail(rest) > 0 {
        let bad = n + super::lex::ident_tail(rest);
        return failure(i, format!("invalid number '{}'", &i[..bad]));
    }
    if float {
        match text.parse::<f64>() {
            Ok(f) if f.is_finite() => Ok((rest, Literal::Float(f))),
            _ => failure(i, format!("{text}: number too large")),
        }
    } else {
        match text.parse::<i64>() {
            Ok(v) => Ok((rest, Literal::Int(v))),
            Err(_) => failure(i, format!("{text}: number too large")),
        }
    }
}

fn function_of(word: &str) -> Option<Function> {
    [
        ("COUNT", Function::Count),
        ("SUM", Function::Sum),
        ("AVG", Function::Avg),
        ("MIN", Function::Min),
        ("MAX", Function::Max),
    ]
    .into_iter()
    .find(|(n, _)| n.eq_ignore_ascii_case(word))
    .map(|(_, f)| f)
}

fn primary(input: &str, depth: usize) -> PResult<'_, Expr> {
    let i = skip_ws(input);
    match i.as_bytes().first() {
        Some(b'(') => {
            let (rest, depth) = deeper(&i[1..], depth)?;
            let (rest, inner) = expect(|i| or_expr(i, depth), EXPR_EXPECTED)(rest)?;
            let (rest, _) = expect(punct(')'), "expected ')'")(rest)?;
            return Ok((rest, inner));
        }
        Some(b'\'') => return string(i).map(|(r, s)| (r, Expr::Literal(Literal::String(s)))),
        Some(c) if c.is_ascii_digit() => return number(i).map(|(r, l)| (r, Expr::Literal(l))),
        Some(b'"') => return path(i),
        _ => {}
    }
    let (after, word) = ident(i)?;
    for (kw, lit) in [
        ("NULL", Literal::Null),
        ("TRUE", Literal::Bool(true)),
        ("FALSE", Literal::Bool(false)),
    ] {
        if word.eq_ignore_ascii_case(kw) {
            return Ok((after, Expr::Literal(lit)));
        }
    }
    if let Some(func) = function_of(word)
        && let Some(args) = skip_ws(after).strip_prefix('(')
    {
        return function(args, func, depth);
    }
    if RESERVED_IN_EXPR
        .iter()
        .any(|r| r.eq_ignore_ascii_case(word))
    {
        return super::lex::backtrack(i);
    }
    path(i)
}

/// The arguments of a function after its `(`.
fn function(input: &str, func: Function, depth: usize) -> PResult<'_, Expr> {
    let i = skip_ws(input);
    if let Some(rest) = i.strip_prefix('*') {
        if func != Function::Count {
            return failure(i, "only COUNT takes *");
        }
        let (rest, _) = expect(punct(')'), "expected ')'")(rest)?;
        return Ok((rest, Expr::Function { func, arg: None }));
    }
    let (rest, depth) = deeper(i, depth)?;
    let (rest, arg) = expect(|i| or_expr(i, depth), "expected an expression or *")(rest)?;
    let (rest, _) = expect(punct(')'), "expected ')'")(rest)?;
    Ok((
        rest,
        Expr::Function {
            func,
            arg: Some(Box::new(arg)),
        },
    ))
}

/// Fields of a bare identifier (`data.total`) or one quoted name.
fn fields<'a>(input: &'a str, out: &mut Vec<PathSegment>) -> PResult<'a, ()> {
    let i = skip_ws(input);
    if i.starts_with('"') {
        let (rest, n) = name(i)?;
        out.push(PathSegment::Field(n));
        return Ok((rest, ()));
    }
    let mut n = ident_len(i);
    if n == 0 {
        return failure(i, "expected a field name");
    }
    // `data."x.y"`: the dot before a quoted field separates, it is not part of `data`.
    if i[..n].ends_with('.') && i[n..].starts_with('"') {
        n -= 1;
    }
    let word = &i[..n];
    if word.split('.').any(str::is_empty) {
        return failure(i, format!("invalid path '{word}': empty field name"));
    }
    out.extend(word.split('.').map(|f| PathSegment::Field(f.to_string())));
    Ok((&i[n..], ()))
}

/// A path: `offset`, `data.items[0].price`, `"odd name".x`.
fn path(input: &str) -> PResult<'_, Expr> {
    let mut segments = Vec::new();
    let (mut i, ()) = fields(input, &mut segments)?;
    loop {
        if let Some(rest) = i.strip_prefix('.') {
            // A bare identifier already took its dots: only `."quoted"` or
            // a field after an index (`[0].price`) get here.
            let (rest, ()) = fields(rest, &mut segments)?;
            i = rest;
        } else if let Some(rest) = i.strip_prefix('[') {
            let (rest, n) = expect(uint::<u64>("index"), "expected an array index like [0]")(rest)?;
            let (rest, _) = expect(punct(']'), "expected ']'")(rest)?;
            segments.push(PathSegment::Index(n));
            i = rest;
        } else {
            return Ok((i, Expr::Path(segments)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Expr {
        match expr(s) {
            Ok(("", e)) => e,
            other => panic!("{s}: {other:?}"),
        }
    }

    fn path_of(parts: &[&str]) -> Expr {
        Expr::Path(
            parts
                .iter()
                .map(|p| PathSegment::Field(p.to_string()))
                .collect(),
        )
    }

    #[test]
    fn precedence() {
        let e = parse("a = 1 OR b = 2 AND NOT c");
        let Expr::Binary {
            op: BinaryOp::Or,
            right,
            ..
        } = e
        else {
            panic!()
        };
        let Expr::Binary {
            op: BinaryOp::And,
            right,
            ..
        } = *right
        else {
            panic!()
        };
        assert!(matches!(
            *right,
            Expr::Unary {
                op: UnaryOp::Not,
                ..
            }
        ));
        let e = parse("1 + 2 * 3");
        let Expr::Binary {
            op: BinaryOp::Add,
            right,
            ..
        } = e
        else {
            panic!()
        };
        assert!(matches!(
            *right,
            Expr::Binary {
                op: BinaryOp::Mul,
                ..
            }
        ));
    }

    #[test]
    fn paths() {
        assert_eq!(
            parse("data.items[0].price"),
            Expr::Path(vec![
                PathSegment::Field("data".into()),
                PathSegment::Field("items".into()),
                PathSegment::Index(0),
                PathSegment::Field("price".into()),
            ])
        );
        assert_eq!(parse("\"my field\".x"), path_of(&["my field", "x"]));
        assert_eq!(parse("group"), path_of(&["group"]));
        assert_eq!(parse("data.\"x.y\"[1]").to_string(), "data.\"x.y\"[1]");
        assert_eq!(parse("\"and\".x"), path_of(&["and", "x"]));
    }

    #[test]
    fn literals_and_functions() {
        assert_eq!(parse("-5"), Expr::Literal(Literal::Int(-5)));
        assert_eq!(
            parse("-9223372036854775808"),
            Expr::Literal(Literal::Int(i64::MIN))
        );
        assert_eq!(parse("1.5e3"), Expr::Literal(Literal::Float(1500.0)));
        assert_eq!(
            parse("'it''s'"),
            Expr::Literal(Literal::String("it's".into()))
        );
        assert_eq!(parse("null"), Expr::Literal(Literal::Null));
        assert_eq!(
            parse("count(*)"),
            Expr::Function {
                func: Function::Count,
                arg: None
            }
        );
        assert_eq!(
            parse("Sum(data.total)"),
            Expr::Function {
                func: Function::Sum,
                arg: Some(Box::new(path_of(&["data", "total"])))
            }
        );
        assert!(matches!(
            parse("-x"),
            Expr::Unary {
                op: UnaryOp::Neg,
                ..
            }
        ));
    }

    #[test]
    fn predicates() {
        assert!(matches!(
            parse("a NOT IN (1, 2)"),
            Expr::InList { negated: true, .. }
        ));
        assert!(matches!(
            parse("a BETWEEN 1 AND 2 AND b"),
            Expr::Binary {
                op: BinaryOp::And,
                ..
            }
        ));
        assert!(matches!(
            parse("a IS NOT NULL"),
            Expr::IsNull { negated: true, .. }
        ));
        assert!(matches!(
            parse("a not like 'x%'"),
            Expr::Binary {
                op: BinaryOp::NotLike,
                ..
            }
        ));
        assert!(matches!(
            parse("a <> 1"),
            Expr::Binary {
                op: BinaryOp::NotEq,
                ..
            }
        ));
    }

    #[test]
    fn errors() {
        let deep = "(".repeat(100) + "1" + &")".repeat(100);
        assert!(
            matches!(expr(&deep), Err(nom::Err::Failure(e)) if e.message.as_deref() == Some("expression nested too deeply"))
        );
        assert!(
            matches!(expr("SUM(*)"), Err(nom::Err::Failure(e)) if e.message.as_deref() == Some("only COUNT takes *"))
        );
        assert!(
            matches!(expr("99999999999999999999"), Err(nom::Err::Failure(e)) if e.message.as_deref() == Some("99999999999999999999: number too large"))
        );
        assert!(
            matches!(expr("a ="), Err(nom::Err::Failure(e)) if e.message.as_deref() == Some(EXPR_EXPECTED))
        );
    }
}
