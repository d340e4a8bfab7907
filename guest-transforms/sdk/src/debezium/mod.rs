//! The Debezium change-event envelope, as Kafka Connect's JSON converter
//! writes it: with schemas (`{"schema": …, "payload": …}`) or without (the
//! payload alone), for keys and values alike.
//!
//! ```
//! use smt_guest::debezium::{Event, Op};
//! # use smt_guest::Message;
//! # let msg = Message { topic: "dbz.inventory.orders".into(), partition: 0, offset: 0, timestamp_ms: None,
//! #     key: Some(br#"{"id": 1}"#.to_vec()),
//! #     value: Some(br#"{"before": null, "after": {"id": 1, "total": 5}, "source": {"schema": "inventory", "table": "orders"}, "op": "c"}"#.to_vec()),
//! #     headers: vec![] };
//! let Some(event) = Event::parse(&msg)? else {
//!     return Ok(()); // a tombstone, or not a change event (DDL, heartbeat)
//! };
//! assert_eq!(event.op(), Op::Create);
//! assert_eq!(event.source().table(), Some("orders"));
//! let after = event.after()?.expect("a create has an after image");
//! assert_eq!(after["total"], 5);
//! # Ok::<(), smt_guest::TransformError>(())
//! ```
//!
//! Column values come out of [`Event::before`], [`Event::after`] and
//! [`Event::key`] decoded by their Connect schema into MongoDB Extended JSON
//! (see [`decode`] for the table of types).

pub mod decimal;
pub mod decode;
pub mod schema;
pub mod time;

pub use decode::{DecimalMode, DecodeOptions, Int64Mode, JsonMode, TimestampMode};
pub use schema::Schema;

use crate::{Message, TransformError};
use decode::kind;
use serde::de::{DeserializeOwned, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use std::cell::OnceCell;

/// A row image or key: column name → decoded value, in column order.
pub type Fields = Map<String, Value>;

/// The `op` of a change event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    /// `r`: a snapshot read.
    Read,
    /// `c`: an insert.
    Create,
    /// `u`: an update.
    Update,
    /// `d`: a delete.
    Delete,
    /// `t`: a truncate of the table.
    Truncate,
    /// `m`: a logical decoding message.
    Message,
}

impl Op {
    /// The op of its one-letter code.
    pub fn from_code(code: &str) -> Option<Op> {
        Some(match code {
            "r" => Op::Read,
            "c" => Op::Create,
            "u" => Op::Update,
            "d" => Op::Delete,
            "t" => Op::Truncate,
            "m" => Op::Message,
            _ => return None,
        })
    }

    /// The one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Op::Read => "r",
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Truncate => "t",
            Op::Message => "m",
        }
    }
}

/// What a record is, before anything is decoded.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A change event (it has an `op`).
    Change(Event),
    /// A null value (or an empty one): the tombstone after a delete, for log compaction.
    Tombstone,
    /// A value with neither `op` nor `before`/`after`: a schema-change (DDL),
    /// heartbeat or transaction-metadata record.
    NotAChange,
}

/// One Debezium change event.
#[derive(Debug, Clone)]
pub struct Event {
    op: Op,
    /// The envelope payload without `source`.
    payload: Map<String, Value>,
    /// `source` as JSON text, parsed on the first [`Event::source`] call:
    /// most transforms never look at it.
    source_raw: Option<Box<RawValue>>,
    source: OnceCell<Option<Map<String, Value>>>,
    schema: Option<Schema>,
    key: Option<Map<String, Value>>,
    key_schema: Option<Schema>,
    options: DecodeOptions,
}

impl PartialEq for Event {
    fn eq(&self, other: &Self) -> bool {
        self.op == other.op
            && self.payload == other.payload
            && self.source() == other.source()
            && self.schema == other.schema
            && self.key == other.key
            && self.key_schema == other.key_schema
            && self.options == other.options
    }
}

