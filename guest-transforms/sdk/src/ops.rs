//! Builders for the contract's write operations.
//!
//! Documents are `serde_json::Value`s in MongoDB Extended JSON v2 (relaxed or
//! canonical: `{"$numberDecimal": "1.50"}`, `{"$date": {"$numberLong": "0"}}`,
//! ...). In a component they travel as raw BSON ([`Document::Bson`]) when the
//! SDK can encode them exactly as the host would read their JSON text, and as
//! that text ([`Document::Json`]) otherwise; natively (unit tests) as text, so
//! that a test reads them as written (see [`set_bson_output`]).
//!
//! ```
//! use serde_json::json;
//! use smt_guest::{ops, WriteOp};
//!
//! let ops: Vec<WriteOp> = vec![
//!     ops::replace_one("orders", json!({"_id": 1}), json!({"_id": 1, "total": 5})).upsert().into(),
//!     ops::update_one("customers", json!({"_id": 7}))
//!         .set(json!({"last_order": 1}))
//!         .operator("$inc", json!({"orders": 1}))
//!         .upsert()
//!         .into(),
//!     ops::delete_one(ops::ns_in("archive", "orders"), json!({"_id": 0})),
//! ];
//! # assert_eq!(ops.len(), 3);
//! ```

use crate::{
    Aggregate, Delete, Document, InsertOne, Namespace, ReplaceOne, Update, UpdateBody, WriteOp,
};
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicBool, Ordering};

/// A collection in the pipeline's configured database.
pub fn ns(collection: impl Into<String>) -> Namespace {
    Namespace {
        database: None,
        collection: collection.into(),
    }
}

/// A collection in the named database.
pub fn ns_in(database: impl Into<String>, collection: impl Into<String>) -> Namespace {
    Namespace {
        database: Some(database.into()),
        collection: collection.into(),
    }
}

/// A collection name alone: the pipeline's configured database.
impl From<&str> for Namespace {
    fn from(collection: &str) -> Self {
        ns(collection)
    }
}

/// A collection name alone: the pipeline's configured database.
impl From<String> for Namespace {
    fn from(collection: String) -> Self {
        ns(collection)
    }
}

impl From<&Namespace> for Namespace {
    fn from(ns: &Namespace) -> Self {
        ns.clone()
    }
}

/// A document for an operation: BSON when [`set_bson_output`] is on (the
/// default in a component) and the SDK encodes every value of it, else
/// Extended JSON text.
pub fn doc(value: &Value) -> Document {
    if BSON_OUTPUT.load(Ordering::Relaxed) {
        if let Some(bytes) = crate::bsonout::document(value) {
            return Document::Bson(bytes);
        }
    }
    Document::Json(json_text(value))
}

fn owned_doc(value: Value) -> Document {
    doc(&value)
}

/// On in a component: the host then reads BSON instead of parsing JSON text
/// it would encode as BSON anyway. Off natively, so unit tests see the
/// documents as the transform wrote them ([`describe`]).
static BSON_OUTPUT: AtomicBool = AtomicBool::new(cfg!(target_arch = "wasm32"));

/// Whether documents are sent as BSON (the default in a component) or as
/// Extended JSON text (the default natively). For benchmarks that run a
/// transform natively beside its component, and for tests of the encoding.
pub fn set_bson_output(on: bool) {
    BSON_OUTPUT.store(on, Ordering::Relaxed);
}

/// Whether documents are sent as BSON ([`set_bson_output`]): a transform that
/// writes its own [`Document::Bson`] bytes asks here first.
pub fn bson_output() -> bool {
    BSON_OUTPUT.load(Ordering::Relaxed)
}

/// The raw BSON the SDK sends for `value` (an object), `None` when it sends
/// JSON text instead (a value it leaves to the host's conversion: another
/// Extended JSON wrapper than `$numberLong`, `$date` or `$oid`, a malformed
/// one, a key with a NUL byte).
pub fn bson_bytes(value: &Value) -> Option<Vec<u8>> {
    crate::bsonout::document(value)
}

/// Compact JSON text, written straight into a `String` (`Value`'s `Display`
/// goes through `fmt` adapters: the same text, several times slower in Wasm).
fn json_text(value: &Value) -> String {
    crate::jsontext::to_string(value)
}

/// `insertOne(document)`.
pub fn insert_one(ns: impl Into<Namespace>, document: Value) -> WriteOp {
    WriteOp::InsertOne(InsertOne {
        ns: ns.into(),
        document: owned_doc(document),
    })
}

/// `deleteOne(filter)`.
pub fn delete_one(ns: impl Into<Namespace>, filter: Value) -> WriteOp {
    WriteOp::DeleteOne(Delete {
        ns: ns.into(),
        filter: owned_doc(filter),
    })
}

