//! The default transform as a Wasm component (built from source by
//! `tests/build.rs`) over the real Debezium fixtures.
//!
//! The exact expected operations per record are specified natively in
//! `guest-transforms/debezium-mongo/tests/cases.rs`; here the component must
//! produce exactly the same operations for every record and every option,
//! and the host must turn them into correctly typed BSON.

use std::sync::Arc;

use bson::{Bson, Document};
use serde_json::Value;
use smt_guest::Transform as _;
use smt_host::engine::{FailureKind, TransformModule};
use smt_host::writeop::WriteOp;
use smt_tests::guests::debezium_mongo_component;
use smt_tests::native::{fixture, rendered, to_guest_message};
use smt_tests::record::{record, Record, RecordExt as _};

/// Every option the transform has, each alone (and the default).
const CONFIGS: &[&str] = &[
    "{}",
    r#"{"id": "scalar"}"#,
    r#"{"id": "object-id"}"#,
    r#"{"truncate": "delete-all"}"#,
    r#"{"timestamps": "iso-string", "json": "string", "int64": "long"}"#,
    r#"{"rename": {"dbz.inventory.customers": "crm.people", "inventory.orders": "sales"}}"#,
    r#"{"database": "warehouse", "collection": "{schema}_{table}"}"#,
];

/// A record's operations as `smt test` prints them, or its error.
type Outcome = Result<Vec<Value>, (FailureKind, String)>;

fn native(config: &str, msgs: &[Record]) -> Vec<Outcome> {
    let t = debezium_mongo::DebeziumMongo::init(config).unwrap();
    msgs.iter()
        .map(|m| {
            t.transform(&to_guest_message(m))
                .map(|ops| ops.iter().map(|op| rendered(op).unwrap()).collect())
                .map_err(|e| (guest_kind(e.kind), e.message))
        })
        .collect()
}

fn guest_kind(kind: smt_guest::ErrorKind) -> FailureKind {
    match kind {
        smt_guest::ErrorKind::BadInput => FailureKind::BadInput,
        smt_guest::ErrorKind::Unsupported => FailureKind::Unsupported,
        smt_guest::ErrorKind::Internal => FailureKind::Internal,
    }
}

fn wasm_ops(
    module: &Arc<TransformModule>,
    config: &str,
    msgs: &[Record],
) -> Vec<Result<Vec<WriteOp>, (FailureKind, String)>> {
    let mut inst = module.instantiate(config).unwrap();
    msgs.iter()
        .map(|m| inst.transform(m).map_err(|e| (e.kind, e.message)))
        .collect()
}

fn wasm(module: &Arc<TransformModule>, config: &str, msgs: &[Record]) -> Vec<Outcome> {
    wasm_ops(module, config, msgs)
        .into_iter()
        .map(|r| r.map(|ops| ops.iter().map(WriteOp::to_extjson).collect()))
        .collect()
}

#[test]
fn the_component_matches_the_native_transform_on_every_record_and_option() {
    let module = debezium_mongo_component();
    for file in ["schemas.jsonl", "plain.jsonl", "update-1kb.jsonl"] {
        let msgs = fixture(file);
        for config in CONFIGS {
            let (expected, got) = (native(config, &msgs), wasm(&module, config, &msgs));
            for ((msg, e), g) in msgs.iter().zip(&expected).zip(&got) {
                assert_eq!(g, e, "{file} {}@{} with {config}", msg.topic, msg.offset);
            }
            // The fixtures hold no bad records: a failure here is a regression.
            assert!(
                got.iter().all(Result::is_ok),
                "{file} with {config}: {got:?}"
            );
        }
    }
}

fn ops_for(
    module: &Arc<TransformModule>,
    config: &str,
    file: &str,
    topic_suffix: &str,
    offset: i64,
) -> Vec<WriteOp> {
    let msgs: Vec<Record> = fixture(file)
        .into_iter()
        .filter(|m| m.topic.ends_with(topic_suffix) && m.offset == offset)
        .collect();
    assert_eq!(msgs.len(), 1, "{file}: one record {topic_suffix}@{offset}");
    wasm_ops(module, config, &msgs).remove(0).unwrap()
}

fn replacement(op: &WriteOp) -> Document {
    match op {
        WriteOp::ReplaceOne { replacement, .. } => {
            Document::try_from(replacement.as_ref()).unwrap()
        }
        other => panic!("expected replace-one, got {other:?}"),
    }
}

