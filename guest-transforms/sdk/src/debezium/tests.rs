use super::*;
use crate::ErrorKind;
use serde_json::json;

fn message(key: Option<Value>, value: Option<Value>) -> Message {
    Message {
        topic: "dbz.inventory.orders".into(),
        partition: 0,
        offset: 7,
        timestamp_ms: Some(1),
        key: key.map(|k| k.to_string().into_bytes()),
        value: value.map(|v| v.to_string().into_bytes()),
        headers: vec![],
    }
}

fn row_schema(name: &str) -> Value {
    json!({"type": "struct", "optional": true, "name": name, "field": "after", "fields": [
        {"type": "string", "optional": false, "field": "region"},
        {"type": "int32", "optional": false, "field": "order_id"},
        {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "12"}, "field": "amount"},
        {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1, "field": "order_date"},
        {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "version": 1, "field": "created_at"},
        {"type": "string", "optional": true, "name": "io.debezium.data.Uuid", "version": 1, "field": "ref"},
        {"type": "string", "optional": true, "name": "io.debezium.data.Json", "version": 1, "field": "meta"}
    ]})
}

fn envelope_schema() -> Value {
    let mut before = row_schema("dbz.inventory.orders.Value");
    before["field"] = json!("before");
    json!({"type": "struct", "optional": false, "name": "dbz.inventory.orders.Envelope", "version": 2, "fields": [
        before,
        row_schema("dbz.inventory.orders.Value"),
        {"type": "struct", "optional": false, "name": "io.debezium.connector.postgresql.Source", "field": "source", "fields": [
            {"type": "string", "optional": false, "field": "connector"},
            {"type": "string", "optional": false, "field": "db"},
            {"type": "string", "optional": false, "field": "schema"},
            {"type": "string", "optional": false, "field": "table"}
        ]},
        {"type": "string", "optional": false, "field": "op"},
        {"type": "int64", "optional": true, "field": "ts_ms"}
    ]})
}

fn key_schema() -> Value {
    json!({"type": "struct", "optional": false, "name": "dbz.inventory.orders.Key", "fields": [
        {"type": "string", "optional": false, "field": "region"},
        {"type": "int32", "optional": false, "field": "order_id"}
    ]})
}

fn payload(op: &str) -> Value {
    json!({
        "before": null,
        "after": {"region": "apac", "order_id": 7, "amount": "AeI6", "order_date": 20453,
                  "created_at": "2024-03-04T12:00:00.123000Z", "ref": "4c76d537-1111-2222-3333-444455556666",
                  "meta": "[1, \"two\", {\"three\": 3}]"},
        "source": {"version": "3.6.3.Final", "connector": "postgresql", "name": "dbz", "ts_ms": 1700000000000i64,
                   "snapshot": "false", "db": "postgres", "schema": "inventory", "table": "orders",
                   "txId": 758, "lsn": 22586232},
        "transaction": null,
        "op": op,
        "ts_ms": 1700000000040i64
    })
}

fn with_schemas(op: &str) -> Message {
    message(
        Some(json!({"schema": key_schema(), "payload": {"region": "apac", "order_id": 7}})),
        Some(json!({"schema": envelope_schema(), "payload": payload(op)})),
    )
}

fn without_schemas(op: &str) -> Message {
    message(
        Some(json!({"region": "apac", "order_id": 7})),
        Some(payload(op)),
    )
}

#[test]
fn envelope_with_schemas_decodes_types() {
    let e = Event::parse(&with_schemas("c")).unwrap().unwrap();
    assert_eq!(e.op(), Op::Create);
    assert!(e.schema().is_some());
    assert!(e.before().unwrap().is_none());
    let after = e.after().unwrap().unwrap();
    assert_eq!(
        Value::Object(after.clone()),
        json!({"region": "apac", "order_id": 7, "amount": {"$numberDecimal": "1234.50"},
               "order_date": {"$date": {"$numberLong": "1767139200000"}},
               "created_at": {"$date": {"$numberLong": "1709553600123"}},
               "ref": "4c76d537-1111-2222-3333-444455556666",
               "meta": [1, "two", {"three": 3}]})
    );
    // Column order is the table's.
    let names: Vec<&str> = after.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "region",
            "order_id",
            "amount",
            "order_date",
            "created_at",
            "ref",
            "meta"
        ]
    );
    assert_eq!(
        Value::Object(e.key().unwrap().unwrap()),
        json!({"region": "apac", "order_id": 7})
    );
    assert!(e.key_schema().is_some());
}

