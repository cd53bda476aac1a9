//! Table mode: aligned columns with a header, then a row count.

use std::io::{self, Write};

use comfy_table::{Cell, CellAlignment, ContentArrangement, Table, presets};
use mqlite::{ResultSet, Value};
use unicode_width::UnicodeWidthChar;

use super::RenderOptions;

/// Writes `rs` as a table followed by `(n rows)`; a result without columns prints nothing.
pub fn render(out: &mut impl Write, rs: &ResultSet, opts: &RenderOptions) -> io::Result<()> {
    if rs.columns.is_empty() {
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_style(presets::UTF8_FULL_CONDENSED)
        // Widths come from our own cutting, not from the terminal, so output
        // is the same on a terminal, in a pipe and in tests.
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(rs.columns.iter().map(|c| Cell::new(cut(c, opts.max_width))));
    for row in &rs.rows {
        table.add_row(row.iter().map(|v| cell(v, opts.max_width)));
    }
    writeln!(out, "{table}")?;
    let n = rs.rows.len();
    writeln!(out, "({n} {})", if n == 1 { "row" } else { "rows" })
}

fn cell(value: &Value, max_width: usize) -> Cell {
    let cell = Cell::new(cut(&value.to_string(), max_width));
    match value {
        Value::Int(_) | Value::Float(_) => cell.set_alignment(CellAlignment::Right),
        _ => cell,
    }
}

/// Cuts each line of `text` to `max_width` display columns, ending a cut line with `…`.
///
/// Control characters other than newline are shown escaped: payloads are
/// arbitrary text and must not move the cursor or restyle the terminal.
fn cut(text: &str, max_width: usize) -> String {
    let mut result = String::with_capacity(text.len().min(max_width * 4));
    for (i, line) in text.split('\n').enumerate() {
        if i > 0 {
            result.push('\n');
        }
        let mut width = 0;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            let shown: String = if c.is_control() {
                c.escape_default().collect()
            } else {
                c.to_string()
            };
            let w: usize = shown.chars().map(|c| c.width().unwrap_or(0)).sum();
            // Keep one column for the marker unless this is the last character.
            let room = if chars.peek().is_some() {
                max_width.saturating_sub(1)
            } else {
                max_width
            };
            if width + w > room {
                result.push('…');
                break;
            }
            width += w;
            result.push_str(&shown);
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::fixtures::{self, show};
    use super::*;

    #[test]
    fn every_value() {
        insta::assert_snapshot!(show(&fixtures::every_value(), Mode::Table));
    }

    #[test]
    fn consume_rows() {
        insta::assert_snapshot!(show(&fixtures::consume(), Mode::Table));
    }

    #[test]
    fn awkward_text_is_cut() {
        insta::assert_snapshot!(show(&fixtures::awkward_text(), Mode::Table));
    }

    #[test]
    fn one_row_and_no_rows() {
        let mut rs = ResultSet::with_columns(["n"]);
        assert_eq!(show(&rs, Mode::Table).lines().last(), Some("(0 rows)"));
        rs.rows.push(vec![Value::Int(1)]);
        assert_eq!(show(&rs, Mode::Table).lines().last(), Some("(1 row)"));
    }

    #[test]
    fn no_columns_prints_nothing() {
        assert_eq!(show(&ResultSet::empty(), Mode::Table), "");
    }

    #[test]
    fn cut_counts_display_columns() {
        assert_eq!(cut("abcdef", 6), "abcdef");
        assert_eq!(cut("abcdefg", 6), "abcde…");
        assert_eq!(cut("日本語です", 6), "日本…");
        assert_eq!(cut("ab\ncdefgh", 4), "ab\ncde…");
        assert_eq!(cut("a\x1b[31mb", 40), "a\\u{1b}[31mb");
        assert_eq!(cut("", 3), "");
    }
}