/// `deleteMany(filter)`; `json!({})` deletes every document of the collection.
pub fn delete_many(ns: impl Into<Namespace>, filter: Value) -> WriteOp {
    WriteOp::DeleteMany(Delete {
        ns: ns.into(),
        filter: owned_doc(filter),
    })
}

/// `db.<ns>.aggregate(pipeline)` run for its writes (contract 0.2.0): the
/// server computes documents (a `$lookup` join, a `$group`, ...) and the last
/// stage, `$merge`, writes them. Each stage is one `{"$stage": ...}` object.
///
/// Use it when a document depends on rows that arrive in other records (a
/// parent and its children): keep the rows in state collections with the
/// ordinary operations, then rebuild the target documents from them on the
/// server. The host validates the pipeline (not empty, one operator per
/// stage, `$merge` with an `into` last, no `$out`) and runs it alone, after
/// the operations before it and before those after it. It may run again
/// after a crash: a `$merge` that replaces or merges whole documents converges.
///
/// ```
/// use serde_json::json;
/// use smt_guest::{ops, WriteOp};
///
/// // Rebuild order 7 in `orders` from its row and its lines.
/// let op: WriteOp = ops::aggregate(
///     "order_rows",
///     vec![
///         json!({"$match": {"_id": 7}}),
///         json!({"$lookup": {"from": "line_rows", "localField": "_id",
///                            "foreignField": "order_id", "as": "lines"}}),
///         json!({"$merge": {"into": "orders", "on": "_id",
///                           "whenMatched": "replace", "whenNotMatched": "insert"}}),
///     ],
/// );
/// # let WriteOp::Aggregate(a) = op else { panic!() };
/// # assert_eq!(a.pipeline.len(), 3);
/// ```
pub fn aggregate(ns: impl Into<Namespace>, pipeline: Vec<Value>) -> WriteOp {
    WriteOp::Aggregate(Aggregate {
        ns: ns.into(),
        pipeline: pipeline.into_iter().map(owned_doc).collect(),
    })
}

/// `replaceOne(filter, replacement)`; chain [`ReplaceBuilder::upsert`].
pub fn replace_one(ns: impl Into<Namespace>, filter: Value, replacement: Value) -> ReplaceBuilder {
    ReplaceBuilder {
        ns: ns.into(),
        filter,
        replacement,
        upsert: false,
    }
}

/// `updateOne(filter, update)`: chain operators ([`UpdateBuilder::set`],
/// [`UpdateBuilder::operator`], ...) or a [`UpdateBuilder::pipeline`].
pub fn update_one(ns: impl Into<Namespace>, filter: Value) -> UpdateBuilder {
    UpdateBuilder::new(ns.into(), filter, false)
}

/// `updateMany(filter, update)`, built like [`update_one`].
pub fn update_many(ns: impl Into<Namespace>, filter: Value) -> UpdateBuilder {
    UpdateBuilder::new(ns.into(), filter, true)
}

/// A `replaceOne` being built; `.into()` or [`ReplaceBuilder::build`] makes the [`WriteOp`].
#[derive(Debug, Clone, PartialEq)]
pub struct ReplaceBuilder {
    ns: Namespace,
    filter: Value,
    replacement: Value,
    upsert: bool,
}

impl ReplaceBuilder {
    /// Inserts the replacement when nothing matches the filter.
    pub fn upsert(mut self) -> Self {
        self.upsert = true;
        self
    }

    pub fn build(self) -> WriteOp {
        WriteOp::ReplaceOne(ReplaceOne {
            ns: self.ns,
            filter: owned_doc(self.filter),
            replacement: owned_doc(self.replacement),
            upsert: self.upsert,
        })
    }
}

impl From<ReplaceBuilder> for WriteOp {
    fn from(b: ReplaceBuilder) -> Self {
        b.build()
    }
}

/// An `updateOne`/`updateMany` being built; `.into()` or [`UpdateBuilder::build`] makes the [`WriteOp`].
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateBuilder {
    ns: Namespace,
    filter: Value,
    many: bool,
    operators: Map<String, Value>,
    pipeline: Option<Vec<Value>>,
    upsert: bool,
    array_filters: Vec<Value>,
}

impl UpdateBuilder {
    fn new(ns: Namespace, filter: Value, many: bool) -> Self {
        UpdateBuilder {
            ns,
            filter,
            many,
            operators: Map::new(),
            pipeline: None,
            upsert: false,
            array_filters: Vec::new(),
        }
    }

    /// Adds the fields of `fields` (an object) to the `$set` operator.
    pub fn set(self, fields: Value) -> Self {
        self.operator("$set", fields)
    }

    /// Adds the fields to the `$unset` operator.
    pub fn unset<I, S>(self, fields: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let map: Map<String, Value> = fields
            .into_iter()
            .map(|f| (f.into(), Value::String(String::new())))
            .collect();
        self.operator("$unset", Value::Object(map))
    }