/// A record value: null, an envelope payload (with `source` kept raw), or
/// something that is not an object.
enum Body {
    Null,
    Payload {
        fields: Map<String, Value>,
        source: Option<Box<RawValue>>,
    },
    Other(&'static str),
}

impl Body {
    /// From an already parsed value (the rare fallback path).
    fn from_value(v: Value) -> Body {
        match v {
            Value::Null => Body::Null,
            Value::Object(mut fields) => {
                let source = fields
                    .shift_remove("source")
                    .and_then(|s| serde_json::value::to_raw_value(&s).ok());
                Body::Payload { fields, source }
            }
            other => Body::Other(kind(&other)),
        }
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BodyVisitor)
    }
}

struct BodyVisitor;

impl<'de> Visitor<'de> for BodyVisitor {
    type Value = Body;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E>(self) -> Result<Body, E> {
        Ok(Body::Null)
    }
    fn visit_none<E>(self) -> Result<Body, E> {
        Ok(Body::Null)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
        Ok(Body::Other("a boolean"))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
        Ok(Body::Other("a number"))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
        Ok(Body::Other("a number"))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
        Ok(Body::Other("a number"))
    }
    fn visit_str<E>(self, _: &str) -> Result<Body, E> {
        Ok(Body::Other("a string"))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Body::Other("an array"))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Body, A::Error> {
        let mut fields = Map::new();
        let mut source = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == "source" {
                source = Some(map.next_value::<Box<RawValue>>()?);
            } else {
                let v = map.next_value::<Value>()?;
                fields.insert(key, v);
            }
        }
        Ok(Body::Payload { fields, source })
    }
}

/// `{"schema": …, "payload": …}`, as the JSON converter writes with schemas.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WithSchema<T> {
    schema: Option<Schema>,
    payload: T,
}

/// Whether the first key of the JSON object is `schema` or `payload` (so
/// bare payloads skip the attempt to read them as `{"schema", "payload"}`).
fn starts_like_with_schema(bytes: &[u8]) -> bool {
    fn trim(b: &[u8]) -> &[u8] {
        &b[b.iter().take_while(|c| c.is_ascii_whitespace()).count()..]
    }
    match trim(bytes).strip_prefix(b"{") {
        Some(rest) => {
            let rest = trim(rest);
            rest.starts_with(b"\"schema\"") || rest.starts_with(b"\"payload\"")
        }
        None => false,
    }
}

/// `serde_json::from_slice`, reading valid UTF-8 text as a `&str`: one
/// validation of the whole text instead of one per string. Invalid UTF-8
/// goes to `from_slice`, for its error.
fn from_json<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, serde_json::Error> {
    match std::str::from_utf8(bytes) {
        Ok(text) => serde_json::from_str(text),
        Err(_) => serde_json::from_slice(bytes),
    }
}

/// Parses converter output: `{"schema": …, "payload": …}` into its parts;
/// anything else is a payload without schema.
fn parse_json(bytes: &[u8]) -> Result<(Value, Option<Schema>), serde_json::Error> {
    if starts_like_with_schema(bytes) {
        if let Ok(w) = from_json::<WithSchema<Value>>(bytes) {
            return Ok((w.payload, w.schema));
        }
    }
    let v: Value = from_json(bytes)?;
    Ok(match v {
        // A schema of an unexpected shape: decode without it.
        Value::Object(mut m)
            if m.len() == 2 && m.contains_key("schema") && m.contains_key("payload") =>
        {
            (m.remove("payload").unwrap_or(Value::Null), None)
        }
        other => (other, None),
    })
}

/// [`parse_json`] for record values, keeping `source` unparsed.
fn parse_body(bytes: &[u8]) -> Result<(Body, Option<Schema>), serde_json::Error> {
    if starts_like_with_schema(bytes) {
        if let Ok(w) = from_json::<WithSchema<Body>>(bytes) {
            return Ok((w.payload, w.schema));
        }
    }
    Ok(match from_json::<Body>(bytes)? {
        // A schema of an unexpected shape: decode without it.
        Body::Payload {
            mut fields,
            source: None,
        } if fields.len() == 2
            && fields.contains_key("schema")
            && fields.contains_key("payload") =>
        {
            (
                Body::from_value(fields.shift_remove("payload").unwrap_or(Value::Null)),
                None,
            )
        }
        other => (other, None),
    })
}

