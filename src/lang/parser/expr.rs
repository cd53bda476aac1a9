//! Expressions of WHERE, SELECT, GROUP BY and ORDER BY, loosest first:
//! OR, AND, NOT, comparisons, `+ -`, `* / %`, unary minus, primaries.
//!
//! Limits, so that any input gets an error instead of overflowing the stack
//! (of the parser, or of a later recursive pass: planner, display, clone,
//! drop):
//! - each nesting level (parenthesis, NOT, unary minus, function argument)
//!   adds one to a depth counter, at most [`MAX_DEPTH`]: this bounds the
//!   parser's own recursion;
//! - every tree is at most [`MAX_HEIGHT`] levels high and has at most
//!   [`MAX_NODES`] nodes. A chain `a + b + c` is parsed by a loop but is a
//!   left-deep tree as high as it is long, which every recursive pass walks;
//!   heights and sizes are checked as each node is built, so a tree past the
//!   limit never exists.

use nom::Parser;

use super::lex::{
    PErr, PResult, expect, expected, failure, ident, ident_len, keyword, name, punct, skip_ws,
    string, uint,
};
use crate::lang::ast::{BinaryOp, Expr, Function, Literal, PathSegment, UnaryOp};

/// How deeply expressions may nest (parentheses, IN lists, NOT, unary minus,
/// function arguments). Each level costs about 12.5 KB of the parser's stack
/// in a debug build (about 12 nested parse functions): 64 levels take about
/// 0.8 MB (measured), inside a 2 MiB thread.
pub const MAX_DEPTH: usize = 64;

/// How many levels an expression tree may have (a leaf is one level; `a + b`
/// two; a chain of n operators n + 1). The planner needs about 8 KB of stack
/// per level in a debug build: 64 levels stay near 0.5 MB, inside a 2 MiB
/// thread, and far below SQLite's own expression depth limit (1000).
pub const MAX_HEIGHT: usize = 64;

/// How many nodes (operators, operands, IN list items) one expression may have.
/// With one SQL parameter per node at most, one expression stays well below
/// SQLite's 32,766 parameters.
pub const MAX_NODES: usize = 10_000;

/// Words that cannot start a path without double quotes: they are operators
/// or literals, or they end an expression.
pub(crate) const RESERVED_IN_EXPR: &[&str] = &[
    "AND", "OR", "NOT", "NULL", "TRUE", "FALSE", "IS", "IN", "LIKE", "BETWEEN", "AS", "FROM",
    "WHERE", "LIMIT",
];

const EXPR_EXPECTED: &str = "expected an expression";

/// An expression being built, with its height and node count.
struct Node {
    expr: Expr,
    height: usize,
    nodes: usize,
}

type NResult<'a> = PResult<'a, Node>;

impl Node {
    fn leaf(expr: Expr) -> Node {
        Node {
            expr,
            height: 1,
            nodes: 1,
        }
    }
}

/// The height and node count of a new node over `children`, or an error at
/// `at` when it would break [`MAX_HEIGHT`] or [`MAX_NODES`].
fn grow<'a>(at: &'a str, children: &[&Node]) -> Result<(usize, usize), nom::Err<PErr<'a>>> {
    let height = 1 + children.iter().map(|c| c.height).max().unwrap_or(0);
    let nodes = 1 + children.iter().map(|c| c.nodes).sum::<usize>();
    check_size(at, height, nodes)?;
    Ok((height, nodes))
}

fn check_size(at: &str, height: usize, nodes: usize) -> Result<(), nom::Err<PErr<'_>>> {
    if height > MAX_HEIGHT {
        let message = format!(
            "expression too long: more than {MAX_HEIGHT} levels of operators \
             (for many alternatives use IN (...))"
        );
        return failure::<()>(skip_ws(at), message).map(|_| ());
    }
    if nodes > MAX_NODES {
        let message = format!("expression too large: more than {MAX_NODES} terms");
        return failure::<()>(skip_ws(at), message).map(|_| ());
    }
    Ok(())
}

/// An expression.
pub(crate) fn expr(input: &str) -> PResult<'_, Expr> {
    or_expr(input, 0).map(|(rest, n)| (rest, n.expr))
}

/// `left op right`, checked at `at` (the operator).
fn binary<'a>(at: &'a str, left: Node, op: BinaryOp, right: Node) -> NResult<'a> {
    let (height, nodes) = grow(at, &[&left, &right])?;
    let expr = Expr::Binary {
        left: Box::new(left.expr),
        op,
        right: Box::new(right.expr),
    };
    Ok((
        at,
        Node {
            expr,
            height,
            nodes,
        },
    ))
}

/// `op operand`, checked at `at`.
fn unary_node(at: &str, op: UnaryOp, operand: Node) -> NResult<'_> {
    let (height, nodes) = grow(at, &[&operand])?;
    let expr = Expr::Unary {
        op,
        expr: Box::new(operand.expr),
    };
    Ok((
        at,
        Node {
            expr,
            height,
            nodes,
        },
    ))
}

