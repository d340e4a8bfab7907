//! Protobuf → the JSON converter's `{"schema": …, "payload": …}`.
//!
//! The registry holds a Protobuf schema either as `.proto` text (what
//! Confluent's Java serializers and converter register) or as a base64
//! `FileDescriptorProto` (what Confluent's Python serializer registers).
//! `protox` compiles the text (a pure-Rust `.proto` compiler: no `protoc` on
//! the machine) and `prost-reflect` decodes records dynamically against the
//! descriptors. A record names its message by the Confluent message indexes
//! after the schema id (zigzag varints: a count, then the path of indexes
//! through the file's messages and their nested ones; a single `0` byte is
//! the first message).
//!
//! The Connect schema follows Confluent's `ProtobufData.toConnectSchema`
//! with its default settings: a message is a `struct` named by its simple
//! name, every field optional with the parameter `protobuf.tag`,
//! `uint32`/`fixed32`/64-bit kinds `int64`, an enum a `string`, a repeated
//! field an `array`, a map field a `map`, a real `oneof` a struct field
//! `<name>_<index>` (named `io.confluent.connect.protobuf.Union.<name>`);
//! `confluent.type.Decimal` is a Connect `Decimal` (scale and precision from
//! `(confluent.field_meta).params`), `google.type.Date`, `google.type.TimeOfDay`
//! and `google.protobuf.Timestamp` the Connect `Date`, `Time` and `Timestamp`.
//! Additions, documented in docs/schema-registry.md: the wrapper types
//! (`google.protobuf.Int32Value`…) are their value, and the field-meta params
//! `connect.name`, `connect.version` and `connect.type` (`int8`, `int16`)
//! set the Connect name, version and type, so Debezium's semantic types
//! (`io.debezium.time.Date`, `…ZonedTimestamp`) survive the trip; other
//! params are Connect parameters.
//!
//! The payload follows `toConnectData`: an unset message field or proto3
//! `optional` field is `null`, an unset plain scalar its default, a repeated
//! field an array (never `null`).

use std::collections::HashMap;

use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    DescriptorPool, DynamicMessage, ExtensionDescriptor, FieldDescriptor, FileDescriptor, Kind,
    MapKey, MessageDescriptor, ReflectMessage, Value as Pv,
};
use serde_json::{Map, Value};

/// Files every schema may import without a reference: what Confluent treats
/// as built in (`confluent/…`, `google/type/…`), compiled once. The
/// `google/protobuf/…` files come with `protox`.
const BUILTIN: &[(&str, &str)] = &[
    (
        "confluent/meta.proto",
        r#"syntax = "proto3";
package confluent;
import "google/protobuf/descriptor.proto";
message Meta {
  string doc = 1;
  map<string, string> params = 2;
  repeated string tags = 3;
}
extend google.protobuf.FileOptions { Meta file_meta = 1088; }
extend google.protobuf.MessageOptions { Meta message_meta = 1088; }
extend google.protobuf.FieldOptions { Meta field_meta = 1088; }
extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }
extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }
"#,
    ),
    (
        "confluent/type/decimal.proto",
        r#"syntax = "proto3";
package confluent.type;
message Decimal {
  bytes value = 1;
  uint32 precision = 2;
  int32 scale = 3;
}
"#,
    ),
    (
        "google/type/date.proto",
        r#"syntax = "proto3";
package google.type;
message Date {
  int32 year = 1;
  int32 month = 2;
  int32 day = 3;
}
"#,
    ),
    (
        "google/type/timeofday.proto",
        r#"syntax = "proto3";
package google.type;
message TimeOfDay {
  int32 hours = 1;
  int32 minutes = 2;
  int32 seconds = 3;
  int32 nanos = 4;
}
"#,
    ),
];

/// The name the main file of a schema compiled from text gets.
const MAIN: &str = "smt-registry-schema.proto";

/// Resolves imports: the schema text itself, the built-in files, then
/// `google/protobuf/…` from `protox`.
struct Resolver {
    main: Option<String>,
    google: protox::file::GoogleFileResolver,
}

impl protox::file::FileResolver for Resolver {
    fn open_file(&self, name: &str) -> Result<protox::file::File, protox::Error> {
        if let (MAIN, Some(text)) = (name, self.main.as_deref()) {
            return protox::file::File::from_source(name, text);
        }
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name) {
            return protox::file::File::from_source(name, text);
        }
        self.google.open_file(name)
    }
}

