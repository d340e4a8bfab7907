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
    t.transform(m).map(|ops| ops.iter().map(describe).collect())
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
fn create_or_read_without_key_inserts_with_server_objectid() {
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
        assert_eq!(
            run(&m).unwrap(),
            vec![json!({"op": "insert-one", "db": null, "coll": "audit_log",
                        "document": {"actor": "alice", "action": "login"}})]
        );
    }
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
            json!({"op": "replace-one", "db": null, "coll": "audit_log", "filter": before,
                    "replacement": {"actor": "alice", "action": "logout"}, "upsert": true})
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
        r#"{"_id":{"id":1},"first_name":"Sally","email":"s@acme.com","vip":true}"#
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

#[test]
fn primary_key_change_deletes_old_and_creates_new() {
    let hdr = |k: &str, v: &str| Header {
        key: k.into(),
        value: Some(v.as_bytes().to_vec()),
    };
    let mut delete = msg(
        TOPIC,
        Some(json!({"id": 2})),
        Some(envelope("d", json!({"id": 2}), Value::Null)),
    );
    delete
        .headers
        .push(hdr("__debezium.newkey", r#"{"id":102}"#));
    let mut tombstone = msg(TOPIC, Some(json!({"id": 2})), None);
    tombstone
        .headers
        .push(hdr("__debezium.newkey", r#"{"id":102}"#));
    let mut create = msg(
        TOPIC,
        Some(json!({"id": 102})),
        Some(envelope("c", Value::Null, row(102))),
    );
    create.headers.push(hdr("__debezium.oldkey", r#"{"id":2}"#));

    let t = DebeziumMongo::init("{}").unwrap();
    let all: Vec<Value> = [delete, tombstone, create]
        .iter()
        .flat_map(|m| t.transform(m).unwrap())
        .map(|o| describe(&o))
        .collect();
    assert_eq!(
        all,
        vec![
            json!({"op": "delete-one", "db": null, "coll": "customers", "filter": {"_id": {"id": 2}}}),
            replace(
                json!({"_id": {"id": 102}}),
                json!({"_id": {"id": 102}, "first_name": "Sally", "email": "s@acme.com", "vip": true})
            ),
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
                    "update": {"$set": {"id": 2, "title": "large, renamed"}}, "upsert": true})
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
    // Without a key: the same as the reference (insert / filter on before).
    let m = msg(TOPIC, None, Some(envelope("c", Value::Null, row(1))));
    assert_eq!(run_with(cfg, &m).unwrap()[0]["op"], "insert-one");
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