#[test]
fn decimals_dates_and_binary_arrive_as_typed_bson() {
    let module = debezium_mongo_component();
    let ops = ops_for(&module, "{}", "schemas.jsonl", ".customers", 0);
    let doc = replacement(&ops[0]);
    match doc.get("balance") {
        Some(Bson::Decimal128(d)) => assert_eq!(d.to_string(), "1234.50"),
        other => panic!("numeric(10,2) should be Decimal128 1234.50, got {other:?}"),
    }
    assert_eq!(doc.get_document("_id").unwrap(), &bson::doc! {"id": 1});

    // A timestamptz of whole milliseconds is a BSON date at that instant
    // (a row without key: upserted under an ObjectId of its record's position).
    let ops = ops_for(&module, "{}", "schemas.jsonl", ".audit_log", 1);
    let document = replacement(&ops[0]);
    assert!(
        matches!(document.get("_id"), Some(Bson::ObjectId(_))),
        "{document}"
    );
    let at = document.get_datetime("at").unwrap();
    assert_eq!(
        at.timestamp_millis(),
        1_709_553_600_000,
        "2024-03-04T12:00:00Z"
    );

    let ops = ops_for(&module, "{}", "schemas.jsonl", ".all_types", 0);
    let doc = replacement(&ops[0]);
    assert!(
        matches!(doc.get("c_bigint"), Some(Bson::Int64(i64::MAX))),
        "{:?}",
        doc.get("c_bigint")
    );
    assert!(
        matches!(doc.get("c_int"), Some(Bson::Int32(i32::MAX))),
        "{:?}",
        doc.get("c_int")
    );
    match doc.get("c_bytea") {
        Some(Bson::Binary(b)) => assert_eq!(b.bytes, vec![0xde, 0xad, 0xbe, 0xef, 0x00, 0xff]),
        other => panic!("bytea should be binary, got {other:?}"),
    }
    assert_eq!(
        doc.get_datetime("c_date").unwrap().timestamp_millis(),
        1_709_510_400_000,
        "2024-03-04"
    );
    // Sub-millisecond digits do not change the type: a date, truncated.
    assert_eq!(
        doc.get_datetime("c_timestamptz")
            .unwrap()
            .timestamp_millis(),
        1_709_553_600_123
    );
    // `iso-string`: every timestamp is text with all its digits.
    let ops = ops_for(
        &module,
        r#"{"timestamps":"iso-string"}"#,
        "schemas.jsonl",
        ".all_types",
        0,
    );
    let doc = replacement(&ops[0]);
    assert_eq!(
        doc.get_str("c_timestamptz").unwrap(),
        "2024-03-04T12:00:00.123456Z"
    );
}

#[test]
fn renamed_topics_write_to_the_mapped_namespace() {
    let module = debezium_mongo_component();
    let config = r#"{"rename": {"dbz.inventory.customers": "crm.people"}}"#;
    let ops = ops_for(&module, config, "schemas.jsonl", ".customers", 3);
    let ns = ops[0].namespace();
    assert_eq!(
        (ns.database.as_deref(), ns.collection.as_str()),
        (Some("crm"), "people")
    );
    let ops = ops_for(&module, "{}", "schemas.jsonl", ".orders", 3);
    let ns = ops[0].namespace();
    assert_eq!(
        (ns.database.as_deref(), ns.collection.as_str()),
        (None, "orders")
    );
}

fn message(key: Option<&str>, value: Option<&str>) -> Record {
    record(
        "dbz.inventory.customers",
        key.map(str::as_bytes),
        value.map(str::as_bytes),
    )
    .at(0, 42)
}