/// The built-in files (and `google/protobuf/descriptor.proto` they import).
fn builtin_pool() -> Result<DescriptorPool, String> {
    let mut c = protox::Compiler::with_file_resolver(Resolver {
        main: None,
        google: protox::file::GoogleFileResolver::new(),
    });
    c.include_imports(true);
    c.open_files(BUILTIN.iter().map(|(n, _)| *n))
        .map_err(|e| format!("the built-in Protobuf files do not compile: {e}"))?;
    Ok(c.descriptor_pool())
}

/// A Protobuf schema ready to decode records.
pub struct ProtoSchema {
    /// The schema's own file (not its imports).
    file: FileDescriptor,
    /// The Connect schema (JSON text) of every message of the file, by full
    /// name, or why it has none.
    connect: HashMap<String, Result<String, String>>,
    field_meta: Option<ExtensionDescriptor>,
}

impl ProtoSchema {
    /// From the registry's schema text: `.proto` source, or a base64
    /// `FileDescriptorProto`.
    pub fn parse(text: &str) -> Result<ProtoSchema, String> {
        let trimmed = text.trim();
        let descriptor = base64::engine::general_purpose::STANDARD
            .decode(trimmed)
            .ok()
            .and_then(|b| {
                let fd = prost_types::FileDescriptorProto::decode(b.as_slice()).ok()?;
                Some((fd.name?, b))
            })
            // a .proto text is never valid base64 of a descriptor with a name
            .filter(|(name, _)| !name.is_empty());
        let (pool, name) = match descriptor {
            Some((name, bytes)) => {
                let mut pool = builtin_pool()?;
                // decoded by the pool, not through prost-types: that would drop the
                // options' extensions ((confluent.field_meta) among them)
                pool.decode_file_descriptor_proto(bytes.as_slice())
                    .map_err(|e| format!("not a usable Protobuf descriptor: {e}"))?;
                (pool, name)
            }
            None => {
                let mut c = protox::Compiler::with_file_resolver(Resolver {
                    main: Some(text.to_owned()),
                    google: protox::file::GoogleFileResolver::new(),
                });
                c.include_imports(true);
                c.open_file(MAIN)
                    .map_err(|e| format!("not a valid Protobuf schema: {e}"))?;
                (c.descriptor_pool(), MAIN.to_owned())
            }
        };
        let file = pool
            .get_file_by_name(&name)
            .ok_or_else(|| format!("the Protobuf schema has no file {name}"))?;
        if file.messages().next().is_none() {
            return Err("the Protobuf schema defines no message".into());
        }
        let mut s = ProtoSchema {
            field_meta: pool.get_extension_by_name("confluent.field_meta"),
            file,
            connect: HashMap::new(),
        };
        let mut all = Vec::new();
        let mut stack: Vec<MessageDescriptor> = s.file.messages().collect();
        while let Some(m) = stack.pop() {
            stack.extend(m.child_messages());
            all.push(m);
        }
        for m in all {
            let c = s
                .message_schema(&m, false, &mut Vec::new())
                .map(|v| v.to_string());
            s.connect.insert(m.full_name().to_owned(), c);
        }
        Ok(s)
    }

    /// Decodes the bytes after the wire-format header (message indexes,
    /// then the message) into (Connect schema text, payload).
    pub fn decode(&self, data: &[u8]) -> Result<(&str, Value), String> {
        let (indexes, rest) = message_indexes(data)?;
        let desc = self.message_at(&indexes)?;
        let connect = match self.connect.get(desc.full_name()) {
            Some(Ok(c)) => c.as_str(),
            Some(Err(e)) => return Err(format!("message {}: {e}", desc.full_name())),
            None => {
                return Err(format!(
                    "message {} has no Connect schema",
                    desc.full_name()
                ))
            }
        };
        let msg = DynamicMessage::decode(desc.clone(), rest).map_err(|e| {
            format!(
                "the bytes do not match the Protobuf message {}: {e}",
                desc.full_name()
            )
        })?;
        Ok((connect, self.message_value(&msg)?))
    }

    fn message_at(&self, indexes: &[i32]) -> Result<MessageDescriptor, String> {
        let bad = || {
            format!(
                "message indexes {indexes:?} name no message of the schema (file {})",
                self.file.name()
            )
        };
        let mut it = indexes.iter();
        let first = *it.next().ok_or_else(bad)?;
        let mut m = usize::try_from(first)
            .ok()
            .and_then(|i| self.file.messages().nth(i))
            .ok_or_else(bad)?;
        for &i in it {
            m = usize::try_from(i)
                .ok()
                .and_then(|i| m.child_messages().nth(i))
                .ok_or_else(bad)?;
        }
        Ok(m)
    }

