//! The commonest records, mapped without a `serde_json::Value` tree: a create,
//! read or update of a table with a primary key, JSON without schemas, every
//! column a scalar; and the delete of such a row. The key and the envelope are read with borrowed strings and
//! the `after` image is written straight into the replacement's BSON, in one
//! pass; `before`, `source` and the other envelope fields are read only as far
//! as the general path reads them.
//!
//! The result must be the bytes the general path sends for the same record
//! (`replace_one({_id}, {_id, after minus the key columns}).upsert()`, every
//! integer a BSON long, other numbers doubles; `delete_one({_id})`). Anything else — schemas, a
//! nested value, a TOAST placeholder, a column named `_id`, a duplicate name,
//! a key-change header, a delete, text that is not JSON, any error at all — is
//! declined (`None`) and the general path maps the record, reporting its own
//! errors: this path never fails a record. The tests compare both paths.

use crate::keymove::{NEW_KEY_HEADER, OLD_KEY_HEADER};
use crate::{DebeziumMongo, IdMode};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::Value;
use smt_guest::bsonbytes::{self, begin, end, BOOLEAN, DOCUMENT, DOUBLE, INT64, NULL, STRING};
use smt_guest::{ops, Delete, Document, Message, ReplaceOne, WriteOp};
use std::borrow::Cow;
use std::fmt;

/// The record's write, or `None` when the general path must map it.
pub(crate) fn map(t: &DebeziumMongo, msg: &Message) -> Option<WriteOp> {
    if !ops::bson_output() {
        return None;
    }
    map_bson(t, msg)
}

/// [`map`] whatever the SDK's output setting (for the tests, which compare it
/// with the general path natively).
fn map_bson(t: &DebeziumMongo, msg: &Message) -> Option<WriteOp> {
    if !matches!(t.config.id, IdMode::Wrapped | IdMode::Scalar) {
        return None;
    }
    if msg.header(OLD_KEY_HEADER).is_some() || msg.header(NEW_KEY_HEADER).is_some() {
        return None;
    }
    let key_text = std::str::from_utf8(msg.key.as_deref()?).ok()?;
    let value_text = std::str::from_utf8(msg.value.as_deref()?).ok()?;
    let key = parse_key(key_text)?;

    // `_id`: the key's one value (scalar mode) or the key as a document.
    let mut id = Vec::with_capacity(64);
    let id_type = if t.config.id == IdMode::Scalar && key.len() == 1 {
        write_scalar(&mut id, &key[0].1)?
    } else {
        let start = begin(&mut id);
        for (name, v) in &key {
            element(&mut id, name, v)?;
        }
        end(&mut id, start)?;
        DOCUMENT
    };

    let mut filter = Vec::with_capacity(id.len() + 10);
    let start = begin(&mut filter);
    raw_element(&mut filter, "_id", id_type, &id);
    end(&mut filter, start)?;

    let mut doc = Vec::with_capacity(value_text.len() + id.len() + 16);
    let start = begin(&mut doc);
    raw_element(&mut doc, "_id", id_type, &id);
    let mut state = State {
        doc,
        key: &key,
        placeholder: &t.config.unavailable_value_placeholder,
        placeholder_b64: &t.placeholder_b64,
        names: Vec::with_capacity(16),
        op: None,
        after: None,
        source: None,
    };
    let mut de = serde_json::Deserializer::from_str(value_text);
    de.deserialize_map(Envelope(&mut state)).ok()?;
    de.end().ok()?;
    match (state.op.as_deref(), state.after) {
        (Some("c" | "r" | "u"), Some(Image::Object)) => {}
        // A delete: `{_id}`, as `Ident::filter`. Without `after` the general
        // path asks `source` whether the record is MongoDB's (its own
        // mapping): declined whenever `source` might say so.
        (Some("d"), None | Some(Image::Null)) => {
            if state
                .source
                .is_some_and(|s| s.contains("mongodb") || s.contains('\\'))
            {
                return None;
            }
            return Some(WriteOp::DeleteOne(Delete {
                ns: t.router.namespace(&msg.topic),
                filter: Document::Bson(filter),
            }));
        }
        _ => return None,
    }
    let mut doc = state.doc;
    end(&mut doc, start)?;
    Some(WriteOp::ReplaceOne(ReplaceOne {
        ns: t.router.namespace(&msg.topic),
        filter: Document::Bson(filter),
        replacement: Document::Bson(doc),
        upsert: true,
    }))
}

/// A column value this path writes.
enum Scalar<'a> {
    Null,
    Bool(bool),
    Long(i64),
    Double(f64),
    Str(Cow<'a, str>),
}

/// A name this path can write as a top-level or key field: no NUL byte (the
/// SDK's encoder leaves those to the host), not `_id`, not an operator or
/// Extended JSON key, not the converter's `schema`/`payload`.
fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.as_bytes().contains(&0)
        && !name.starts_with('$')
        && !matches!(name, "_id" | "schema" | "payload")
}

/// The key's columns: a JSON object of scalars (integers and strings), no
/// schema; `None` otherwise.
fn parse_key(text: &str) -> Option<Vec<(Cow<'_, str>, Scalar<'_>)>> {
    struct KeyVisitor;
    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = Vec<(Cow<'de, str>, Scalar<'de>)>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a key object")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out: Self::Value = Vec::with_capacity(2);
            while let Some(Str(name)) = map.next_key()? {
                if !plain_name(&name) || out.iter().any(|(n, _)| *n == name) {
                    return Err(de::Error::custom("declined"));
                }
                let v = match map.next_value::<ScalarDe>()?.0 {
                    v @ (Scalar::Long(_) | Scalar::Str(_)) => v,
                    _ => return Err(de::Error::custom("declined")),
                };
                out.push((name, v));
            }
            Ok(out)
        }
    }
    let mut de = serde_json::Deserializer::from_str(text);
    let key = de.deserialize_map(KeyVisitor).ok()?;
    de.end().ok()?;
    (!key.is_empty()).then_some(key)
}

