//! JSON Schema → the JSON converter's `{"schema": …, "payload": …}`.
//!
//! The data is JSON already; the schema gives the Connect types. The
//! annotations Confluent's JSON Schema converter writes are honoured:
//! `connect.type` (`int8`…`int64`, `float32`, `float64`, `bytes`, `map`),
//! `connect.name` (or `title` of an object), `connect.version`,
//! `connect.parameters`, `connect.index` (field order); `oneOf` with `null`
//! makes a field optional. The payload is checked against the types (a value
//! of the wrong JSON type is bad input) and its fields put in schema order.

use serde_json::{Map, Value};

pub struct JsonSchema {
    root: Value,
    /// The Connect schema of the root, as JSON text.
    pub connect_schema: String,
}

impl JsonSchema {
    pub fn parse(text: &str) -> Result<JsonSchema, String> {
        let root: Value =
            serde_json::from_str(text).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        let connect = connect(&root, false)?;
        Ok(JsonSchema {
            root,
            connect_schema: connect.to_string(),
        })
    }

    pub fn decode(&self, data: &[u8]) -> Result<Value, String> {
        let v: Value =
            serde_json::from_slice(data).map_err(|e| format!("the bytes are not JSON: {e}"))?;
        payload(&self.root, v, "$")
    }
}

/// `oneOf`/`anyOf` with `{"type":"null"}` and one other schema → (the other, optional).
fn unwrap_optional(s: &Value) -> (&Value, bool) {
    for k in ["oneOf", "anyOf"] {
        if let Some(Value::Array(branches)) = s.get(k) {
            let non_null: Vec<&Value> = branches
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) != Some("null"))
                .collect();
            if non_null.len() == 1 {
                return (non_null[0], non_null.len() < branches.len());
            }
        }
    }
    if let Some(Value::Array(types)) = s.get("type") {
        // {"type": ["null", "string"]}: handled by the caller through connect_type
        let _ = types;
    }
    (s, false)
}

fn json_type(s: &Value) -> (Option<&str>, bool) {
    match s.get("type") {
        Some(Value::String(t)) => (Some(t.as_str()), false),
        Some(Value::Array(ts)) => {
            let non_null: Vec<&str> = ts
                .iter()
                .filter_map(Value::as_str)
                .filter(|t| *t != "null")
                .collect();
            (non_null.first().copied(), non_null.len() < ts.len())
        }
        _ => (None, false),
    }
}

fn fields(s: &Value) -> Vec<(&String, &Value)> {
    let mut f: Vec<(&String, &Value)> = s
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.iter().collect())
        .unwrap_or_default();
    if f.iter().all(|(_, v)| {
        unwrap_optional(v).0.get("connect.index").is_some() || v.get("connect.index").is_some()
    }) {
        f.sort_by_key(|(_, v)| {
            v.get("connect.index")
                .or_else(|| unwrap_optional(v).0.get("connect.index"))
                .and_then(Value::as_i64)
                .unwrap_or(0)
        });
    }
    f
}