#[test]
fn malformed_records_are_bad_input_errors_not_traps() {
    let module = debezium_mongo_component();
    let mut inst = module.instantiate("{}").unwrap();
    let key = Some(r#"{"id":1}"#);
    let cases = [
        (key, "not json at all", "JSON"),
        (key, r#"{"op": 5, "after": {"id": 1}}"#, "op"),
        (key, r#"{"op": "x", "after": {"id": 1}}"#, "op"),
        (key, r#"{"op": "c"}"#, "after"),
        (key, r#"{"op": "c", "after": {}}"#, "after"),
        (Some("[1,2]"), r#"{"op": "c", "after": {"id": 1}}"#, "key"),
    ];
    for (key, value, mentions) in cases {
        let err = inst.transform(&message(key, Some(value))).unwrap_err();
        assert_eq!(err.kind, FailureKind::BadInput, "{value}: {err}");
        assert!(
            err.message.contains(mentions),
            "{value}: the message should mention `{mentions}`: {}",
            err.message
        );
        assert_eq!(
            (err.topic.as_str(), err.offset),
            ("dbz.inventory.customers", 42)
        );
    }
    // The instance is unharmed: a tombstone and a DDL-like record are filtered, a good record maps.
    assert!(inst.transform(&message(key, None)).unwrap().is_empty());
    assert!(inst
        .transform(&message(
            None,
            Some(r#"{"databaseName":"x","ddl":"CREATE TABLE t()"}"#)
        ))
        .unwrap()
        .is_empty());
    let ops = inst
        .transform(&message(
            key,
            Some(r#"{"op":"c","after":{"id":1,"name":"x"}}"#),
        ))
        .unwrap();
    assert_eq!(ops[0].kind(), "replace-one");
}

#[test]
fn unknown_options_are_refused_at_init() {
    let err = debezium_mongo_component()
        .instantiate(r#"{"idd": "scalar"}"#)
        .err()
        .expect("init must refuse");
    assert!(err.to_string().contains("idd"), "{err}");
}

/// A document as the host reads it, from the SDK's JSON text and from the
/// SDK's BSON of the same value: the two must be the same document.
fn both_ways(
    value: &Value,
) -> (
    Result<Document, smt_host::writeop::InvalidOp>,
    Option<Document>,
) {
    use smt_host::contract::Document as Wire;
    let text = serde_json::to_string(value).unwrap();
    let from_json = smt_host::writeop::document("d", Wire::Json(text));
    let from_bson = smt_guest::ops::bson_bytes(value)
        .map(|bytes| smt_host::writeop::document("d", Wire::Bson(bytes)).unwrap());
    (from_json, from_bson)
}

#[test]
fn the_sdk_sends_as_bson_exactly_what_its_json_text_says() {
    use serde_json::json;
    // Every type the SDK encodes itself, at the edges of their ranges, nested in
    // documents and arrays, with operator keys and odd strings.
    let encoded = [
        json!({"_id": {"id": {"$numberLong": "1"}}, "a": null, "t": true, "f": false}),
        json!({"i32": 2147483647, "i32min": -2147483648i64, "i64": 2147483648i64, "neg": -2147483649i64,
               "max": i64::MAX, "min": i64::MIN, "u": u64::MAX, "d": 1.5, "z": 0.0, "nz": -0.0,
               "one": 1.0, "big": 1e22, "frac": 123456789.125}),
        json!({"s": "", "nul": "a\u{0}b", "esc": "\"\\\n\t/", "uni": "é€😀"}),
        json!({"arr": [1, "x", [2, [3]], {"k": [null]}, {"$numberLong": "-9223372036854775808"}],
               "empty": [], "eo": {}}),
        json!({"$set": {"a.b": 1, "$inc": {"n": {"$numberLong": "+5"}}}, "$unset": {"x": ""}}),
        json!({"at": {"$date": {"$numberLong": "-62135596800000"}}, "oid": {"$oid": "65F0aB0c0d0e0f1011121314"}}),
        json!({"$numberLong": "7", "$oid": "not a wrapper at the top level"}),
    ];
    for v in &encoded {
        let (json, bson) = both_ways(v);
        let json = json.unwrap();
        let bson = bson.unwrap_or_else(|| panic!("the SDK should encode {v} itself"));
        assert_eq!(bson, json, "{v}");
        // Equal as values and as bytes (key order, Int32 vs Int64 vs Double).
        assert_eq!(bson.to_vec().unwrap(), json.to_vec().unwrap(), "{v}");
    }
    // What it leaves to the host's conversion: JSON text, read as before
    // (and refused by the host, with its own error, when it is wrong).
    for (v, valid) in [
        (json!({"d": {"$numberDecimal": "1234.50"}}), true),
        (
            json!({"b": {"$binary": {"base64": "3q2+7wD/", "subType": "00"}}}),
            true,
        ),
        (json!({"t": {"$date": "2024-03-04T12:00:00Z"}}), true),
        (json!({"n": {"$numberLong": "99999999999999999999"}}), false),
    ] {
        let (json, bson) = both_ways(&v);
        assert!(bson.is_none(), "{v} should travel as JSON text");
        assert_eq!(json.is_ok(), valid, "{v}: {json:?}");
    }
}
