//! jsonl mode: one JSON object per row, keys in column order.

use std::io::{self, Write};

use mqlite::{ResultSet, Value};

/// Writes one JSON object per row; a result without rows prints nothing.
///
/// The object is written by hand rather than through a `serde_json::Map`
/// so keys keep column order without turning on `preserve_order` for the
/// whole workspace.
pub fn render(out: &mut impl Write, rs: &ResultSet) -> io::Result<()> {
    if rs.rows.is_empty() {
        return Ok(());
    }
    let keys = keys(&rs.columns);
    for row in &rs.rows {
        out.write_all(b"{")?;
        for (i, ((column, key), value)) in rs.columns.iter().zip(&keys).zip(row).enumerate() {
            if i > 0 {
                out.write_all(b",")?;
            }
            serde_json::to_writer(&mut *out, key)?;
            out.write_all(b":")?;
            serde_json::to_writer(&mut *out, &to_json(column, value))?;
        }
        out.write_all(b"}\n")?;
    }
    Ok(())
}

/// One key per column, unique within the object: a name that came before
/// gets `:1` (then `:2`, ...: how many times it came before), skipping any
/// such name another column has (`SELECT *, key` gives `key` and `key:1`).
/// A JSON object with a key twice is read differently by each parser.
fn keys(columns: &[String]) -> Vec<String> {
    use std::collections::HashSet;
    let names: HashSet<&str> = columns.iter().map(String::as_str).collect();
    let mut used: HashSet<String> = HashSet::new();
    let mut keys = Vec::with_capacity(columns.len());
    for column in columns {
        let mut key = column.clone();
        let mut n = 0;
        while used.contains(&key) {
            n += 1;
            key = format!("{column}:{n}");
            if names.contains(key.as_str()) {
                key = column.clone();
            }
        }
        used.insert(key.clone());
        keys.push(key);
    }
    keys
}

/// The contract says `payload` is always a JSON string of its text, even
/// when the message body is itself JSON.
fn to_json(column: &str, value: &Value) -> serde_json::Value {
    match value {
        Value::Json(j) if column == "payload" => serde_json::Value::String(j.to_string()),
        _ => value.to_json(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Mode;
    use super::super::fixtures::{self, show};
    use super::*;

    #[test]
    fn every_value() {
        insta::assert_snapshot!(show(&fixtures::every_value(), Mode::Jsonl));
    }

    #[test]
    fn consume_rows() {
        insta::assert_snapshot!(show(&fixtures::consume(), Mode::Jsonl));
    }

    #[test]
    fn awkward_text() {
        insta::assert_snapshot!(show(&fixtures::awkward_text(), Mode::Jsonl));
    }

    #[test]
    fn keys_keep_column_order() {
        let mut rs = ResultSet::with_columns(["z", "a", "m"]);
        rs.rows
            .push(vec![Value::Int(1), Value::Int(2), Value::Int(3)]);
        assert_eq!(show(&rs, Mode::Jsonl), "{\"z\":1,\"a\":2,\"m\":3}\n");
    }

    #[test]
    fn a_repeated_column_gets_a_numbered_key() {
        let mut rs = ResultSet::with_columns(["key", "payload", "key", "key:1", "key", "payload"]);
        rs.rows.push(vec![
            Value::Text("k".into()),
            Value::Json(serde_json::json!({"a": 1})),
            Value::Text("k".into()),
            Value::Int(1),
            Value::Null,
            Value::Text("p".into()),
        ]);
        assert_eq!(
            show(&rs, Mode::Jsonl),
            "{\"key\":\"k\",\"payload\":\"{\\\"a\\\":1}\",\"key:2\":\"k\",\"key:1\":1,\"key:3\":null,\"payload:1\":\"p\"}\n"
        );
    }

    #[test]
    fn json_payload_is_a_string() {
        let mut rs = ResultSet::with_columns(["payload"]);
        rs.rows.push(vec![Value::Json(serde_json::json!({"a": 1}))]);
        assert_eq!(show(&rs, Mode::Jsonl), "{\"payload\":\"{\\\"a\\\":1}\"}\n");
    }

    #[test]
    fn no_rows_prints_nothing() {
        assert_eq!(show(&ResultSet::with_columns(["a"]), Mode::Jsonl), "");
        assert_eq!(show(&ResultSet::empty(), Mode::Jsonl), "");
    }
}
