//! Rows and values returned by the command language.

use std::fmt;

/// One value in a result row.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL / absent.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating point number.
    Float(f64),
    /// Text (a payload that is valid UTF-8, names, keys...).
    Text(String),
    /// A payload that is not UTF-8, byte for byte. It shows (`Display`,
    /// [`Value::to_json`], the shell) as text with U+FFFD in place of the
    /// invalid bytes; [`Value::as_bytes`] gives the bytes.
    Bytes(Vec<u8>),
    /// A JSON value that is rendered as JSON (headers, JSON sub-objects).
    Json(serde_json::Value),
    /// A point in time, ms since the Unix epoch; rendered as RFC 3339.
    Timestamp(i64),
}

impl Value {
    /// Renders a timestamp in ms as RFC 3339 (UTC, millisecond precision).
    pub fn format_timestamp(ms: i64) -> String {
        match jiff::Timestamp::from_millisecond(ms) {
            Ok(ts) => format!("{ts:.3}"),
            Err(_) => match utc_civil(ms) {
                Some(dt) => format!("{dt:.3}Z"),
                None => ms.to_string(),
            },
        }
    }

    /// True for [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The integer of a [`Value::Int`]; None for every other variant
    /// (a float is not truncated, a timestamp has [`Value::as_timestamp`]).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of a [`Value::Float`], or of a [`Value::Int`] converted
    /// (exact up to 2^53); None for every other variant.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Float(x) => Some(*x),
            Value::Int(i) => Some(*i as f64),
            _ => None,
        }
    }

    /// The text of a [`Value::Text`]; None for every other variant.
    ///
    /// A [`Value::Timestamp`] is an instant, not text: read it with
    /// [`Value::as_timestamp`], or format it with `to_string()` (RFC 3339).
    /// A JSON string in a payload field arrives as `Text`, so this reads it.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The bytes of a [`Value::Bytes`], or of a [`Value::Text`] (its UTF-8);
    /// None for every other variant. Reads any payload byte for byte.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            Value::Text(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A payload's value: [`Value::Text`] when it is UTF-8, else
    /// [`Value::Bytes`].
    pub(crate) fn payload(bytes: Vec<u8>) -> Value {
        match String::from_utf8(bytes) {
            Ok(text) => Value::Text(text),
            Err(e) => Value::Bytes(e.into_bytes()),
        }
    }

    /// The boolean of a [`Value::Bool`]; None for every other variant.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// The JSON of a [`Value::Json`] (objects, arrays, headers); None for
    /// every other variant. [`Value::to_json`] converts any value.
    pub fn as_json(&self) -> Option<&serde_json::Value> {
        match self {
            Value::Json(j) => Some(j),
            _ => None,
        }
    }

    /// The instant of a [`Value::Timestamp`]; None for every other variant
    /// and for the last hours of year 9999, past [`jiff::Timestamp::MAX`]
    /// (the value then still displays as RFC 3339).
    pub fn as_timestamp(&self) -> Option<jiff::Timestamp> {
        match self {
            Value::Timestamp(ms) => jiff::Timestamp::from_millisecond(*ms).ok(),
            _ => None,
        }
    }

    /// The value as JSON, per the jsonl output contract.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Int(i) => serde_json::Value::from(*i),
            Value::Float(f) => serde_json::Number::from_f64(*f)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Text(s) => serde_json::Value::String(s.clone()),
            Value::Bytes(b) => serde_json::Value::String(String::from_utf8_lossy(b).into_owned()),
            Value::Json(j) => j.clone(),
            Value::Timestamp(ms) => serde_json::Value::String(Value::format_timestamp(*ms)),
        }
    }
}

impl fmt::Display for Value {
    /// The plain text of a value, as the table, csv and line modes show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
            Value::Bytes(b) => f.write_str(&String::from_utf8_lossy(b)),
            Value::Json(j) => write!(f, "{j}"),
            Value::Timestamp(ms) => f.write_str(&Value::format_timestamp(*ms)),
        }
    }
}

