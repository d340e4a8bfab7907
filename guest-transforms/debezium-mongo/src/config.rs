//! The transform's configuration: the JSON object given to `init`.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The options of the default transform. Every field is optional; unknown
/// fields are an error naming the field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// How the document `_id` is built from the record key (the primary-key columns).
    pub id: IdMode,
    /// The database every write goes to; none (the default) means the
    /// pipeline's configured database. A `rename` entry naming a database wins.
    pub database: Option<String>,
    /// The collection name, with placeholders taken from the topic
    /// `<prefix>.<schema>.<table>`: `{table}` (the default), `{schema}`,
    /// `{prefix}`, `{topic}`.
    pub collection: String,
    /// Routing per table: keys are a full topic, `schema.table` or `table`
    /// (looked up in that order); values are `collection` or `database.collection`.
    pub rename: BTreeMap<String, String>,
    /// What a truncate (`op: "t"`) does.
    pub truncate: TruncateMode,
    /// How `json`/`jsonb` columns (`io.debezium.data.Json`) are written.
    pub json: JsonOption,
    /// How `int64` (`bigint`) columns are written: always a BSON long (the
    /// only value, kept so that configurations naming it still load).
    pub int64: Int64Option,
    /// How timestamps (`timestamptz`, `timestamp`) are written: a BSON date
    /// truncated to the millisecond, or exact UTC text.
    pub timestamps: TimestampOption,
    /// Debezium's `unavailable.value.placeholder` (the value of an unchanged
    /// TOASTed column).
    pub unavailable_value_placeholder: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            id: IdMode::default(),
            database: None,
            collection: "{table}".to_owned(),
            rename: BTreeMap::new(),
            truncate: TruncateMode::default(),
            json: JsonOption::default(),
            int64: Int64Option::default(),
            timestamps: TimestampOption::default(),
            unavailable_value_placeholder: "__debezium_unavailable_value".to_owned(),
        }
    }
}

/// How `_id` is built from the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdMode {
    /// `_id: {<key columns>}` (the reference sink's behaviour).
    #[default]
    Wrapped,
    /// `_id: <the key column>` for a single-column key; a composite key stays wrapped.
    Scalar,
    /// A server-assigned ObjectId; the key columns stay ordinary fields and
    /// writes filter on them.
    ObjectId,
}

/// What a truncate does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TruncateMode {
    /// Nothing.
    #[default]
    Ignore,
    /// `deleteMany({})` on the table's collection.
    DeleteAll,
}

/// How `json`/`jsonb` columns are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum JsonOption {
    /// Embedded as a parsed sub-document / array / value (text with `$`-prefixed
    /// keys, or that does not parse, stays a string).
    #[default]
    Parse,
    /// Kept as the JSON text.
    String,
}

/// How `int64` columns are written. A plain number would become an int32
/// or an int64 by magnitude, one column holding two types: there is no such
/// option.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Int64Option {
    /// Always a BSON long.
    #[default]
    Long,
}

/// How timestamps are written: every value of a column gets the same BSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TimestampOption {
    /// A BSON date, truncated (towards the past) to the millisecond.
    #[default]
    #[serde(alias = "truncate-to-millis")]
    Date,
    /// ISO-8601 text in UTC with all the digits, a fixed number per type
    /// (`2024-03-04T12:00:00.123456Z`).
    IsoString,
}

impl Config {
    /// Parses the `init` configuration; empty text or `null` is the default.
    pub fn parse(text: &str) -> Result<Config, String> {
        let text = text.trim();
        if text.is_empty() || text == "null" {
            return Ok(Config::default());
        }
        serde_json::from_str(text).map_err(|e| format!("invalid debezium-mongo configuration: {e}"))
    }

    pub(crate) fn validate(&self) -> Result<(), String> {
        crate::route::check_template(&self.collection)
            .map_err(|e| format!("invalid debezium-mongo configuration: 'collection': {e}"))?;
        if let Some(db) = &self.database {
            if db.is_empty() {
                return Err("invalid debezium-mongo configuration: 'database' is empty".into());
            }
        }
        for (from, to) in &self.rename {
            if to.is_empty() || to.starts_with('.') || to.ends_with('.') {
                return Err(format!(
                    "invalid debezium-mongo configuration: 'rename' entry {from:?}: {to:?} is not `collection` or `database.collection`"
                ));
            }
        }
        if self.unavailable_value_placeholder.is_empty() {
            return Err(
                "invalid debezium-mongo configuration: 'unavailable_value_placeholder' is empty"
                    .into(),
            );
        }
        Ok(())
    }
}
