//! Shared lexing: whitespace and comments, keywords, names, numbers,
//! strings, durations, sizes, timestamps and JSON payloads.
//!
//! Every token parser skips leading whitespace and comments itself and never
//! trailing ones, so the input left after a statement ends right after its
//! last token (that is how statement spans are cut).

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use nom::error::{ErrorKind, ParseError as NomParseError};
use nom::{IResult, Parser};

use crate::lang::ast::{Payload, TimeSpec};

/// The parser's error: the input left where it happened and, when known,
/// what was expected there in words a user understands.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PErr<'a> {
    /// The remaining input at the error (its length gives the position).
    pub input: &'a str,
    /// The message; `None` means "unexpected <token>".
    pub message: Option<Cow<'static, str>>,
}

impl<'a> PErr<'a> {
    pub(crate) fn new(input: &'a str, message: impl Into<Cow<'static, str>>) -> Self {
        PErr {
            input,
            message: Some(message.into()),
        }
    }

    fn bare(input: &'a str) -> Self {
        PErr {
            input,
            message: None,
        }
    }
}

impl<'a> NomParseError<&'a str> for PErr<'a> {
    fn from_error_kind(input: &'a str, _kind: ErrorKind) -> Self {
        PErr::bare(input)
    }

    fn append(_input: &'a str, _kind: ErrorKind, other: Self) -> Self {
        other
    }

    /// Of two alternatives that failed, keep the one that got further; on a
    /// tie prefer one that says what it expected.
    fn or(self, other: Self) -> Self {
        match other.input.len().cmp(&self.input.len()) {
            std::cmp::Ordering::Less => other,
            std::cmp::Ordering::Greater => self,
            std::cmp::Ordering::Equal if other.message.is_some() => other,
            std::cmp::Ordering::Equal => self,
        }
    }
}

/// Result of every parser in this module tree.
pub(crate) type PResult<'a, T> = IResult<&'a str, T, PErr<'a>>;

/// A recoverable error (alternatives may still match).
pub(crate) fn backtrack<'a, T>(input: &'a str) -> PResult<'a, T> {
    Err(nom::Err::Error(PErr::bare(input)))
}

/// An error at a point where the grammar is certain.
pub(crate) fn failure<'a, T>(
    input: &'a str,
    message: impl Into<Cow<'static, str>>,
) -> PResult<'a, T> {
    Err(nom::Err::Failure(PErr::new(input, message)))
}

/// Runs `p`; if it does not match, fails (no backtracking) with `message` at
/// the first token, unless `p` got further and knows better.
pub(crate) fn expect<'a, T, P>(
    mut p: P,
    message: &'static str,
) -> impl FnMut(&'a str) -> PResult<'a, T>
where
    P: Parser<&'a str, Output = T, Error = PErr<'a>>,
{
    move |input| expected(input, p.parse(input), message)
}

/// What [`expect`] makes of a parser's result `r` at `input`: a backtracking
/// error becomes a failure with `message` at the first token, unless the
/// parser got further and knows better.
pub(crate) fn expected<'a, T>(
    input: &'a str,
    r: PResult<'a, T>,
    message: &'static str,
) -> PResult<'a, T> {
    match r {
        Err(nom::Err::Error(e)) => {
            let start = skip_ws(input);
            if e.message.is_some() && e.input.len() < start.len() {
                Err(nom::Err::Failure(e))
            } else {
                failure(start, message)
            }
        }
        other => other,
    }
}

/// Skips whitespace and `--` comments.
pub(crate) fn skip_ws(mut i: &str) -> &str {
    loop {
        let t = i.trim_start();
        match t.strip_prefix("--") {
            Some(rest) => i = rest.find('\n').map_or("", |n| &rest[n..]),
            None => return t,
        }
    }
}

/// Length of the identifier characters `[A-Za-z0-9_.-]` at the start of `s`;
/// a `--` ends it (it starts a comment).
pub(crate) fn ident_tail(s: &str) -> usize {
    let b = s.as_bytes();
    let mut n = 0;
    while n < b.len() {
        match b[n] {
            c if c.is_ascii_alphanumeric() || c == b'_' || c == b'.' => n += 1,
            b'-' if b.get(n + 1) != Some(&b'-') => n += 1,
            _ => break,
        }
    }
    n
}

/// Length of a bare identifier `[A-Za-z_][A-Za-z0-9_.-]*` at the start of `s` (0 if none).
pub(crate) fn ident_len(s: &str) -> usize {
    match s.as_bytes().first() {
        Some(c) if c.is_ascii_alphabetic() || *c == b'_' => 1 + ident_tail(&s[1..]),
        _ => 0,
    }
}