    /// Adds `operator: arguments` (`$inc`, `$push`, `$setOnInsert`, ...). The
    /// fields of an object argument merge with earlier ones for the same
    /// operator; any other argument replaces them.
    pub fn operator(mut self, operator: &str, arguments: Value) -> Self {
        match (self.operators.get_mut(operator), arguments) {
            (Some(Value::Object(existing)), Value::Object(more)) => existing.extend(more),
            (_, arguments) => {
                self.operators.insert(operator.to_owned(), arguments);
            }
        }
        self
    }

    /// Makes this an aggregation-pipeline update with these stages (operators
    /// added before or after are ignored).
    pub fn pipeline(mut self, stages: Vec<Value>) -> Self {
        self.pipeline = Some(stages);
        self
    }

    /// Adds a filter for a `$[<identifier>]` in the update.
    pub fn array_filter(mut self, filter: Value) -> Self {
        self.array_filters.push(filter);
        self
    }

    /// Inserts a document built from the filter and the update when nothing matches.
    pub fn upsert(mut self) -> Self {
        self.upsert = true;
        self
    }

    pub fn build(self) -> WriteOp {
        let update = match self.pipeline {
            Some(stages) => UpdateBody::Pipeline(stages.into_iter().map(owned_doc).collect()),
            None => UpdateBody::Operators(owned_doc(Value::Object(self.operators))),
        };
        let u = Update {
            ns: self.ns,
            filter: owned_doc(self.filter),
            update,
            upsert: self.upsert,
            array_filters: self.array_filters.into_iter().map(owned_doc).collect(),
        };
        if self.many {
            WriteOp::UpdateMany(u)
        } else {
            WriteOp::UpdateOne(u)
        }
    }
}

impl From<UpdateBuilder> for WriteOp {
    fn from(b: UpdateBuilder) -> Self {
        b.build()
    }
}

