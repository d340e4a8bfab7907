//! Change events of Debezium's MongoDB connector (`source.connector` =
//! `"mongodb"`): MongoDB → MongoDB, as the reference sink's Debezium MongoDB
//! handler does it. Their documents are not columns but Extended JSON text:
//! `after` (the whole document: reads, inserts, and updates with
//! `capture.mode=change_streams_update_full`), `updateDescription`
//! (`updatedFields` as text, `removedFields`, `truncatedArrays`: updates
//! without the full document) and the key `{"id": "<_id as Extended JSON>"}`.
//!
//! | event | write |
//! |---|---|
//! | `r` / `c`, `u` with `after` | `replaceOne({_id}, after, upsert)` |
//! | `u` without `after` | `updateOne({_id}, {$set: updatedFields, $unset: removedFields, $push: {f: {$each: [], $slice: n}}})` (no upsert: the fields alone are not the document) |
//! | `d` | `deleteOne({_id})` |
//! | tombstone | nothing |
//!
//! The connector writes MongoDB's legacy "strict" Extended JSON: a date is
//! `{"$date": <ms>}` and a binary `{"$binary": "<base64>", "$type": "<hex>"}`;
//! they are rewritten to the canonical forms. Plain integers stay int32 or
//! int64 by magnitude (int64 values arrive as `$numberLong`), decimals
//! with a point stay doubles: each field keeps the BSON type it had.

use serde_json::{Map, Value};
use smt_guest::debezium::Event;
use smt_guest::{ops, Message, Namespace, TransformError, WriteOp};

/// Whether a parsed change event is the MongoDB connector's: its `after` is
/// text (a relational row is an object); without `after` (deletes, updates
/// without the full document) the source block says.
pub(crate) fn is_mongo(event: &Event) -> bool {
    match event.raw("after") {
        Some(Value::String(_)) => true,
        Some(Value::Object(_)) => false,
        _ => event.source().connector() == Some("mongodb"),
    }
}

/// The payload of the record's value (with or without the JSON converter's schema).
fn payload(msg: &Message) -> Result<Map<String, Value>, TransformError> {
    let bytes = msg.value.as_deref().ok_or_else(|| bad("no value"))?;
    let v: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the value is not JSON: {e}")))?;
    let Value::Object(mut o) = v else {
        return Err(bad("the value is not a JSON object"));
    };
    if o.contains_key("schema") && o.contains_key("payload") {
        o = match o.remove("payload") {
            Some(Value::Object(p)) => p,
            _ => return Err(bad("'payload' is not an object")),
        };
    }
    Ok(o)
}

fn bad(msg: impl Into<String>) -> TransformError {
    TransformError::bad_input(msg.into())
}

/// Extended JSON text (a field of the event) parsed and made canonical.
fn ext_json(text: &str, what: &str) -> Result<Value, TransformError> {
    let mut v: Value = serde_json::from_str(text)
        .map_err(|e| bad(format!("{what} is not Extended JSON text: {e}")))?;
    canonical(&mut v);
    Ok(v)
}

/// Rewrites the legacy strict-mode forms Debezium writes into canonical Extended JSON.
fn canonical(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(canonical),
        Value::Object(m) => {
            if m.len() == 1 {
                if let Some(Value::Number(n)) = m.get("$date") {
                    if let Some(ms) = n.as_i64() {
                        let mut inner = Map::new();
                        inner.insert("$numberLong".into(), Value::String(ms.to_string()));
                        m.insert("$date".into(), Value::Object(inner));
                        return;
                    }
                }
            }
            if m.len() == 2 {
                if let (Some(Value::String(b64)), Some(Value::String(t))) =
                    (m.get("$binary"), m.get("$type"))
                {
                    let mut inner = Map::new();
                    inner.insert("base64".into(), Value::String(b64.clone()));
                    // "$type" is one or two hex digits; canonical "subType" is two
                    inner.insert("subType".into(), Value::String(format!("{t:0>2}")));
                    m.clear();
                    m.insert("$binary".into(), Value::Object(inner));
                    return;
                }
                if let (Some(Value::String(p)), Some(Value::String(o))) =
                    (m.get("$regex"), m.get("$options"))
                {
                    let mut inner = Map::new();
                    inner.insert("pattern".into(), Value::String(p.clone()));
                    inner.insert("options".into(), Value::String(o.clone()));
                    m.clear();
                    m.insert("$regularExpression".into(), Value::Object(inner));
                    return;
                }
            }
            m.values_mut().for_each(canonical);
        }
        _ => {}
    }
}