    /// `(confluent.field_meta).params` of a field.
    fn params(&self, f: &FieldDescriptor) -> Vec<(String, String)> {
        let Some(ext) = &self.field_meta else {
            return Vec::new();
        };
        let opts = f.options();
        if !opts.has_extension(ext) {
            return Vec::new();
        }
        let meta = opts.get_extension(ext);
        let Some(meta) = meta.as_message() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        if let Some(Pv::Map(m)) = meta.get_field_by_name("params").as_deref() {
            for (k, v) in m {
                if let (MapKey::String(k), Pv::String(v)) = (k, v) {
                    out.push((k.clone(), v.clone()));
                }
            }
        }
        out.sort();
        out
    }

    fn message_schema(
        &self,
        m: &MessageDescriptor,
        optional: bool,
        stack: &mut Vec<String>,
    ) -> Result<Value, String> {
        if stack.iter().any(|n| n == m.full_name()) {
            return Err(format!(
                "recursive message {} has no Connect equivalent",
                m.full_name()
            ));
        }
        stack.push(m.full_name().to_owned());
        let mut fields = Vec::new();
        for (index, oneof) in m.oneofs().enumerate() {
            if oneof.is_synthetic() {
                continue;
            }
            let mut sub = Vec::new();
            for f in oneof.fields() {
                sub.push(self.field_schema(&f, stack)?);
            }
            fields.push(serde_json::json!({
                "type": "struct",
                "fields": sub,
                "optional": true,
                "name": format!("io.confluent.connect.protobuf.Union.{}", oneof.name()),
                "field": format!("{}_{index}", oneof.name()),
            }));
        }
        for f in m.fields() {
            if real_oneof(&f) {
                continue;
            }
            fields.push(self.field_schema(&f, stack)?);
        }
        stack.pop();
        let mut o = Map::new();
        o.insert("type".into(), "struct".into());
        o.insert("fields".into(), Value::Array(fields));
        o.insert("optional".into(), optional.into());
        o.insert("name".into(), m.name().into());
        Ok(Value::Object(o))
    }

    /// A field's Connect schema, with `"field"`.
    fn field_schema(&self, f: &FieldDescriptor, stack: &mut Vec<String>) -> Result<Value, String> {
        let params = self.params(f);
        let mut s = if f.is_map() {
            let Kind::Message(entry) = f.kind() else {
                return Err(format!("map field {} without an entry message", f.name()));
            };
            let k = self.value_schema(&entry.map_entry_key_field(), &[], stack)?;
            let v = self.value_schema(&entry.map_entry_value_field(), &[], stack)?;
            serde_json::json!({"type": "map", "keys": k, "values": v, "optional": true})
        } else if f.is_list() {
            let items = self.value_schema(f, &params, stack)?;
            serde_json::json!({"type": "array", "items": items, "optional": true})
        } else {
            self.value_schema(f, &params, stack)?
        };
        let o = s.as_object_mut().expect("a Connect schema is an object");
        let p = o
            .entry("parameters")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Some(p) = p.as_object_mut() {
            p.insert("protobuf.tag".into(), f.number().to_string().into());
        }
        o.insert("field".into(), f.name().into());
        Ok(s)
    }

