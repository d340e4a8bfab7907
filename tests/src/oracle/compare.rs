//! Comparing what MongoDB holds with the expected documents, document by
//! document, with a report that names the paths where they differ.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use anyhow::Result;
use serde_json::Value;

/// One JSON form for both sides: `{"$numberDouble": …}` as Rust prints the
/// parsed double (PostgreSQL prints `1234`, the BSON library `1234.0`), and
/// with `object_id`, a top-level ObjectId `_id` as the placeholder of expected.sql.
pub fn normalize(v: Value, object_id: bool) -> Value {
    fn walk(v: Value) -> Value {
        match v {
            Value::Object(m) => {
                if m.len() == 1 {
                    if let Some(Value::String(s)) = m.get("$numberDouble") {
                        if let Ok(f) = s.parse::<f64>() {
                            return serde_json::json!({ "$numberDouble": format!("{f:?}") });
                        }
                    }
                }
                Value::Object(m.into_iter().map(|(k, v)| (k, walk(v))).collect())
            }
            Value::Array(a) => Value::Array(a.into_iter().map(walk).collect()),
            other => other,
        }
    }
    let mut v = walk(v);
    if object_id {
        if let Some(id) = v.get_mut("_id") {
            if id.get("$oid").is_some_and(Value::is_string) {
                *id = Value::String("<ObjectId>".into());
            }
        }
    }
    v
}

/// A document's key for matching: the value of `field` as short text
/// (`{"$numberInt": "7"}` -> `7`).
pub fn doc_key(doc: &Value, field: &str) -> Option<String> {
    let v = doc.get(field)?;
    for t in ["$numberInt", "$numberLong"] {
        if let Some(s) = v.get(t).and_then(Value::as_str) {
            return Some(s.to_owned());
        }
    }
    Some(v.to_string())
}

/// The differences between two documents, one line per path (at most `max`).
pub fn diff(expected: &Value, got: &Value, max: usize) -> Vec<String> {
    let mut out = Vec::new();
    diff_at("", expected, got, &mut out);
    if out.len() > max {
        let n = out.len() - max;
        out.truncate(max);
        out.push(format!("… and {n} more"));
    }
    out
}

/// `v` with strings longer than 80 characters cut (`abc…(5000 chars)`): for reports.
pub fn shorten(v: &Value) -> Value {
    match v {
        Value::String(s) if s.len() > 80 => Value::String(format!(
            "{}…({} chars)",
            s.chars().take(60).collect::<String>(),
            s.len()
        )),
        Value::Array(a) => Value::Array(a.iter().map(shorten).collect()),
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shorten(v))).collect()),
        other => other.clone(),
    }
}

fn diff_at(path: &str, e: &Value, g: &Value, out: &mut Vec<String>) {
    let here = if path.is_empty() { "(document)" } else { path };
    let join = |k: &str| {
        if path.is_empty() {
            k.to_owned()
        } else {
            format!("{path}.{k}")
        }
    };
    match (e, g) {
        (Value::Object(em), Value::Object(gm))
            if !is_scalar_wrapper(e) && !is_scalar_wrapper(g) =>
        {
            let before = out.len();
            for (k, ev) in em {
                match gm.get(k) {
                    None => out.push(format!("{}: missing, expected {}", join(k), shorten(ev))),
                    Some(gv) => diff_at(&join(k), ev, gv, out),
                }
            }
            for (k, gv) in gm {
                if !em.contains_key(k) {
                    out.push(format!(
                        "{}: unexpected field, got {}",
                        join(k),
                        shorten(gv)
                    ));
                }
            }
            if out.len() == before {
                let ek: Vec<&String> = em.keys().collect();
                let gk: Vec<&String> = gm.keys().collect();
                if ek != gk {
                    out.push(format!("{here}: field order: expected {ek:?}, got {gk:?}"));
                }
            }
        }
        (Value::Array(ea), Value::Array(ga)) => {
            if ea.len() != ga.len() {
                out.push(format!(
                    "{here}: expected {} elements, got {}: expected {}, got {}",
                    ea.len(),
                    ga.len(),
                    shorten(e),
                    shorten(g)
                ));
                return;
            }
            for (i, (ev, gv)) in ea.iter().zip(ga).enumerate() {
                diff_at(&format!("{path}[{i}]"), ev, gv, out);
            }
        }
        _ => {
            if e != g {
                out.push(format!(
                    "{here}: expected {}, got {}",
                    shorten(e),
                    shorten(g)
                ));
            }
        }
    }
}

/// `{"$numberInt": "1"}` and the like: compared as values, not as documents.
fn is_scalar_wrapper(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|m| m.len() == 1 && m.keys().next().is_some_and(|k| k.starts_with('$')))
}

