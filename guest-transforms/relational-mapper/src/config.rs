//! The mapping file as written (docs/relational-mapper.md is its reference).
//! [`crate::plan`] checks it and resolves names.

use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mapping {
    /// The source tables, `"<schema>.<table>"`, in the order written.
    pub tables: Map<String, Value>,
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub database: Option<String>,
    #[serde(default = "default_state_prefix")]
    pub state_prefix: String,
    #[serde(default)]
    pub nulls: Nulls,
}

fn default_state_prefix() -> String {
    "__smt_rm.".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub columns: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub name: Option<String>,
    pub table: String,
    #[serde(default)]
    pub collection: Option<String>,
    #[serde(default)]
    pub id: Option<IdMode>,
    #[serde(default)]
    pub embed: Option<Embed>,
    #[serde(default)]
    pub include: Option<Vec<String>>,
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, Field>,
    #[serde(default)]
    pub nulls: Option<Nulls>,
    #[serde(default)]
    pub filter: Vec<Condition>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum IdMode {
    PrimaryKey,
    KeyDocument,
    ObjectId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Nulls {
    #[default]
    Keep,
    Omit,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Embed {
    pub parent: String,
    /// Child column → parent column, in the order written.
    pub on: Map<String, Value>,
    #[serde(default)]
    pub kind: EmbedKind,
    #[serde(default, rename = "as")]
    pub as_path: Option<String>,
    #[serde(default)]
    pub prefix: Option<String>,
    #[serde(default)]
    pub sort: Vec<SortKey>,
    #[serde(default)]
    pub limit: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbedKind {
    #[default]
    Array,
    Document,
    Merge,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SortKey {
    pub column: String,
    #[serde(default)]
    pub order: Order,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    #[default]
    Asc,
    Desc,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Field {
    #[serde(default)]
    pub to: Option<String>,
    #[serde(default, rename = "type")]
    pub ty: Option<Type>,
}

/// Target types of `fields.<column>.type`; names are case-insensitive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Type {
    Boolean,
    Date,
    Decimal,
    Double,
    Int,
    Long,
    String,
}

impl<'de> Deserialize<'de> for Type {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.to_ascii_lowercase().as_str() {
            "boolean" | "bool" => Type::Boolean,
            "date" => Type::Date,
            "decimal" => Type::Decimal,
            "double" => Type::Double,
            "int" | "integer" => Type::Int,
            "long" => Type::Long,
            "string" => Type::String,
            _ => {
                return Err(serde::de::Error::custom(format!(
                    "unknown type {name:?}, expected one of boolean, date, decimal, double, int, long, string"
                )))
            }
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Condition {
    pub column: String,
    pub op: CondOp,
    #[serde(default)]
    pub value: Option<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CondOp {
    Eq,
    Ne,
    Lt,
    Lte,
    Gt,
    Gte,
    In,
    NotIn,
    IsNull,
    IsNotNull,
}

/// Parses the mapping; errors name the path of the offending value.
pub fn parse(text: &str) -> Result<Mapping, String> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("mapping: {}", e.inner())
        } else {
            format!("mapping: {path}: {}", e.inner())
        }
    })
}

/// Parses one entry of `tables` (kept as JSON so that table order survives).
pub fn parse_table(name: &str, value: &Value) -> Result<Table, String> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!(".{path}")
        };
        format!("mapping: tables.{name:?}{at}: {}", e.inner())
    })
}
