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
            Err(_) => ms.to_string(),
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
