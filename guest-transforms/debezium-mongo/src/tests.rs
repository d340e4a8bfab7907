//! One test per row of the reference-sink parity table and per option, on
//! events shaped like the connector's (see `tests/cases.rs` for the real
//! fixtures).

use super::*;
use serde_json::json;
use smt_guest::ops::describe;
use smt_guest::{ErrorKind, Header};

const TOPIC: &str = "dbz.inventory.customers";

fn msg(topic: &str, key: Option<Value>, value: Option<Value>) -> Message {
    Message {
        topic: topic.into(),
        partition: 0,
        offset: 3,
        timestamp_ms: Some(1),
        key: key.map(|k| k.to_string().into_bytes()),
        value: value.map(|v| v.to_string().into_bytes()),
        headers: vec![],
    }
}

fn envelope(op: &str, before: Value, after: Value) -> Value {
    json!({"before": before, "after": after,
           "source": {"version": "3.6.3.Final", "connector": "postgresql", "name": "dbz", "ts_ms": 1,
                      "snapshot": "false", "db": "postgres", "schema": "inventory", "table": "customers"},
           "transaction": null, "op": op, "ts_ms": 2})
}

fn row(id: i64) -> Value {
    json!({"id": id, "first_name": "Sally", "email": "s@acme.com", "vip": true})
}

fn run_with(config: &str, m: &Message) -> Result<Vec<Value>, TransformError> {
    let t = DebeziumMongo::init(config).unwrap();
    t.transform(m)
        .map(|ops| ops.iter().map(|o| relax_longs(describe(o))).collect())
}