/// The error of the `require_*` accessors.
fn missing(what: &str) -> TransformError {
    TransformError::bad_input(format!("the change event has no {what}"))
}

/// The key's payload (an object) and schema.
type ParsedKey = (Option<Map<String, Value>>, Option<Schema>);

fn parse_key(bytes: Option<&[u8]>) -> Result<ParsedKey, TransformError> {
    let Some(bytes) = bytes else {
        return Ok((None, None));
    };
    if bytes.is_empty() {
        return Ok((None, None));
    }
    let (payload, schema) = parse_json(bytes)
        .map_err(|e| TransformError::bad_input(format!("invalid key: not JSON ({e})")))?;
    match payload {
        Value::Null => Ok((None, None)),
        Value::Object(m) if m.is_empty() => Ok((None, None)),
        Value::Object(m) => Ok((Some(m), schema)),
        other => Err(TransformError::bad_input(format!(
            "invalid key: expected a JSON object of the primary-key columns, found {}",
            kind(&other)
        ))),
    }
}

impl Event {
    /// Parses a record with the default [`DecodeOptions`]. `Ok(None)` for a
    /// tombstone and for records that are not change events (DDL, heartbeats);
    /// [`Event::classify`] tells them apart.
    pub fn parse(msg: &Message) -> Result<Option<Event>, TransformError> {
        Self::parse_with(msg, DecodeOptions::default())
    }

    /// [`Event::parse`] with decoding options.
    pub fn parse_with(
        msg: &Message,
        options: DecodeOptions,
    ) -> Result<Option<Event>, TransformError> {
        Ok(match Self::classify_with(msg, options)? {
            Record::Change(e) => Some(e),
            Record::Tombstone | Record::NotAChange => None,
        })
    }

    /// Classifies a record with the default [`DecodeOptions`].
    pub fn classify(msg: &Message) -> Result<Record, TransformError> {
        Self::classify_with(msg, DecodeOptions::default())
    }

    /// Classifies a record: a change event, a tombstone or something else.
    ///
    /// `bad-input` errors: the value is not a JSON object; it has `before` or
    /// `after` but no `op`; `op` is not a string or not a known op; the key
    /// is not JSON or not an object.
    pub fn classify_with(msg: &Message, options: DecodeOptions) -> Result<Record, TransformError> {
        let Some(bytes) = msg.value.as_deref() else {
            return Ok(Record::Tombstone);
        };
        if bytes.is_empty() {
            return Ok(Record::Tombstone);
        }
        let (body, schema) = parse_body(bytes)
            .map_err(|e| TransformError::bad_input(format!("value is not JSON: {e}")))?;
        let (payload, source_raw) = match body {
            Body::Null => return Ok(Record::Tombstone),
            Body::Payload {
                fields,
                source: None,
            } if fields.is_empty() => return Ok(Record::Tombstone),
            Body::Payload { fields, source } => (fields, source),
            Body::Other(kind) => {
                return Err(TransformError::bad_input(format!(
                    "value is not a Debezium envelope: expected a JSON object, found {kind}"
                )))
            }
        };
        let op = match payload.get("op") {
            Some(Value::String(code)) => Op::from_code(code)
                .ok_or_else(|| TransformError::bad_input(format!("unknown op {code:?}")))?,
            Some(other) => {
                return Err(TransformError::bad_input(format!(
                    "'op' must be a string, found {}",
                    kind(other)
                )))
            }
            None if payload.contains_key("before") || payload.contains_key("after") => {
                return Err(TransformError::bad_input(
                    "the change event has no 'op' field",
                ))
            }
            None => return Ok(Record::NotAChange),
        };
        let (key, key_schema) = parse_key(msg.key.as_deref())?;
        Ok(Record::Change(Event {
            op,
            payload,
            source_raw,
            source: OnceCell::new(),
            schema,
            key,
            key_schema,
            options,
        }))
    }

    pub fn op(&self) -> Op {
        self.op
    }

    /// The decoding options in effect.
    pub fn options(&self) -> DecodeOptions {
        self.options
    }

    /// The envelope payload as it arrived (no decoding), except `source`
    /// (see [`Event::source`]).
    pub fn payload(&self) -> &Map<String, Value> {
        &self.payload
    }

