//! PUBLISH.

use nom::Parser;
use nom::multi::separated_list1;

use super::lex::{
    DURATION_EXPECTED, PResult, duration, end, expect, failure, keyword, maybe, name, payload,
    punct, skip_ws, string, uint,
};
use crate::lang::ast::{Publish, Statement};

const FIRST_PAYLOAD: &str = "expected a payload ('text' or a JSON object or array) or an option (KEY, PARTITION, HEADERS, DEDUP, DELAY)";
const PAYLOAD: &str = "expected a payload ('text' or a JSON object or array)";

/// `PUBLISH [TO] name [options] payload, ...` (after PUBLISH).
pub(super) fn publish(input: &str) -> PResult<'_, Statement> {
    let (i, _) = maybe(keyword("TO"), input)?;
    let (mut i, topic) = expect(name, "expected a topic name")(i)?;
    let mut p = Publish {
        topic,
        key: None,
        partition: None,
        headers: Vec::new(),
        dedup: None,
        delay: None,
        payloads: Vec::new(),
    };
    let mut has_headers = false;
    loop {
        let start = skip_ws(i);
        let twice = |label: &str| failure(start, format!("{label} given twice"));
        if let Ok((rest, _)) = keyword("KEY")(i) {
            if p.key.is_some() {
                return twice("KEY");
            }
            let (rest, k) = expect(string, "expected a key in quotes like 'customer-42'")(rest)?;
            p.key = Some(k);
            i = rest;
        } else if let Ok((rest, _)) = keyword("PARTITION")(i) {
            if p.partition.is_some() {
                return twice("PARTITION");
            }
            let (rest, n) = expect(uint::<u32>("PARTITION"), "expected a partition number")(rest)?;
            p.partition = Some(n);
            i = rest;
        } else if let Ok((rest, _)) = keyword("HEADERS")(i) {
            if has_headers {
                return twice("HEADERS");
            }
            has_headers = true;
            let (rest, _) =
                expect(punct('('), "expected '(' and headers like (source = 'web')")(rest)?;
            let (rest, headers) = separated_list1(punct(','), header).parse(rest)?;
            let (rest, _) = expect(punct(')'), "expected ',' or ')'")(rest)?;
            p.headers = headers;
            i = rest;
        } else if let Ok((rest, _)) = keyword("DEDUP")(i) {
            if p.dedup.is_some() {
                return twice("DEDUP");
            }
            let (rest, d) = expect(
                string,
                "expected a deduplication id in quotes like 'order-1'",
            )(rest)?;
            p.dedup = Some(d);
            i = rest;
        } else if let Ok((rest, _)) = keyword("DELAY")(i) {
            if p.delay.is_some() {
                return twice("DELAY");
            }
            let (rest, d) = expect(duration, DURATION_EXPECTED)(rest)?;
            p.delay = Some(d);
            i = rest;
        } else {
            break;
        }
    }
    let (i, first) = expect(payload, FIRST_PAYLOAD)(i)?;
    p.payloads.push(first);
    let (i, more) = nom::multi::many0(|i| {
        let (i, _) = punct(',')(i)?;
        expect(payload, PAYLOAD)(i)
    })
    .parse(i)?;
    p.payloads.extend(more);
    end(
        i,
        Statement::Publish(p),
        "expected ',' and another payload, or ';'",
    )
}

/// `name = 'value'` in HEADERS.
fn header(input: &str) -> PResult<'_, (String, String)> {
    let (i, h) = expect(name, "expected a header name")(input)?;
    let (i, _) = expect(punct('='), "expected '='")(i)?;
    let (i, v) = expect(string, "expected a header value in quotes")(i)?;
    Ok((i, (h, v)))
}