/// `or_expr` (or `operand`) at `input`, required: what [`expect`] does,
/// without its two closure frames on the stack of every nesting level.
fn required<'a>(
    input: &'a str,
    depth: usize,
    operand: fn(&'a str, usize) -> NResult<'a>,
    message: &'static str,
) -> NResult<'a> {
    expected(input, operand(input, depth), message)
}

fn deeper(input: &str, depth: usize) -> PResult<'_, usize> {
    if depth >= MAX_DEPTH {
        failure(skip_ws(input), "expression nested too deeply")
    } else {
        Ok((input, depth + 1))
    }
}

/// A left-associative chain `operand (op operand)*`: `op` reads an operator.
fn chain<'a>(
    input: &'a str,
    depth: usize,
    operand: fn(&'a str, usize) -> NResult<'a>,
    op: impl Fn(&'a str) -> PResult<'a, BinaryOp>,
) -> NResult<'a> {
    let (mut i, mut left) = operand(input, depth)?;
    while let Ok((rest, o)) = op(i) {
        let (rest, right) = required(rest, depth, operand, EXPR_EXPECTED)?;
        (_, left) = binary(i, left, o, right)?;
        i = rest;
    }
    Ok((i, left))
}

fn or_expr(input: &str, depth: usize) -> NResult<'_> {
    chain(input, depth, and_expr, |i| {
        keyword("OR")(i).map(|(r, _)| (r, BinaryOp::Or))
    })
}

fn and_expr(input: &str, depth: usize) -> NResult<'_> {
    chain(input, depth, not_expr, |i| {
        keyword("AND")(i).map(|(r, _)| (r, BinaryOp::And))
    })
}

fn not_expr(input: &str, depth: usize) -> NResult<'_> {
    if let Ok((rest, _)) = keyword("NOT")(input) {
        let (rest, depth) = deeper(rest, depth)?;
        let (rest, operand) = required(rest, depth, not_expr, EXPR_EXPECTED)?;
        let (_, n) = unary_node(input, UnaryOp::Not, operand)?;
        return Ok((rest, n));
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

fn comparison(input: &str, depth: usize) -> NResult<'_> {
    let (i, left) = additive(input, depth)?;
    predicate(i, left, depth)
}

/// What may follow the left operand of a comparison. Apart from
/// [`comparison`] so that its locals stay off the stack of the recursion
/// through parentheses (each level of which passes through `comparison`).
fn predicate(i: &str, left: Node, depth: usize) -> NResult<'_> {
    let operand = |i| additive(i, depth);
    if let Ok((rest, _)) = keyword("IS")(i) {
        let (rest, negated) = nom::combinator::opt(keyword("NOT")).parse(rest)?;
        let (rest, _) = expect(keyword("NULL"), "expected NULL or NOT NULL after IS")(rest)?;
        let (height, nodes) = grow(i, &[&left])?;
        let expr = Expr::IsNull {
            expr: Box::new(left.expr),
            negated: negated.is_some(),
        };
        return Ok((
            rest,
            Node {
                expr,
                height,
                nodes,
            },
        ));
    }
    let (j, negated) = match keyword("NOT")(i) {
        Ok((rest, _)) => (rest, true),
        Err(_) => (i, false),
    };
    if let Ok((rest, _)) = keyword("IN")(j) {
        let (rest, _) = expect(punct('('), "expected '(' and a list of values")(rest)?;
        // Items may hold IN lists themselves: the list is a nesting level.
        let (rest, depth) = deeper(rest, depth)?;
        return in_list(rest, left, negated, depth);
    }
    if let Ok((rest, _)) = keyword("BETWEEN")(j) {
        let (rest, low) = expect(operand, EXPR_EXPECTED)(rest)?;
        let (rest, _) = expect(keyword("AND"), "expected AND")(rest)?;
        let (rest, high) = expect(operand, EXPR_EXPECTED)(rest)?;
        let (height, nodes) = grow(i, &[&left, &low, &high])?;
        let expr = Expr::Between {
            expr: Box::new(left.expr),
            low: Box::new(low.expr),
            high: Box::new(high.expr),
            negated,
        };
        return Ok((
            rest,
            Node {
                expr,
                height,
                nodes,
            },
        ));
    }
    if negated {
        let (rest, _) = expect(keyword("LIKE"), "expected LIKE, IN or BETWEEN after NOT")(j)?;
        let (rest, right) = expect(operand, EXPR_EXPECTED)(rest)?;
        let (_, n) = binary(i, left, BinaryOp::NotLike, right)?;
        return Ok((rest, n));
    }
    match comparison_op(i) {
        Ok((rest, op)) => {
            let (rest, right) = expect(operand, EXPR_EXPECTED)(rest)?;
            let (_, n) = binary(i, left, op, right)?;
            Ok((rest, n))
        }
        Err(_) => Ok((i, left)),
    }
}