    /// The envelope's Connect schema, when the converter wrote schemas.
    pub fn schema(&self) -> Option<&Schema> {
        self.schema.as_ref()
    }

    /// The key's Connect schema, when the converter wrote schemas.
    pub fn key_schema(&self) -> Option<&Schema> {
        self.key_schema.as_ref()
    }

    /// `source`: where the change happened.
    pub fn source(&self) -> Source<'_> {
        let parsed = self.source.get_or_init(|| {
            let raw = self.source_raw.as_ref()?;
            serde_json::from_str::<Map<String, Value>>(raw.get()).ok()
        });
        Source(parsed.as_ref())
    }

    /// The envelope's `ts_ms` (when the connector processed the change).
    pub fn ts_ms(&self) -> Option<i64> {
        self.payload.get("ts_ms").and_then(Value::as_i64)
    }

    /// A row image as it arrived: `None` when missing or null.
    pub fn raw(&self, image: &str) -> Option<&Value> {
        self.payload.get(image).filter(|v| !v.is_null())
    }

    /// The key columns as they arrived; `None` for a table without primary key.
    pub fn raw_key(&self) -> Option<&Map<String, Value>> {
        self.key.as_ref()
    }

    fn image(&self, name: &str) -> Result<Option<Fields>, TransformError> {
        match self.payload.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => {
                let schema = self.schema.as_ref().and_then(|s| s.field(name));
                decode::decode_struct(m, schema, &self.options).map(Some)
            }
            Some(other) => Err(TransformError::bad_input(format!(
                "'{name}' must be an object, found {}",
                kind(other)
            ))),
        }
    }

    fn take_image(&mut self, name: &str) -> Result<Option<Fields>, TransformError> {
        match self.payload.get_mut(name).map(std::mem::take) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(mut m)) => {
                if let Some(schema) = self.schema.as_ref().and_then(|s| s.field(name)) {
                    decode::decode_fields(&mut m, schema, &self.options)?;
                }
                Ok(Some(m))
            }
            Some(other) => Err(TransformError::bad_input(format!(
                "'{name}' must be an object, found {}",
                kind(&other)
            ))),
        }
    }

    /// [`Event::before`] without a copy: the image is moved out of the event
    /// (afterwards `before` and `raw("before")` are `None`).
    pub fn take_before(&mut self) -> Result<Option<Fields>, TransformError> {
        self.take_image("before")
    }

    /// [`Event::after`] without a copy: the image is moved out of the event.
    pub fn take_after(&mut self) -> Result<Option<Fields>, TransformError> {
        self.take_image("after")
    }

    /// [`Event::key`] without a copy: the key is moved out of the event.
    pub fn take_key(&mut self) -> Result<Option<Fields>, TransformError> {
        match self.key.take() {
            None => Ok(None),
            Some(mut m) => {
                if let Some(schema) = &self.key_schema {
                    decode::decode_fields(&mut m, schema, &self.options)?;
                }
                Ok(Some(m))
            }
        }
    }

    /// Another key of the same table, as bytes of a record key or of a
    /// header (`__debezium.oldkey`, `__debezium.newkey`: Connect's header
    /// converter writes the key's JSON without schema), decoded by its own
    /// schema when it has one, else by this event's key schema, so that it
    /// decodes exactly like [`Event::key`]. `None` for a null or empty key.
    pub fn decode_other_key(&self, bytes: &[u8]) -> Result<Option<Fields>, TransformError> {
        let (key, schema) = parse_key(Some(bytes))?;
        let Some(mut key) = key else {
            return Ok(None);
        };
        if let Some(schema) = schema.as_ref().or(self.key_schema.as_ref()) {
            decode::decode_fields(&mut key, schema, &self.options)?;
        }
        Ok(Some(key))
    }

    /// The after image, decoded and moved out of the event, for the ops that
    /// must have one (create, read, update): a missing or null `after` is a
    /// `bad-input` error. The one call for `take_after()?.ok_or_else(..)`.
    pub fn require_after(&mut self) -> Result<Fields, TransformError> {
        self.take_after()?.ok_or_else(|| missing("'after' image"))
    }

    /// [`Event::require_after`] for `before` (a delete's row under `REPLICA
    /// IDENTITY FULL`, or its key columns otherwise).
    pub fn require_before(&mut self) -> Result<Fields, TransformError> {
        self.take_before()?.ok_or_else(|| missing("'before' image"))
    }

    /// The primary-key columns, decoded and moved out of the event: a record
    /// without key (a table without primary key) is a `bad-input` error.
    pub fn require_key(&mut self) -> Result<Fields, TransformError> {
        self.take_key()?
            .ok_or_else(|| missing("key (does the table have a primary key?)"))
    }

    /// The row before the change, decoded; `None` when absent (inserts, and
    /// updates under the default replica identity).
    pub fn before(&self) -> Result<Option<Fields>, TransformError> {
        self.image("before")
    }

    /// The row after the change, decoded; `None` when absent (deletes).
    pub fn after(&self) -> Result<Option<Fields>, TransformError> {
        self.image("after")
    }

    /// The primary-key columns, decoded; `None` for a table without primary key.
    pub fn key(&self) -> Result<Option<Fields>, TransformError> {
        match &self.key {
            None => Ok(None),
            Some(m) => decode::decode_struct(m, self.key_schema.as_ref(), &self.options).map(Some),
        }
    }

    /// [`Event::before`] deserialised into `T` (decoded values are Extended
    /// JSON: a decimal is `{"$numberDecimal": …}`; see [`crate::debezium::ext`]).
    pub fn before_as<T: DeserializeOwned>(&self) -> Result<Option<T>, TransformError> {
        as_typed(self.before()?, "before")
    }

    /// [`Event::after`] deserialised into `T`.
    pub fn after_as<T: DeserializeOwned>(&self) -> Result<Option<T>, TransformError> {
        as_typed(self.after()?, "after")
    }

    /// [`Event::key`] deserialised into `T`.
    pub fn key_as<T: DeserializeOwned>(&self) -> Result<Option<T>, TransformError> {
        as_typed(self.key()?, "key")
    }
}