/// The records here have no schema, so every integer is written as a long
/// (`schemaless_integers_are_longs` checks that); the other tests read
/// `{"$numberLong": "1"}` as `1` to stay about the operations' shapes.
fn relax_longs(v: Value) -> Value {
    match v {
        Value::Object(m) => {
            if m.len() == 1 {
                if let Some(n) = m
                    .get("$numberLong")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<i32>().ok())
                {
                    return json!(n);
                }
            }
            Value::Object(m.into_iter().map(|(k, v)| (k, relax_longs(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(relax_longs).collect()),
        other => other,
    }
}

#[test]
fn schemaless_integers_are_longs() {
    let m = msg(
        TOPIC,
        Some(json!({"id": 1})),
        Some(envelope(
            "c",
            Value::Null,
            json!({"id": 1, "n": [2, 3], "x": 1.5, "s": "4"}),
        )),
    );
    let t = DebeziumMongo::init("{}").unwrap();
    let ops: Vec<Value> = t.transform(&m).unwrap().iter().map(describe).collect();
    assert_eq!(
        ops[0]["replacement"],
        json!({"_id": {"id": {"$numberLong": "1"}}, "n": [{"$numberLong": "2"}, {"$numberLong": "3"}],
               "x": 1.5, "s": "4"})
    );
}

fn run(m: &Message) -> Result<Vec<Value>, TransformError> {
    run_with("{}", m)
}

fn bad_input(m: &Message, needle: &str) {
    let err = run(m).unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput, "{}", err.message);
    assert!(
        err.message.contains(needle),
        "{:?} does not contain {needle:?}",
        err.message
    );
}

fn replace(filter: Value, replacement: Value) -> Value {
    json!({"op": "replace-one", "db": null, "coll": "customers", "filter": filter,
           "replacement": replacement, "upsert": true})
}

// ---- parity table ----

#[test]
fn tombstone_writes_nothing() {
    assert_eq!(
        run(&msg(TOPIC, Some(json!({"id": 1})), None)).unwrap(),
        Vec::<Value>::new()
    );
    assert_eq!(run(&msg(TOPIC, None, None)).unwrap(), Vec::<Value>::new());
}

#[test]
fn no_op_ddl_or_heartbeat_writes_nothing() {
    let ddl = json!({"source": {"db": "postgres"}, "databaseName": "postgres", "ddl": "ALTER TABLE x ADD y int", "tableChanges": []});
    assert!(run(&msg("dbz", None, Some(ddl))).unwrap().is_empty());
    assert!(run(&msg(
        "__debezium-heartbeat.dbz",
        Some(json!({"serverName": "dbz"})),
        Some(json!({"ts_ms": 5}))
    ))
    .unwrap()
    .is_empty());
}

#[test]
fn create_read_update_with_key_replace_upsert() {
    for op in ["c", "r", "u"] {
        let m = msg(
            TOPIC,
            Some(json!({"id": 1})),
            Some(envelope(op, Value::Null, row(1))),
        );
        assert_eq!(
            run(&m).unwrap(),
            vec![replace(
                json!({"_id": {"id": 1}}),
                json!({"_id": {"id": 1}, "first_name": "Sally", "email": "s@acme.com", "vip": true})
            )],
            "op {op}"
        );
    }
}

#[test]
fn delete_with_key_deletes_by_id() {
    let m = msg(
        TOPIC,
        Some(json!({"id": 3})),
        Some(envelope(
            "d",
            json!({"id": 3, "first_name": "", "email": ""}),
            Value::Null,
        )),
    );
    assert_eq!(
        run(&m).unwrap(),
        vec![
            json!({"op": "delete-one", "db": null, "coll": "customers", "filter": {"_id": {"id": 3}}})
        ]
    );
}

#[test]
fn create_or_read_without_key_upserts_an_id_of_the_record_position() {
    for op in ["c", "r"] {
        let m = msg(
            "dbz.inventory.audit_log",
            None,
            Some(envelope(
                op,
                Value::Null,
                json!({"actor": "alice", "action": "login"}),
            )),
        );
        // 4 bytes of the topic's hash, partition 0, offset 3: a replay writes the same document.
        let ops = run(&m).unwrap();
        let id = ops[0]["filter"]["_id"].clone();
        let hex = id["$oid"].as_str().unwrap();
        assert_eq!(hex.len(), 24, "{id}");
        assert_eq!(&hex[8..], "0000000000000003", "{id}");
        assert_eq!(run(&m).unwrap(), ops);
        assert_eq!(
            ops,
            vec![json!({"op": "replace-one", "db": null, "coll": "audit_log",
                        "filter": {"_id": id}, "replacement": {"_id": id, "actor": "alice", "action": "login"},
                        "upsert": true})]
        );
        // Another offset, another document.
        let other = run(&m.clone().with_offset(4)).unwrap();
        assert_ne!(other[0]["filter"], ops[0]["filter"]);
    }
    // Without the record (the `map_event` API) the server assigns the ObjectId.
    let t = DebeziumMongo::init("{}").unwrap();
    let m = msg(
        "dbz.inventory.audit_log",
        None,
        Some(envelope("c", Value::Null, json!({"actor": "alice"}))),
    );
    let event = smt_guest::debezium::Event::parse(&m).unwrap().unwrap();
    let ops = t.map_event(&m.topic, event).unwrap();
    assert_eq!(describe(&ops[0])["op"], "insert-one");
}

#[test]
fn update_and_delete_without_key_filter_on_before() {
    let before = json!({"actor": "alice", "action": "login"});
    let m = msg(
        "dbz.inventory.audit_log",
        None,
        Some(envelope(
            "u",
            before.clone(),
            json!({"actor": "alice", "action": "logout"}),
        )),
    );
    assert_eq!(
        run(&m).unwrap(),
        vec![
            // No upsert: a replayed update whose row has changed since finds nothing.
            json!({"op": "replace-one", "db": null, "coll": "audit_log", "filter": before,
                    "replacement": {"actor": "alice", "action": "logout"}, "upsert": false})
        ]
    );
    let m = msg(
        "dbz.inventory.audit_log",
        None,
        Some(envelope("d", before.clone(), Value::Null)),
    );
    assert_eq!(
        run(&m).unwrap(),
        vec![json!({"op": "delete-one", "db": null, "coll": "audit_log", "filter": before})]
    );
}

#[test]
fn update_or_delete_without_key_or_before_is_bad_input() {
    bad_input(
        &msg(
            "dbz.inventory.audit_log",
            None,
            Some(envelope("u", Value::Null, json!({"a": 1}))),
        ),
        "REPLICA IDENTITY FULL",
    );
    bad_input(
        &msg(
            "dbz.inventory.audit_log",
            None,
            Some(envelope("d", json!({}), Value::Null)),
        ),
        "non-empty 'before'",
    );
}

#[test]
fn missing_or_non_string_op_is_bad_input() {
    let key = Some(json!({"id": 1}));
    bad_input(
        &msg(
            TOPIC,
            key.clone(),
            Some(json!({"before": null, "after": row(1)})),
        ),
        "no 'op'",
    );
    bad_input(
        &msg(TOPIC, key.clone(), Some(json!({"after": row(1), "op": 3}))),
        "'op' must be a string, found a number",
    );
    bad_input(
        &msg(TOPIC, key, Some(json!({"after": row(1), "op": null}))),
        "'op' must be a string, found null",
    );
}

#[test]
fn unknown_op_is_bad_input() {
    bad_input(
        &msg(
            TOPIC,
            Some(json!({"id": 1})),
            Some(envelope("x", Value::Null, row(1))),
        ),
        "unknown op \"x\"",
    );
}

#[test]
fn missing_or_empty_after_is_bad_input() {
    let key = Some(json!({"id": 1}));
    bad_input(
        &msg(
            TOPIC,
            key.clone(),
            Some(envelope("c", Value::Null, Value::Null)),
        ),
        "'after' is missing or null for op 'c'",
    );
    bad_input(
        &msg(
            TOPIC,
            key.clone(),
            Some(envelope("u", Value::Null, json!({}))),
        ),
        "'after' is empty for op 'u'",
    );
    let mut no_after = envelope("u", Value::Null, Value::Null);
    no_after.as_object_mut().unwrap().remove("after");
    bad_input(
        &msg(TOPIC, key.clone(), Some(no_after)),
        "'after' is missing",
    );
    bad_input(
        &msg(TOPIC, key, Some(envelope("c", Value::Null, json!([1])))),
        "'after' must be an object",
    );
}

#[test]
fn invalid_key_is_bad_input() {
    bad_input(
        &msg(
            TOPIC,
            Some(json!("1")),
            Some(envelope("c", Value::Null, row(1))),
        ),
        "invalid key",
    );
    bad_input(
        &msg(
            TOPIC,
            Some(json!([1])),
            Some(envelope("d", row(1), Value::Null)),
        ),
        "invalid key",
    );
    let mut m = msg(TOPIC, None, Some(envelope("c", Value::Null, row(1))));
    m.key = Some(b"id=1".to_vec());
    bad_input(&m, "invalid key: not JSON");
}

#[test]
fn garbage_value_is_bad_input() {
    let mut m = msg(TOPIC, None, None);
    m.value = Some(b"\xff\xfe".to_vec());
    bad_input(&m, "value is not JSON");
    bad_input(
        &msg(TOPIC, None, Some(json!("text"))),
        "not a Debezium envelope",
    );
}

#[test]
fn logical_messages_write_nothing() {
    assert!(run(&msg(
        TOPIC,
        None,
        Some(envelope("m", Value::Null, Value::Null))
    ))
    .unwrap()
    .is_empty());
}

#[test]
fn composite_key_wraps_all_columns() {
    let after = json!({"region": "eu", "order_id": 2, "amount": "AQ==", "status": "new"});
    let m = msg(
        "dbz.inventory.orders",
        Some(json!({"region": "eu", "order_id": 2})),
        Some(envelope("c", Value::Null, after)),
    );
    let id = json!({"region": "eu", "order_id": 2});
    assert_eq!(
        run(&m).unwrap(),
        vec![
            json!({"op": "replace-one", "db": null, "coll": "orders", "filter": {"_id": id},
                    "replacement": {"_id": id, "amount": "AQ==", "status": "new"}, "upsert": true})
        ]
    );
}

#[test]
fn replacement_keeps_column_order_with_id_first() {
    let m = msg(
        TOPIC,
        Some(json!({"id": 1})),
        Some(envelope("c", Value::Null, row(1))),
    );
    let t = DebeziumMongo::init("{}").unwrap();
    let ops = t.transform(&m).unwrap();
    let WriteOp::ReplaceOne(r) = &ops[0] else {
        panic!()
    };
    let smt_guest::Document::Json(text) = &r.replacement else {
        panic!()
    };
    assert_eq!(
        text,
        r#"{"_id":{"id":{"$numberLong":"1"}},"first_name":"Sally","email":"s@acme.com","vip":true}"#
    );
}

#[test]
fn a_non_key_id_column_is_the_id_in_first_place() {
    // As before `_id` was put in front of the row in place: the column's
    // value wins (the server then refuses an `_id` change).
    let m = msg(
        TOPIC,
        Some(json!({"id": 1})),
        Some(envelope(
            "c",
            Value::Null,
            json!({"id": 1, "name": "a", "_id": 7}),
        )),
    );
    assert_eq!(
        run(&m).unwrap(),
        vec![replace(
            json!({"_id": {"id": 1}}),
            json!({"_id": 7, "name": "a"})
        )]
    );
}

// ---- primary-key change ----

fn hdr(k: &str, v: &str) -> Header {
    Header {
        key: k.into(),
        value: Some(v.as_bytes().to_vec()),
    }
}

/// The three records of a key change 2 → 102 of `documents`, whose create
/// carries the TOAST placeholder for the unchanged `body`.
fn key_change() -> [Message; 3] {
    let mut delete = msg(
        "dbz.inventory.documents",
        Some(json!({"id": 2})),
        Some(envelope("d", json!({"id": 2}), Value::Null)),
    );
    delete
        .headers
        .push(hdr("__debezium.newkey", r#"{"id":102}"#));
    let mut tombstone = msg("dbz.inventory.documents", Some(json!({"id": 2})), None);
    tombstone
        .headers
        .push(hdr("__debezium.newkey", r#"{"id":102}"#));
    let mut create = msg(
        "dbz.inventory.documents",
        Some(json!({"id": 102})),
        Some(envelope(
            "c",
            Value::Null,
            json!({"id": 102, "title": "t", "body": "__debezium_unavailable_value"}),
        )),
    );
    create.headers.push(hdr("__debezium.oldkey", r#"{"id":2}"#));
    [delete, tombstone, create]
}

#[test]
fn primary_key_change_moves_the_old_document_to_the_new_key() {
    let [delete, tombstone, create] = key_change();
    // The envelopes here have no `source.lsn`; their `source.ts_ms` is 1.
    let entry = |half: &str| json!({"from": {"id": 2}, "to": {"id": 102}, "half": half});
    // (`{"$date": {"$numberLong": "1"}}`, read through `relax_longs`.)
    let seen_at = json!({"$date": 1});
    let moves = "__smt_moves.documents";
    let fill = json!({"op": "aggregate", "db": null, "coll": moves, "pipeline": [
        {"$match": {"_id": entry("delete")}},
        {"$lookup": {"from": moves, "localField": "create", "foreignField": "_id", "as": "created"}},
        {"$match": {"created": {"$ne": []}}},
        {"$replaceWith": {"$mergeObjects": ["$doc", {"_id": {"$literal": {"id": 102}}}]}},
        {"$merge": {"into": "documents", "on": "_id",
                    "whenMatched": [{"$replaceWith": {"$mergeObjects": ["$$new", "$$ROOT"]}}],
                    "whenNotMatched": "discard"}}]});
    assert_eq!(
        run(&delete).unwrap(),
        vec![
            json!({"op": "aggregate", "db": null, "coll": "documents", "pipeline": [
                {"$match": {"_id": {"id": 2}}},
                {"$replaceWith": {"_id": {"$literal": entry("delete")}, "doc": "$$ROOT",
                                  "create": {"$literal": entry("create")}, "seen_at": {"$literal": seen_at}}},
                {"$merge": {"into": moves, "on": "_id",
                            "whenMatched": [{"$replaceWith": {"$mergeObjects": ["$$new", "$$ROOT"]}}],
                            "whenNotMatched": "insert"}}]}),
            fill.clone(),
            json!({"op": "delete-one", "db": null, "coll": "documents", "filter": {"_id": {"id": 2}}}),
        ]
    );
    assert!(run(&tombstone).unwrap().is_empty());
    assert_eq!(
        run(&create).unwrap(),
        vec![
            json!({"op": "update-one", "db": null, "coll": "documents", "filter": {"_id": {"id": 102}},
                   "update": {"$set": {"title": "t"}}, "upsert": true}),
            json!({"op": "update-one", "db": null, "coll": moves, "filter": {"_id": entry("create")},
                   "update": {"$set": {"seen": true, "seen_at": seen_at}}, "upsert": true}),
            fill,
        ]
    );
}

#[test]
fn the_halves_of_a_key_change_meet_by_its_log_position() {
    let [mut delete, _, _] = key_change();
    let mut v: Value = serde_json::from_slice(delete.value.as_deref().unwrap()).unwrap();
    v["source"]["lsn"] = json!(22180576);
    delete.value = Some(v.to_string().into_bytes());
    let ops = run(&delete).unwrap();
    assert_eq!(
        ops[1]["pipeline"][0]["$match"]["_id"],
        json!({"from": {"id": 2}, "to": {"id": 102}, "lsn": 22180576, "half": "delete"})
    );
    // With a log position the delete half also pushes down later changes of 102.
    let kinds: Vec<&str> = ops.iter().map(|o| o["op"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "aggregate",
            "aggregate",
            "aggregate",
            "aggregate",
            "delete-one"
        ]
    );
    assert_eq!(
        ops[2]["pipeline"][1]["$graphLookup"]["restrictSearchWithMatch"],
        json!({"_id.half": "delete", "_id.lsn": {"$gt": 22180576}})
    );
}

#[test]
fn primary_key_change_in_scalar_and_object_id_modes() {
    let [delete, _, create] = key_change();
    let ops = run_with(r#"{"id": "scalar"}"#, &delete).unwrap();
    assert_eq!(ops[0]["pipeline"][0], json!({"$match": {"_id": 2}}));
    assert_eq!(
        ops[0]["pipeline"][1]["$replaceWith"]["_id"],
        json!({"$literal": {"from": 2, "to": 102, "half": "delete"}})
    );
    assert_eq!(ops[2]["filter"], json!({"_id": 2}));

    // object-id: found by the key columns; the new key's document keeps its
    // own ObjectId (`_id` is dropped from the moved one).
    let ops = run_with(r#"{"id": "object-id"}"#, &delete).unwrap();
    assert_eq!(ops[0]["pipeline"][0], json!({"$match": {"id": 2}}));
    assert_eq!(
        ops[1]["pipeline"],
        json!([
            {"$match": {"_id": {"from": {"id": 2}, "to": {"id": 102}, "half": "delete"}}},
            {"$lookup": {"from": "__smt_moves.documents", "localField": "create", "foreignField": "_id", "as": "created"}},
            {"$match": {"created": {"$ne": []}}},
            {"$replaceWith": {"$mergeObjects": ["$doc", {"$literal": {"id": 102}}]}},
            {"$unset": "_id"},
            {"$merge": {"into": "documents", "on": ["id"],
                        "whenMatched": [{"$replaceWith": {"$mergeObjects": ["$$new", "$$ROOT"]}}],
                        "whenNotMatched": "discard"}}
        ])
    );
    assert_eq!(ops[2]["filter"], json!({"id": 2}));
    let ops = run_with(r#"{"id": "object-id"}"#, &create).unwrap();
    assert_eq!(ops[0]["filter"], json!({"id": 102}));
    assert_eq!(ops.len(), 3);
}

#[test]
fn delete_without_the_new_key_header_only_deletes() {
    // Debezium before 1.x wrote no key headers: nothing pairs the halves.
    let [mut delete, _, _] = key_change();
    delete.headers.clear();
    assert_eq!(
        run(&delete).unwrap(),
        vec![
            json!({"op": "delete-one", "db": null, "coll": "documents", "filter": {"_id": {"id": 2}}})
        ]
    );
}

// ---- TOAST ----

fn toasted() -> Value {
    json!({"id": 2, "title": "large, renamed", "body": "__debezium_unavailable_value", "tags": ["__debezium_unavailable_value"],
           "blob": "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="})
}

#[test]
fn toast_placeholder_sets_the_other_fields() {
    let m = msg(
        "dbz.inventory.documents",
        Some(json!({"id": 2})),
        Some(envelope("u", Value::Null, toasted())),
    );
    assert_eq!(
        run(&m).unwrap(),
        vec![
            json!({"op": "update-one", "db": null, "coll": "documents", "filter": {"_id": {"id": 2}},
                    "update": {"$set": {"title": "large, renamed"}}, "upsert": true})
        ]
    );
}

#[test]
fn toast_with_object_id_and_without_key() {
    let m = msg(
        "dbz.inventory.documents",
        Some(json!({"id": 2})),
        Some(envelope("u", Value::Null, toasted())),
    );
    assert_eq!(
        run_with(r#"{"id": "object-id"}"#, &m).unwrap(),
        vec![
            json!({"op": "update-one", "db": null, "coll": "documents", "filter": {"id": 2},
                    "update": {"$set": {"title": "large, renamed"}}, "upsert": true})
        ]
    );
    let m = msg(
        "dbz.inventory.documents",
        None,
        Some(envelope("u", json!({"id": 2}), toasted())),
    );
    assert_eq!(
        run(&m).unwrap(),
        vec![
            json!({"op": "update-one", "db": null, "coll": "documents", "filter": {"id": 2},
                    "update": {"$set": {"id": 2, "title": "large, renamed"}}, "upsert": false})
        ]
    );
}

#[test]
fn custom_placeholder() {
    let after = json!({"id": 2, "title": "t", "body": "<unavailable>"});
    let m = msg(
        "dbz.inventory.documents",
        Some(json!({"id": 2})),
        Some(envelope("u", Value::Null, after)),
    );
    let ops = run_with(r#"{"unavailable_value_placeholder": "<unavailable>"}"#, &m).unwrap();
    assert_eq!(ops[0]["update"], json!({"$set": {"title": "t"}}));
}

// ---- options ----

#[test]
fn id_scalar() {
    let cfg = r#"{"id": "scalar"}"#;
    let m = msg(
        TOPIC,
        Some(json!({"id": 42})),
        Some(envelope("u", Value::Null, row(42))),
    );
    assert_eq!(
        run_with(cfg, &m).unwrap(),
        vec![replace(
            json!({"_id": 42}),
            json!({"_id": 42, "first_name": "Sally", "email": "s@acme.com", "vip": true})
        )]
    );
    let m = msg(
        TOPIC,
        Some(json!({"id": 42})),
        Some(envelope("d", json!({"id": 42}), Value::Null)),
    );
    assert_eq!(run_with(cfg, &m).unwrap()[0]["filter"], json!({"_id": 42}));
    // A composite key stays wrapped.
    let m = msg(
        "dbz.inventory.orders",
        Some(json!({"region": "eu", "order_id": 1})),
        Some(envelope("d", json!({}), Value::Null)),
    );
    assert_eq!(
        run_with(cfg, &m).unwrap()[0]["filter"],
        json!({"_id": {"region": "eu", "order_id": 1}})
    );
}

#[test]
fn id_object_id() {
    let cfg = r#"{"id": "object-id"}"#;
    let m = msg(
        TOPIC,
        Some(json!({"id": 1})),
        Some(envelope("c", Value::Null, row(1))),
    );
    assert_eq!(
        run_with(cfg, &m).unwrap(),
        vec![replace(json!({"id": 1}), row(1))]
    );
    let m = msg(
        TOPIC,
        Some(json!({"id": 1})),
        Some(envelope("d", json!({"id": 1}), Value::Null)),
    );
    assert_eq!(
        run_with(cfg, &m).unwrap(),
        vec![json!({"op": "delete-one", "db": null, "coll": "customers", "filter": {"id": 1}})]
    );
    // Without a key: the same in every mode (an `_id` of the record's position).
    let m = msg(TOPIC, None, Some(envelope("c", Value::Null, row(1))));
    let ops = run_with(cfg, &m).unwrap();
    assert_eq!(ops, run(&m).unwrap());
    assert_eq!(ops[0]["op"], "replace-one");
}

#[test]
fn routing_options() {
    let m = msg(
        TOPIC,
        Some(json!({"id": 1})),
        Some(envelope("d", json!({"id": 1}), Value::Null)),
    );
    let ops = run_with(
        r#"{"database": "sink", "collection": "{schema}_{table}"}"#,
        &m,
    )
    .unwrap();
    assert_eq!(
        (&ops[0]["db"], &ops[0]["coll"]),
        (&json!("sink"), &json!("inventory_customers"))
    );
    let ops = run_with(r#"{"rename": {"inventory.customers": "crm.people"}}"#, &m).unwrap();
    assert_eq!(
        (&ops[0]["db"], &ops[0]["coll"]),
        (&json!("crm"), &json!("people"))
    );
    let ops = run_with(r#"{"rename": {"dbz.inventory.customers": "people"}}"#, &m).unwrap();
    assert_eq!(
        (&ops[0]["db"], &ops[0]["coll"]),
        (&Value::Null, &json!("people"))
    );
}

#[test]
fn truncate_options() {
    let m = msg(
        "dbz.inventory.audit_log",
        None,
        Some(envelope("t", Value::Null, Value::Null)),
    );
    assert!(run(&m).unwrap().is_empty());
    assert!(run_with(r#"{"truncate": "ignore"}"#, &m)
        .unwrap()
        .is_empty());
    assert_eq!(
        run_with(r#"{"truncate": "delete-all"}"#, &m).unwrap(),
        vec![json!({"op": "delete-many", "db": null, "coll": "audit_log", "filter": {}})]
    );
}

#[test]
fn config_errors_name_the_key() {
    let err = DebeziumMongo::init(r#"{"id": "wrapped", "colection": "x"}"#).unwrap_err();
    assert!(err.contains("colection"), "{err}");
    let err = DebeziumMongo::init(r#"{"id": "uuid"}"#).unwrap_err();
    assert!(err.contains("uuid"), "{err}");
    let err = DebeziumMongo::init(r#"{"collection": "{tabel}"}"#).unwrap_err();
    assert!(err.contains("{tabel}"), "{err}");
    let err = DebeziumMongo::init(r#"{"rename": {"orders": "db."}}"#).unwrap_err();
    assert!(err.contains("rename"), "{err}");
    assert!(DebeziumMongo::init("not json").is_err());
    assert!(DebeziumMongo::init("").is_ok());
    assert_eq!(
        DebeziumMongo::init("{}").unwrap().config(),
        &Config::default()
    );
}

// ---- types (with schemas) ----

fn typed_message(op: &str) -> Message {
    let row_schema = |field: &str| {
        json!({"type": "struct", "optional": true, "name": "dbz.inventory.t.Value", "field": field, "fields": [
            {"type": "int32", "optional": false, "field": "id"},
            {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
             "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "price"},
            {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "version": 1, "field": "at"},
            {"type": "string", "optional": true, "name": "io.debezium.data.Json", "version": 1, "field": "doc"},
            {"type": "int64", "optional": true, "field": "big"}
        ]})
    };
    let schema = json!({"type": "struct", "name": "dbz.inventory.t.Envelope", "fields": [
        row_schema("before"), row_schema("after"),
        {"type": "struct", "field": "source", "fields": []},
        {"type": "string", "field": "op"}
    ]});
    let after = json!({"id": 1, "price": "AeI6", "at": "2024-03-04T12:00:00Z", "doc": "{\"a\": [1]}", "big": 9223372036854775807i64});
    let key = json!({"schema": {"type": "struct", "name": "dbz.inventory.t.Key", "fields": [{"type": "int32", "optional": false, "field": "id"}]},
                     "payload": {"id": 1}});
    msg(
        "dbz.inventory.t",
        Some(key),
        Some(json!({"schema": schema, "payload": envelope(op, Value::Null, after)})),
    )
}

#[test]
fn types_are_decoded_by_schema() {
    let ops = run(&typed_message("c")).unwrap();
    assert_eq!(
        ops[0]["replacement"],
        json!({"_id": {"id": 1}, "price": {"$numberDecimal": "1234.50"}, "at": {"$date": {"$numberLong": "1709553600000"}},
               "doc": {"a": [1]}, "big": {"$numberLong": "9223372036854775807"}})
    );
    let ops = run_with(
        r#"{"json": "string", "int64": "long", "timestamps": "truncate-to-millis"}"#,
        &typed_message("c"),
    )
    .unwrap();
    assert_eq!(ops[0]["replacement"]["doc"], json!("{\"a\": [1]}"));
    assert_eq!(
        ops[0]["replacement"]["big"],
        json!({"$numberLong": "9223372036854775807"})
    );
}