/// The result of one statement: named columns and rows.
///
/// Read rows by column name with [`ResultSet::iter`] (or `for row in &rs`);
/// `Display` prints an aligned plain-text table.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResultSet {
    /// Column names, in order.
    pub columns: Vec<String>,
    /// Rows; each has one value per column.
    pub rows: Vec<Vec<Value>>,
}

impl ResultSet {
    /// A result with no columns and no rows (a statement that returns nothing).
    pub fn empty() -> ResultSet {
        ResultSet::default()
    }

    /// A result with the given columns and no rows yet.
    pub fn with_columns<I, S>(columns: I) -> ResultSet
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        ResultSet {
            columns: columns.into_iter().map(Into::into).collect(),
            rows: Vec::new(),
        }
    }

    /// The value at `row` in the column named `column`.
    pub fn get(&self, row: usize, column: &str) -> Option<&Value> {
        self.rows.get(row)?.get(self.column(column)?)
    }

    /// The position of the column named `name` (the first, if two share it).
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The number of rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i`, read by column name.
    pub fn row(&self, i: usize) -> Option<Row<'_>> {
        Some(Row {
            columns: &self.columns,
            values: self.rows.get(i)?,
        })
    }

    /// The rows in order, read by column name; `for row in &rs` does the same.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let db = mqlite::Database::open(dir.path().join("doc.db"))?;
    /// db.execute("CREATE QUEUE jobs; PUBLISH jobs 'a', 'b'")?;
    /// let rs = db.execute("SELECT offset, timestamp, payload FROM jobs")?;
    /// for row in &rs {
    ///     let offset: Option<i64> = row.get_i64("offset");
    ///     let at: Option<mqlite::jiff::Timestamp> = row.get_timestamp("timestamp");
    ///     println!("{offset:?} {at:?} {:?}", row.get_str("payload"));
    /// }
    /// let payloads: Vec<&str> = rs.iter().filter_map(|r| r.get_str("payload")).collect();
    /// assert_eq!(payloads, ["a", "b"]);
    /// assert!(rs.iter().all(|r| r.get_timestamp("timestamp").is_some()));
    /// println!("{rs}"); // an aligned table
    /// # Ok::<(), mqlite::Error>(())
    /// ```
    pub fn iter(&self) -> Rows<'_> {
        Rows {
            columns: &self.columns,
            rows: self.rows.iter(),
        }
    }
}

impl<'a> IntoIterator for &'a ResultSet {
    type Item = Row<'a>;
    type IntoIter = Rows<'a>;

    fn into_iter(self) -> Rows<'a> {
        self.iter()
    }
}

impl fmt::Display for ResultSet {
    /// A plain-text table: the header, a rule, then one line per row, with
    /// numbers aligned right. Widths count characters; control characters
    /// (newlines included) are escaped so that each row stays on one line.
    /// A result without columns prints nothing. The shell's table mode
    /// renders more carefully (display widths, cut cells, row count).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.columns.is_empty() {
            return Ok(());
        }
        let header: Vec<String> = self.columns.iter().map(|c| escape_controls(c)).collect();
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| r.iter().map(|v| escape_controls(&v.to_string())).collect())
            .collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let right = |i: usize, row: usize| {
            matches!(self.rows[row].get(i), Some(Value::Int(_) | Value::Float(_)))
        };
        write_line(f, &widths, header.iter().map(|h| (h.as_str(), false)))?;
        let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
        writeln!(f, "{}", rule.join("-+-"))?;
        for (r, row) in cells.iter().enumerate() {
            write_line(
                f,
                &widths,
                row.iter()
                    .enumerate()
                    .map(|(i, c)| (c.as_str(), right(i, r))),
            )?;
        }
        Ok(())
    }
}

/// One line of the plain-text table: cells padded to `widths`, joined by
/// ` | `; the last cell is not padded on the right, so no line ends in spaces
/// that are not its text.
fn write_line<'c>(
    f: &mut fmt::Formatter<'_>,
    widths: &[usize],
    cells: impl Iterator<Item = (&'c str, bool)>,
) -> fmt::Result {
    let last = widths.len().saturating_sub(1);
    for (i, ((cell, right), width)) in cells.zip(widths).enumerate() {
        if i > 0 {
            f.write_str(" | ")?;
        }
        let pad = " ".repeat(width.saturating_sub(cell.chars().count()));
        match (right, i == last) {
            (true, _) => write!(f, "{pad}{cell}")?,
            (false, false) => write!(f, "{cell}{pad}")?,
            (false, true) => f.write_str(cell)?,
        }
    }
    writeln!(f)
}

