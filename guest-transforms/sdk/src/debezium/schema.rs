//! Kafka Connect schemas as the JSON converter writes them
//! (`{"type": "struct", "fields": [...], "name": ..., "parameters": {...}}`).
//!
//! Parsed into this typed form rather than a `serde_json::Value`: a schema is
//! several times larger than the row it describes, and the typed parse skips
//! what decoding does not need (`optional`, `version`, `doc`, `default`, ...).

use serde::Deserialize;
use serde_json::{Map, Value};

/// One Connect schema. Unknown keys are ignored; every key is optional so
/// that an odd schema still decodes (what it lacks passes through).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Schema {
    /// `struct`, `array`, `map`, `bytes`, `string`, `int64`, ...
    #[serde(rename = "type")]
    pub type_: String,
    /// The logical type (`org.apache.kafka.connect.data.Decimal`, ...) or the record name.
    pub name: Option<String>,
    /// The field name, for a struct's fields.
    pub field: Option<String>,
    /// `parameters` (e.g. the Decimal's `scale`).
    pub parameters: Option<Map<String, Value>>,
    /// A struct's fields, in order.
    pub fields: Vec<Schema>,
    /// An array's element schema.
    pub items: Option<Box<Schema>>,
    /// A map's value schema.
    pub values: Option<Box<Schema>>,
}

impl Schema {
    /// The schema of a struct's field.
    pub fn field(&self, name: &str) -> Option<&Schema> {
        self.fields
            .iter()
            .find(|f| f.field.as_deref() == Some(name))
    }

    /// A parameter as an integer (Connect writes them as strings).
    pub fn int_parameter(&self, name: &str) -> Option<i64> {
        match self.parameters.as_ref()?.get(name)? {
            Value::String(s) => s.parse().ok(),
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }
}
