//! Avro → the JSON converter's `{"schema": …, "payload": …}`.
//!
//! `apache-avro` parses the writer schema and decodes the binary datum (it
//! checks the bytes against the schema: a record that does not match is an
//! error, never a guess). The Connect schema is rebuilt from the schema's
//! JSON, because the Connect metadata Debezium's converter writes into it
//! (`connect.name`, `connect.version`, `connect.parameters`, `connect.type`,
//! `connect.default`) are attributes `apache-avro` does not keep on primitive
//! types. The rules follow Confluent's `AvroData.toConnectSchema` and the
//! JSON converter's `asJsonSchema`/`convertToJson`.

use std::collections::HashMap;

use apache_avro::types::Value as Avro;
use base64::Engine as _;
use serde_json::{Map, Value};

/// An Avro schema ready to decode records: the parsed schema, its tree with
/// Connect metadata, and the Connect schema as JSON text.
pub struct AvroSchema {
    schema: apache_avro::Schema,
    nodes: Vec<Node>,
    root: usize,
    /// The Connect schema of the root, as JSON text.
    pub connect_schema: String,
}

#[derive(Debug)]
enum Kind {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Record(Vec<Field>),
    Enum,
    Array(usize),
    Map(usize),
    /// Branch nodes, in order.
    Union(Vec<usize>),
    Fixed,
}

#[derive(Debug)]
struct Field {
    name: String,
    node: usize,
    default: Option<Value>,
}

#[derive(Debug)]
struct Node {
    kind: Kind,
    /// The schema object (or type name) this node was built from.
    json: Value,
    /// A placeholder for a named type not yet compiled (a reference).
    pending: Option<String>,
}

impl AvroSchema {
    pub fn parse(text: &str) -> Result<AvroSchema, String> {
        let schema = apache_avro::Schema::parse_str(text)
            .map_err(|e| format!("not a valid Avro schema: {e}"))?;
        let json: Value =
            serde_json::from_str(text).map_err(|e| format!("not a valid Avro schema: {e}"))?;
        let mut c = Compiler::default();
        let root = c.node(&json, "")?;
        // resolve references to named types
        for i in 0..c.nodes.len() {
            if let Some(name) = c.nodes[i].pending.clone() {
                let target = *c
                    .names
                    .get(&name)
                    .ok_or_else(|| format!("unknown type `{name}` in the Avro schema"))?;
                c.redirect.insert(i, target);
            }
        }
        let mut s = AvroSchema {
            schema,
            nodes: c.nodes,
            root,
            connect_schema: String::new(),
        };
        s.redirect_all(&c.redirect);
        let connect = s.connect(s.root, false, None, &mut Vec::new())?;
        s.connect_schema = connect.to_string();
        Ok(s)
    }

    fn redirect_all(&mut self, redirect: &HashMap<usize, usize>) {
        let fix = |i: &mut usize| {
            if let Some(t) = redirect.get(i) {
                *i = *t;
            }
        };
        for n in &mut self.nodes {
            match &mut n.kind {
                Kind::Record(fields) => fields.iter_mut().for_each(|f| fix(&mut f.node)),
                Kind::Array(i) | Kind::Map(i) => fix(i),
                Kind::Union(b) => b.iter_mut().for_each(fix),
                _ => {}
            }
        }
        if let Some(t) = redirect.get(&self.root) {
            self.root = *t;
        }
    }

    /// Decodes an Avro datum (the bytes after the wire-format header) into
    /// the JSON converter's payload.
    pub fn decode(&self, mut data: &[u8]) -> Result<Value, String> {
        let v = apache_avro::from_avro_datum(&self.schema, &mut data, None)
            .map_err(|e| format!("the bytes do not match the Avro schema: {e}"))?;
        if !data.is_empty() {
            return Err(format!(
                "the bytes do not match the Avro schema: {} bytes left after the record",
                data.len()
            ));
        }
        self.payload(self.root, v)
    }

