//! Output formats for result sets: table, jsonl, csv and line.
//!
//! Renderers write to any `impl Write` so tests can capture their output.

mod csv;
mod jsonl;
mod line;
mod table;

use std::fmt;
use std::io::{self, Write};
use std::str::FromStr;

use mqlite::ResultSet;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    /// An aligned table with a header and a row count.
    Table,
    /// One JSON object per row (the format other programs parse).
    Jsonl,
    /// RFC 4180 CSV with a header line.
    Csv,
    /// One `column = value` per line, a blank line between rows.
    Line,
}

impl Mode {
    /// Every mode, in the order `.help` lists them.
    pub const ALL: [Mode; 4] = [Mode::Table, Mode::Jsonl, Mode::Csv, Mode::Line];
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        Mode::ALL
            .into_iter()
            .find(|m| m.to_string().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown mode '{s}': expected one of table, jsonl, csv, line"))
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Mode::Table => "table",
            Mode::Jsonl => "jsonl",
            Mode::Csv => "csv",
            Mode::Line => "line",
        })
    }
}

/// Everything that decides how a result looks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// The output format.
    pub mode: Mode,
    /// Table mode cuts cell text wider than this many columns, marking the cut with `…`.
    pub max_width: usize,
}

impl RenderOptions {
    /// Options for `mode` with the default cell width.
    pub fn new(mode: Mode) -> RenderOptions {
        RenderOptions {
            mode,
            max_width: 40,
        }
    }
}

/// Whether a result set starts a statement's output or continues it.
///
/// A statement such as TAIL delivers its rows in several batches; csv prints
/// its header line only once per statement and line mode keeps the blank line
/// between rows across batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// The first result set of a statement.
    First,
    /// A later result set of the same statement.
    More,
}

/// Prints one statement's result sets in the chosen mode as they arrive.
#[derive(Debug)]
pub struct Printer {
    batch: Batch,
    table: table::Stream,
}

impl Printer {
    /// A printer whose first result set is `batch` (line mode continues the
    /// rows of the statement before with `Batch::More`).
    pub fn new(batch: Batch) -> Printer {
        Printer {
            batch,
            table: table::Stream::default(),
        }
    }

    /// Writes one result set.
    ///
    /// # Errors
    /// Fails when `out` fails.
    pub fn print(
        &mut self,
        out: &mut impl Write,
        rs: &ResultSet,
        opts: &RenderOptions,
    ) -> io::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Batch::More);
        match opts.mode {
            Mode::Table => self.table.batch(out, rs, opts),
            Mode::Jsonl => jsonl::render(out, rs),
            Mode::Csv => csv::render(out, rs, batch),
            Mode::Line => line::render(out, rs, batch),
        }
    }

    /// Ends the statement's output: a table's bottom rule and row count.
    ///
    /// # Errors
    /// Fails when `out` fails.
    pub fn finish(&mut self, out: &mut impl Write) -> io::Result<()> {
        self.table.finish(out)
    }

    /// True once table mode has printed a result with columns.
    pub fn printed_table(&self) -> bool {
        self.table.started()
    }
}

/// Writes one result set of a statement in the chosen mode, whole.
///
/// # Errors
/// Fails when `out` fails.
#[cfg(test)]
pub fn render(
    out: &mut impl Write,
    rs: &ResultSet,
    opts: &RenderOptions,
    batch: Batch,
) -> io::Result<()> {
    let mut printer = Printer::new(batch);
    printer.print(out, rs, opts)?;
    printer.finish(out)
}

#[cfg(test)]
pub(crate) mod fixtures {
    use mqlite::{ResultSet, Value};

    /// Every `Value` variant, NULL included, in one row.
    pub fn every_value() -> ResultSet {
        let mut rs = ResultSet::with_columns([
            "null",
            "bool",
            "int",
            "float",
            "text",
            "json",
            "timestamp",
            "bytes",
        ]);
        rs.rows.push(vec![
            Value::Null,
            Value::Bool(true),
            Value::Int(-42),
            Value::Float(2.5),
            Value::Text("héllo wörld".into()),
            Value::Json(serde_json::json!({"b": 1, "a": [true, null]})),
            Value::Timestamp(1_705_314_600_123),
            Value::Bytes(vec![b'o', b'k', 0xff]),
        ]);
        rs
    }

    /// Rows shaped like a CONSUME result.
    pub fn consume() -> ResultSet {
        let mut rs = ResultSet::with_columns([
            "delivery",
            "topic",
            "partition",
            "offset",
            "key",
            "attempt",
            "timestamp",
            "headers",
            "payload",
        ]);
        rs.rows.push(vec![
            Value::Int(1),
            Value::Text("orders".into()),
            Value::Int(0),
            Value::Int(0),
            Value::Text("customer-7".into()),
            Value::Int(1),
            Value::Timestamp(1_705_314_600_000),
            Value::Json(serde_json::json!({"source": "web"})),
            Value::Text(r#"{"orderId": "ORD-1", "total": 99.5}"#.into()),
        ]);
        rs.rows.push(vec![
            Value::Int(2),
            Value::Text("orders".into()),
            Value::Int(1),
            Value::Int(17),
            Value::Null,
            Value::Int(3),
            Value::Timestamp(1_705_314_601_500),
            Value::Json(serde_json::json!({})),
            Value::Text("plain text".into()),
        ]);
        rs
    }

    /// Text that needs quoting in csv and cutting in tables.
    pub fn awkward_text() -> ResultSet {
        let mut rs = ResultSet::with_columns(["id", "payload"]);
        rs.rows
            .push(vec![Value::Int(1), Value::Text("a, b".into())]);
        rs.rows
            .push(vec![Value::Int(2), Value::Text(r#"say "hi""#.into())]);
        rs.rows.push(vec![
            Value::Int(3),
            Value::Text("line one\nline two".into()),
        ]);
        rs.rows
            .push(vec![Value::Int(4), Value::Text("x".repeat(100))]);
        rs.rows.push(vec![Value::Int(5), Value::Null]);
        rs.rows
            .push(vec![Value::Int(6), Value::Text(String::new())]);
        rs
    }

    /// Renders with the given mode as one batch.
    pub fn show(rs: &ResultSet, mode: super::Mode) -> String {
        let mut out = Vec::new();
        super::render(
            &mut out,
            rs,
            &super::RenderOptions::new(mode),
            super::Batch::First,
        )
        .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("renderers write UTF-8")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_round_trips_through_text() {
        for mode in Mode::ALL {
            assert_eq!(mode.to_string().parse::<Mode>(), Ok(mode));
        }
        assert_eq!("JSONL".parse::<Mode>(), Ok(Mode::Jsonl));
        assert!("xml".parse::<Mode>().is_err());
    }
}