struct State<'k, 'a> {
    doc: Vec<u8>,
    key: &'k [(Cow<'a, str>, Scalar<'a>)],
    placeholder: &'k str,
    placeholder_b64: &'k str,
    /// The names of `after`, to decline duplicates.
    names: Vec<Cow<'k, str>>,
    op: Option<String>,
    after: Option<Image>,
    /// `source` as text.
    source: Option<&'k str>,
}

/// What `after` was.
#[derive(Clone, Copy)]
enum Image {
    Null,
    /// Written into the document.
    Object,
}

/// The envelope: `after` into the document, `op` kept, the rest read as the
/// general path reads it (so that it fails where that one fails).
struct Envelope<'s, 'k, 'a>(&'s mut State<'k, 'a>);

impl<'de, 's, 'k, 'a> Visitor<'de> for Envelope<'s, 'k, 'a>
where
    'de: 'k,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Debezium envelope")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.0;
        let (mut op, mut source) = (false, false);
        while let Some(Str(name)) = map.next_key()? {
            match &*name {
                "after" if st.after.is_none() => {
                    map.next_value_seed(After(st))?;
                }
                "op" if !op => {
                    op = true;
                    st.op = Some(map.next_value::<Str>()?.0.into_owned());
                }
                "source" if !source => {
                    // Kept as raw text by the general path.
                    source = true;
                    st.source = Some(map.next_value::<&'de RawValue>()?.get());
                }
                "after" | "op" | "source" | "schema" | "payload" => {
                    return Err(de::Error::custom("declined"))
                }
                _ => {
                    map.next_value::<Value>()?;
                }
            }
        }
        Ok(())
    }
}

/// `after`: a non-empty object of scalars, written as the document's fields
/// (without the key columns).
struct After<'s, 'k, 'a>(&'s mut State<'k, 'a>);

impl<'de, 's, 'k, 'a> DeserializeSeed<'de> for After<'s, 'k, 'a>
where
    'de: 'k,
{
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, 's, 'k, 'a> Visitor<'de> for After<'s, 'k, 'a>
where
    'de: 'k,
{
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an after image")
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.after = Some(Image::Null);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let st = self.0;
        while let Some(Str(name)) = map.next_key()? {
            if !plain_name(&name) || st.names.contains(&name) {
                return Err(de::Error::custom("declined"));
            }
            let v = map.next_value::<ScalarDe>()?.0;
            if let Scalar::Str(s) = &v {
                if s == st.placeholder || s == st.placeholder_b64 {
                    return Err(de::Error::custom("declined"));
                }
            }
            if !st.key.iter().any(|(k, _)| *k == name) {
                element(&mut st.doc, &name, &v).ok_or_else(|| de::Error::custom("declined"))?;
            }
            st.names.push(name);
        }
        if st.names.is_empty() {
            return Err(de::Error::custom("declined"));
        }
        st.after = Some(Image::Object);
        Ok(())
    }
}

/// A string, borrowed from the text when it has no escapes.
struct Str<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Str<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Str<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Str<'de>, E> {
                Ok(Str(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// A scalar JSON value as the general path stores it without a schema:
/// integers in `i64` range are longs, other numbers doubles; arrays and
/// objects are declined.
struct ScalarDe<'a>(Scalar<'a>);

impl<'de> Deserialize<'de> for ScalarDe<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = ScalarDe<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a scalar")
            }
            fn visit_unit<E>(self) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Null))
            }
            fn visit_bool<E>(self, b: bool) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Bool(b)))
            }
            fn visit_i64<E>(self, i: i64) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Long(i)))
            }
            fn visit_u64<E>(self, u: u64) -> Result<ScalarDe<'de>, E> {
                // Past i64: a double, as the general path's `as_f64`.
                Ok(ScalarDe(match i64::try_from(u) {
                    Ok(i) => Scalar::Long(i),
                    Err(_) => Scalar::Double(u as f64),
                }))
            }
            fn visit_f64<E>(self, f: f64) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Double(f)))
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Str(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Str(Cow::Owned(s.to_owned()))))
            }
            fn visit_string<E>(self, s: String) -> Result<ScalarDe<'de>, E> {
                Ok(ScalarDe(Scalar::Str(Cow::Owned(s))))
            }
        }
        d.deserialize_any(V)
    }
}

fn raw_element(out: &mut Vec<u8>, name: &str, ty: u8, bytes: &[u8]) {
    out.push(ty);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out.extend_from_slice(bytes);
}

fn element(out: &mut Vec<u8>, name: &str, v: &Scalar) -> Option<()> {
    let at = out.len();
    out.push(0);
    out.extend_from_slice(name.as_bytes());
    out.push(0);
    out[at] = write_scalar(out, v)?;
    Some(())
}

/// Writes the value's bytes and returns its type byte; `None` for a string
/// too long for BSON (declined, as the SDK's encoder declines it).
fn write_scalar(out: &mut Vec<u8>, v: &Scalar) -> Option<u8> {
    Some(match v {
        Scalar::Null => NULL,
        Scalar::Bool(b) => {
            out.push(u8::from(*b));
            BOOLEAN
        }
        Scalar::Long(i) => {
            out.extend_from_slice(&i.to_le_bytes());
            INT64
        }
        Scalar::Double(f) => {
            out.extend_from_slice(&f.to_le_bytes());
            DOUBLE
        }
        Scalar::Str(s) => {
            bsonbytes::string(out, s)?;
            STRING
        }
    })
}

#[cfg(test)]
mod tests;