    /// The Connect schema of one value of a field (an element, for a list).
    fn value_schema(
        &self,
        f: &FieldDescriptor,
        params: &[(String, String)],
        stack: &mut Vec<String>,
    ) -> Result<Value, String> {
        let param = |k: &str| params.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let mut extra: Vec<(String, String)> = Vec::new();
        let mut name = param("connect.name");
        let version = param("connect.version").and_then(|v| v.parse::<i64>().ok());
        let ty = match f.kind() {
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
                if f.kind() != Kind::Int32 {
                    extra.push(("protobuf.type".into(), kind_name(&f.kind()).into()));
                }
                match param("connect.type").as_deref() {
                    Some("int8") => "int8",
                    Some("int16") => "int16",
                    _ => "int32",
                }
            }
            Kind::Uint32
            | Kind::Fixed32
            | Kind::Int64
            | Kind::Uint64
            | Kind::Sint64
            | Kind::Fixed64
            | Kind::Sfixed64 => {
                if f.kind() != Kind::Int64 {
                    extra.push(("protobuf.type".into(), kind_name(&f.kind()).into()));
                }
                "int64"
            }
            Kind::Float => "float",
            Kind::Double => "double",
            Kind::Bool => "boolean",
            Kind::String => "string",
            Kind::Bytes => "bytes",
            Kind::Enum(e) => {
                name.get_or_insert_with(|| e.name().to_owned());
                extra.push(("protobuf.type.enum".into(), e.name().to_owned()));
                for v in e.values() {
                    extra.push((
                        format!("protobuf.type.enum.{}", v.name()),
                        v.number().to_string(),
                    ));
                }
                "string"
            }
            Kind::Message(m) => match m.full_name() {
                "confluent.type.Decimal" => {
                    name = Some("org.apache.kafka.connect.data.Decimal".into());
                    extra.push(("scale".into(), param("scale").unwrap_or_else(|| "0".into())));
                    if let Some(p) = param("precision") {
                        extra.push(("connect.decimal.precision".into(), p));
                    }
                    "bytes"
                }
                "google.type.Date" => {
                    name = Some("org.apache.kafka.connect.data.Date".into());
                    "int32"
                }
                "google.type.TimeOfDay" => {
                    name = Some("org.apache.kafka.connect.data.Time".into());
                    "int32"
                }
                "google.protobuf.Timestamp" => {
                    name = Some("org.apache.kafka.connect.data.Timestamp".into());
                    "int64"
                }
                w if wrapper(w).is_some() => wrapper(w).unwrap_or("string"),
                _ => {
                    let mut s = self.message_schema(&m, true, stack)?;
                    if let Some(n) = name {
                        s["name"] = n.into();
                    }
                    return Ok(s);
                }
            },
        };
        let mut o = Map::new();
        o.insert("type".into(), ty.into());
        o.insert("optional".into(), true.into());
        if name.as_deref() == Some("org.apache.kafka.connect.data.Decimal")
            || name.as_deref() == Some("org.apache.kafka.connect.data.Date")
            || name.as_deref() == Some("org.apache.kafka.connect.data.Time")
            || name.as_deref() == Some("org.apache.kafka.connect.data.Timestamp")
        {
            o.insert("version".into(), 1.into());
        }
        if let Some(n) = name {
            o.insert("name".into(), n.into());
        }
        if let Some(v) = version {
            o.insert("version".into(), v.into());
        }
        for (k, v) in params {
            if !matches!(
                k.as_str(),
                "connect.name" | "connect.version" | "connect.type" | "scale" | "precision"
            ) {
                extra.push((k.clone(), v.clone()));
            }
        }
        if !extra.is_empty() {
            let mut p = Map::new();
            for (k, v) in extra {
                p.insert(k, v.into());
            }
            o.insert("parameters".into(), Value::Object(p));
        }
        Ok(Value::Object(o))
    }

    /// A message as the JSON converter writes the Connect struct.
    fn message_value(&self, msg: &DynamicMessage) -> Result<Value, String> {
        let d = msg.descriptor();
        let mut o = Map::new();
        for (index, oneof) in d.oneofs().enumerate() {
            if oneof.is_synthetic() {
                continue;
            }
            let mut set = None;
            for f in oneof.fields() {
                if msg.has_field(&f) {
                    let mut u = Map::new();
                    for g in oneof.fields() {
                        u.insert(g.name().to_owned(), Value::Null);
                    }
                    u.insert(f.name().to_owned(), self.field_value(msg, &f)?);
                    set = Some(Value::Object(u));
                }
            }
            o.insert(
                format!("{}_{index}", oneof.name()),
                set.unwrap_or(Value::Null),
            );
        }
        for f in d.fields() {
            if real_oneof(&f) {
                continue;
            }
            // as Confluent's toConnectData: an unset message or proto3 `optional` field is
            // null; any other unset field (proto2 `optional` too) has its default
            let null_when_unset = !f.is_list()
                && !f.is_map()
                && (matches!(f.kind(), Kind::Message(_))
                    || f.field_descriptor_proto().proto3_optional());
            let v = if null_when_unset && !msg.has_field(&f) {
                Value::Null
            } else {
                self.field_value(msg, &f)?
            };
            o.insert(f.name().to_owned(), v);
        }
        Ok(Value::Object(o))
    }

    fn field_value(&self, msg: &DynamicMessage, f: &FieldDescriptor) -> Result<Value, String> {
        let v = msg.get_field(f);
        let params = self.params(f);
        match (&*v, f.kind()) {
            (Pv::List(items), kind) => items
                .iter()
                .map(|x| self.value(x, &kind, &params, f))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            (Pv::Map(m), Kind::Message(entry)) => {
                let vk = entry.map_entry_value_field().kind();
                let vf = entry.map_entry_value_field();
                let mut keys: Vec<(&MapKey, &Pv)> = m.iter().collect();
                keys.sort_by_key(|(k, _)| map_key_text(k));
                if matches!(entry.map_entry_key_field().kind(), Kind::String) {
                    let mut o = Map::new();
                    for (k, x) in keys {
                        o.insert(map_key_text(k), self.value(x, &vk, &[], &vf)?);
                    }
                    Ok(Value::Object(o))
                } else {
                    // the JSON converter writes a map with non-string keys as [key, value] pairs
                    let mut a = Vec::new();
                    for (k, x) in keys {
                        a.push(Value::Array(vec![
                            map_key_value(k),
                            self.value(x, &vk, &[], &vf)?,
                        ]));
                    }
                    Ok(Value::Array(a))
                }
            }
            (x, kind) => self.value(x, &kind, &params, f),
        }
    }

    fn value(
        &self,
        v: &Pv,
        kind: &Kind,
        params: &[(String, String)],
        f: &FieldDescriptor,
    ) -> Result<Value, String> {
        let b64 = |b: &[u8]| Value::from(base64::engine::general_purpose::STANDARD.encode(b));
        Ok(match (v, kind) {
            (Pv::Bool(b), _) => Value::from(*b),
            (Pv::I32(x), _) => Value::from(*x),
            (Pv::I64(x), _) => Value::from(*x),
            (Pv::U32(x), _) => Value::from(*x as i64),
            // Connect has no unsigned 64-bit type: the bits as an int64, as the converter does
            (Pv::U64(x), _) => Value::from(*x as i64),
            (Pv::F32(x), _) => super::avro::float32(*x),
            (Pv::F64(x), _) => serde_json::Number::from_f64(*x)
                .map(Value::Number)
                .ok_or_else(|| format!("field {}: {x} has no JSON number", f.name()))?,
            (Pv::String(s), _) => Value::from(s.as_str()),
            (Pv::Bytes(b), _) => b64(b),
            (Pv::EnumNumber(n), Kind::Enum(e)) => match e.get_value(*n) {
                Some(ev) => Value::from(ev.name()),
                None => Value::from(n.to_string()),
            },
            (Pv::EnumNumber(n), _) => Value::from(*n),
            (Pv::Message(m), Kind::Message(d)) => match d.full_name() {
                "confluent.type.Decimal" => {
                    let want: i64 = params
                        .iter()
                        .find(|(k, _)| k == "scale")
                        .and_then(|(_, v)| v.parse().ok())
                        .unwrap_or(0);
                    let scale = int_field(m, "scale");
                    if scale != want {
                        return Err(format!(
                            "field {}: a decimal of scale {scale} where the schema's scale is {want}",
                            f.name()
                        ));
                    }
                    match m.get_field_by_name("value").as_deref() {
                        Some(Pv::Bytes(b)) => b64(b),
                        _ => b64(&[]),
                    }
                }
                "google.type.Date" => {
                    let (y, mo, d) = (
                        int_field(m, "year"),
                        int_field(m, "month"),
                        int_field(m, "day"),
                    );
                    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) {
                        return Err(format!(
                            "field {}: google.type.Date {y}-{mo}-{d} is not a full date",
                            f.name()
                        ));
                    }
                    Value::from(days_from_civil(y, mo, d))
                }
                "google.type.TimeOfDay" => Value::from(
                    ((int_field(m, "hours") * 60 + int_field(m, "minutes")) * 60
                        + int_field(m, "seconds"))
                        * 1000
                        + int_field(m, "nanos") / 1_000_000,
                ),
                "google.protobuf.Timestamp" => Value::from(
                    int_field(m, "seconds") * 1000 + int_field(m, "nanos").div_euclid(1_000_000),
                ),
                w if wrapper(w).is_some() => {
                    let vf = d
                        .get_field_by_name("value")
                        .ok_or_else(|| format!("wrapper {w} without `value`"))?;
                    self.value(&m.get_field(&vf), &vf.kind(), &[], &vf)?
                }
                _ => self.message_value(m)?,
            },
            (other, _) => {
                return Err(format!(
                    "field {}: a Protobuf value {other:?} of an unexpected kind",
                    f.name()
                ))
            }
        })
    }
}