    /// The Connect schema (JSON converter form) of a node.
    fn connect(
        &self,
        i: usize,
        optional: bool,
        default: Option<&Value>,
        stack: &mut Vec<usize>,
    ) -> Result<Value, String> {
        let n = &self.nodes[i];
        if let Kind::Union(branches) = &n.kind {
            let non_null: Vec<usize> = branches
                .iter()
                .copied()
                .filter(|b| !matches!(self.nodes[*b].kind, Kind::Null))
                .collect();
            return match non_null[..] {
                [one] => self.connect(one, true, default, stack),
                _ => Err(format!(
                    "Avro unions of several types ({}) have no Connect equivalent the JSON converter writes",
                    n.json
                )),
            };
        }
        if stack.contains(&i) {
            return Err("recursive Avro types have no Connect equivalent".into());
        }
        stack.push(i);
        let attr = |k: &str| n.json.get(k);
        let connect_type = attr("connect.type").and_then(Value::as_str);
        let logical = attr("logicalType").and_then(Value::as_str);
        let mut o = Map::new();
        let mut name = attr("connect.name")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let mut version = attr("connect.version").cloned();
        let mut parameters = attr("connect.parameters").cloned();
        let ty = match &n.kind {
            Kind::Null => return Err("a null Avro type outside a union".into()),
            Kind::Boolean => "boolean",
            Kind::Int => match connect_type {
                Some("int8") => "int8",
                Some("int16") => "int16",
                _ => "int32",
            },
            Kind::Long => "int64",
            // the JSON converter's names of Connect's FLOAT32 and FLOAT64
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::Bytes | Kind::Fixed => "bytes",
            Kind::String | Kind::Enum => "string",
            Kind::Record(_) => "struct",
            Kind::Array(_) => "array",
            Kind::Map(_) => "map",
            Kind::Union(_) => unreachable!(),
        };
        if logical == Some("decimal") {
            name = Some("org.apache.kafka.connect.data.Decimal".into());
            version.get_or_insert(Value::from(1));
            if parameters.is_none() {
                let mut p = Map::new();
                let scale = attr("scale").and_then(Value::as_i64).unwrap_or(0);
                p.insert("scale".into(), Value::from(scale.to_string()));
                if let Some(prec) = attr("precision").and_then(Value::as_i64) {
                    p.insert(
                        "connect.decimal.precision".into(),
                        Value::from(prec.to_string()),
                    );
                }
                parameters = Some(Value::Object(p));
            }
        }
        if name.is_none() {
            // Connect logical types written as Avro logical types
            name = match (logical, &n.kind) {
                (Some("date"), Kind::Int) => Some("org.apache.kafka.connect.data.Date".into()),
                (Some("time-millis"), Kind::Int) => {
                    Some("org.apache.kafka.connect.data.Time".into())
                }
                (Some("timestamp-millis"), Kind::Long) => {
                    Some("org.apache.kafka.connect.data.Timestamp".into())
                }
                (_, Kind::Record(_)) => attr("name").and_then(Value::as_str).map(|s| {
                    match attr("namespace").and_then(Value::as_str) {
                        Some(ns) if !s.contains('.') && !ns.is_empty() => format!("{ns}.{s}"),
                        _ => s.to_owned(),
                    }
                }),
                _ => None,
            };
        }
        o.insert("type".into(), Value::from(ty));
        match &n.kind {
            Kind::Record(fields) => {
                let mut fs = Vec::with_capacity(fields.len());
                for f in fields {
                    let mut s = self.connect(f.node, false, f.default.as_ref(), stack)?;
                    s.as_object_mut()
                        .expect("a Connect schema is an object")
                        .insert("field".into(), Value::from(f.name.clone()));
                    fs.push(s);
                }
                o.insert("fields".into(), Value::Array(fs));
            }
            Kind::Array(items) => {
                o.insert("items".into(), self.connect(*items, false, None, stack)?);
            }
            Kind::Map(values) => {
                o.insert(
                    "keys".into(),
                    serde_json::json!({"type": "string", "optional": false}),
                );
                o.insert("values".into(), self.connect(*values, false, None, stack)?);
            }
            _ => {}
        }
        o.insert("optional".into(), Value::from(optional));
        if let Some(name) = name {
            o.insert("name".into(), Value::from(name));
        }
        if let Some(v) = version {
            o.insert("version".into(), v);
        }
        if let Some(d) = attr("connect.doc") {
            o.insert("doc".into(), d.clone());
        }
        if let Some(p) = parameters {
            o.insert("parameters".into(), p);
        }
        let default = attr("connect.default").or(default);
        if let Some(d) = default.filter(|d| !d.is_null()) {
            o.insert("default".into(), self.default_value(i, d));
        }
        stack.pop();
        Ok(Value::Object(o))
    }

