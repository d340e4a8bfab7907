//! Extended JSON `Value`s to raw BSON bytes, in the guest.
//!
//! A document sent as Extended JSON text is written here and parsed again in
//! the host, only to be encoded as BSON for the server: for the default
//! transform that round trip was most of the host's per-record work.
//! Encoded here, the host checks the bytes and reads them (`document::bson`).
//!
//! The bytes must say exactly what the host's conversion of the JSON text
//! says (`bson::Document::try_from(serde_json::Map)`): integers that fit an
//! `i32` are `Int32`, other integers `Int64`, other numbers `Double`; an
//! object with an Extended JSON type key (`$oid`, `$date`, `$numberLong`…)
//! is that type; every other object (operators such as `$set` included) is
//! an embedded document; the top-level object is a document whatever its
//! keys. Only the wrappers the SDK writes on its hot paths are encoded here
//! (`$numberLong`, `$date` of a `$numberLong`, `$oid`); for any other wrapper,
//! or a malformed one, or a key holding a NUL byte, [`document`] answers
//! `None` and the caller sends JSON text, which the host converts (and, when
//! it is wrong, rejects with its own error).

use crate::bsonbytes::{
    self, begin, ARRAY, BOOLEAN, DATE_TIME, DOCUMENT, DOUBLE, INT32, INT64, NULL, OBJECT_ID, STRING,
};
use serde_json::{Map, Number, Value};

/// The keys that make an object an Extended JSON value, as the host's
/// conversion looks for them (`bson`'s `TryFrom<serde_json::Map>`).
const TYPE_KEYS: [&str; 16] = [
    "$oid",
    "$symbol",
    "$regularExpression",
    "$numberInt",
    "$numberLong",
    "$numberDouble",
    "$numberDecimal",
    "$binary",
    "$uuid",
    "$code",
    "$timestamp",
    "$date",
    "$minKey",
    "$maxKey",
    "$dbPointer",
    "$undefined",
];

/// Why a value is left to the host: nothing to report, the caller sends JSON.
struct Declined;

/// The BSON bytes of a top-level object; `None` when it is not an object or
/// holds something left to the host's conversion (see the module
/// documentation).
pub(crate) fn document(value: &Value) -> Option<Vec<u8>> {
    let Value::Object(map) = value else {
        return None;
    };
    let mut out = Vec::with_capacity(256);
    write_map(&mut out, map).ok()?;
    Some(out)
}

