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
    /// Text (payloads are always text; invalid UTF-8 is replaced).
    Text(String),
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
            Value::Json(j) => write!(f, "{j}"),
            Value::Timestamp(ms) => f.write_str(&Value::format_timestamp(*ms)),
        }
    }
}

/// The result of one statement: named columns and rows.
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
        let i = self.columns.iter().position(|c| c == column)?;
        self.rows.get(row)?.get(i)
    }
}

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