/// The outcome of comparing one collection.
#[derive(Debug, Default)]
pub struct Comparison {
    pub collection: String,
    pub expected: usize,
    pub got: usize,
    pub missing: Vec<String>,
    pub extra: Vec<String>,
    /// (key, diff lines, expected, got)
    pub different: Vec<(String, Vec<String>, Value, Value)>,
    /// Documents of the collection without the key field, or sharing a key.
    pub malformed: Vec<String>,
}

impl Comparison {
    pub fn ok(&self) -> bool {
        self.missing.is_empty()
            && self.extra.is_empty()
            && self.different.is_empty()
            && self.malformed.is_empty()
    }

    /// Every differing path (array indexes as `[]`) with how many documents
    /// differ there, most first: what kind of mismatch it is, at a glance.
    pub fn paths(&self) -> String {
        let mut count: BTreeMap<String, usize> = BTreeMap::new();
        for (_, lines, _, _) in &self.different {
            let mut seen = BTreeSet::new();
            for l in lines {
                let path = l.split(": ").next().unwrap_or(l);
                let mut p = String::new();
                let mut in_index = false;
                for c in path.chars() {
                    match c {
                        '[' => {
                            in_index = true;
                            p.push_str("[]");
                        }
                        ']' => in_index = false,
                        _ if in_index => {}
                        _ => p.push(c),
                    }
                }
                seen.insert(p);
            }
            for p in seen {
                *count.entry(p).or_default() += 1;
            }
        }
        let mut v: Vec<(String, usize)> = count.into_iter().collect();
        v.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        v.iter()
            .map(|(p, n)| format!("{p} ({n})"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A readable report: counts, the keys, and the first few diffs.
    pub fn report(&self, shown: usize) -> String {
        let mut s = String::new();
        let keys = |v: &[String]| {
            let mut t = v.iter().take(20).cloned().collect::<Vec<_>>().join(", ");
            if v.len() > 20 {
                t.push_str(&format!(", … ({} in all)", v.len()));
            }
            t
        };
        let _ = writeln!(
            s,
            "{}: {} documents expected, {} in MongoDB: {} missing, {} extra, {} different, {} malformed",
            self.collection,
            self.expected,
            self.got,
            self.missing.len(),
            self.extra.len(),
            self.different.len(),
            self.malformed.len()
        );
        if !self.missing.is_empty() {
            let _ = writeln!(s, "  missing keys: {}", keys(&self.missing));
        }
        if !self.extra.is_empty() {
            let _ = writeln!(s, "  extra keys: {}", keys(&self.extra));
        }
        for m in self.malformed.iter().take(shown) {
            let _ = writeln!(s, "  malformed: {m}");
        }
        if !self.different.is_empty() {
            let ks: Vec<String> = self.different.iter().map(|d| d.0.clone()).collect();
            let _ = writeln!(s, "  different keys: {}", keys(&ks));
            let _ = writeln!(s, "  where they differ: {}", self.paths());
        }
        for (key, lines, e, g) in self.different.iter().take(shown) {
            let _ = writeln!(s, "  key {key}:");
            for l in lines {
                let _ = writeln!(s, "    {l}");
            }
            let _ = writeln!(s, "    expected: {}", shorten(e));
            let _ = writeln!(s, "    got:      {}", shorten(g));
        }
        s
    }
}

fn sort_keys(keys: &mut [String]) {
    keys.sort_by_key(|k| (k.parse::<i64>().unwrap_or(i64::MAX), k.clone()));
}

/// Compares documents matched by `key_field` (both sides normalized already).
pub fn compare(collection: &str, key_field: &str, expected: &[Value], got: &[Value]) -> Comparison {
    compare_by(collection, key_field, expected, got, |d| {
        doc_key(d, key_field)
    })
}

/// Compares documents without a key of their own (a table without primary
/// key: the `_id`s are the server's ObjectIds) as multisets: each document
/// without `_id` is its own key, duplicates numbered.
pub fn compare_multiset(collection: &str, expected: &[Value], got: &[Value]) -> Comparison {
    let keyed = |docs: &[Value]| -> Vec<Value> {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        docs.iter()
            .map(|d| {
                let mut d = d.clone();
                if let Some(m) = d.as_object_mut() {
                    m.shift_remove("_id");
                }
                let text = d.to_string();
                let n = seen.entry(text.clone()).or_default();
                *n += 1;
                serde_json::json!({"key": format!("{text}#{n}"), "doc": d})
            })
            .collect()
    };
    let (want, have) = (keyed(expected), keyed(got));
    let mut c = compare_by(collection, "key", &want, &have, |d| {
        d.get("key").and_then(Value::as_str).map(str::to_owned)
    });
    c.expected = expected.len();
    c.got = got.len();
    c
}

fn compare_by(
    collection: &str,
    key_field: &str,
    expected: &[Value],
    got: &[Value],
    key: impl Fn(&Value) -> Option<String>,
) -> Comparison {
    let mut c = Comparison {
        collection: collection.to_owned(),
        expected: expected.len(),
        got: got.len(),
        ..Default::default()
    };
    let mut want: BTreeMap<String, &Value> = BTreeMap::new();
    for d in expected {
        let k = key(d).expect("expected documents have their key");
        want.insert(k, d);
    }
    let mut have: BTreeMap<String, &Value> = BTreeMap::new();
    for d in got {
        match key(d) {
            None => c.malformed.push(format!("no {key_field}: {d}")),
            Some(k) => {
                if have.insert(k.clone(), d).is_some() {
                    c.malformed
                        .push(format!("two documents with {key_field} {k}: {d}"));
                }
            }
        }
    }
    for (k, e) in &want {
        match have.get(k) {
            None => c.missing.push(k.clone()),
            Some(g) => {
                let lines = diff(e, g, 12);
                if !lines.is_empty() {
                    c.different
                        .push((k.clone(), lines, (*e).clone(), (*g).clone()));
                }
            }
        }
    }
    c.extra = have
        .keys()
        .filter(|k| !want.contains_key(*k))
        .cloned()
        .collect();
    sort_keys(&mut c.missing);
    sort_keys(&mut c.extra);
    c.different
        .sort_by_key(|d| (d.0.parse::<i64>().unwrap_or(i64::MAX), d.0.clone()));
    c
}

/// Every document of `collection` as canonical Extended JSON (field order
/// kept), through the tests' one collection reader.
pub async fn mongo_documents(
    client: &mongodb::Client,
    db: &str,
    collection: &str,
) -> Result<Vec<Value>> {
    Ok(crate::mongo::documents(client, db, collection)
        .await?
        .into_iter()
        .map(|d| mongodb::bson::Bson::Document(d).into_canonical_extjson())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_diff_names_paths_values_and_field_order() {
        let e = json!({"_id": 1, "a": {"b": [1, 2]}, "c": {"$numberDecimal": "1.50"}, "d": 1});
        let g = json!({"_id": 1, "a": {"b": [1, 3]}, "c": {"$numberDecimal": "1.5"}, "e": 2});
        let d = diff(&e, &g, 10);
        assert_eq!(
            d,
            vec![
                "a.b[1]: expected 2, got 3",
                "c: expected {\"$numberDecimal\":\"1.50\"}, got {\"$numberDecimal\":\"1.5\"}",
                "d: missing, expected 1",
                "e: unexpected field, got 2",
            ]
        );
        let order = diff(&json!({"a": 1, "b": 2}), &json!({"b": 2, "a": 1}), 10);
        assert_eq!(
            order,
            vec!["(document): field order: expected [\"a\", \"b\"], got [\"b\", \"a\"]"]
        );
        assert!(diff(&e, &e, 10).is_empty());
        let long = |c: char| json!({"n": format!("{}{c}", "x".repeat(100))});
        let d = diff(&long('a'), &long('b'), 10);
        assert_eq!(
            d.len(),
            1,
            "long strings differing at the end differ: {d:?}"
        );
        assert!(d[0].contains("…(101 chars)"), "{d:?}");
    }

    #[test]
    fn normalizing_makes_doubles_and_object_ids_comparable() {
        let pg = json!({"_id": "<ObjectId>", "x": {"$numberDouble": "1234"}});
        let mongo =
            json!({"_id": {"$oid": "0123456789abcdef01234567"}, "x": {"$numberDouble": "1234.0"}});
        assert_eq!(normalize(pg, false), normalize(mongo, true));
    }

    #[test]
    fn the_comparison_reports_missing_extra_and_different_documents() {
        let k = |i: i32| json!({"$numberInt": i.to_string()});
        let expected = vec![
            json!({"_id": k(1), "v": 1}),
            json!({"_id": k(2), "v": 2}),
            json!({"_id": k(10), "v": 3}),
        ];
        let got = vec![
            json!({"_id": k(2), "v": 20}),
            json!({"_id": k(3), "v": 3}),
            json!({"v": 0}),
        ];
        let c = compare("customers", "_id", &expected, &got);
        assert!(!c.ok());
        assert_eq!(c.missing, vec!["1", "10"]);
        assert_eq!(c.extra, vec!["3"]);
        assert_eq!(c.different.len(), 1);
        assert_eq!(c.different[0].1, vec!["v: expected 2, got 20"]);
        assert_eq!(c.malformed.len(), 1);
        let r = c.report(3);
        assert!(
            r.contains("missing keys: 1, 10") && r.contains("key 2:"),
            "{r}"
        );
    }
}