/// `_id` from the key `{"id": "<Extended JSON text>"}` (with or without schema).
fn id_of(msg: &Message) -> Result<Value, TransformError> {
    let bytes = msg
        .key
        .as_deref()
        .ok_or_else(|| bad("a MongoDB change event without a key (the key holds the _id)"))?;
    let mut key: Value =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("the key is not JSON: {e}")))?;
    if let Some(p) = key.get_mut("payload") {
        key = p.take();
    }
    match key.get("id") {
        Some(Value::String(text)) => ext_json(text, "the key's id"),
        _ => Err(bad(
            "the key has no string field 'id' (the _id as Extended JSON)",
        )),
    }
}

fn by_id(id: Value) -> Value {
    let mut m = Map::new();
    m.insert("_id".into(), id);
    Value::Object(m)
}

/// The writes of one MongoDB change event.
pub(crate) fn map(ns: Namespace, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
    let payload = &payload(msg)?;
    let op = payload.get("op").and_then(Value::as_str).unwrap_or("");
    let after = match payload.get("after") {
        Some(Value::String(t)) => Some(ext_json(t, "'after'")?),
        Some(Value::Null) | None => None,
        Some(_) => return Err(bad("'after' is not Extended JSON text")),
    };
    match op {
        "r" | "c" | "u" if after.is_some() => {
            let id = id_of(msg)?;
            let mut doc = match after {
                Some(Value::Object(d)) => d,
                _ => return Err(bad(format!("'after' of op '{op}' is not a document"))),
            };
            if !doc.contains_key("_id") {
                doc.shift_insert(0, "_id".into(), id.clone());
            }
            Ok(vec![ops::replace_one(ns, by_id(id), Value::Object(doc))
                .upsert()
                .build()])
        }
        "u" => update(ns, msg, payload),
        "r" | "c" => Err(bad(format!("'after' is missing or null for op '{op}'"))),
        "d" => Ok(vec![ops::delete_one(ns, by_id(id_of(msg)?))]),
        other => Err(bad(format!(
            "unknown op '{other}' in a MongoDB change event"
        ))),
    }
}

