//! The default smt transform: Debezium change events (JSON converter, with or
//! without schemas) to MongoDB writes, with the behaviour of the MongoDB Kafka
//! sink connector's RDBMS CDC handler plus options. See
//! `docs/debezium-mongo.md` for the reference of options and behaviour.
//!
//! Natively it is a plain library: `DebeziumMongo::init(config)` and
//! `transform(&msg)` through [`smt_guest::Transform`]. Built for
//! `wasm32-wasip2` it is the component (feature `export`, on by default).

mod config;
mod route;

pub use config::{Config, IdMode, Int64Option, JsonOption, TimestampOption, TruncateMode};
/// The trait through which `DebeziumMongo::init` and `transform` are called.
pub use smt_guest::Transform;

use route::Router;
use serde_json::{Map, Value};
use smt_guest::debezium::{
    DecodeOptions, Event, Fields, Int64Mode, JsonMode, Op, Record, TimestampMode,
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
                Int64Option::Relaxed => Int64Mode::Relaxed,
                Int64Option::Long => Int64Mode::Long,
            },
            timestamps: match config.timestamps {
                TimestampOption::Lossless => TimestampMode::Lossless,
                TimestampOption::TruncateToMillis => TimestampMode::TruncateToMillis,
            },
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

    fn create_or_update(
        &self,
        ns: Namespace,
        mut event: Event,
    ) -> Result<Vec<WriteOp>, TransformError> {
        let op = event.op().code();
        let unavailable = self.unavailable_columns(&event);
        let after = match event.take_after()? {
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
        let key = event.take_key()?;

        let Some(key) = key else {
            // A table without primary key.
            let mut fields = after;
            fields.retain(|k, _| !unavailable.contains(k));
            if matches!(event.op(), Op::Create | Op::Read) {
                // The server assigns a new ObjectId.
                return Ok(vec![ops::insert_one(ns, Value::Object(fields))]);
            }
            let filter = self.before_filter(&mut event)?;
            return Ok(vec![if unavailable.is_empty() {
                ops::replace_one(ns, filter, Value::Object(fields))
                    .upsert()
                    .build()
            } else {
                ops::update_one(ns, filter)
                    .set(Value::Object(fields))
                    .upsert()
                    .build()
            }]);
        };

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

    fn delete(&self, ns: Namespace, mut event: Event) -> Result<Vec<WriteOp>, TransformError> {
        let filter = match event.take_key()? {
            None => self.before_filter(&mut event)?,
            Some(key) => match self.config.id {
                IdMode::Wrapped | IdMode::Scalar => single("_id", self.id_of(key)),
                IdMode::ObjectId => Value::Object(key),
            },
        };
        Ok(vec![ops::delete_one(ns, filter)])
    }

    /// The filter of an update or delete on a table without primary key: the
    /// whole `before` image.
    fn before_filter(&self, event: &mut Event) -> Result<Value, TransformError> {
        match event.take_before()? {
            Some(before) if !before.is_empty() => Ok(Value::Object(before)),
            _ => Err(TransformError::bad_input(format!(
                "op '{}' without a key needs a non-empty 'before' image to find the document \
                 (set REPLICA IDENTITY FULL on a table without primary key)",
                event.op().code()
            ))),
        }
    }

    /// Maps a parsed change event (the part of [`Transform::transform`] after parsing).
    pub fn map_event(&self, topic: &str, event: Event) -> Result<Vec<WriteOp>, TransformError> {
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
                self.create_or_update(self.router.namespace(topic), event)
            }
            Op::Delete => self.delete(self.router.namespace(topic), event),
        }
    }
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
        match Event::classify_with(msg, self.decode)? {
            Record::Change(event) => self.map_event(&msg.topic, event),
            // Tombstones (log compaction) and DDL/heartbeat records: nothing to write.
            Record::Tombstone | Record::NotAChange => Ok(vec![]),
        }
    }
}

#[cfg(feature = "export")]
smt_guest::export_transform!(DebeziumMongo);

#[cfg(test)]
mod tests;