/// `text` with control characters escaped (`\n`, `\u{1b}`), for one-line cells.
fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// One row of a [`ResultSet`], read by column name.
///
/// Every getter is None when the column does not exist, the value is NULL,
/// or the value is of another type; [`Row::get`] tells these apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl<'a> Row<'a> {
    /// The value in the column named `name`; None when there is no such column.
    pub fn get(&self, name: &str) -> Option<&'a Value> {
        let i = self.columns.iter().position(|c| c == name)?;
        self.values.get(i)
    }

    /// The column as an integer ([`Value::as_i64`]).
    pub fn get_i64(&self, name: &str) -> Option<i64> {
        self.get(name)?.as_i64()
    }

    /// The column as a float; integers convert ([`Value::as_f64`]).
    pub fn get_f64(&self, name: &str) -> Option<f64> {
        self.get(name)?.as_f64()
    }

    /// The column as text ([`Value::as_str`]).
    pub fn get_str(&self, name: &str) -> Option<&'a str> {
        self.get(name)?.as_str()
    }

    /// The column as bytes: a payload byte for byte ([`Value::as_bytes`]).
    pub fn get_bytes(&self, name: &str) -> Option<&'a [u8]> {
        self.get(name)?.as_bytes()
    }

    /// The column as a boolean ([`Value::as_bool`]).
    pub fn get_bool(&self, name: &str) -> Option<bool> {
        self.get(name)?.as_bool()
    }

    /// The column as JSON ([`Value::as_json`]).
    pub fn get_json(&self, name: &str) -> Option<&'a serde_json::Value> {
        self.get(name)?.as_json()
    }

    /// The column as an instant ([`Value::as_timestamp`]).
    pub fn get_timestamp(&self, name: &str) -> Option<jiff::Timestamp> {
        self.get(name)?.as_timestamp()
    }

    /// The column names, in order.
    pub fn columns(&self) -> &'a [String] {
        self.columns
    }

    /// The values, one per column, in order.
    pub fn values(&self) -> &'a [Value] {
        self.values
    }
}

/// The rows of a [`ResultSet`]: [`ResultSet::iter`].
#[derive(Debug, Clone)]
pub struct Rows<'a> {
    columns: &'a [String],
    rows: std::slice::Iter<'a, Vec<Value>>,
}

impl<'a> Iterator for Rows<'a> {
    type Item = Row<'a>;

    fn next(&mut self) -> Option<Row<'a>> {
        let values = self.rows.next()?;
        Some(Row {
            columns: self.columns,
            values,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.rows.size_hint()
    }
}

impl DoubleEndedIterator for Rows<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let values = self.rows.next_back()?;
        Some(Row {
            columns: self.columns,
            values,
        })
    }
}

impl ExactSizeIterator for Rows<'_> {}

/// The first instant a timestamp of the language may name, in ms since the
/// epoch: 0000-01-01T00:00:00Z, the start of RFC 3339's four-digit years.
pub(crate) const MIN_TIMESTAMP_MS: i64 = -62_167_219_200_000;
/// The last: 9999-12-31T23:59:59.999Z.
pub(crate) const MAX_TIMESTAMP_MS: i64 = 253_402_300_799_999;

/// The UTC civil time of `ms` since the epoch, within the RFC 3339 range.
/// jiff's `Timestamp` stops at 9999-12-30T22:00:00Z (it leaves room for
/// offsets), so the last hours of year 9999 are computed as civil time.
pub(crate) fn utc_civil(ms: i64) -> Option<jiff::civil::DateTime> {
    if !(MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS).contains(&ms) {
        return None;
    }
    let epoch = jiff::civil::date(1970, 1, 1).to_datetime(jiff::civil::Time::midnight());
    epoch
        .checked_add(jiff::SignedDuration::from_millis(ms))
        .ok()
}