fn real_oneof(f: &FieldDescriptor) -> bool {
    f.containing_oneof().is_some_and(|o| !o.is_synthetic())
}

fn int_field(m: &DynamicMessage, name: &str) -> i64 {
    match m.get_field_by_name(name).as_deref() {
        Some(Pv::I32(x)) => *x as i64,
        Some(Pv::I64(x)) => *x,
        Some(Pv::U32(x)) => *x as i64,
        _ => 0,
    }
}

/// The Connect type of a wrapper type's value.
fn wrapper(full_name: &str) -> Option<&'static str> {
    Some(match full_name {
        "google.protobuf.DoubleValue" => "double",
        "google.protobuf.FloatValue" => "float",
        "google.protobuf.Int64Value" | "google.protobuf.UInt64Value" => "int64",
        "google.protobuf.UInt32Value" => "int64",
        "google.protobuf.Int32Value" => "int32",
        "google.protobuf.BoolValue" => "boolean",
        "google.protobuf.StringValue" => "string",
        "google.protobuf.BytesValue" => "bytes",
        _ => return None,
    })
}

fn kind_name(k: &Kind) -> &'static str {
    match k {
        Kind::Sint32 => "sint32",
        Kind::Sfixed32 => "sfixed32",
        Kind::Uint32 => "uint32",
        Kind::Fixed32 => "fixed32",
        Kind::Uint64 => "uint64",
        Kind::Sint64 => "sint64",
        Kind::Fixed64 => "fixed64",
        Kind::Sfixed64 => "sfixed64",
        _ => "",
    }
}

