//! Extended JSON text to a BSON document in one pass.
//!
//! The general conversion (`serde_json::Value`, then
//! `bson::Document::try_from(serde_json::Map)`) builds every document twice:
//! a tree of JSON values, then the BSON one. For a transform's output that is
//! a large part of smt's CPU time. [`document`] parses the text straight into
//! BSON, with the same rules: integers that fit an `i32` become `Int32`, other
//! integers `Int64`, the rest `Double`; a nested object holding one of the
//! Extended JSON type keys (`$oid`, `$date`, `$numberLong`…) becomes that
//! type; the top-level object is always a document. Values under `$` keys
//! (type wrappers and operators such as `$set`) still go through the general
//! conversion.
//!
//! It answers `None` whenever it is not sure to agree with the general
//! conversion (invalid text, not an object, an Extended JSON wrapper next to
//! a plain key…); the caller then runs the general conversion, which decides
//! and words the error.

use std::fmt;

use bson::{Bson, Document};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// The keys that make an object an Extended JSON value rather than a
/// document (those `bson::Bson::try_from(serde_json::Map)` looks for).
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

/// `text` (a JSON object in canonical or relaxed Extended JSON) as a
/// document, exactly as the general conversion would make it; `None` when
/// the general conversion must decide (see the module documentation).
pub fn document(text: &str) -> Option<Document> {
    let mut de = serde_json::Deserializer::from_str(text);
    let doc = de.deserialize_map(Top).ok()?;
    de.end().ok()?;
    Some(doc)
}

/// A value under a key without `$`, or an array element.
struct AnyValue;

/// The top-level object: a document whatever its keys.
struct Top;

/// An object's entries in order: a `$` key keeps its JSON value.
enum Entry {
    Bson(Bson),
    Json(Value),
}

fn entries<'de, A: MapAccess<'de>>(mut map: A) -> Result<Vec<(String, Entry)>, A::Error> {
    let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
    while let Some(key) = map.next_key::<String>()? {
        let value = if key.starts_with('$') {
            Entry::Json(map.next_value::<Value>()?)
        } else {
            Entry::Bson(map.next_value_seed(AnyValue)?)
        };
        out.push((key, value));
    }
    Ok(out)
}

/// Entries as a document; a repeated key keeps its first place and its last
/// value, as `serde_json::Map` (with `preserve_order`) and `Document` do.
fn to_document<E: de::Error>(entries: Vec<(String, Entry)>) -> Result<Document, E> {
    let mut doc = Document::new();
    for (key, value) in entries {
        let value = match value {
            Entry::Bson(b) => b,
            Entry::Json(v) => Bson::try_from(v).map_err(E::custom)?,
        };
        doc.insert(key, value);
    }
    Ok(doc)
}

impl<'de> Visitor<'de> for Top {
    type Value = Document;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Document, A::Error> {
        to_document(entries(map)?)
    }
}