/// Ms since the epoch of an RFC 3339 timestamp (`2024-01-15T10:30:00Z`,
/// `...+02:00`), or None when it is not one or names an instant outside
/// 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59.999Z.
pub(crate) fn parse_timestamp_ms(text: &str) -> Option<i64> {
    let ms = match text.parse::<jiff::Timestamp>() {
        Ok(ts) => ts.as_millisecond(),
        // Past jiff's range: read the civil time and offset, and do the sum.
        Err(_) => {
            use jiff::fmt::temporal::{Pieces, PiecesOffset};
            let p = Pieces::parse(text).ok()?;
            let offset_s = match p.offset()? {
                PiecesOffset::Zulu => 0,
                PiecesOffset::Numeric(n) => i64::from(n.offset().seconds()),
                _ => return None,
            };
            let epoch = jiff::civil::date(1970, 1, 1).to_datetime(jiff::civil::Time::midnight());
            let since = p.date().to_datetime(p.time()?).duration_since(epoch);
            i64::try_from(since.as_millis()).ok()? - offset_s * 1000
        }
    };
    (MIN_TIMESTAMP_MS..=MAX_TIMESTAMP_MS)
        .contains(&ms)
        .then_some(ms)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accessors_read_their_own_variant_only() {
        assert!(Value::Null.is_null());
        assert!(!Value::Int(0).is_null());
        assert_eq!(Value::Int(-7).as_i64(), Some(-7));
        assert_eq!(Value::Float(1.0).as_i64(), None);
        assert_eq!(Value::Timestamp(5).as_i64(), None);
        assert_eq!(Value::Text("1".into()).as_i64(), None);
        assert_eq!(Value::Float(2.5).as_f64(), Some(2.5));
        assert_eq!(Value::Int(3).as_f64(), Some(3.0));
        assert_eq!(Value::Text("3".into()).as_f64(), None);
        assert_eq!(Value::Text("hi".into()).as_str(), Some("hi"));
        assert_eq!(Value::Timestamp(0).as_str(), None);
        assert_eq!(Value::Json(json!("hi")).as_str(), None);
        assert_eq!(Value::Bool(true).as_bool(), Some(true));
        assert_eq!(Value::Int(1).as_bool(), None);
        assert_eq!(
            Value::Json(json!({"a": 1})).as_json(),
            Some(&json!({"a": 1}))
        );
        assert_eq!(Value::Text("{}".into()).as_json(), None);
        for v in [
            Value::Null,
            Value::Bool(false),
            Value::Int(0),
            Value::Text(String::new()),
        ] {
            assert_eq!(v.as_timestamp(), None, "{v:?}");
        }
        for v in [Value::Bool(true), Value::Int(1), Value::Text("x".into())] {
            assert!(!v.is_null());
            assert_eq!(v.as_json(), None);
        }
        assert_eq!(Value::Null.as_i64(), None);
        assert_eq!(Value::Null.as_str(), None);
    }

    #[test]
    fn bytes_read_as_bytes_and_show_as_text() {
        let b = Value::Bytes(vec![0xff, 0x00, 0xfe]);
        assert_eq!(b.as_bytes(), Some(&[0xff, 0x00, 0xfe][..]));
        assert_eq!(b.as_str(), None);
        assert_eq!(b.to_string(), "\u{fffd}\0\u{fffd}");
        assert_eq!(b.to_json(), json!("\u{fffd}\u{0}\u{fffd}"));
        assert_eq!(Value::Text("hé".into()).as_bytes(), Some("hé".as_bytes()));
        assert_eq!(Value::Int(1).as_bytes(), None);
        assert_eq!(Value::payload(b"ok".to_vec()), Value::Text("ok".into()));
        assert_eq!(Value::payload(vec![0xff]), Value::Bytes(vec![0xff]));
    }

    #[test]
    fn as_timestamp_reads_ms_and_stops_at_jiffs_end() {
        let ts: jiff::Timestamp = "2024-01-15T10:30:00.250Z".parse().unwrap();
        assert_eq!(
            Value::Timestamp(ts.as_millisecond()).as_timestamp(),
            Some(ts)
        );
        assert_eq!(
            Value::Timestamp(MIN_TIMESTAMP_MS)
                .as_timestamp()
                .map(|t| t.to_string()),
            Some("0000-01-01T00:00:00Z".into())
        );
        // Year 9999's last hours display, but are past jiff::Timestamp::MAX.
        let last = Value::Timestamp(MAX_TIMESTAMP_MS);
        assert_eq!(last.as_timestamp(), None);
        assert_eq!(last.to_string(), "9999-12-31T23:59:59.999Z");
    }

    fn sample() -> ResultSet {
        let mut rs = ResultSet::with_columns(["id", "name", "score", "ok", "at", "h"]);
        rs.rows.push(vec![
            Value::Int(1),
            Value::Text("ada".into()),
            Value::Float(9.5),
            Value::Bool(true),
            Value::Timestamp(0),
            Value::Json(json!({"k": "v"})),
        ]);
        rs.rows.push(vec![
            Value::Int(20),
            Value::Null,
            Value::Int(7),
            Value::Bool(false),
            Value::Null,
            Value::Null,
        ]);
        rs
    }

    #[test]
    fn rows_are_read_by_column_name() {
        let rs = sample();
        assert_eq!(rs.len(), 2);
        assert!(!rs.is_empty());
        assert!(ResultSet::with_columns(["a"]).is_empty());
        assert_eq!(rs.column("name"), Some(1));
        assert_eq!(rs.column("nope"), None);

        let first = rs.row(0).unwrap();
        assert_eq!(first.get_i64("id"), Some(1));
        assert_eq!(first.get_str("name"), Some("ada"));
        assert_eq!(first.get_f64("score"), Some(9.5));
        assert_eq!(first.get_bool("ok"), Some(true));
        assert_eq!(first.get_timestamp("at"), Some(jiff::Timestamp::UNIX_EPOCH));
        assert_eq!(first.get_json("h"), Some(&json!({"k": "v"})));
        assert_eq!(first.get("nope"), None);
        assert_eq!(first.get_i64("name"), None, "text is not an integer");
        assert_eq!(first.columns(), rs.columns.as_slice());
        assert_eq!(first.values(), rs.rows[0].as_slice());

        let second = rs.row(1).unwrap();
        assert_eq!(second.get("name"), Some(&Value::Null));
        assert_eq!(second.get_str("name"), None);
        assert_eq!(second.get_f64("score"), Some(7.0), "an integer converts");
        assert!(rs.row(2).is_none());

        let ids: Vec<i64> = rs.iter().filter_map(|r| r.get_i64("id")).collect();
        assert_eq!(ids, [1, 20]);
        let mut n = 0;
        for row in &rs {
            assert!(row.get("ok").is_some());
            n += 1;
        }
        assert_eq!(n, 2);
        assert_eq!(rs.iter().len(), 2);
        assert_eq!(
            rs.iter().next_back().and_then(|r| r.get_i64("id")),
            Some(20)
        );
        assert_eq!(rs.get(1, "id"), Some(&Value::Int(20)));
    }

    #[test]
    fn display_is_an_aligned_table() {
        let text = sample().to_string();
        let want = "\
id | name | score | ok    | at                       | h
---+------+-------+-------+--------------------------+----------
 1 | ada  |   9.5 | true  | 1970-01-01T00:00:00.000Z | {\"k\":\"v\"}
20 | NULL |     7 | false | NULL                     | NULL
";
        assert_eq!(text, want);
    }

    #[test]
    fn display_keeps_each_row_on_one_line() {
        let mut rs = ResultSet::with_columns(["payload", "n"]);
        rs.rows
            .push(vec![Value::Text("a\nb\x1b".into()), Value::Int(1)]);
        rs.rows
            .push(vec![Value::Text("日本".into()), Value::Int(-10)]);
        assert_eq!(
            rs.to_string(),
            "payload    | n\n\
             -----------+----\n\
             a\\nb\\u{1b} |   1\n\
             日本         | -10\n"
        );
    }

    #[test]
    fn display_of_no_columns_is_empty_and_no_rows_is_the_header() {
        assert_eq!(ResultSet::empty().to_string(), "");
        assert_eq!(
            ResultSet::with_columns(["a", "bc"]).to_string(),
            "a | bc\n--+---\n"
        );
    }
}