    /// An Avro default (JSON) as the JSON converter writes a Connect default.
    fn default_value(&self, i: usize, d: &Value) -> Value {
        match (&self.nodes[i].kind, d) {
            // Avro writes bytes defaults as a string of code points 0-255
            (Kind::Bytes | Kind::Fixed, Value::String(s)) => {
                let bytes: Vec<u8> = s.chars().map(|c| c as u32 as u8).collect();
                Value::from(base64::engine::general_purpose::STANDARD.encode(bytes))
            }
            _ => d.clone(),
        }
    }

    /// A decoded Avro value as the JSON converter writes the Connect value.
    fn payload(&self, i: usize, v: Avro) -> Result<Value, String> {
        let n = &self.nodes[i];
        let b64 = |b: &[u8]| Value::from(base64::engine::general_purpose::STANDARD.encode(b));
        Ok(match (v, &n.kind) {
            (Avro::Union(idx, inner), Kind::Union(branches)) => {
                let b = *branches
                    .get(idx as usize)
                    .ok_or_else(|| format!("union branch {idx} out of range"))?;
                self.payload(b, *inner)?
            }
            (Avro::Null, _) => Value::Null,
            (Avro::Boolean(b), _) => Value::from(b),
            (Avro::Int(x) | Avro::Date(x) | Avro::TimeMillis(x), _) => Value::from(x),
            (
                Avro::Long(x)
                | Avro::TimeMicros(x)
                | Avro::TimestampMillis(x)
                | Avro::TimestampMicros(x)
                | Avro::TimestampNanos(x)
                | Avro::LocalTimestampMillis(x)
                | Avro::LocalTimestampMicros(x)
                | Avro::LocalTimestampNanos(x),
                _,
            ) => Value::from(x),
            // as Java's Float.toString: the shortest text that reads back as the float
            (Avro::Float(x), _) => float32(x),
            (Avro::Double(x), _) => serde_json::Number::from_f64(x)
                .map(Value::Number)
                .ok_or_else(|| format!("{x} has no JSON number"))?,
            (Avro::Bytes(b) | Avro::Fixed(_, b), _) => b64(&b),
            (Avro::Decimal(d), _) => {
                let bytes = Vec::<u8>::try_from(&d).map_err(|e| format!("decimal: {e}"))?;
                b64(&bytes)
            }
            (Avro::String(s) | Avro::Enum(_, s), _) => Value::from(s),
            (Avro::Uuid(u), _) => Value::from(u.to_string()),
            (Avro::Array(items), Kind::Array(item)) => Value::Array(
                items
                    .into_iter()
                    .map(|x| self.payload(*item, x))
                    .collect::<Result<_, _>>()?,
            ),
            (Avro::Map(m), Kind::Map(values)) => {
                let mut keys: Vec<_> = m.into_iter().collect();
                keys.sort_by(|a, b| a.0.cmp(&b.0));
                let mut o = Map::new();
                for (k, x) in keys {
                    o.insert(k, self.payload(*values, x)?);
                }
                Value::Object(o)
            }
            (Avro::Record(values), Kind::Record(fields)) => {
                let mut o = Map::new();
                for ((name, x), f) in values.into_iter().zip(fields) {
                    o.insert(name, self.payload(f.node, x)?);
                }
                Value::Object(o)
            }
            (v, k) => return Err(format!("an Avro value {v:?} where the schema has {k:?}")),
        })
    }
}

pub(super) fn float32(x: f32) -> Value {
    // `{}` of an f32 is its shortest round-trip text, as Java's Float.toString
    format!("{x}")
        .parse::<f64>()
        .ok()
        .and_then(serde_json::Number::from_f64)
        .map(Value::Number)
        .unwrap_or(Value::Null)
}

#[derive(Default)]
struct Compiler {
    nodes: Vec<Node>,
    /// Full name → node of named types.
    names: HashMap<String, usize>,
    redirect: HashMap<usize, usize>,
}

fn full_name(name: &str, ns: &str) -> String {
    if name.contains('.') || ns.is_empty() {
        name.to_owned()
    } else {
        format!("{ns}.{name}")
    }
}

