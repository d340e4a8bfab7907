//! The write operations a transform returns, validated and parsed into BSON,
//! and their canonical Extended JSON (`smt test`). Their MongoDB renderings
//! (raw BSON commands) are the sink's (`sink::model`).
//!
//! Documents stay raw BSON ([`RawDocumentBuf`]) from the guest to the wire:
//! a guest's BSON output is validated by walking it, never parsed into a
//! [`Document`]; Extended JSON text is parsed once and encoded once. Only an
//! aggregate's stages, which the host inspects, are [`Document`]s.

use bson::raw::{RawBsonRef, RawDocument};
use bson::{Bson, Document, RawDocumentBuf};
use serde_json::{json, Value};

use crate::contract as guest;

/// Where an operation writes; `database: None` is the pipeline's default database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Namespace {
    pub database: Option<String>,
    pub collection: String,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Update {
    Operators(RawDocumentBuf),
    Pipeline(Vec<RawDocumentBuf>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct UpdateOp {
    pub ns: Namespace,
    pub filter: RawDocumentBuf,
    pub update: Update,
    pub upsert: bool,
    pub array_filters: Vec<RawDocumentBuf>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum WriteOp {
    InsertOne {
        ns: Namespace,
        document: RawDocumentBuf,
    },
    ReplaceOne {
        ns: Namespace,
        filter: RawDocumentBuf,
        replacement: RawDocumentBuf,
        upsert: bool,
    },
    UpdateOne(UpdateOp),
    UpdateMany(UpdateOp),
    DeleteOne {
        ns: Namespace,
        filter: RawDocumentBuf,
    },
    DeleteMany {
        ns: Namespace,
        filter: RawDocumentBuf,
    },
    /// An aggregation pipeline on `ns` run for its writes (contract 0.2.0):
    /// validated to end in `$merge` and to hold no `$out`. It is not part of a
    /// bulk write: the sink runs it alone, in order.
    Aggregate {
        ns: Namespace,
        pipeline: Vec<Document>,
    },
}

/// Why an operation returned by a guest cannot be executed.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum InvalidOp {
    #[error("{field}: invalid Extended JSON: {reason}")]
    Json { field: &'static str, reason: String },
    #[error("{field}: invalid BSON: {reason}")]
    Bson { field: &'static str, reason: String },
    #[error("{field}: {reason}")]
    Shape { field: &'static str, reason: String },
}

impl WriteOp {
    /// Parses and validates one operation returned by a guest.
    pub fn from_guest(op: guest::WriteOp) -> Result<Self, InvalidOp> {
        Ok(match op {
            guest::WriteOp::InsertOne(o) => WriteOp::InsertOne {
                ns: namespace(o.ns)?,
                document: replacement_doc("document", o.document)?,
            },
            guest::WriteOp::ReplaceOne(o) => WriteOp::ReplaceOne {
                ns: namespace(o.ns)?,
                filter: raw_document("filter", o.filter)?,
                replacement: replacement_doc("replacement", o.replacement)?,
                upsert: o.upsert,
            },
            guest::WriteOp::UpdateOne(o) => WriteOp::UpdateOne(update(o)?),
            guest::WriteOp::UpdateMany(o) => WriteOp::UpdateMany(update(o)?),
            guest::WriteOp::DeleteOne(o) => WriteOp::DeleteOne {
                ns: namespace(o.ns)?,
                filter: raw_document("filter", o.filter)?,
            },
            guest::WriteOp::DeleteMany(o) => WriteOp::DeleteMany {
                ns: namespace(o.ns)?,
                filter: raw_document("filter", o.filter)?,
            },
            guest::WriteOp::Aggregate(a) => WriteOp::Aggregate {
                ns: namespace(a.ns)?,
                pipeline: aggregate_pipeline(a.pipeline)?,
            },
        })
    }

    /// The contract's name of the operation: a metrics label.
    pub fn kind(&self) -> &'static str {
        match self {
            WriteOp::InsertOne { .. } => "insert-one",
            WriteOp::ReplaceOne { .. } => "replace-one",
            WriteOp::UpdateOne(_) => "update-one",
            WriteOp::UpdateMany(_) => "update-many",
            WriteOp::DeleteOne { .. } => "delete-one",
            WriteOp::DeleteMany { .. } => "delete-many",
            WriteOp::Aggregate { .. } => "aggregate",
        }
    }

    /// Every namespace the operation touches: its own and, for an aggregate,
    /// the `$merge` target and the collections its stages read (`$lookup`,
    /// `$graphLookup`, `$unionWith`, in sub-pipelines and `$facet` too).
    /// `database: None` is the operation's own database (itself `None` for
    /// the default one). What `mongodb.allowed-namespaces` is checked against.
    pub fn namespaces(&self) -> Vec<Namespace> {
        let ns = self.namespace();
        let mut out = vec![ns.clone()];
        if let WriteOp::Aggregate { pipeline, .. } = self {
            for stage in pipeline {
                stage_namespaces(stage, ns, &mut out);
            }
        }
        out
    }

    pub fn namespace(&self) -> &Namespace {
        match self {
            WriteOp::InsertOne { ns, .. }
            | WriteOp::ReplaceOne { ns, .. }
            | WriteOp::DeleteOne { ns, .. }
            | WriteOp::DeleteMany { ns, .. }
            | WriteOp::Aggregate { ns, .. } => ns,
            WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => &u.ns,
        }
    }

    /// The operation as canonical Extended JSON: stable text for tests and diffs.
    pub fn to_extjson(&self) -> Value {
        let ns = self.namespace();
        let mut out = json!({ "op": self.kind(), "db": ns.database, "coll": ns.collection });
        let fields = out.as_object_mut().expect("json! object");
        let mut put = |k: &str, v: Value| {
            fields.insert(k.to_owned(), v);
        };
        match self {
            WriteOp::InsertOne { document, .. } => put("document", canonical_raw(document)),
            WriteOp::ReplaceOne {
                filter,
                replacement,
                upsert,
                ..
            } => {
                put("filter", canonical_raw(filter));
                put("replacement", canonical_raw(replacement));
                put("upsert", Value::Bool(*upsert));
            }
            WriteOp::UpdateOne(u) | WriteOp::UpdateMany(u) => {
                put("filter", canonical_raw(&u.filter));
                match &u.update {
                    Update::Operators(d) => put("update", canonical_raw(d)),
                    Update::Pipeline(stages) => put(
                        "pipeline",
                        Value::Array(stages.iter().map(|s| canonical_raw(s)).collect()),
                    ),
                }
                put("upsert", Value::Bool(u.upsert));
                if !u.array_filters.is_empty() {
                    put(
                        "arrayFilters",
                        Value::Array(u.array_filters.iter().map(|f| canonical_raw(f)).collect()),
                    );
                }
            }
            WriteOp::DeleteOne { filter, .. } | WriteOp::DeleteMany { filter, .. } => {
                put("filter", canonical_raw(filter))
            }
            WriteOp::Aggregate { pipeline, .. } => put(
                "pipeline",
                Value::Array(pipeline.iter().map(canonical).collect()),
            ),
        }
        out
    }
}

/// Canonical Extended JSON of a document.
pub fn canonical(doc: &Document) -> Value {
    Bson::Document(doc.clone()).into_canonical_extjson()
}

/// Canonical Extended JSON of a raw document ([`raw_document`] validated
/// it: `null` only for bytes that never went through it).
pub fn canonical_raw(doc: &RawDocument) -> Value {
    Document::try_from(doc).map_or(Value::Null, |d| Bson::Document(d).into_canonical_extjson())
}

/// Total bytes of the documents in a guest's output, measured before parsing
/// so that an oversized output is refused without building it twice.
pub fn guest_output_size(ops: &[guest::WriteOp]) -> usize {
    fn doc(d: &guest::Document) -> usize {
        match d {
            guest::Document::Json(s) => s.len(),
            guest::Document::Bson(b) => b.len(),
        }
    }
    fn update(u: &guest::Update) -> usize {
        doc(&u.filter)
            + u.array_filters.iter().map(doc).sum::<usize>()
            + match &u.update {
                guest::UpdateBody::Operators(d) => doc(d),
                guest::UpdateBody::Pipeline(stages) => stages.iter().map(doc).sum(),
            }
    }
    ops.iter()
        .map(|op| match op {
            guest::WriteOp::InsertOne(o) => doc(&o.document),
            guest::WriteOp::ReplaceOne(o) => doc(&o.filter) + doc(&o.replacement),
            guest::WriteOp::UpdateOne(u) | guest::WriteOp::UpdateMany(u) => update(u),
            guest::WriteOp::DeleteOne(d) | guest::WriteOp::DeleteMany(d) => doc(&d.filter),
            guest::WriteOp::Aggregate(a) => a.pipeline.iter().map(doc).sum(),
        })
        .sum()
}

fn namespace(ns: guest::Namespace) -> Result<Namespace, InvalidOp> {
    let shape = |field, reason: &str| InvalidOp::Shape {
        field,
        reason: reason.to_owned(),
    };
    if ns.collection.is_empty() {
        return Err(shape("ns.collection", "the collection name is empty"));
    }
    if ns.collection.contains('\0') || ns.collection.starts_with("system.") {
        return Err(shape("ns.collection", "not a valid collection name"));
    }
    if let Some(db) = &ns.database {
        if db.is_empty() || db.contains(['/', '\\', '.', ' ', '"', '$', '\0']) {
            return Err(shape("ns.database", "not a valid database name"));
        }
    }
    Ok(Namespace {
        database: ns.database,
        collection: ns.collection,
    })
}

/// Parses one document (Extended JSON object or raw BSON).
pub fn document(field: &'static str, doc: guest::Document) -> Result<Document, InvalidOp> {
    match doc {
        guest::Document::Json(text) => {
            // One pass, without a `serde_json::Value` in between; when in
            // doubt it declines and the general conversion below decides.
            if let Some(doc) = crate::extjson::document(&text) {
                return Ok(doc);
            }
            let value: Value = serde_json::from_str(&text).map_err(|e| InvalidOp::Json {
                field,
                reason: e.to_string(),
            })?;
            let Value::Object(map) = value else {
                return Err(InvalidOp::Json {
                    field,
                    reason: "expected an object".to_owned(),
                });
            };
            Document::try_from(map).map_err(|e| InvalidOp::Json {
                field,
                reason: e.to_string(),
            })
        }
        guest::Document::Bson(bytes) => {
            let raw = RawDocumentBuf::from_bytes(bytes).map_err(|e| InvalidOp::Bson {
                field,
                reason: e.to_string(),
            })?;
            Document::try_from(raw.as_ref()).map_err(|e| InvalidOp::Bson {
                field,
                reason: e.to_string(),
            })
        }
    }
}

/// One document as raw BSON: guest BSON is kept as it came, once every
/// element of it has been read (the checks of a parse, without building a
/// [`Document`]); Extended JSON is parsed as [`document`] does and encoded.
pub fn raw_document(
    field: &'static str,
    doc: guest::Document,
) -> Result<RawDocumentBuf, InvalidOp> {
    let invalid = |reason: String| InvalidOp::Bson { field, reason };
    match doc {
        guest::Document::Json(_) => {
            let doc = document(field, doc)?;
            RawDocumentBuf::try_from(&doc).map_err(|e| InvalidOp::Json {
                field,
                reason: e.to_string(),
            })
        }
        guest::Document::Bson(bytes) => {
            let raw = RawDocumentBuf::from_bytes(bytes).map_err(|e| invalid(e.to_string()))?;
            validate(&raw, 0).map_err(invalid)?;
            Ok(raw)
        }
    }
}

/// Deepest nesting of documents and arrays accepted (MongoDB's own limit).
const MAX_DEPTH: usize = 200;

/// Reads every element of `doc`, nested ones too.
fn validate(doc: &RawDocument, depth: usize) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!("nested more than {MAX_DEPTH} levels deep"));
    }
    for element in doc {
        let (_, value) = element.map_err(|e| e.to_string())?;
        validate_value(value, depth)?;
    }
    Ok(())
}

fn validate_value(value: RawBsonRef<'_>, depth: usize) -> Result<(), String> {
    match value {
        RawBsonRef::Document(d) => validate(d, depth + 1),
        RawBsonRef::JavaScriptCodeWithScope(c) => validate(c.scope, depth + 1),
        RawBsonRef::Array(a) => {
            if depth + 1 > MAX_DEPTH {
                return Err(format!("nested more than {MAX_DEPTH} levels deep"));
            }
            for item in a {
                validate_value(item.map_err(|e| e.to_string())?, depth + 1)?;
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// The top-level keys of a validated raw document.
fn keys(doc: &RawDocument) -> impl Iterator<Item = &str> {
    doc.iter().filter_map(|e| e.ok().map(|(k, _)| k.as_str()))
}

/// A stored document: no top-level operator keys.
fn replacement_doc(field: &'static str, doc: guest::Document) -> Result<RawDocumentBuf, InvalidOp> {
    let doc = raw_document(field, doc)?;
    if let Some(key) = keys(&doc).find(|k| k.starts_with('$')) {
        return Err(InvalidOp::Shape {
            field,
            reason: format!("a stored document cannot have the operator key `{key}` (use update-one for operators)"),
        });
    }
    Ok(doc)
}

/// The stages of an `aggregate` operation: at least one, each a single
/// `$`-operator, the last one `$merge` with an `into`, no `$out` (it would
/// replace a whole collection).
/// The namespaces one pipeline stage names (see [`WriteOp::namespaces`]).
fn stage_namespaces(stage: &Document, ns: &Namespace, out: &mut Vec<Namespace>) {
    // A target is a collection of the operation's database, or `{db, coll}`.
    let target = |t: &Bson| match t {
        Bson::String(coll) => Some(Namespace {
            database: ns.database.clone(),
            collection: coll.clone(),
        }),
        Bson::Document(d) => Some(Namespace {
            database: d
                .get_str("db")
                .ok()
                .map(str::to_owned)
                .or_else(|| ns.database.clone()),
            collection: d.get_str("coll").unwrap_or_default().to_owned(),
        }),
        _ => None,
    };
    let sub_pipeline = |p: Option<&Bson>, out: &mut Vec<Namespace>| {
        if let Some(Bson::Array(stages)) = p {
            for s in stages {
                if let Bson::Document(s) = s {
                    stage_namespaces(s, ns, out);
                }
            }
        }
    };
    for (name, body) in stage {
        match (name.as_str(), body) {
            ("$merge", Bson::Document(m)) => out.extend(m.get("into").and_then(target)),
            ("$lookup" | "$graphLookup", Bson::Document(l)) => {
                out.extend(l.get("from").and_then(target));
                sub_pipeline(l.get("pipeline"), out);
            }
            ("$unionWith", Bson::Document(u)) => {
                out.extend(u.get("coll").and_then(target));
                sub_pipeline(u.get("pipeline"), out);
            }
            ("$unionWith", coll @ Bson::String(_)) => out.extend(target(coll)),
            ("$facet", Bson::Document(f)) => {
                for (_, p) in f {
                    sub_pipeline(Some(p), out);
                }
            }
            _ => {}
        }
    }
}

fn aggregate_pipeline(stages: Vec<guest::Document>) -> Result<Vec<Document>, InvalidOp> {
    let shape = |reason: String| InvalidOp::Shape {
        field: "pipeline",
        reason,
    };
    if stages.is_empty() {
        return Err(shape(
            "the pipeline has no stages (it must end with `$merge`)".into(),
        ));
    }
    let stages: Vec<Document> = stages
        .into_iter()
        .map(|s| document("pipeline", s))
        .collect::<Result<_, _>>()?;
    let last = stages.len() - 1;
    for (i, stage) in stages.iter().enumerate() {
        let mut keys = stage.keys();
        let name = match (keys.next(), keys.next()) {
            (Some(k), None) if k.starts_with('$') => k.as_str(),
            _ => {
                return Err(shape(format!(
                    "stage {i} is not one `{{\"$stage\": ...}}` operator (its keys: {})",
                    stage
                        .keys()
                        .map(String::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                )))
            }
        };
        match name {
            "$out" => {
                return Err(shape(format!(
                    "stage {i}: `$out` replaces a whole collection and is not allowed; use `$merge`"
                )))
            }
            "$merge" if i != last => {
                return Err(shape(format!("stage {i}: `$merge` must be the last stage")))
            }
            "$merge" => {
                let into = stage
                    .get_document("$merge")
                    .ok()
                    .and_then(|m| m.get("into"));
                let valid = match into {
                    Some(Bson::String(coll)) => !coll.is_empty(),
                    Some(Bson::Document(target)) => target.get_str("coll").is_ok(),
                    _ => false,
                };
                if !valid {
                    return Err(shape(format!(
                        "stage {i}: `$merge` needs an `into` (a collection name or `{{\"db\": ..., \"coll\": ...}}`)"
                    )));
                }
            }
            _ if i == last => {
                return Err(shape(format!(
                    "the last stage is `{name}`; an aggregate operation must end with `$merge`"
                )))
            }
            _ => {}
        }
    }
    Ok(stages)
}

fn update(u: guest::Update) -> Result<UpdateOp, InvalidOp> {
    let update = match u.update {
        guest::UpdateBody::Operators(d) => {
            let d = raw_document("update", d)?;
            if d.is_empty() {
                return Err(InvalidOp::Shape {
                    field: "update",
                    reason: "the update document is empty".into(),
                });
            }
            if let Some(key) = keys(&d).find(|k| !k.starts_with('$')) {
                return Err(InvalidOp::Shape {
                    field: "update",
                    reason: format!("`{key}` is not an update operator (use replace-one to store a whole document)"),
                });
            }
            Update::Operators(d)
        }
        guest::UpdateBody::Pipeline(stages) => {
            if stages.is_empty() {
                return Err(InvalidOp::Shape {
                    field: "pipeline",
                    reason: "the pipeline has no stages".into(),
                });
            }
            Update::Pipeline(
                stages
                    .into_iter()
                    .map(|s| raw_document("pipeline", s))
                    .collect::<Result<_, _>>()?,
            )
        }
    };
    Ok(UpdateOp {
        ns: namespace(u.ns)?,
        filter: raw_document("filter", u.filter)?,
        update,
        upsert: u.upsert,
        array_filters: u
            .array_filters
            .into_iter()
            .map(|d| raw_document("array-filters", d))
            .collect::<Result<_, _>>()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ns() -> guest::Namespace {
        guest::Namespace {
            database: None,
            collection: "c".into(),
        }
    }
    fn json(s: &str) -> guest::Document {
        guest::Document::Json(s.into())
    }

    #[test]
    fn parses_extended_json_types() {
        let op = WriteOp::from_guest(guest::WriteOp::InsertOne(guest::InsertOne {
            ns: ns(),
            document: json(r#"{"_id":{"id":1},"b":{"$numberDecimal":"1234.50"},"t":{"$date":{"$numberLong":"1709553600123"}}}"#),
        }))
        .unwrap();
        let WriteOp::InsertOne { document, .. } = &op else {
            panic!()
        };
        assert!(
            matches!(document.get("b"), Ok(Some(RawBsonRef::Decimal128(d))) if d.to_string() == "1234.50")
        );
        assert_eq!(
            document.get_datetime("t").unwrap().timestamp_millis(),
            1709553600123
        );
        assert_eq!(
            op.to_extjson()["document"]["b"],
            serde_json::json!({"$numberDecimal": "1234.50"})
        );
    }

    #[test]
    fn accepts_raw_bson() {
        let doc = bson::doc! {"_id": 7, "x": "y"};
        let bytes = bson::serialize_to_vec(&doc).unwrap();
        let op = WriteOp::from_guest(guest::WriteOp::DeleteOne(guest::Delete {
            ns: ns(),
            filter: guest::Document::Bson(bytes),
        }))
        .unwrap();
        assert_eq!(
            op,
            WriteOp::DeleteOne {
                ns: Namespace {
                    database: None,
                    collection: "c".into()
                },
                filter: RawDocumentBuf::try_from(&doc).unwrap()
            }
        );
    }

    #[test]
    fn raw_bson_is_read_to_the_last_nested_element() {
        let filter = |bytes: Vec<u8>| {
            WriteOp::from_guest(guest::WriteOp::DeleteOne(guest::Delete {
                ns: ns(),
                filter: guest::Document::Bson(bytes),
            }))
        };
        // {"a": {"b": "x"}} with the nested string's length past its end.
        let mut bytes = bson::serialize_to_vec(&bson::doc! {"a": {"b": "x"}}).unwrap();
        let at = bytes.len() - 1 - 1 - 2 - 4;
        assert_eq!(bytes[at], 2, "the nested string's length");
        bytes[at] = 64;
        assert!(
            matches!(
                filter(bytes),
                Err(InvalidOp::Bson {
                    field: "filter",
                    ..
                })
            ),
            "a broken nested element is refused"
        );
        let mut deep = bson::doc! {"x": 1};
        for _ in 0..MAX_DEPTH + 1 {
            deep = bson::doc! {"d": deep};
        }
        let too_deep = filter(bson::serialize_to_vec(&deep).unwrap());
        assert!(
            matches!(&too_deep, Err(InvalidOp::Bson { reason, .. }) if reason.contains("levels deep")),
            "{too_deep:?}"
        );
    }

    #[test]
    fn rejects_bad_documents_with_the_field_named() {
        let bad_json = WriteOp::from_guest(guest::WriteOp::DeleteOne(guest::Delete {
            ns: ns(),
            filter: json("{nope"),
        }));
        assert!(
            matches!(
                bad_json,
                Err(InvalidOp::Json {
                    field: "filter",
                    ..
                })
            ),
            "{bad_json:?}"
        );
        let bad_bson = WriteOp::from_guest(guest::WriteOp::DeleteOne(guest::Delete {
            ns: ns(),
            filter: guest::Document::Bson(vec![1, 2, 3]),
        }));
        assert!(
            matches!(
                bad_bson,
                Err(InvalidOp::Bson {
                    field: "filter",
                    ..
                })
            ),
            "{bad_bson:?}"
        );
        let not_operator = WriteOp::from_guest(guest::WriteOp::UpdateOne(guest::Update {
            ns: ns(),
            filter: json("{}"),
            update: guest::UpdateBody::Operators(json(r#"{"a":1}"#)),
            upsert: false,
            array_filters: vec![],
        }));
        assert!(matches!(
            not_operator,
            Err(InvalidOp::Shape {
                field: "update",
                ..
            })
        ));
        let operator_in_replacement =
            WriteOp::from_guest(guest::WriteOp::ReplaceOne(guest::ReplaceOne {
                ns: ns(),
                filter: json("{}"),
                replacement: json(r#"{"$set":{"a":1}}"#),
                upsert: true,
            }));
        assert!(matches!(
            operator_in_replacement,
            Err(InvalidOp::Shape {
                field: "replacement",
                ..
            })
        ));
        let empty_coll = WriteOp::from_guest(guest::WriteOp::DeleteOne(guest::Delete {
            ns: guest::Namespace {
                database: None,
                collection: String::new(),
            },
            filter: json("{}"),
        }));
        assert!(matches!(
            empty_coll,
            Err(InvalidOp::Shape {
                field: "ns.collection",
                ..
            })
        ));
    }

    fn aggregate(stages: &[&str]) -> Result<WriteOp, InvalidOp> {
        WriteOp::from_guest(guest::WriteOp::Aggregate(guest::Aggregate {
            ns: ns(),
            pipeline: stages.iter().map(|s| json(s)).collect(),
        }))
    }

    fn shape_reason(result: Result<WriteOp, InvalidOp>) -> String {
        match result {
            Err(InvalidOp::Shape {
                field: "pipeline",
                reason,
            }) => reason,
            other => panic!("expected a pipeline shape error, got {other:?}"),
        }
    }

    #[test]
    fn an_aggregate_names_every_namespace_it_touches() {
        let op = aggregate(&[
            r#"{"$lookup": {"from": "rows", "as": "r", "pipeline": [{"$unionWith": {"coll": "more"}}]}}"#,
            r#"{"$facet": {"a": [{"$graphLookup": {"from": {"db": "x", "coll": "g"}, "startWith": "$a", "connectFromField": "a", "connectToField": "b", "as": "g"}}]}}"#,
            r#"{"$unionWith": "u"}"#,
            r#"{"$merge": {"into": {"db": "other", "coll": "docs"}}}"#,
        ])
        .unwrap();
        let names: Vec<String> = op
            .namespaces()
            .iter()
            .map(|n| format!("{}.{}", n.database.as_deref().unwrap_or("-"), n.collection))
            .collect();
        assert_eq!(
            names,
            ["-.c", "-.rows", "-.more", "x.g", "-.u", "other.docs"]
        );
    }

    #[test]
    fn aggregate_ends_with_merge_and_renders() {
        let op = aggregate(&[
            r#"{"$match":{"_id":{"$numberLong":"7"}}}"#,
            r#"{"$lookup":{"from":"lines","localField":"_id","foreignField":"order","as":"lines"}}"#,
            r#"{"$merge":{"into":{"db":"shop","coll":"orders"},"whenMatched":"replace"}}"#,
        ])
        .unwrap();
        assert_eq!(op.kind(), "aggregate");
        let WriteOp::Aggregate { pipeline, .. } = &op else {
            panic!()
        };
        assert_eq!(pipeline.len(), 3);
        assert_eq!(
            op.to_extjson(),
            serde_json::json!({"op": "aggregate", "db": null, "coll": "c", "pipeline": [
                {"$match": {"_id": {"$numberLong": "7"}}},
                {"$lookup": {"from": "lines", "localField": "_id", "foreignField": "order", "as": "lines"}},
                {"$merge": {"into": {"db": "shop", "coll": "orders"}, "whenMatched": "replace"}},
            ]})
        );
        assert!(aggregate(&[r#"{"$merge":{"into":"docs"}}"#]).is_ok());
    }

    #[test]
    fn aggregate_stages_count_in_the_output_size() {
        let stages = [r#"{"$match":{}}"#, r#"{"$merge":{"into":"b"}}"#];
        let op = guest::WriteOp::Aggregate(guest::Aggregate {
            ns: ns(),
            pipeline: stages.iter().map(|s| json(s)).collect(),
        });
        assert_eq!(
            guest_output_size(&[op]),
            stages.iter().map(|s| s.len()).sum::<usize>()
        );
    }

    #[test]
    fn aggregate_pipelines_are_validated_with_the_field_named() {
        assert!(shape_reason(aggregate(&[])).contains("no stages"));
        let missing = shape_reason(aggregate(&[r#"{"$match":{}}"#]));
        assert!(missing.contains("must end with `$merge`"), "{missing}");
        let not_last = shape_reason(aggregate(&[
            r#"{"$merge":{"into":"a"}}"#,
            r#"{"$match":{}}"#,
        ]));
        assert!(
            not_last.contains("stage 0: `$merge` must be the last stage"),
            "{not_last}"
        );
        let out = shape_reason(aggregate(&[
            r#"{"$out":"a"}"#,
            r#"{"$merge":{"into":"b"}}"#,
        ]));
        assert!(out.contains("stage 0: `$out`"), "{out}");
        let out_last = shape_reason(aggregate(&[r#"{"$out":"a"}"#]));
        assert!(out_last.contains("`$out`"), "{out_last}");
        let no_into = shape_reason(aggregate(&[r#"{"$merge":{"on":"_id"}}"#]));
        assert!(no_into.contains("needs an `into`"), "{no_into}");
        let shorthand = shape_reason(aggregate(&[r#"{"$merge":"b"}"#]));
        assert!(shorthand.contains("needs an `into`"), "{shorthand}");
        let two_keys = shape_reason(aggregate(&[
            r#"{"$match":{},"$limit":1}"#,
            r#"{"$merge":{"into":"b"}}"#,
        ]));
        assert!(two_keys.contains("stage 0 is not one"), "{two_keys}");
        let no_operator = shape_reason(aggregate(&[
            r#"{"match":{}}"#,
            r#"{"$merge":{"into":"b"}}"#,
        ]));
        assert!(no_operator.contains("stage 0 is not one"), "{no_operator}");
        assert!(matches!(
            aggregate(&["{nope", r#"{"$merge":{"into":"b"}}"#]),
            Err(InvalidOp::Json {
                field: "pipeline",
                ..
            })
        ));
        let bad_ns = WriteOp::from_guest(guest::WriteOp::Aggregate(guest::Aggregate {
            ns: guest::Namespace {
                database: None,
                collection: String::new(),
            },
            pipeline: vec![json(r#"{"$merge":{"into":"b"}}"#)],
        }));
        assert!(matches!(
            bad_ns,
            Err(InvalidOp::Shape {
                field: "ns.collection",
                ..
            })
        ));
    }
}