fn as_typed<T: DeserializeOwned>(
    fields: Option<Fields>,
    what: &str,
) -> Result<Option<T>, TransformError> {
    fields
        .map(|f| {
            serde_json::from_value(Value::Object(f))
                .map_err(|e| TransformError::bad_input(format!("'{what}': {e}")))
        })
        .transpose()
}

/// The `source` block of an event.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Source<'a>(Option<&'a Map<String, Value>>);

impl<'a> Source<'a> {
    /// Any field of `source`.
    pub fn get(&self, field: &str) -> Option<&'a Value> {
        self.0?.get(field)
    }

    fn str(&self, field: &str) -> Option<&'a str> {
        self.get(field)?.as_str()
    }

    /// `connector`: `postgresql`, `mysql`, ...
    pub fn connector(&self) -> Option<&'a str> {
        self.str("connector")
    }

    /// `name`: the connector's topic prefix.
    pub fn name(&self) -> Option<&'a str> {
        self.str("name")
    }

    /// `db`: the database.
    pub fn db(&self) -> Option<&'a str> {
        self.str("db")
    }

    /// `schema` (absent for MySQL).
    pub fn schema(&self) -> Option<&'a str> {
        self.str("schema")
    }

    pub fn table(&self) -> Option<&'a str> {
        self.str("table")
    }

    pub fn version(&self) -> Option<&'a str> {
        self.str("version")
    }

    /// When the change was made in the database.
    pub fn ts_ms(&self) -> Option<i64> {
        self.get("ts_ms")?.as_i64()
    }

    /// `snapshot`: `"true"`, `"first"`, `"last"`, ... or `"false"` when streaming.
    pub fn snapshot(&self) -> Option<&'a str> {
        self.str("snapshot")
    }

    /// Postgres: the log sequence number.
    pub fn lsn(&self) -> Option<i64> {
        self.get("lsn")?.as_i64()
    }

    /// The transaction id (`txId`).
    pub fn tx_id(&self) -> Option<i64> {
        self.get("txId")?.as_i64()
    }
}

pub mod ext;

#[cfg(test)]
mod tests;