/// The items of `left [NOT] IN (` up to the `)`; sizes are checked item by
/// item so a huge list stops at the limit.
fn in_list(input: &str, left: Node, negated: bool, depth: usize) -> NResult<'_> {
    let (mut height, mut nodes) = (left.height + 1, left.nodes + 1);
    let mut list = Vec::new();
    let mut i = input;
    loop {
        let (rest, item) = required(i, depth, or_expr, EXPR_EXPECTED)?;
        height = height.max(item.height + 1);
        nodes += item.nodes;
        check_size(i, height, nodes)?;
        list.push(item.expr);
        match punct(',')(rest) {
            Ok((rest, _)) => i = rest,
            Err(_) => {
                i = rest;
                break;
            }
        }
    }
    let (rest, _) = expect(punct(')'), "expected ',' or ')'")(i)?;
    let expr = Expr::InList {
        expr: Box::new(left.expr),
        list,
        negated,
    };
    Ok((
        rest,
        Node {
            expr,
            height,
            nodes,
        },
    ))
}

fn additive(input: &str, depth: usize) -> NResult<'_> {
    chain(input, depth, multiplicative, |i| {
        let j = skip_ws(i);
        match j.as_bytes().first() {
            Some(b'+') => Ok((&j[1..], BinaryOp::Add)),
            Some(b'-') => Ok((&j[1..], BinaryOp::Sub)),
            _ => super::lex::backtrack(j),
        }
    })
}

fn multiplicative(input: &str, depth: usize) -> NResult<'_> {
    chain(input, depth, unary, |i| {
        let j = skip_ws(i);
        match j.as_bytes().first() {
            Some(b'*') => Ok((&j[1..], BinaryOp::Mul)),
            Some(b'/') => Ok((&j[1..], BinaryOp::Div)),
            Some(b'%') => Ok((&j[1..], BinaryOp::Mod)),
            _ => super::lex::backtrack(j),
        }
    })
}

fn unary(input: &str, depth: usize) -> NResult<'_> {
    let i = skip_ws(input);
    if let Some(rest) = i.strip_prefix('-') {
        // `-5` is a negative literal; `-x`, `-(5)` negate.
        if rest.as_bytes().first().is_some_and(u8::is_ascii_digit) {
            return number(i).map(|(r, l)| (r, Node::leaf(Expr::Literal(l))));
        }
        let (rest, depth) = deeper(rest, depth)?;
        let (rest, operand) = required(rest, depth, unary, EXPR_EXPECTED)?;
        let (_, n) = unary_node(i, UnaryOp::Neg, operand)?;
        return Ok((rest, n));
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

fn primary(input: &str, depth: usize) -> NResult<'_> {
    let i = skip_ws(input);
    if let Some(inner) = i.strip_prefix('(') {
        let (rest, depth) = deeper(inner, depth)?;
        let (rest, inner) = required(rest, depth, or_expr, EXPR_EXPECTED)?;
        let (rest, _) = expect(punct(')'), "expected ')'")(rest)?;
        return Ok((rest, inner));
    }
    atom(i, depth)
}

/// A primary other than a parenthesis: literal, path or function call.
fn atom(i: &str, depth: usize) -> NResult<'_> {
    let leaf = |(r, e)| (r, Node::leaf(e));
    match i.as_bytes().first() {
        Some(b'\'') => {
            return string(i).map(|(r, s)| (r, Node::leaf(Expr::Literal(Literal::String(s)))));
        }
        Some(c) if c.is_ascii_digit() => {
            return number(i).map(|(r, l)| (r, Node::leaf(Expr::Literal(l))));
        }
        Some(b'"') => return path(i).map(leaf),
        _ => {}
    }
    let (after, word) = ident(i)?;
    for (kw, lit) in [
        ("NULL", Literal::Null),
        ("TRUE", Literal::Bool(true)),
        ("FALSE", Literal::Bool(false)),
    ] {
        if word.eq_ignore_ascii_case(kw) {
            return Ok((after, Node::leaf(Expr::Literal(lit))));
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
    path(i).map(leaf)
}

/// The arguments of a function after its `(`.
fn function(input: &str, func: Function, depth: usize) -> NResult<'_> {
    let i = skip_ws(input);
    if let Some(rest) = i.strip_prefix('*') {
        if func != Function::Count {
            return failure(i, "only COUNT takes *");
        }
        let (rest, _) = expect(punct(')'), "expected ')'")(rest)?;
        return Ok((rest, Node::leaf(Expr::Function { func, arg: None })));
    }
    let (rest, depth) = deeper(i, depth)?;
    let (rest, arg) = required(rest, depth, or_expr, "expected an expression or *")?;
    let (rest, _) = expect(punct(')'), "expected ')'")(rest)?;
    let (height, nodes) = grow(i, &[&arg])?;
    let expr = Expr::Function {
        func,
        arg: Some(Box::new(arg.expr)),
    };
    Ok((
        rest,
        Node {
            expr,
            height,
            nodes,
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