/// A bare identifier token (after whitespace), without its case changed.
pub(crate) fn ident(input: &str) -> PResult<'_, &str> {
    let i = skip_ws(input);
    match ident_len(i) {
        0 => backtrack(i),
        n => Ok((&i[n..], &i[..n])),
    }
}

/// A case-insensitive keyword not followed by an identifier character.
pub(crate) fn keyword<'a>(kw: &'static str) -> impl Fn(&'a str) -> PResult<'a, &'a str> {
    move |input| {
        let i = skip_ws(input);
        let n = kw.len();
        if i.len() >= n
            && i.is_char_boundary(n)
            && i[..n].eq_ignore_ascii_case(kw)
            && ident_tail(&i[n..]) == 0
        {
            Ok((&i[n..], &i[..n]))
        } else {
            Err(nom::Err::Error(PErr::new(i, format!("expected {kw}"))))
        }
    }
}

/// True when the next token is the keyword `kw`.
pub(crate) fn at_keyword(input: &str, kw: &'static str) -> bool {
    keyword(kw)(input).is_ok()
}

/// A punctuation character.
pub(crate) fn punct<'a>(c: char) -> impl Fn(&'a str) -> PResult<'a, char> {
    move |input| {
        let i = skip_ws(input);
        match i.strip_prefix(c) {
            Some(rest) => Ok((rest, c)),
            None => Err(nom::Err::Error(PErr::new(i, format!("expected '{c}'")))),
        }
    }
}

/// Reads a quoted text starting at `i` (which starts with `q`); a doubled
/// quote stands for one.
fn quoted<'a>(i: &'a str, q: char, unterminated: &'static str) -> PResult<'a, String> {
    let body = &i[q.len_utf8()..];
    let mut out = String::new();
    let mut rest = body;
    loop {
        match rest.find(q) {
            None => return failure(i, unterminated),
            Some(n) => {
                out.push_str(&rest[..n]);
                let after = &rest[n + q.len_utf8()..];
                match after.strip_prefix(q) {
                    Some(more) => {
                        out.push(q);
                        rest = more;
                    }
                    None => return Ok((after, out)),
                }
            }
        }
    }
}

/// A name: a bare identifier or a `"double-quoted"` text.
pub(crate) fn name(input: &str) -> PResult<'_, String> {
    let i = skip_ws(input);
    if i.starts_with('"') {
        return quoted(i, '"', "unterminated quoted name: missing the closing \"");
    }
    let (rest, id) = ident(i)?;
    Ok((rest, id.to_string()))
}

/// A name unless the next token is one of `reserved` (which then belong to
/// the following clause).
pub(crate) fn name_unless<'a>(
    reserved: &'static [&'static str],
) -> impl Fn(&'a str) -> PResult<'a, String> {
    move |input| {
        if reserved.iter().any(|kw| at_keyword(input, kw)) {
            return backtrack(skip_ws(input));
        }
        name(input)
    }
}

/// A `'single-quoted'` string.
pub(crate) fn string(input: &str) -> PResult<'_, String> {
    let i = skip_ws(input);
    if i.starts_with('\'') {
        quoted(i, '\'', "unterminated string: missing the closing '")
    } else {
        backtrack(i)
    }
}

/// The digits of a number and its unit letters (`30s` → ("30", "s")).
fn number_and_unit(input: &str) -> PResult<'_, (&str, &str)> {
    let i = skip_ws(input);
    let digits = i.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return backtrack(i);
    }
    let unit = ident_tail(&i[digits..]);
    Ok((
        &i[digits + unit..],
        (&i[..digits], &i[digits..digits + unit]),
    ))
}

