//! Table mode: aligned columns with a header, then a row count.

use std::io::{self, Write};

use comfy_table::{
    Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table, Width, presets,
};
use mqlite::{ResultSet, Value};
use unicode_width::UnicodeWidthChar;

use super::RenderOptions;

/// One statement's table, printed as its result sets arrive (TAIL sends
/// one per new message): the header once, rows under it, and the bottom
/// rule and `(n rows)` at the end. A column is at least as wide as it was
/// in the batches before, so rows line up unless a later one is wider.
#[derive(Debug, Default)]
pub struct Stream {
    /// Column widths so far, borders' padding included.
    widths: Vec<u16>,
    rows: usize,
    /// The latest batch's bottom rule, printed by `finish`.
    bottom: Option<String>,
    started: bool,
}

impl Stream {
    /// Prints one result set's rows (and, first, the header).
    pub fn batch(
        &mut self,
        out: &mut impl Write,
        rs: &ResultSet,
        opts: &RenderOptions,
    ) -> io::Result<()> {
        if rs.columns.is_empty() || (self.started && rs.rows.is_empty()) {
            return Ok(());
        }
        let mut table = Table::new();
        table
            .load_style(presets::UTF8_FULL_CONDENSED)
            // Widths come from our own cutting, not from the terminal, so output
            // is the same on a terminal, in a pipe and in tests.
            .set_content_arrangement(ContentArrangement::Disabled);
        if !self.started {
            table.set_header(rs.columns.iter().map(|c| Cell::new(cut(c, opts.max_width))));
        }
        for row in &rs.rows {
            table.add_row(row.iter().map(|v| cell(v, opts.max_width)));
        }
        if self.started {
            table.set_constraints(
                self.widths
                    .iter()
                    .map(|w| ColumnConstraint::LowerBoundary(Width::Fixed(*w))),
            );
        }
        let text = table.to_string();
        let mut lines: Vec<&str> = text.lines().collect();
        self.bottom = lines.pop().map(str::to_string);
        let top = if self.started {
            lines.remove(0)
        } else {
            lines[0]
        };
        // The top rule `┌──┬───┐` gives each column's width.
        let widths = top.trim_start_matches('┌').trim_end_matches('┐').split('┬');
        self.widths = widths
            .map(|seg| u16::try_from(seg.chars().count()).unwrap_or(u16::MAX))
            .collect();
        for line in lines {
            writeln!(out, "{line}")?;
        }
        self.rows += rs.rows.len();
        self.started = true;
        Ok(())
    }

    /// Ends the table: its bottom rule and the row count; nothing if no
    /// result had columns.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        if !self.started {
            return Ok(());
        }
        if let Some(bottom) = self.bottom.take() {
            writeln!(out, "{bottom}")?;
        }
        let n = self.rows;
        writeln!(out, "({n} {})", if n == 1 { "row" } else { "rows" })
    }

    /// True once a result with columns was printed.
    pub fn started(&self) -> bool {
        self.started
    }
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
    fn batches_share_one_header_and_one_count() {
        let opts = RenderOptions::new(Mode::Table);
        let batch = |rows: &[(i64, &str)]| {
            let mut rs = ResultSet::with_columns(["offset", "payload"]);
            for (o, p) in rows {
                rs.rows
                    .push(vec![Value::Int(*o), Value::Text(p.to_string())]);
            }
            rs
        };
        let mut out = Vec::new();
        let mut stream = Stream::default();
        stream
            .batch(&mut out, &batch(&[(0, "first")]), &opts)
            .unwrap();
        stream.batch(&mut out, &batch(&[(1, "b")]), &opts).unwrap();
        stream
            .batch(&mut out, &batch(&[(2, "c"), (3, "d")]), &opts)
            .unwrap();
        stream.finish(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let all = batch(&[(0, "first"), (1, "b"), (2, "c"), (3, "d")]);
        assert_eq!(text, show(&all, Mode::Table), "as if it came in one piece");
        assert_eq!(text.matches("offset").count(), 1);
        assert_eq!(text.matches("rows)").count(), 1);
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
