//! The line format of EXPORT and IMPORT: one JSON object per message.
//!
//! `{"partition":0,"offset":7,"timestamp":"2024-01-15T10:30:00.123Z",
//! "key":"k","headers":{"h":"v"},"payload":"text"}`. A payload that is
//! valid UTF-8 is the string `payload` (so a file of JSON messages stays
//! readable and greppable); any other payload is `payload_base64` instead,
//! standard base64 with padding (RFC 4648 §4), so bytes round-trip exactly.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::Value;
use crate::publish::Message;

/// One message as an EXPORT line (no newline), from a row of `SELECT *`.
pub(crate) fn export_line(columns: &[String], row: &[Value]) -> String {
    let mut obj = serde_json::Map::new();
    for (col, v) in columns.iter().zip(row) {
        match v {
            Value::Bytes(b) if col == "payload" => {
                obj.insert("payload_base64".into(), Json::String(base64_encode(b)))
            }
            _ => obj.insert(col.clone(), v.to_json()),
        };
    }
    Json::Object(obj).to_string()
}

/// A message read from an IMPORT line, with the partition it was exported
/// from (IMPORT decides whether to keep it).
#[derive(Debug, PartialEq)]
pub(crate) struct Imported {
    pub(crate) message: Message,
    pub(crate) partition: Option<u32>,
}

/// One IMPORT line as a message; None for a blank line; Err says why the
/// line is not a message.
pub(crate) fn import_line(line: &[u8]) -> Result<Option<Imported>, String> {
    let line = std::str::from_utf8(line).map_err(|_| "not UTF-8 text".to_string())?;
    if line.trim().is_empty() {
        return Ok(None);
    }
    let v: Json = serde_json::from_str(line).map_err(|e| format!("not JSON ({e})"))?;
    let obj = v.as_object().ok_or("expected a JSON object")?;
    let mut m = Message::new(payload(obj)?);
    match obj.get("key") {
        Some(Json::String(k)) => m.key = Some(k.clone()),
        Some(Json::Null) | None => {}
        Some(_) => return Err("\"key\" must be a string or null".into()),
    }
    m.headers = headers(obj.get("headers"))?;
    m.timestamp = timestamp(obj.get("timestamp"))?;
    let partition = match obj.get("partition") {
        None | Some(Json::Null) => None,
        Some(p) => Some(
            p.as_u64()
                .and_then(|p| u32::try_from(p).ok())
                .ok_or("\"partition\" must be a partition number")?,
        ),
    };
    Ok(Some(Imported {
        message: m,
        partition,
    }))
}

/// The payload: `payload` (a string as its text, any other JSON value as
/// its JSON text) or `payload_base64`.
fn payload(obj: &serde_json::Map<String, Json>) -> Result<Vec<u8>, String> {
    match (obj.get("payload"), obj.get("payload_base64")) {
        (Some(_), Some(_)) => Err("both \"payload\" and \"payload_base64\": give one".into()),
        (Some(Json::String(s)), None) => Ok(s.clone().into_bytes()),
        (Some(other), None) => Ok(other.to_string().into_bytes()),
        (None, Some(Json::String(b))) => base64_decode(b)
            .ok_or_else(|| "\"payload_base64\" is not base64 (RFC 4648, with padding)".into()),
        (None, Some(_)) => Err("\"payload_base64\" must be a string".into()),
        (None, None) => Err("no \"payload\" (or \"payload_base64\")".into()),
    }
}

fn headers(h: Option<&Json>) -> Result<BTreeMap<String, String>, String> {
    let mut out = BTreeMap::new();
    match h {
        None | Some(Json::Null) => {}
        Some(Json::Object(h)) => {
            for (k, v) in h {
                let v = v.as_str().ok_or("header values must be strings")?;
                out.insert(k.clone(), v.to_string());
            }
        }
        Some(_) => return Err("\"headers\" must be an object".into()),
    }
    Ok(out)
}