/// An unsigned integer; `label` names it in the overflow error
/// ("PARTITIONS 99999999999: number too large").
pub(crate) fn uint<'a, T: FromStr>(label: &'static str) -> impl Fn(&'a str) -> PResult<'a, T> {
    move |input| {
        let (rest, (digits, unit)) = number_and_unit(input)?;
        let start = skip_ws(input);
        if !unit.is_empty() {
            return backtrack(start);
        }
        match digits.parse::<T>() {
            Ok(n) => Ok((rest, n)),
            Err(_) if label.is_empty() => failure(start, format!("{digits}: number too large")),
            Err(_) => failure(start, format!("{label} {digits}: number too large")),
        }
    }
}

const DURATION_UNITS: &[(&str, u64)] = &[
    ("ms", 1),
    ("s", 1000),
    ("m", 60_000),
    ("h", 3_600_000),
    ("d", 86_400_000),
];
const SIZE_UNITS: &[(&str, u64)] = &[("b", 1), ("kb", 1 << 10), ("mb", 1 << 20), ("gb", 1 << 30)];

fn unit_value(units: &[(&str, u64)], unit: &str) -> Option<u64> {
    units
        .iter()
        .find(|(u, _)| u.eq_ignore_ascii_case(unit))
        .map(|(_, m)| *m)
}

/// Either a duration or a size: which one a number with a unit is.
pub(crate) enum Quantity {
    /// `30s`
    Duration(Duration),
    /// `10MB`, in bytes
    Size(u64),
    /// A bare integer
    Count(u64),
}

/// A number with an optional unit: `30s`, `10MB`, `1000`.
pub(crate) fn quantity(input: &str) -> PResult<'_, Quantity> {
    let (rest, (digits, unit)) = number_and_unit(input)?;
    let start = skip_ws(input);
    let text = &start[..start.len() - rest.len()];
    let Ok(n) = digits.parse::<u64>() else {
        return failure(start, format!("{text}: number too large"));
    };
    if unit.is_empty() {
        return Ok((rest, Quantity::Count(n)));
    }
    if let Some(m) = unit_value(DURATION_UNITS, unit) {
        // Times are i64 ms everywhere they are stored or compared: refuse,
        // never clamp, a duration past that.
        let max = i64::MAX.unsigned_abs();
        return match n.checked_mul(m).filter(|ms| *ms <= max) {
            Some(ms) => Ok((rest, Quantity::Duration(Duration::from_millis(ms)))),
            None => failure(
                start,
                format!("{text}: duration too large (at most {max}ms)"),
            ),
        };
    }
    if let Some(m) = unit_value(SIZE_UNITS, unit) {
        return match n.checked_mul(m) {
            Some(bytes) => Ok((rest, Quantity::Size(bytes))),
            None => failure(start, format!("{text}: size too large")),
        };
    }
    backtrack(start)
}

/// A duration `250ms`, `30s`, `5m`, `2h`, `7d`.
pub(crate) fn duration(input: &str) -> PResult<'_, Duration> {
    match quantity(input)? {
        (rest, Quantity::Duration(d)) => Ok((rest, d)),
        _ => Err(nom::Err::Error(PErr::new(
            skip_ws(input),
            DURATION_EXPECTED,
        ))),
    }
}

/// What [`duration`] says when it does not match.
pub(crate) const DURATION_EXPECTED: &str = "expected a duration like 30s";

/// A size `512B`, `64KB`, `10MB`, `1GB` (1024-based), in bytes.
pub(crate) fn size(input: &str) -> PResult<'_, u64> {
    match quantity(input)? {
        (rest, Quantity::Size(n)) => Ok((rest, n)),
        _ => Err(nom::Err::Error(PErr::new(skip_ws(input), SIZE_EXPECTED))),
    }
}

/// What [`size`] says when it does not match.
pub(crate) const SIZE_EXPECTED: &str = "expected a size like 10MB";

const TIMESTAMP_EXPECTED: &str = "expected a timestamp like '2024-01-15T10:30:00Z' or '-1h'";

/// A timestamp string: RFC 3339 or `'-1h'` (that long ago).
pub(crate) fn timestamp(input: &str) -> PResult<'_, TimeSpec> {
    let start = skip_ws(input);
    let (rest, text) = match string(start) {
        Ok(ok) => ok,
        Err(nom::Err::Error(_)) => return failure(start, TIMESTAMP_EXPECTED),
        Err(e) => return Err(e),
    };
    if let Some(ago) = text.strip_prefix('-') {
        if let Ok(("", d)) = duration(ago)
            && !ago.starts_with(char::is_whitespace)
        {
            return Ok((rest, TimeSpec::Ago(d)));
        }
    } else if let Some(ms) = crate::value::parse_timestamp_ms(&text) {
        return Ok((rest, TimeSpec::Absolute(ms)));
    }
    failure(start, TIMESTAMP_EXPECTED)
}

/// A bare JSON object or array, kept as its exact source text.
pub(crate) fn json(input: &str) -> PResult<'_, String> {
    let i = skip_ws(input);
    if !(i.starts_with('{') || i.starts_with('[')) {
        return backtrack(i);
    }
    let mut stream = serde_json::Deserializer::from_str(i).into_iter::<serde_json::Value>();
    match stream.next() {
        Some(Ok(_)) => {
            let end = stream.byte_offset();
            Ok((&i[end..], i[..end].to_string()))
        }
        Some(Err(e)) => {
            let at = json_error_offset(i, e.line(), e.column());
            let text = e.to_string();
            let what = text
                .rfind(" at line ")
                .map_or(text.as_str(), |n| &text[..n]);
            failure(&i[at..], format!("invalid JSON payload: {what}"))
        }
        None => failure(i, "invalid JSON payload"),
    }
}