/// A write operation as one JSON object, for tests and debugging, in the
/// dialect `smt test` prints: `op` (`insert-one`, `replace-one`,
/// `update-one`, `update-many`, `delete-one`, `delete-many`, `aggregate`),
/// `db` (null: the pipeline's), `coll`, then the operation's documents
/// parsed (`document`, `filter`, `replacement`, `update` or `pipeline`,
/// `upsert`, `arrayFilters` when not empty), in that order.
///
/// The one difference from `smt test`: documents appear as the transform
/// wrote them (`1`, not `{"$numberInt": "1"}`); `smt test` parses them and
/// prints canonical Extended JSON. BSON documents appear as
/// `{"$bson": "<base64>"}`; JSON text that does not parse as
/// `{"$invalid_json": "<text>"}`.
pub fn describe(op: &WriteOp) -> Value {
    fn d(doc: &Document) -> Value {
        match doc {
            Document::Json(s) => serde_json::from_str(s).unwrap_or_else(|_| {
                let mut m = Map::new();
                m.insert("$invalid_json".into(), Value::String(s.clone()));
                Value::Object(m)
            }),
            Document::Bson(b) => {
                use base64::Engine as _;
                let mut m = Map::new();
                m.insert(
                    "$bson".into(),
                    Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
                Value::Object(m)
            }
        }
    }
    let mut m = Map::new();
    let mut head = |name: &str, ns: &Namespace| {
        m.insert("op".into(), Value::String(name.into()));
        m.insert(
            "db".into(),
            ns.database.clone().map_or(Value::Null, Value::String),
        );
        m.insert("coll".into(), Value::String(ns.collection.clone()));
    };
    match op {
        WriteOp::InsertOne(i) => {
            head("insert-one", &i.ns);
            m.insert("document".into(), d(&i.document));
        }
        WriteOp::ReplaceOne(r) => {
            head("replace-one", &r.ns);
            m.insert("filter".into(), d(&r.filter));
            m.insert("replacement".into(), d(&r.replacement));
            m.insert("upsert".into(), Value::Bool(r.upsert));
        }
        WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
            head(
                if matches!(op, WriteOp::UpdateOne(_)) {
                    "update-one"
                } else {
                    "update-many"
                },
                &u.ns,
            );
            m.insert("filter".into(), d(&u.filter));
            match &u.update {
                UpdateBody::Operators(doc) => m.insert("update".into(), d(doc)),
                UpdateBody::Pipeline(stages) => m.insert(
                    "pipeline".into(),
                    Value::Array(stages.iter().map(d).collect()),
                ),
            };
            m.insert("upsert".into(), Value::Bool(u.upsert));
            if !u.array_filters.is_empty() {
                m.insert(
                    "arrayFilters".into(),
                    Value::Array(u.array_filters.iter().map(d).collect()),
                );
            }
        }
        WriteOp::DeleteOne(x) | WriteOp::DeleteMany(x) => {
            head(
                if matches!(op, WriteOp::DeleteOne(_)) {
                    "delete-one"
                } else {
                    "delete-many"
                },
                &x.ns,
            );
            m.insert("filter".into(), d(&x.filter));
        }
        WriteOp::Aggregate(a) => {
            head("aggregate", &a.ns);
            m.insert(
                "pipeline".into(),
                Value::Array(a.pipeline.iter().map(d).collect()),
            );
        }
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn j(d: &Document) -> Value {
        match d {
            Document::Json(s) => serde_json::from_str(s).unwrap(),
            Document::Bson(_) => panic!("bson"),
        }
    }

    #[test]
    fn replace_upsert() {
        let op = replace_one("c", json!({"_id": 1}), json!({"_id": 1, "a": 2}))
            .upsert()
            .build();
        let WriteOp::ReplaceOne(r) = op else { panic!() };
        assert_eq!(r.ns, ns("c"));
        assert!(r.upsert);
        assert_eq!(j(&r.filter), json!({"_id": 1}));
        assert_eq!(j(&r.replacement), json!({"_id": 1, "a": 2}));
    }

    #[test]
    fn update_operators_merge() {
        let op: WriteOp = update_many(ns_in("d", "c"), json!({"x": 1}))
            .set(json!({"a": 1}))
            .set(json!({"b": 2}))
            .unset(["c"])
            .operator("$inc", json!({"n": 1}))
            .array_filter(json!({"e.k": 3}))
            .into();
        let WriteOp::UpdateMany(u) = op else { panic!() };
        assert_eq!(u.ns.database.as_deref(), Some("d"));
        assert!(!u.upsert);
        let UpdateBody::Operators(d) = &u.update else {
            panic!()
        };
        assert_eq!(
            j(d),
            json!({"$set": {"a": 1, "b": 2}, "$unset": {"c": ""}, "$inc": {"n": 1}})
        );
        assert_eq!(u.array_filters.len(), 1);
        assert_eq!(j(&u.array_filters[0]), json!({"e.k": 3}));
    }

    #[test]
    fn pipeline_update() {
        let op = update_one("c", json!({"_id": 1}))
            .pipeline(vec![json!({"$set": {"a": "$b"}})])
            .upsert()
            .build();
        let WriteOp::UpdateOne(u) = op else { panic!() };
        assert!(u.upsert);
        let UpdateBody::Pipeline(stages) = &u.update else {
            panic!()
        };
        assert_eq!(j(&stages[0]), json!({"$set": {"a": "$b"}}));
    }

    #[test]
    fn describe_ops() {
        let op = update_one(ns_in("d", "c"), json!({"_id": 1}))
            .set(json!({"a": 1}))
            .upsert()
            .build();
        assert_eq!(
            describe(&op),
            json!({"op": "update-one", "db": "d", "coll": "c", "filter": {"_id": 1},
                   "update": {"$set": {"a": 1}}, "upsert": true})
        );
        assert_eq!(
            describe(&insert_one("c", json!({"x": 1}))),
            json!({"op": "insert-one", "db": null, "coll": "c", "document": {"x": 1}})
        );
        // The keys and their order of `smt test` (compared as text: the
        // order is part of the dialect).
        let op = update_many("c", json!({}))
            .pipeline(vec![json!({"$set": {"a": 1}})])
            .array_filter(json!({"e.k": 2}))
            .build();
        assert_eq!(
            describe(&op).to_string(),
            r#"{"op":"update-many","db":null,"coll":"c","filter":{},"pipeline":[{"$set":{"a":1}}],"upsert":false,"arrayFilters":[{"e.k":2}]}"#
        );
    }

    #[test]
    fn aggregate_stages_in_order() {
        let op = aggregate(
            ns_in("d", "rows"),
            vec![
                json!({"$match": {"_id": 1}}),
                json!({"$merge": {"into": "docs"}}),
            ],
        );
        assert_eq!(
            describe(&op),
            json!({"op": "aggregate", "db": "d", "coll": "rows",
                   "pipeline": [{"$match": {"_id": 1}}, {"$merge": {"into": "docs"}}]})
        );
        let WriteOp::Aggregate(a) = op else { panic!() };
        assert_eq!(j(&a.pipeline[1]), json!({"$merge": {"into": "docs"}}));
    }

    #[test]
    fn inserts_and_deletes() {
        assert!(matches!(insert_one("c", json!({})), WriteOp::InsertOne(_)));
        assert!(matches!(
            delete_one("c", json!({"_id": 1})),
            WriteOp::DeleteOne(_)
        ));
        let WriteOp::DeleteMany(d) = delete_many(String::from("c"), json!({})) else {
            panic!()
        };
        assert_eq!(j(&d.filter), json!({}));
    }
}