/// An update without the full document: its `updateDescription`.
fn update(
    ns: Namespace,
    msg: &Message,
    payload: &Map<String, Value>,
) -> Result<Vec<WriteOp>, TransformError> {
    let desc = payload
        .get("updateDescription")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("op 'u' with neither 'after' nor 'updateDescription'"))?;
    let mut b = ops::update_one(ns, by_id(id_of(msg)?));
    let mut any = false;
    if let Some(Value::String(t)) = desc.get("updatedFields") {
        let set = ext_json(t, "updateDescription.updatedFields")?;
        if set.as_object().is_some_and(|m| !m.is_empty()) {
            b = b.set(set);
            any = true;
        }
    }
    if let Some(Value::Array(removed)) = desc.get("removedFields") {
        let names: Vec<&str> = removed.iter().filter_map(Value::as_str).collect();
        if !names.is_empty() {
            b = b.unset(names);
            any = true;
        }
    }
    if let Some(Value::Array(truncated)) = desc.get("truncatedArrays") {
        let mut push = Map::new();
        for t in truncated {
            let (Some(field), Some(size)) = (t.get("field").and_then(Value::as_str), t.get("size"))
            else {
                return Err(bad(
                    "updateDescription.truncatedArrays: an entry without field and size",
                ));
            };
            let mut slice = Map::new();
            slice.insert("$each".into(), Value::Array(vec![]));
            slice.insert("$slice".into(), size.clone());
            push.insert(field.to_owned(), Value::Object(slice));
        }
        if !push.is_empty() {
            b = b.operator("$push", Value::Object(push));
            any = true;
        }
    }
    Ok(if any { vec![b.build()] } else { vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use smt_guest::ops::describe;

    fn msg(key: Value, value: Value) -> Message {
        Message {
            topic: "m.shop.items".into(),
            partition: 0,
            offset: 7,
            timestamp_ms: None,
            key: Some(key.to_string().into_bytes()),
            value: Some(value.to_string().into_bytes()),
            headers: vec![],
        }
    }

    fn source() -> Value {
        json!({"version": "3.6.1.Final", "connector": "mongodb", "name": "m", "db": "shop", "collection": "items"})
    }

    /// `capture.mode=change_streams` (Debezium's MongoDB documentation, "update
    /// events"): no `after`, the change in `updateDescription`.
    #[test]
    fn an_update_without_the_document_sets_unsets_and_truncates() {
        let m = msg(
            json!({"id": "{\"$oid\": \"65e5b8c0a1b2c3d4e5f60718\"}"}),
            json!({"before": null, "after": null, "op": "u", "source": source(),
                   "updateDescription": {"removedFields": ["old"], "truncatedArrays": [{"field": "tags", "size": 1}],
                                         "updatedFields": "{\"n\": 2, \"at\": {\"$date\": 0}, \"bin\": {\"$binary\": \"AQI=\", \"$type\": \"0\"}}"}}),
        );
        let ops: Vec<Value> = map(ops::ns("items"), &m)
            .unwrap()
            .iter()
            .map(describe)
            .collect();
        assert_eq!(
            ops,
            vec![json!({"op": "update-one", "db": null, "coll": "items",
                "filter": {"_id": {"$oid": "65e5b8c0a1b2c3d4e5f60718"}},
                "update": {"$set": {"n": 2, "at": {"$date": {"$numberLong": "0"}},
                                    "bin": {"$binary": {"base64": "AQI=", "subType": "00"}}},
                           "$unset": {"old": ""},
                           "$push": {"tags": {"$each": [], "$slice": 1}}},
                "upsert": false})]
        );
    }

    #[test]
    fn a_regex_and_a_document_without_its_id_are_made_canonical() {
        let m = msg(
            json!({"id": "\"k\""}),
            json!({"before": null, "op": "c", "source": source(),
                   "after": "{\"re\": {\"$regex\": \"^a\", \"$options\": \"i\"}}"}),
        );
        let ops: Vec<Value> = map(ops::ns("items"), &m)
            .unwrap()
            .iter()
            .map(describe)
            .collect();
        assert_eq!(
            ops[0]["replacement"],
            json!({"_id": "k", "re": {"$regularExpression": {"pattern": "^a", "options": "i"}}})
        );
    }

    #[test]
    fn bad_events_are_refused_as_bad_input() {
        for (key, value, needle) in [
            (
                json!({"id": 1}),
                json!({"op": "d", "source": source()}),
                "no string field 'id'",
            ),
            (
                json!({"id": "1"}),
                json!({"op": "c", "after": "{not json", "source": source()}),
                "not Extended JSON",
            ),
            (
                json!({"id": "1"}),
                json!({"op": "u", "after": null, "source": source()}),
                "neither 'after' nor",
            ),
            (
                json!({"id": "1"}),
                json!({"op": "x", "after": null, "source": source()}),
                "unknown op",
            ),
        ] {
            let e = map(ops::ns("items"), &msg(key, value)).unwrap_err();
            assert!(e.message.contains(needle), "{needle}: {}", e.message);
        }
    }
}