/// Byte offset in `s` of serde_json's 1-based line and column (clamped, on a
/// char boundary).
fn json_error_offset(s: &str, line: usize, column: usize) -> usize {
    let line_start: usize = s
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum();
    let mut at = (line_start + column.saturating_sub(1)).min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// A payload: a string or a JSON literal.
pub(crate) fn payload(input: &str) -> PResult<'_, Payload> {
    let i = skip_ws(input);
    if i.starts_with('\'') {
        string(i).map(|(r, s)| (r, Payload::Text(s)))
    } else {
        json(i).map(|(r, s)| (r, Payload::Json(s)))
    }
}

/// Succeeds (consuming nothing) when the statement ends here: `;` or the end
/// of input; else fails with "unexpected 'X': {hint}".
pub(crate) fn end<'a, T>(input: &'a str, value: T, hint: &'static str) -> PResult<'a, T> {
    let i = skip_ws(input);
    if i.is_empty() || i.starts_with(';') {
        Ok((input, value))
    } else {
        failure(i, format!("unexpected {}: {hint}", describe_token(i)))
    }
}

/// The token at the start of `i`, quoted for a message.
pub(crate) fn describe_token(i: &str) -> String {
    const MAX: usize = 30;
    let token: &str = if i.is_empty() {
        return "end of input".to_string();
    } else if ident_len(i) > 0 {
        &i[..ident_len(i)]
    } else if i.as_bytes()[0].is_ascii_digit() {
        let n = i.bytes().take_while(u8::is_ascii_digit).count();
        &i[..n + ident_tail(&i[n..])]
    } else {
        let c = i.chars().next().map_or(1, char::len_utf8);
        &i[..c]
    };
    let mut shown: String = token.chars().take(MAX).collect();
    if shown.len() < token.len() {
        shown.push_str("...");
    }
    format!("'{shown}'")
}

/// Runs an optional parser: `Ok(None)` when it does not match, a failure passes through.
pub(crate) fn maybe<'a, T, P>(mut p: P, input: &'a str) -> PResult<'a, Option<T>>
where
    P: Parser<&'a str, Output = T, Error = PErr<'a>>,
{
    nom::combinator::opt(|i| p.parse(i)).parse(input)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn whitespace_and_comments() {
        assert_eq!(skip_ws("  -- a comment\n  x"), "x");
        assert_eq!(skip_ws("-- only"), "");
        assert_eq!(skip_ws("--a\n--b\n y"), "y");
    }

    #[test]
    fn identifiers_stop_at_comments() {
        assert_eq!(ident_len("order.placed-v2 x"), 15);
        assert_eq!(ident_len("orders--comment"), 6);
        assert_eq!(ident_len("9x"), 0);
    }

    #[test]
    fn keywords_need_a_boundary() {
        assert!(keyword("DROP")("drop topic").is_ok());
        assert!(keyword("DROP")("DROPX").is_err());
        assert!(keyword("DROP")("drop.x").is_err());
        assert!(keyword("DROP")("drop--c").is_ok());
    }

    #[test]
    fn quoted_texts() {
        assert_eq!(string("'it''s'"), Ok(("", "it's".to_string())));
        assert_eq!(name("\"a \"\"b\"\"\""), Ok(("", "a \"b\"".to_string())));
        assert!(matches!(string("'open"), Err(nom::Err::Failure(_))));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration("5m").map(|r| r.1), Ok(Duration::from_secs(300)));
        assert_eq!(duration("5ms").map(|r| r.1), Ok(Duration::from_millis(5)));
        assert_eq!(
            duration("7D").map(|r| r.1),
            Ok(Duration::from_secs(7 * 86400))
        );
        assert!(duration("5 m").is_err());
        assert!(duration("5mx").is_err());
        assert_eq!(size("1KB").map(|r| r.1), Ok(1024));
        assert_eq!(size("2gb").map(|r| r.1), Ok(2 << 30));
        assert!(size("5m").is_err());
    }

    #[test]
    fn timestamps() {
        assert_eq!(
            timestamp("'-30m'").map(|r| r.1),
            Ok(TimeSpec::Ago(Duration::from_secs(1800)))
        );
        assert_eq!(
            timestamp("'1970-01-01T00:00:01Z'").map(|r| r.1),
            Ok(TimeSpec::Absolute(1000))
        );
        assert!(matches!(
            timestamp("'yesterday'"),
            Err(nom::Err::Failure(_))
        ));
        assert!(matches!(timestamp("'- 1h'"), Err(nom::Err::Failure(_))));
    }

    #[test]
    fn json_extent() {
        assert_eq!(
            json("{\"a\": [1, 2]} , x"),
            Ok((" , x", "{\"a\": [1, 2]}".to_string()))
        );
        match json("{\"a\" 1}") {
            Err(nom::Err::Failure(e)) => {
                assert_eq!(e.input, "1}");
                assert!(
                    e.message
                        .is_some_and(|m| m.starts_with("invalid JSON payload: expected `:`"))
                );
            }
            other => panic!("{other:?}"),
        }
    }
}