#[test]
fn envelope_without_schemas_passes_values_through() {
    let e = Event::parse(&without_schemas("u")).unwrap().unwrap();
    assert_eq!(e.op(), Op::Update);
    assert!(e.schema().is_none());
    let after = e.after().unwrap().unwrap();
    assert_eq!(after["amount"], json!("AeI6"));
    assert_eq!(after["order_date"], json!(20453));
    assert_eq!(after["created_at"], json!("2024-03-04T12:00:00.123000Z"));
    assert_eq!(after["meta"], json!("[1, \"two\", {\"three\": 3}]"));
    assert_eq!(
        Value::Object(e.key().unwrap().unwrap()),
        json!({"region": "apac", "order_id": 7})
    );
}

#[test]
fn source_accessors() {
    let e = Event::parse(&without_schemas("r")).unwrap().unwrap();
    let s = e.source();
    assert_eq!(s.connector(), Some("postgresql"));
    assert_eq!(s.db(), Some("postgres"));
    assert_eq!(s.schema(), Some("inventory"));
    assert_eq!(s.table(), Some("orders"));
    assert_eq!(s.name(), Some("dbz"));
    assert_eq!(s.snapshot(), Some("false"));
    assert_eq!(s.lsn(), Some(22586232));
    assert_eq!(s.tx_id(), Some(758));
    assert_eq!(s.ts_ms(), Some(1700000000000));
    assert_eq!(e.ts_ms(), Some(1700000000040));
}

#[test]
fn all_ops() {
    for (code, op) in [
        ("r", Op::Read),
        ("c", Op::Create),
        ("u", Op::Update),
        ("d", Op::Delete),
        ("t", Op::Truncate),
        ("m", Op::Message),
    ] {
        assert_eq!(
            Event::parse(&without_schemas(code)).unwrap().unwrap().op(),
            op
        );
        assert_eq!(op.code(), code);
    }
}

#[test]
fn tombstones_and_non_changes() {
    let key = Some(json!({"region": "apac", "order_id": 7}));
    assert_eq!(
        Event::classify(&message(key.clone(), None)).unwrap(),
        Record::Tombstone
    );
    assert_eq!(
        Event::classify(&message(key.clone(), Some(json!({})))).unwrap(),
        Record::Tombstone
    );
    assert_eq!(
        Event::classify(&message(
            key.clone(),
            Some(json!({"schema": null, "payload": null}))
        ))
        .unwrap(),
        Record::Tombstone
    );
    let mut empty = message(key, None);
    empty.value = Some(vec![]);
    assert_eq!(Event::classify(&empty).unwrap(), Record::Tombstone);
    // Schema change (DDL), heartbeat, transaction metadata.
    let ddl = json!({"source": {}, "databaseName": "postgres", "ddl": "CREATE TABLE t (id int)", "tableChanges": []});
    assert_eq!(
        Event::classify(&message(None, Some(ddl))).unwrap(),
        Record::NotAChange
    );
    assert_eq!(
        Event::classify(&message(None, Some(json!({"ts_ms": 1})))).unwrap(),
        Record::NotAChange
    );
    assert!(
        Event::parse(&message(None, Some(json!({"status": "BEGIN", "id": "1"}))))
            .unwrap()
            .is_none()
    );
}

#[test]
fn bad_envelopes() {
    let cases = [
        (json!({"before": null, "after": {"id": 1}}), "no 'op'"),
        (
            json!({"after": {"id": 1}, "op": 1}),
            "'op' must be a string, found a number",
        ),
        (
            json!({"after": {"id": 1}, "op": null}),
            "'op' must be a string, found null",
        ),
        (json!({"after": {"id": 1}, "op": "x"}), "unknown op \"x\""),
        (json!([1, 2]), "expected a JSON object, found an array"),
    ];
    for (value, expected) in cases {
        let err = Event::classify(&message(None, Some(value.clone()))).unwrap_err();
        assert_eq!(err.kind, ErrorKind::BadInput);
        assert!(err.message.contains(expected), "{value}: {}", err.message);
    }
    let mut garbage = message(None, None);
    garbage.value = Some(b"{not json".to_vec());
    assert!(Event::classify(&garbage)
        .unwrap_err()
        .message
        .starts_with("value is not JSON"));

    let e = Event::parse(&message(None, Some(json!({"after": 5, "op": "c"}))))
        .unwrap()
        .unwrap();
    assert!(e
        .after()
        .unwrap_err()
        .message
        .contains("'after' must be an object"));
}

#[test]
fn keys() {
    let value = Some(payload("c"));
    assert!(Event::parse(&message(None, value.clone()))
        .unwrap()
        .unwrap()
        .key()
        .unwrap()
        .is_none());
    assert!(Event::parse(&message(Some(json!({})), value.clone()))
        .unwrap()
        .unwrap()
        .key()
        .unwrap()
        .is_none());
    assert!(Event::parse(&message(Some(Value::Null), value.clone()))
        .unwrap()
        .unwrap()
        .key()
        .unwrap()
        .is_none());
    let err = Event::parse(&message(Some(json!("k")), value.clone())).unwrap_err();
    assert!(err.message.contains("invalid key"), "{}", err.message);
    let mut m = message(None, value);
    m.key = Some(b"\x00\x01".to_vec());
    assert!(Event::parse(&m)
        .unwrap_err()
        .message
        .contains("invalid key: not JSON"));
}

