//! csv mode: RFC 4180 with a header line.

use std::io::{self, Write};

use mqlite::{ResultSet, Value};

use super::Batch;

/// Writes a header line (on a statement's first batch) and one record per row.
/// NULL is an empty field. A result without columns prints nothing.
pub fn render(out: &mut impl Write, rs: &ResultSet, batch: Batch) -> io::Result<()> {
    if rs.columns.is_empty() {
        return Ok(());
    }
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(::csv::Terminator::CRLF)
        .from_writer(out);
    if batch == Batch::First {
        writer.write_record(&rs.columns)?;
    }
    for row in &rs.rows {
        writer.write_record(row.iter().map(field))?;
    }
    writer.flush()
}

fn field(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::fixtures::{self, show};
    use super::*;

    #[test]
    fn every_value() {
        insta::assert_snapshot!(show(&fixtures::every_value(), Mode::Csv));
    }

    #[test]
    fn consume_rows() {
        insta::assert_snapshot!(show(&fixtures::consume(), Mode::Csv));
    }

    #[test]
    fn awkward_text_is_quoted() {
        insta::assert_snapshot!(show(&fixtures::awkward_text(), Mode::Csv));
    }

    #[test]
    fn later_batches_have_no_header() {
        let mut rs = ResultSet::with_columns(["a", "b"]);
        rs.rows.push(vec![Value::Int(1), Value::Null]);
        let mut out = Vec::new();
        render(&mut out, &rs, Batch::More).expect("write to Vec");
        assert_eq!(out, b"1,\r\n");
    }
}
