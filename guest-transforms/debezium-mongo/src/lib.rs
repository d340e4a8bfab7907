//! The default smt transform: Debezium change events (JSON converter, with or
//! without schemas) to MongoDB writes, with the behaviour of the MongoDB Kafka
//! sink connector's RDBMS CDC handler plus options. See
//! `docs/debezium-mongo.md` for the reference of options and behaviour.
//!
//! Natively it is a plain library: `DebeziumMongo::init(config)` and
//! `transform(&msg)` through [`smt_guest::Transform`]. Built for
//! `wasm32-wasip2` it is the component (feature `export`, on by default).

mod config;
mod fast;
mod keymove;
mod mongo_source;
mod route;

pub use config::{Config, IdMode, Int64Option, JsonOption, TimestampOption, TruncateMode};
/// The trait through which `DebeziumMongo::init` and `transform` are called.
pub use smt_guest::Transform;

use keymove::{Ident, KeyMove, NEW_KEY_HEADER, OLD_KEY_HEADER};
use route::Router;
use serde_json::{Map, Value};
use smt_guest::debezium::{
    DecimalMode, DecodeOptions, Event, Fields, Int64Mode, JsonMode, Op, Record, TimestampMode,
};
use smt_guest::{ops, Message, Namespace, TransformError, WriteOp};

/// The transform: the parsed configuration and what is derived from it.
#[derive(Debug, Clone)]
pub struct DebeziumMongo {
    config: Config,
    decode: DecodeOptions,
    router: Router,
    /// The TOAST placeholder as base64 (how it appears in `bytes` columns).
    placeholder_b64: String,
}