impl Compiler {
    fn push(&mut self, kind: Kind, json: &Value) -> usize {
        self.nodes.push(Node {
            kind,
            json: json.clone(),
            pending: None,
        });
        self.nodes.len() - 1
    }

    fn node(&mut self, j: &Value, ns: &str) -> Result<usize, String> {
        match j {
            Value::String(t) => Ok(match primitive(t) {
                Some(k) => self.push(k, j),
                None => {
                    let full = full_name(t, ns);
                    match self.names.get(&full).or_else(|| self.names.get(t)) {
                        Some(i) => *i,
                        None => {
                            // defined later (or an error found when resolving)
                            self.nodes.push(Node {
                                kind: Kind::Null,
                                json: j.clone(),
                                pending: Some(full),
                            });
                            self.nodes.len() - 1
                        }
                    }
                }
            }),
            Value::Array(branches) => {
                let mut b = Vec::with_capacity(branches.len());
                for x in branches {
                    b.push(self.node(x, ns)?);
                }
                Ok(self.push(Kind::Union(b), j))
            }
            Value::Object(o) => {
                let t = o
                    .get("type")
                    .ok_or("an Avro schema object without `type`")?;
                let t = match t {
                    Value::String(t) => t.as_str(),
                    // {"type": {"type": "string"}} and the like
                    other => return self.node(other, ns),
                };
                let named_ns = |o: &Map<String, Value>| -> (String, String) {
                    let name = o.get("name").and_then(Value::as_str).unwrap_or_default();
                    let ns2 = o
                        .get("namespace")
                        .and_then(Value::as_str)
                        .map(str::to_owned)
                        .unwrap_or_else(|| ns.to_owned());
                    let full = full_name(name, &ns2);
                    let inner_ns = full.rsplit_once('.').map(|x| x.0).unwrap_or("").to_owned();
                    (full, inner_ns)
                };
                match t {
                    "record" | "error" => {
                        let (full, inner_ns) = named_ns(o);
                        let i = self.push(Kind::Record(Vec::new()), j);
                        self.names.insert(full, i);
                        let mut fields = Vec::new();
                        for f in o
                            .get("fields")
                            .and_then(Value::as_array)
                            .ok_or("an Avro record without `fields`")?
                        {
                            let name = f
                                .get("name")
                                .and_then(Value::as_str)
                                .ok_or("an Avro field without a name")?
                                .to_owned();
                            let node = self.node(
                                f.get("type").ok_or("an Avro field without a type")?,
                                &inner_ns,
                            )?;
                            fields.push(Field {
                                name,
                                node,
                                default: f.get("default").cloned(),
                            });
                        }
                        self.nodes[i].kind = Kind::Record(fields);
                        Ok(i)
                    }
                    "enum" | "fixed" => {
                        let (full, _) = named_ns(o);
                        let i = self.push(if t == "enum" { Kind::Enum } else { Kind::Fixed }, j);
                        self.names.insert(full, i);
                        Ok(i)
                    }
                    "array" => {
                        let items =
                            self.node(o.get("items").ok_or("an Avro array without `items`")?, ns)?;
                        Ok(self.push(Kind::Array(items), j))
                    }
                    "map" => {
                        let values =
                            self.node(o.get("values").ok_or("an Avro map without `values`")?, ns)?;
                        Ok(self.push(Kind::Map(values), j))
                    }
                    p => match primitive(p) {
                        Some(k) => Ok(self.push(k, j)),
                        None => {
                            let full = full_name(p, ns);
                            match self.names.get(&full).or_else(|| self.names.get(p)) {
                                Some(i) => Ok(*i),
                                None => Err(format!("unknown Avro type `{p}`")),
                            }
                        }
                    },
                }
            }
            other => Err(format!("not an Avro schema: {other}")),
        }
    }
}

fn primitive(t: &str) -> Option<Kind> {
    Some(match t {
        "null" => Kind::Null,
        "boolean" => Kind::Boolean,
        "int" => Kind::Int,
        "long" => Kind::Long,
        "float" => Kind::Float,
        "double" => Kind::Double,
        "bytes" => Kind::Bytes,
        "string" => Kind::String,
        _ => return None,
    })
}
