//! line mode, as in sqlite3: one `column = value` per line, a blank line between rows.

use std::io::{self, Write};

use mqlite::ResultSet;
use unicode_width::UnicodeWidthStr;

use super::Batch;

/// Writes each row as `name = value` lines with names right-aligned to the widest.
pub fn render(out: &mut impl Write, rs: &ResultSet, batch: Batch) -> io::Result<()> {
    let width = rs.columns.iter().map(|c| c.width()).max().unwrap_or(0);
    for (i, row) in rs.rows.iter().enumerate() {
        if i > 0 || batch == Batch::More {
            writeln!(out)?;
        }
        for (column, value) in rs.columns.iter().zip(row) {
            let pad = width - column.width();
            writeln!(out, "{:pad$}{column} = {value}", "")?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::fixtures::{self, show};
    use super::*;

    #[test]
    fn every_value() {
        insta::assert_snapshot!(show(&fixtures::every_value(), Mode::Line));
    }

    #[test]
    fn consume_rows() {
        insta::assert_snapshot!(show(&fixtures::consume(), Mode::Line));
    }

    #[test]
    fn awkward_text() {
        insta::assert_snapshot!(show(&fixtures::awkward_text(), Mode::Line));
    }

    #[test]
    fn later_batch_starts_with_a_blank_line() {
        let mut rs = ResultSet::with_columns(["a"]);
        rs.rows.push(vec![mqlite::Value::Int(1)]);
        let mut out = Vec::new();
        render(&mut out, &rs, Batch::More).expect("write to Vec");
        assert_eq!(out, b"\na = 1\n");
    }
}