#[test]
fn typed_images() {
    #[derive(serde::Deserialize)]
    struct Order {
        order_id: i32,
        amount: ext::Decimal,
        created_at: ext::DateTime,
    }
    #[derive(serde::Deserialize)]
    struct Key {
        region: String,
    }
    let e = Event::parse(&with_schemas("c")).unwrap().unwrap();
    let o: Order = e.after_as().unwrap().unwrap();
    assert_eq!(
        (o.order_id, o.amount.0.as_str(), o.created_at.0),
        (7, "1234.50", 1709553600123)
    );
    assert!(e.before_as::<Order>().unwrap().is_none());
    assert_eq!(e.key_as::<Key>().unwrap().unwrap().region, "apac");
    assert_eq!(e.after_as::<Key>().unwrap().unwrap().region, "apac");
    let err = e.after_as::<Vec<i32>>().unwrap_err();
    assert_eq!(err.kind, ErrorKind::BadInput);
}

#[test]
fn json_string_option() {
    let opts = DecodeOptions {
        json: JsonMode::String,
        ..Default::default()
    };
    let e = Event::parse_with(&with_schemas("c"), opts)
        .unwrap()
        .unwrap();
    assert_eq!(
        e.after().unwrap().unwrap()["meta"],
        json!("[1, \"two\", {\"three\": 3}]")
    );
}

#[test]
fn odd_schema_is_ignored_not_fatal() {
    let m = message(
        Some(json!({"region": "apac", "order_id": 7})),
        Some(json!({"schema": "not a schema", "payload": payload("c")})),
    );
    let e = Event::parse(&m).unwrap().unwrap();
    assert!(e.schema().is_none());
    assert_eq!(e.after().unwrap().unwrap()["amount"], json!("AeI6"));
    // Payload first, schema second: still split.
    let text = format!(
        r#"{{"payload": {}, "schema": {}}}"#,
        payload("c"),
        envelope_schema()
    );
    let mut m = message(None, None);
    m.value = Some(text.into_bytes());
    let e = Event::parse(&m).unwrap().unwrap();
    assert_eq!(
        e.after().unwrap().unwrap()["amount"],
        json!({"$numberDecimal": "1234.50"})
    );
    assert_eq!(e.schema().unwrap().field("after").unwrap().fields.len(), 7);
}

#[test]
fn require_gives_the_decoded_image_or_a_bad_input_error() {
    let mut e = Event::parse(&with_schemas("c")).unwrap().unwrap();
    let (after, key) = (e.after().unwrap().unwrap(), e.key().unwrap().unwrap());
    assert_eq!(e.require_after().unwrap(), after);
    assert_eq!(e.require_key().unwrap(), key);
    // Moved out: asked again, they are missing.
    for err in [e.require_after().unwrap_err(), e.require_key().unwrap_err()] {
        assert_eq!(err.kind, ErrorKind::BadInput);
    }
    let err = e.require_before().unwrap_err();
    assert_eq!(
        (err.kind, err.message.as_str()),
        (
            ErrorKind::BadInput,
            "the change event has no 'before' image"
        )
    );
    let delete = json!({"before": {"id": 1}, "after": null, "op": "d"});
    let mut keyless = Event::parse(&message(None, Some(delete))).unwrap().unwrap();
    assert!(keyless
        .require_key()
        .unwrap_err()
        .message
        .contains("no key"));
    assert_eq!(keyless.require_before().unwrap()["id"], 1);
    assert!(keyless.require_after().is_err());
    // A malformed image is the decoding error, not "missing".
    assert!(after_not_an_object()
        .require_after()
        .unwrap_err()
        .message
        .contains("'after' must be an object"));
}

/// A create whose `after` is a number.
fn after_not_an_object() -> Event {
    Event::parse(&message(None, Some(json!({"after": 5, "op": "c"}))))
        .unwrap()
        .unwrap()
}

#[test]
fn take_moves_the_decoded_images_out() {
    let mut e = Event::parse(&with_schemas("c")).unwrap().unwrap();
    let after = e.after().unwrap();
    assert_eq!(e.take_after().unwrap(), after);
    assert!(e.take_after().unwrap().is_none());
    assert!(e.raw("after").is_none());
    let key = e.key().unwrap();
    assert_eq!(e.take_key().unwrap(), key);
    assert!(e.key().unwrap().is_none());
    assert!(e.take_before().unwrap().is_none());
    assert!(after_not_an_object()
        .take_after()
        .unwrap_err()
        .message
        .contains("'after' must be an object"));
}