fn connect(s: &Value, optional: bool) -> Result<Value, String> {
    let (s, opt) = unwrap_optional(s);
    let (t, nullable) = json_type(s);
    let optional = optional || opt || nullable;
    let ct = s.get("connect.type").and_then(Value::as_str);
    // the JSON converter's type names: FLOAT32/FLOAT64 are "float"/"double"
    let ty = match (t, ct) {
        (_, Some("float32")) => "float",
        (_, Some("float64")) => "double",
        (
            _,
            Some(
                c @ ("int8" | "int16" | "int32" | "int64" | "bytes" | "map" | "boolean" | "string"),
            ),
        ) => c,
        (Some("integer"), _) => "int64",
        (Some("number"), _) => "double",
        (Some("string"), _) => "string",
        (Some("boolean"), _) => "boolean",
        (Some("array"), _) => "array",
        (Some("object"), _)
            if s.get("properties").is_none() && s.get("additionalProperties").is_some() =>
        {
            "map"
        }
        (Some("object"), _) => "struct",
        (other, _) => {
            return Err(format!(
                "JSON Schema type {other:?} has no Connect equivalent"
            ))
        }
    };
    let mut o = Map::new();
    o.insert("type".into(), Value::from(ty));
    match ty {
        "struct" => {
            let mut fs = Vec::new();
            let required: Vec<&str> = s
                .get("required")
                .and_then(Value::as_array)
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let has_required = s.get("required").is_some();
            for (name, f) in fields(s) {
                let opt = has_required && !required.contains(&name.as_str());
                let mut c = connect(f, opt)?;
                c.as_object_mut()
                    .expect("object")
                    .insert("field".into(), Value::from(name.clone()));
                fs.push(c);
            }
            o.insert("fields".into(), Value::Array(fs));
        }
        "array" => {
            o.insert(
                "items".into(),
                connect(s.get("items").unwrap_or(&Value::Null), false)?,
            );
        }
        "map" => {
            o.insert(
                "keys".into(),
                serde_json::json!({"type": "string", "optional": false}),
            );
            o.insert(
                "values".into(),
                connect(s.get("additionalProperties").unwrap_or(&Value::Null), false)?,
            );
        }
        _ => {}
    }
    o.insert("optional".into(), Value::from(optional));
    let name = s
        .get("connect.name")
        .or_else(|| (ty == "struct").then(|| s.get("title")).flatten());
    if let Some(n) = name {
        o.insert("name".into(), n.clone());
    }
    for (from, to) in [
        ("connect.version", "version"),
        ("connect.doc", "doc"),
        ("connect.parameters", "parameters"),
    ] {
        if let Some(v) = s.get(from) {
            o.insert(to.into(), v.clone());
        }
    }
    if let Some(d) = s.get("default").filter(|d| !d.is_null()) {
        o.insert("default".into(), d.clone());
    }
    Ok(Value::Object(o))
}

fn payload(s: &Value, v: Value, path: &str) -> Result<Value, String> {
    if v.is_null() {
        return Ok(v);
    }
    let (s, _) = unwrap_optional(s);
    let (t, _) = json_type(s);
    let ct = s.get("connect.type").and_then(Value::as_str);
    let bad = |want: &str, v: &Value| format!("{path}: expected {want}, found {v}");
    match (t, ct, v) {
        (Some("object"), Some("map"), Value::Object(m))
        | (Some("object"), None, Value::Object(m))
            if s.get("properties").is_none() =>
        {
            let vs = s.get("additionalProperties").unwrap_or(&Value::Null);
            let mut o = Map::new();
            for (k, x) in m {
                let p = format!("{path}.{k}");
                o.insert(k, payload(vs, x, &p)?);
            }
            Ok(Value::Object(o))
        }
        (Some("object"), _, Value::Object(mut m)) => {
            let mut o = Map::new();
            for (name, f) in fields(s) {
                let x = m.remove(name.as_str()).unwrap_or(Value::Null);
                o.insert(name.clone(), payload(f, x, &format!("{path}.{name}"))?);
            }
            Ok(Value::Object(o))
        }
        (Some("array"), _, Value::Array(items)) => {
            let is = s.get("items").unwrap_or(&Value::Null);
            Ok(Value::Array(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, x)| payload(is, x, &format!("{path}[{i}]")))
                    .collect::<Result<_, _>>()?,
            ))
        }
        (Some("integer"), _, v @ Value::Number(_)) if v.is_i64() || v.is_u64() => Ok(v),
        (Some("number"), _, v @ Value::Number(_)) => Ok(v),
        (Some("string"), _, v @ Value::String(_)) => Ok(v),
        (Some("boolean"), _, v @ Value::Bool(_)) => Ok(v),
        (None, _, v) => Ok(v),
        (Some(t), _, v) => Err(bad(t, &v)),
    }
}