fn write_map(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<(), Declined> {
    let start = begin(out);
    for (key, value) in map {
        write_element(out, key, value)?;
    }
    end(out, start)
}

fn write_array(out: &mut Vec<u8>, items: &[Value]) -> Result<(), Declined> {
    let start = begin(out);
    let mut key = itoa_buf();
    for (i, value) in items.iter().enumerate() {
        write_element(out, index_key(&mut key, i), value)?;
    }
    end(out, start)
}

fn end(out: &mut Vec<u8>, start: usize) -> Result<(), Declined> {
    bsonbytes::end(out, start).ok_or(Declined)
}

fn write_element(out: &mut Vec<u8>, key: &str, value: &Value) -> Result<(), Declined> {
    // The type byte is known only after the value is looked at.
    let at = out.len();
    out.push(0);
    if key.as_bytes().contains(&0) {
        return Err(Declined);
    }
    out.extend_from_slice(key.as_bytes());
    out.push(0);
    out[at] = write_value(out, value)?;
    Ok(())
}

/// Writes the value's bytes and returns its type byte.
fn write_value(out: &mut Vec<u8>, value: &Value) -> Result<u8, Declined> {
    Ok(match value {
        Value::Null => NULL,
        Value::Bool(b) => {
            out.push(u8::from(*b));
            BOOLEAN
        }
        Value::Number(n) => write_number(out, n)?,
        Value::String(s) => {
            write_string(out, s)?;
            STRING
        }
        Value::Array(items) => {
            write_array(out, items)?;
            ARRAY
        }
        Value::Object(map) => {
            if map.keys().any(|k| TYPE_KEYS.contains(&k.as_str())) {
                write_wrapper(out, map)?
            } else {
                write_map(out, map)?;
                DOCUMENT
            }
        }
    })
}

/// As the host: an `i64` in `i32` range is `Int32`, else `Int64`, else `Double`.
fn write_number(out: &mut Vec<u8>, n: &Number) -> Result<u8, Declined> {
    if let Some(i) = n.as_i64() {
        return Ok(match i32::try_from(i) {
            Ok(small) => {
                out.extend_from_slice(&small.to_le_bytes());
                INT32
            }
            Err(_) => {
                out.extend_from_slice(&i.to_le_bytes());
                INT64
            }
        });
    }
    let f = n.as_f64().ok_or(Declined)?;
    out.extend_from_slice(&f.to_le_bytes());
    Ok(DOUBLE)
}

fn write_string(out: &mut Vec<u8>, s: &str) -> Result<(), Declined> {
    bsonbytes::string(out, s).ok_or(Declined)
}

/// The wrappers written here: one key, the exact shape the host's
/// conversion accepts (it refuses unknown keys beside them).
fn write_wrapper(out: &mut Vec<u8>, map: &Map<String, Value>) -> Result<u8, Declined> {
    let mut entries = map.iter();
    let (Some((key, inner)), None) = (entries.next(), entries.next()) else {
        return Err(Declined);
    };
    match (key.as_str(), inner) {
        ("$numberLong", Value::String(s)) => {
            let i: i64 = s.parse().map_err(|_| Declined)?;
            out.extend_from_slice(&i.to_le_bytes());
            Ok(INT64)
        }
        ("$date", Value::Object(body)) if body.len() == 1 => match body.get("$numberLong") {
            Some(Value::String(s)) => {
                let ms: i64 = s.parse().map_err(|_| Declined)?;
                out.extend_from_slice(&ms.to_le_bytes());
                Ok(DATE_TIME)
            }
            _ => Err(Declined),
        },
        ("$oid", Value::String(hex)) if hex.len() == 24 => {
            let digits = hex.as_bytes();
            for pair in digits.chunks_exact(2) {
                let byte = (hex_digit(pair[0])? << 4) | hex_digit(pair[1])?;
                out.push(byte);
            }
            Ok(OBJECT_ID)
        }
        _ => Err(Declined),
    }
}

fn hex_digit(b: u8) -> Result<u8, Declined> {
    match b {
        b'0'..=b'9' => Ok(b - b'0'),
        b'a'..=b'f' => Ok(b - b'a' + 10),
        b'A'..=b'F' => Ok(b - b'A' + 10),
        _ => Err(Declined),
    }
}

/// Room for the decimal digits of an array index.
fn itoa_buf() -> String {
    String::with_capacity(20)
}

fn index_key(buf: &mut String, i: usize) -> &str {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{i}");
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The bytes of a small document written by hand from the BSON spec.
    #[test]
    fn types_and_lengths_follow_the_spec() {
        let bytes = document(&json!({"a": 1, "b": "x", "c": [true, null]})).unwrap();
        let mut want = vec![];
        want.extend_from_slice(&[0; 4]);
        want.extend_from_slice(&[INT32, b'a', 0, 1, 0, 0, 0]);
        want.extend_from_slice(&[STRING, b'b', 0, 2, 0, 0, 0, b'x', 0]);
        // c: {"0": true, "1": null}: 4 + (1+2+1) + (1+2) + 1 = 12 bytes
        want.extend_from_slice(&[ARRAY, b'c', 0, 12, 0, 0, 0]);
        want.extend_from_slice(&[BOOLEAN, b'0', 0, 1, NULL, b'1', 0, 0]);
        want.push(0);
        let len = want.len() as i32;
        want[..4].copy_from_slice(&len.to_le_bytes());
        assert_eq!(bytes, want);
    }

    #[test]
    fn numbers_by_range() {
        let bytes = document(&json!({"n": 2147483648i64})).unwrap();
        assert_eq!(bytes[4], INT64);
        let bytes = document(&json!({"n": -2147483648i64})).unwrap();
        assert_eq!(bytes[4], INT32);
        let bytes = document(&json!({"n": u64::MAX})).unwrap();
        assert_eq!(bytes[4], DOUBLE);
        let bytes = document(&json!({"n": 1.0})).unwrap();
        assert_eq!(bytes[4], DOUBLE);
    }

    #[test]
    fn declines_what_it_does_not_write() {
        for v in [
            json!([1]),
            json!({"d": {"$numberDecimal": "1.5"}}),
            json!({"d": {"$numberLong": "x"}}),
            json!({"d": {"$numberLong": "1", "x": 1}}),
            json!({"d": {"$date": "2020-01-01T00:00:00Z"}}),
            json!({"d": {"$oid": "zz0000000000000000000000"}}),
            json!({"d": {"$binary": {"base64": "", "subType": "00"}}}),
            json!({"a\u{0}b": 1}),
        ] {
            assert!(document(&v).is_none(), "{v}");
        }
    }

    #[test]
    fn operators_are_documents_and_the_top_level_is_one_whatever_its_keys() {
        let bytes = document(&json!({"$set": {"a": 1}})).unwrap();
        assert_eq!(bytes[4], DOCUMENT);
        let bytes = document(&json!({"$numberLong": "5"})).unwrap();
        assert_eq!(bytes[4], STRING);
    }
}