impl<'de> DeserializeSeed<'de> for AnyValue {
    type Value = Bson;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Bson, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for AnyValue {
    type Value = Bson;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Bson, E> {
        Ok(Bson::Boolean(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Bson, E> {
        Ok(match i32::try_from(v) {
            Ok(i) => Bson::Int32(i),
            Err(_) => Bson::Int64(v),
        })
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Bson, E> {
        match i64::try_from(v) {
            Ok(i) => self.visit_i64(i),
            // As `serde_json::Number::as_f64` would have it.
            Err(_) => Ok(Bson::Double(v as f64)),
        }
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Bson, E> {
        Ok(Bson::Double(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Bson, E> {
        Ok(Bson::String(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Bson, E> {
        Ok(Bson::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Bson, E> {
        Ok(Bson::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Bson, A::Error> {
        let mut out = Vec::with_capacity(seq.size_hint().unwrap_or(4));
        while let Some(v) = seq.next_element_seed(AnyValue)? {
            out.push(v);
        }
        Ok(Bson::Array(out))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Bson, A::Error> {
        let entries = entries(map)?;
        if !entries.iter().any(|(k, _)| TYPE_KEYS.contains(&k.as_str())) {
            return Ok(Bson::Document(to_document(entries)?));
        }
        // An Extended JSON value: only `$` keys can be rebuilt as they were.
        let mut map = serde_json::Map::new();
        for (key, value) in entries {
            match value {
                Entry::Json(v) => {
                    map.insert(key, v);
                }
                Entry::Bson(_) => {
                    return Err(de::Error::custom(
                        "an Extended JSON value next to a plain key",
                    ))
                }
            }
        }
        Bson::try_from(map).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The general conversion, as `writeop::document` does it.
    fn general(text: &str) -> Option<Document> {
        match serde_json::from_str::<Value>(text).ok()? {
            Value::Object(map) => Document::try_from(map).ok(),
            _ => None,
        }
    }

    /// Whether the one-pass conversion answered.
    fn same(text: &str) -> bool {
        let fast = document(text);
        let slow = general(text);
        match (&fast, &slow) {
            // Declining is always allowed; the caller runs the general conversion.
            (None, _) => {}
            (Some(f), Some(s)) => {
                assert_eq!(f, s, "{text}");
                // Same types and same key order: the same bytes.
                assert_eq!(
                    bson::serialize_to_vec(f).unwrap(),
                    bson::serialize_to_vec(s).unwrap(),
                    "{text}"
                );
            }
            (Some(f), None) => panic!("{text}: accepted ({f}) what the general conversion refuses"),
        }
        fast.is_some()
    }

    #[test]
    fn agrees_with_the_general_conversion() {
        for text in [
            r#"{}"#,
            r#"{"_id":1,"a":"x","b":true,"c":null,"d":1.5,"e":-7}"#,
            r#"{"i32max":2147483647,"i32min":-2147483648,"over":2147483648,"under":-2147483649}"#,
            r#"{"i64max":9223372036854775807,"u64":18446744073709551615,"big":1e300,"neg0":-0.0}"#,
            r#"{"nested":{"a":{"b":[1,[2,{"c":"d"}],{"$numberLong":"5"}]}},"s":"é\u0000\"q"}"#,
            r#"{"dup":1,"x":2,"dup":3}"#,
            r#"{"n":{"dup":{"a":1},"dup":[1]}}"#,
            r#"{"_id":{"$oid":"65f1a2b3c4d5e6f708091a2b"},"t":{"$date":{"$numberLong":"1709553600123"}}}"#,
            r#"{"t":{"$date":"2024-03-04T12:00:00.123Z"},"d":{"$numberDecimal":"1234.50"}}"#,
            r#"{"l":{"$numberLong":"42"},"i":{"$numberInt":"7"},"f":{"$numberDouble":"Infinity"}}"#,
            r#"{"b":{"$binary":{"base64":"AQID","subType":"00"}},"u":{"$uuid":"00112233-4455-6677-8899-aabbccddeeff"}}"#,
            r#"{"r":{"$regularExpression":{"pattern":"^a","options":"i"}},"ts":{"$timestamp":{"t":1,"i":2}}}"#,
            r#"{"k":{"$minKey":1},"m":{"$maxKey":1},"s":{"$symbol":"x"},"c":{"$code":"f()"}}"#,
            r#"{"$set":{"a":1,"b":{"$numberLong":"9"}},"$unset":{"c":""}}"#,
            r#"{"a":{"$gt":5,"$lt":{"$numberLong":"10"}},"$or":[{"x":1},{"y":{"$in":[1,2]}}]}"#,
            r#"{"$oid":"65f1a2b3c4d5e6f708091a2b"}"#,
            r#"{"x":{"$oid":"65f1a2b3c4d5e6f708091a2b","other":1}}"#,
            r#"{"x":{"other":1,"$date":1}}"#,
            r#"{"x":{"$date":"not a date"}}"#,
            r#"{"x":{"$numberLong":"nope"}}"#,
            r#"{"x":{"$foo":1,"$bar":[1,2]}}"#,
            r#"[1,2]"#,
            r#""text""#,
            r#"{"a":1} trailing"#,
            r#"{"a":}"#,
            r#"  {"a" : [ ] , "b" : { } }  "#,
        ] {
            let _ = same(text);
        }
    }

    #[test]
    fn takes_the_fast_path_for_plain_and_typed_documents() {
        for text in [
            r#"{"_id":1,"a":{"b":[1,"x",null]},"t":{"$date":{"$numberLong":"1"}}}"#,
            r#"{"$set":{"a":1}}"#,
        ] {
            assert!(document(text).is_some(), "{text}");
        }
        for text in [r#"[1]"#, r#"{"a":1"#, r#"{"x":{"a":1,"$oid":"x"}}"#] {
            assert!(document(text).is_none(), "{text}");
        }
    }

    #[test]
    fn agrees_on_generated_documents() {
        // A small deterministic generator: nested objects, arrays, numbers at
        // the type boundaries, strings with escapes, Extended JSON wrappers.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        fn value(next: &mut dyn FnMut(u64) -> u64, depth: u32) -> String {
            match next(if depth > 3 { 9 } else { 12 }) {
                0 => "null".into(),
                1 => ["true", "false"][next(2) as usize].into(),
                2 => [
                    "0",
                    "-1",
                    "2147483647",
                    "2147483648",
                    "-2147483649",
                    "9223372036854775807",
                    "18446744073709551615",
                ][next(7) as usize]
                    .into(),
                3 => ["1.5", "-0.0", "1e10", "3.0", "1E-7"][next(5) as usize].into(),
                4 => format!("{}", next(1 << 40) as i64 - (1 << 39)),
                5 => ["\"\"", "\"a\\\"b\"", "\"\\u00e9\\n\"", "\"x\""][next(4) as usize].into(),
                6 => r#"{"$numberLong":"123"}"#.into(),
                7 => r#"{"$date":{"$numberLong":"1700000000000"}}"#.into(),
                8 => r#"{"$numberDecimal":"1.10"}"#.into(),
                9 | 10 => {
                    let n = next(5);
                    let fields: Vec<String> = (0..n)
                        .map(|_| {
                            let key = ["a", "b", "_id", "$set", "c.d", "é"][next(6) as usize];
                            format!("\"{key}\":{}", value(next, depth + 1))
                        })
                        .collect();
                    format!("{{{}}}", fields.join(","))
                }
                _ => {
                    let n = next(4);
                    let items: Vec<String> = (0..n).map(|_| value(next, depth + 1)).collect();
                    format!("[{}]", items.join(","))
                }
            }
        }
        let mut answered = 0;
        for _ in 0..3000 {
            let n = next(6);
            let fields: Vec<String> = (0..n)
                .map(|i| format!("\"k{}\":{}", i % 4, value(&mut next, 0)))
                .collect();
            answered += same(&format!("{{{}}}", fields.join(","))) as usize;
        }
        assert!(
            answered > 2000,
            "only {answered} of 3000 on the one-pass path"
        );
    }
}
