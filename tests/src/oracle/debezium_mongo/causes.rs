//! Why a sink's document differs from the expectation, for the table of
//! docs/debezium-mongo.md that measures the reference sink against `smt`.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::oracle::Comparison;

/// The BSON type of a canonical Extended JSON value, as a name.
fn type_of(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(_) => "bool".into(),
        Value::Number(_) => "number".into(),
        Value::String(_) => "string".into(),
        Value::Array(_) => "array".into(),
        Value::Object(m) => match m.keys().next() {
            Some(k) if m.len() == 1 && k.starts_with('$') => k.clone(),
            _ => "document".into(),
        },
    }
}

fn holds(v: &Value, placeholder: &str) -> bool {
    match v {
        Value::String(s) => s == placeholder,
        Value::Array(a) => a.iter().any(|x| holds(x, placeholder)),
        _ => false,
    }
}

/// The causes of the differences of one document (top-level fields, `_id` aside):
/// `placeholder stored`, `value lost` (a field missing that holds a value),
/// `wrong type`, `other value`, `unexpected field`.
pub fn causes(expected: &Value, got: &Value, placeholder: &str) -> BTreeSet<&'static str> {
    let mut out = BTreeSet::new();
    let (Some(e), Some(g)) = (expected.as_object(), got.as_object()) else {
        out.insert("other value");
        return out;
    };
    for (k, ev) in e {
        if k == "_id" {
            continue;
        }
        match g.get(k) {
            // A missing field reads as null: lost, whatever the value was.
            None => {
                out.insert("value lost");
            }
            Some(gv) if gv == ev => {}
            Some(gv) if holds(gv, placeholder) => {
                out.insert("placeholder stored");
            }
            Some(gv) if !gv.is_null() && !ev.is_null() && type_of(gv) != type_of(ev) => {
                out.insert("wrong type");
            }
            Some(_) => {
                out.insert("other value");
            }
        }
    }
    if g.keys().any(|k| k != "_id" && !e.contains_key(k)) {
        out.insert("unexpected field");
    }
    out
}

/// Documents per cause for one collection: the causes of each differing
/// document, plus `document missing` and `document extra`.
pub fn cause_table(c: &Comparison, placeholder: &str) -> BTreeMap<&'static str, usize> {
    let mut t: BTreeMap<&'static str, usize> = BTreeMap::new();
    for (_, _, e, g) in &c.different {
        for cause in causes(e, g, placeholder) {
            *t.entry(cause).or_default() += 1;
        }
    }
    if !c.missing.is_empty() {
        t.insert("document missing", c.missing.len());
    }
    if !c.extra.is_empty() {
        t.insert("document extra", c.extra.len());
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn causes_are_told_apart() {
        let e = json!({"_id": 1, "body": "big", "at": {"$date": {"$numberLong": "5"}}, "n": {"$numberInt": "1"}, "s": "x"});
        let g = json!({"_id": 1, "body": "__debezium_unavailable_value", "at": "1970-01-01T00:00:00.005Z",
                       "s": "y", "extra": 1});
        let c = causes(&e, &g, "__debezium_unavailable_value");
        assert_eq!(
            c.into_iter().collect::<Vec<_>>(),
            vec![
                "other value",
                "placeholder stored",
                "unexpected field",
                "value lost",
                "wrong type"
            ]
        );
        assert!(causes(&e, &e, "p").is_empty());
    }
}