fn map_key_text(k: &MapKey) -> String {
    match k {
        MapKey::Bool(b) => b.to_string(),
        MapKey::I32(x) => x.to_string(),
        MapKey::I64(x) => x.to_string(),
        MapKey::U32(x) => x.to_string(),
        MapKey::U64(x) => x.to_string(),
        MapKey::String(s) => s.clone(),
    }
}

fn map_key_value(k: &MapKey) -> Value {
    match k {
        MapKey::Bool(b) => Value::from(*b),
        MapKey::I32(x) => Value::from(*x),
        MapKey::I64(x) => Value::from(*x),
        MapKey::U32(x) => Value::from(*x as i64),
        MapKey::U64(x) => Value::from(*x as i64),
        MapKey::String(s) => Value::from(s.as_str()),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The Confluent message indexes at the start of `data`, and what follows.
pub fn message_indexes(data: &[u8]) -> Result<(Vec<i32>, &[u8]), String> {
    let mut rest = data;
    let count = zigzag(&mut rest).map_err(|e| format!("message indexes: {e}"))?;
    if count == 0 {
        return Ok((vec![0], rest));
    }
    if !(1..=100).contains(&count) {
        return Err(format!(
            "message indexes: a count of {count} (a truncated or non-Protobuf payload?)"
        ));
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let i = zigzag(&mut rest).map_err(|e| format!("message indexes: {e}"))?;
        out.push(i32::try_from(i).map_err(|_| format!("message indexes: index {i} out of range"))?);
    }
    Ok((out, rest))
}

/// One zigzag-encoded varint (as Confluent writes the indexes).
fn zigzag(buf: &mut &[u8]) -> Result<i64, String> {
    let mut x: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&b, rest) = buf
            .split_first()
            .ok_or("truncated (the bytes end inside a varint)")?;
        *buf = rest;
        x |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok((x >> 1) as i64 ^ -((x & 1) as i64));
        }
    }
    Err("a varint longer than 10 bytes".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_indexes_are_zigzag_varints() {
        assert_eq!(message_indexes(&[0, 9]).unwrap(), (vec![0], &[9u8][..]));
        assert_eq!(message_indexes(&[2, 6, 8]).unwrap(), (vec![3], &[8u8][..]));
        assert_eq!(message_indexes(&[4, 2, 4]).unwrap(), (vec![1, 2], &[][..]));
        assert!(message_indexes(&[]).unwrap_err().contains("truncated"));
        assert!(message_indexes(&[4, 2]).unwrap_err().contains("truncated"));
        assert!(message_indexes(&[1]).unwrap_err().contains("count of -1"));
    }

    #[test]
    fn dates_count_days_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2024, 1, 2), 19724);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