impl DebeziumMongo {
    /// Builds the transform from a parsed configuration.
    pub fn new(config: Config) -> Result<Self, String> {
        config.validate()?;
        let decode = DecodeOptions {
            json: match config.json {
                JsonOption::Parse => JsonMode::Parse,
                JsonOption::String => JsonMode::String,
            },
            int64: match config.int64 {
                Int64Option::Long => Int64Mode::Long,
            },
            timestamps: match config.timestamps {
                TimestampOption::Date => TimestampMode::TruncateToMillis,
                TimestampOption::IsoString => TimestampMode::IsoString,
            },
            decimals: DecimalMode::Decimal128,
        };
        let router = Router::new(&config)?;
        let placeholder_b64 = {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD
                .encode(config.unavailable_value_placeholder.as_bytes())
        };
        Ok(DebeziumMongo {
            config,
            decode,
            router,
            placeholder_b64,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether a raw (undecoded) column value is the TOAST placeholder:
    /// the text itself, its base64 (`bytea`), or an array holding it.
    fn is_placeholder(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => {
                *s == self.config.unavailable_value_placeholder || *s == self.placeholder_b64
            }
            Value::Array(items) => items
                .iter()
                .any(|i| i.as_str() == Some(self.config.unavailable_value_placeholder.as_str())),
            _ => false,
        }
    }

    /// Columns of the raw `after` image that carry the TOAST placeholder.
    fn unavailable_columns(&self, event: &Event) -> Vec<String> {
        match event.raw("after").and_then(Value::as_object) {
            Some(after) => after
                .iter()
                .filter(|(_, v)| self.is_placeholder(v))
                .map(|(k, _)| k.clone())
                .collect(),
            None => Vec::new(),
        }
    }

    /// `_id` from the key columns (wrapped / scalar modes).
    fn id_of(&self, key: Fields) -> Value {
        match self.config.id {
            IdMode::Scalar if key.len() == 1 => {
                key.into_iter().next().map_or(Value::Null, |(_, v)| v)
            }
            _ => Value::Object(key),
        }
    }

    /// How the document of a key is found.
    fn ident(&self, key: Fields) -> Ident {
        match self.config.id {
            IdMode::Wrapped | IdMode::Scalar => Ident::Id(self.id_of(key)),
            IdMode::ObjectId => Ident::Columns(key),
        }
    }

    /// The other key of a primary-key change, from the record's header
    /// (`None`: not a key change, or a Debezium too old to write the header).
    fn partner_key(
        &self,
        msg: Option<&Message>,
        event: &Event,
        header: &str,
    ) -> Result<Option<Fields>, TransformError> {
        let Some(Some(bytes)) = msg.and_then(|m| m.header(header)) else {
            return Ok(None);
        };
        let key = event
            .decode_other_key(bytes)
            .map_err(|e| TransformError::bad_input(format!("header {header}: {}", e.message)))?;
        Ok(key.map(|mut k| {
            if event.key_schema().is_none() {
                schemaless::longs(&mut k);
            }
            k
        }))
    }

    /// The key, decoded like every image (integers as longs without schemas).
    fn take_key(&self, event: &mut Event) -> Result<Option<Fields>, TransformError> {
        let schemaless = event.key_schema().is_none();
        let mut key = event.take_key()?;
        if let (true, Some(k)) = (schemaless, key.as_mut()) {
            schemaless::longs(k);
        }
        Ok(key)
    }

    /// An image, decoded (integers as longs without schemas).
    fn take_image(&self, event: &mut Event, image: &str) -> Result<Option<Fields>, TransformError> {
        let schemaless = event.schema().is_none();
        let mut fields = if image == "after" {
            event.take_after()?
        } else {
            event.take_before()?
        };
        if let (true, Some(f)) = (schemaless, fields.as_mut()) {
            schemaless::longs(f);
        }
        Ok(fields)
    }

    fn create_or_update(
        &self,
        ns: Namespace,
        mut event: Event,
        msg: Option<&Message>,
    ) -> Result<Vec<WriteOp>, TransformError> {
        let op = event.op().code();
        let unavailable = self.unavailable_columns(&event);
        let old_key = self.partner_key(msg, &event, OLD_KEY_HEADER)?;
        let after = match self.take_image(&mut event, "after")? {
            None => {
                return Err(TransformError::bad_input(format!(
                    "'after' is missing or null for op '{op}'"
                )))
            }
            Some(a) if a.is_empty() => {
                return Err(TransformError::bad_input(format!(
                    "'after' is empty for op '{op}'"
                )))
            }
            Some(a) => a,
        };
        let key = self.take_key(&mut event)?;

        let Some(key) = key else {
            return self.write_keyless(ns, event, msg, after, &unavailable);
        };

        // A primary-key change: the old document's unchanged values move here.
        let key_move = old_key.map(|old| KeyMove {
            ns: &ns,
            from: self.ident(old),
            to: self.ident(key.clone()),
            lsn: event.source().lsn(),
            ts_ms: event.source().ts_ms(),
        });
        let mut out = self.write_row(&ns, key, after, &unavailable)?;
        if let Some(m) = key_move {
            out.extend(m.create_half());
        }
        Ok(out)
    }

    /// A row of a table without primary key. An insert gets an `_id` derived
    /// from the record's position (topic, partition, offset), so that a
    /// replay after a crash rewrites the same document instead of adding a
    /// second one; an update finds the document by its whole `before` image
    /// and does not upsert, so that a replayed update whose row has changed
    /// since finds nothing instead of adding a copy.
    fn write_keyless(
        &self,
        ns: Namespace,
        mut event: Event,
        msg: Option<&Message>,
        after: Fields,
        unavailable: &[String],
    ) -> Result<Vec<WriteOp>, TransformError> {
        let mut fields = after;
        fields.retain(|k, _| !unavailable.contains(k));
        if matches!(event.op(), Op::Create | Op::Read) {
            let Some(msg) = msg else {
                // Without the record (`map_event`): the server assigns an ObjectId.
                return Ok(vec![ops::insert_one(ns, Value::Object(fields))]);
            };
            let id = record_object_id(msg);
            fields.shift_insert(0, "_id".to_owned(), id.clone());
            return Ok(vec![ops::replace_one(
                ns,
                single("_id", id),
                Value::Object(fields),
            )
            .upsert()
            .build()]);
        }
        let filter = self.before_filter(&mut event)?;
        Ok(vec![if unavailable.is_empty() {
            ops::replace_one(ns, filter, Value::Object(fields)).build()
        } else {
            ops::update_one(ns, filter)
                .set(Value::Object(fields))
                .build()
        }])
    }

    /// The write of a row with a key: a replace, or a `$set` of the available
    /// columns when some are TOAST placeholders.
    fn write_row(
        &self,
        ns: &Namespace,
        key: Fields,
        after: Fields,
        unavailable: &[String],
    ) -> Result<Vec<WriteOp>, TransformError> {
        let ns = ns.clone();
        let key_names: Vec<String> = key.keys().cloned().collect();
        let is_key = |k: &String| key_names.iter().any(|n| n == k);
        match self.config.id {
            IdMode::Wrapped | IdMode::Scalar => {
                let id = self.id_of(key);
                let filter = single("_id", id.clone());
                let mut fields = after;
                fields.retain(|k, _| !is_key(k) && !unavailable.contains(k));
                if !unavailable.is_empty() {
                    return Ok(vec![ops::update_one(ns, filter)
                        .set(Value::Object(fields))
                        .upsert()
                        .build()]);
                }
                let doc = if fields.contains_key("_id") {
                    // A non-key column named `_id` wins, in `_id`'s place.
                    let mut doc = Map::with_capacity(fields.len() + 1);
                    doc.insert("_id".to_owned(), id);
                    doc.extend(fields);
                    doc
                } else {
                    // `_id` first, without building the map again.
                    fields.shift_insert(0, "_id".to_owned(), id);
                    fields
                };
                Ok(vec![ops::replace_one(ns, filter, Value::Object(doc))
                    .upsert()
                    .build()])
            }
            IdMode::ObjectId => {
                let filter = Value::Object(key);
                if unavailable.is_empty() {
                    // No `_id` in the replacement: an existing document keeps
                    // its ObjectId; an upsert gets a new one.
                    Ok(vec![ops::replace_one(ns, filter, Value::Object(after))
                        .upsert()
                        .build()])
                } else {
                    let mut set = after;
                    set.retain(|k, _| !is_key(k) && !unavailable.contains(k));
                    Ok(vec![ops::update_one(ns, filter)
                        .set(Value::Object(set))
                        .upsert()
                        .build()])
                }
            }
        }
    }

    fn delete(
        &self,
        ns: Namespace,
        mut event: Event,
        msg: Option<&Message>,
    ) -> Result<Vec<WriteOp>, TransformError> {
        let new_key = self.partner_key(msg, &event, NEW_KEY_HEADER)?;
        let filter = match self.take_key(&mut event)? {
            None => self.before_filter(&mut event)?,
            Some(key) => {
                let from = self.ident(key);
                if let Some(new_key) = new_key {
                    // The delete half of a primary-key change: move, then delete.
                    let m = KeyMove {
                        ns: &ns,
                        from,
                        to: self.ident(new_key),
                        lsn: event.source().lsn(),
                        ts_ms: event.source().ts_ms(),
                    };
                    return Ok(m.delete_half());
                }
                from.filter()
            }
        };
        Ok(vec![ops::delete_one(ns, filter)])
    }

    /// The filter of an update or delete on a table without primary key: the
    /// whole `before` image.
    fn before_filter(&self, event: &mut Event) -> Result<Value, TransformError> {
        match self.take_image(event, "before")? {
            Some(before) if !before.is_empty() => Ok(Value::Object(before)),
            _ => Err(TransformError::bad_input(format!(
                "op '{}' without a key needs a non-empty 'before' image to find the document \
                 (set REPLICA IDENTITY FULL on a table without primary key)",
                event.op().code()
            ))),
        }
    }

    /// Maps a parsed change event (the part of [`Transform::transform`] after
    /// parsing). Without the record it cannot see the headers of a
    /// primary-key change: [`Transform::transform`] handles those.
    pub fn map_event(&self, topic: &str, event: Event) -> Result<Vec<WriteOp>, TransformError> {
        self.map_change(topic, event, None)
    }

    fn map_change(
        &self,
        topic: &str,
        event: Event,
        msg: Option<&Message>,
    ) -> Result<Vec<WriteOp>, TransformError> {
        match event.op() {
            // Logical decoding messages are not row changes.
            Op::Message => Ok(vec![]),
            Op::Truncate => Ok(match self.config.truncate {
                TruncateMode::Ignore => vec![],
                TruncateMode::DeleteAll => vec![ops::delete_many(
                    self.router.namespace(topic),
                    Value::Object(Map::new()),
                )],
            }),
            Op::Create | Op::Read | Op::Update => {
                self.create_or_update(self.router.namespace(topic), event, msg)
            }
            Op::Delete => self.delete(self.router.namespace(topic), event, msg),
        }
    }
}

/// An ObjectId that names a record's position: 4 bytes of FNV-1a of the
/// topic, 2 of the partition, 6 of the offset. The same record (replayed)
/// always gets the same one; two records of a collection's topics differ
/// unless two topics routed to one collection collide in 32 bits.
fn record_object_id(msg: &Message) -> Value {
    let mut h: u32 = 0x811c_9dc5;
    for b in msg.topic.as_bytes() {
        h ^= u32::from(*b);
        h = h.wrapping_mul(0x0100_0193);
    }
    let partition = (msg.partition as u32) & 0xffff;
    let offset = (msg.offset as u64) & 0xffff_ffff_ffff;
    single(
        "$oid",
        Value::String(format!("{h:08x}{partition:04x}{offset:012x}")),
    )
}

fn single(k: &str, v: Value) -> Value {
    let mut m = Map::with_capacity(1);
    m.insert(k.to_owned(), v);
    Value::Object(m)
}

impl Transform for DebeziumMongo {
    /// `config`: JSON text (`{}`, or empty, for the defaults). Unknown keys
    /// are rejected, naming the key.
    fn init(config: &str) -> Result<Self, String> {
        let config = Config::parse(config)?;
        DebeziumMongo::new(config)
    }

    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        // The commonest record without a `Value` tree (the same bytes; `None`
        // for everything else, errors included).
        if let Some(op) = fast::map(self, msg) {
            return Ok(vec![op]);
        }
        self.transform_general(msg)
    }
}

impl DebeziumMongo {
    /// [`Transform::transform`] without the fast path: every record through
    /// [`Event`].
    fn transform_general(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        match Event::classify_with(msg, self.decode)? {
            Record::Change(event) if mongo_source::is_mongo(&event) => {
                mongo_source::map(self.router.namespace(&msg.topic), msg)
            }
            Record::Change(event) => self.map_change(&msg.topic, event, Some(msg)),
            // Tombstones (log compaction) and DDL/heartbeat records: nothing to write.
            Record::Tombstone | Record::NotAChange => Ok(vec![]),
        }
    }
}

/// Values that arrive without a schema (`schemas.enable=false`).
mod schemaless {
    use serde_json::{Map, Value};
    use smt_guest::debezium::decode::number_long;

    /// Every integer becomes a BSON long: without a schema nothing tells a
    /// `bigint` from an `integer`, and a plain number would be stored as an
    /// int32 or an int64 by magnitude, one column holding two types.
    pub(crate) fn longs(fields: &mut Map<String, Value>) {
        for v in fields.values_mut() {
            long(v);
        }
    }

    fn long(v: &mut Value) {
        match v {
            Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    *v = number_long(i);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(long),
            Value::Object(m) => longs(m),
            _ => {}
        }
    }
}

#[cfg(feature = "export")]
smt_guest::export_transform!(DebeziumMongo);

#[cfg(test)]
mod tests;