/// An RFC 3339 string (as EXPORT writes) or ms since the epoch.
fn timestamp(t: Option<&Json>) -> Result<Option<i64>, String> {
    match t {
        None | Some(Json::Null) => Ok(None),
        Some(Json::String(s)) => crate::value::parse_timestamp_ms(s)
            .map(Some)
            .ok_or_else(|| format!("\"timestamp\" '{s}' is not an RFC 3339 time")),
        Some(Json::Number(n)) => n
            .as_i64()
            .map(Some)
            .ok_or_else(|| "\"timestamp\" must be whole ms since the epoch".into()),
        Some(_) => Err("\"timestamp\" must be an RFC 3339 string or ms since the epoch".into()),
    }
}

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes standard base64 with padding; None for anything else.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.as_bytes();
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for (i, chunk) in text.chunks(4).enumerate() {
        let last = i + 1 == text.len() / 4;
        let pad = chunk.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && !last) {
            return None;
        }
        let mut n = 0u32;
        for &c in &chunk[..4 - pad] {
            let v = ALPHABET.iter().position(|&a| a == c)?;
            n = n << 6 | v as u32;
        }
        n <<= 6 * pad as u32;
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        // Bits a padded chunk leaves over must be zero (canonical form).
        if bytes[3 - pad..].iter().any(|&b| b != 0) {
            return None;
        }
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc_4648_vectors() {
        let vectors = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in vectors {
            assert_eq!(base64_encode(plain.as_bytes()), encoded);
            assert_eq!(base64_decode(encoded), Some(plain.as_bytes().to_vec()));
        }
        assert_eq!(base64_encode(&[0xff, 0x00, 0xfe]), "/wD+");
        let all: Vec<u8> = (0..=255).collect();
        assert_eq!(base64_decode(&base64_encode(&all)), Some(all));
    }

    #[test]
    fn base64_refuses_what_is_not_canonical() {
        for bad in ["Zg=", "Zg", "Z===", "Zh==", "Zg==Zg==", "Zm9v!A==", "Zm 9v"] {
            assert_eq!(base64_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_line_round_trips_binary_payloads_keys_headers_and_times() {
        let columns: Vec<String> = [
            "partition",
            "offset",
            "timestamp",
            "key",
            "headers",
            "payload",
        ]
        .map(String::from)
        .into();
        let row = [
            Value::Int(2),
            Value::Int(7),
            Value::Timestamp(1_705_314_600_123),
            Value::Text("k".into()),
            Value::Json(serde_json::json!({"h": "v"})),
            Value::Bytes(vec![0xff, 0x00, 0xfe]),
        ];
        let line = export_line(&columns, &row);
        assert_eq!(
            line,
            r#"{"headers":{"h":"v"},"key":"k","offset":7,"partition":2,"payload_base64":"/wD+","timestamp":"2024-01-15T10:30:00.123Z"}"#
        );
        let back = import_line(line.as_bytes()).unwrap().unwrap();
        let want = Message::new(vec![0xff, 0x00, 0xfe])
            .key("k")
            .header("h", "v")
            .timestamp(1_705_314_600_123);
        assert_eq!(back.message, want);
        assert_eq!(back.partition, Some(2));
        let text = export_line(&columns[5..], &[Value::Text("{\"a\":1}".into())]);
        assert_eq!(text, r#"{"payload":"{\"a\":1}"}"#);
    }

    #[test]
    fn bad_lines_say_what_is_wrong() {
        let cases = [
            (r#"{"payload":"a","payload_base64":"YQ=="}"#, "both"),
            (r#"{"payload_base64":"YQ="}"#, "not base64"),
            (r#"{"payload_base64":5}"#, "must be a string"),
            (r#"{"key":"k"}"#, "no \"payload\""),
            (
                r#"{"payload":"a","timestamp":"yesterday"}"#,
                "not an RFC 3339",
            ),
            (r#"{"payload":"a","timestamp":1.5}"#, "whole ms"),
            (r#"{"payload":"a","partition":-1}"#, "partition number"),
            (r#"{"payload":"a","headers":[]}"#, "must be an object"),
            (r#"{"payload":"a","headers":{"h":1}}"#, "must be strings"),
        ];
        for (line, why) in cases {
            let e = import_line(line.as_bytes()).expect_err(line);
            assert!(e.contains(why), "{line}: {e}");
        }
        assert_eq!(import_line(b"  \n").unwrap(), None);
        let n = import_line(br#"{"payload":{"n":1},"timestamp":5}"#)
            .unwrap()
            .unwrap();
        assert_eq!(n.message, Message::new("{\"n\":1}").timestamp(5));
    }
}
