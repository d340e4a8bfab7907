//! The one Kafka record type of the tests: the host's `Message`, which the
//! engine transforms, `smt test` reads and the source consumes. Records read
//! from a topic ([`crate::services::Services::read_topic`]), produced
//! ([`crate::kafka::produce`]), loaded from fixtures ([`crate::native::fixture`])
//! or built here are all of it, so a test moves a record from one to the
//! other without converting it.

pub use smt_host::contract::{Header, Message as Record};

/// A record of `topic` on partition 0 at offset 0, without timestamp or
/// headers; `key`/`value` `None` are a null key / a tombstone.
pub fn record(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> Record {
    Record {
        topic: topic.to_owned(),
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        key: key.map(<[u8]>::to_vec),
        value: value.map(<[u8]>::to_vec),
        headers: Vec::new(),
    }
}

/// What tests ask of a record (a trait: `Record` is the host's type).
pub trait RecordExt {
    /// The same record at another partition and offset.
    fn at(self, partition: i32, offset: i64) -> Self;
    /// The key parsed as JSON (`None` for a null key or one that is not JSON).
    fn key_json(&self) -> Option<serde_json::Value>;
    /// The value parsed as JSON (`None` for a tombstone or a value that is not JSON).
    fn value_json(&self) -> Option<serde_json::Value>;
    /// The Debezium payload of the value: `payload` with schemas, the value itself without.
    fn debezium_payload(&self) -> Option<serde_json::Value>;
    /// The Debezium `op` (`r`, `c`, `u`, `d`, `t`), `None` for a tombstone.
    fn op(&self) -> Option<String>;
    /// The first header with this key, as text (`None` also for a null header).
    fn header(&self, key: &str) -> Option<String>;
}

impl RecordExt for Record {
    fn at(mut self, partition: i32, offset: i64) -> Self {
        self.partition = partition;
        self.offset = offset;
        self
    }

    fn key_json(&self) -> Option<serde_json::Value> {
        self.key
            .as_deref()
            .and_then(|k| serde_json::from_slice(k).ok())
    }

    fn value_json(&self) -> Option<serde_json::Value> {
        self.value
            .as_deref()
            .and_then(|v| serde_json::from_slice(v).ok())
    }

    fn debezium_payload(&self) -> Option<serde_json::Value> {
        let v = self.value_json()?;
        match v.get("payload") {
            Some(p) if v.get("schema").is_some() => Some(p.clone()),
            _ => Some(v),
        }
    }

    fn op(&self) -> Option<String> {
        self.debezium_payload()?
            .get("op")?
            .as_str()
            .map(str::to_owned)
    }

    fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|h| h.key == key)
            .and_then(|h| h.value.as_deref())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}
