//! The decoders on Debezium-shaped schemas (no registry: the schemas are compiled directly).

use std::collections::HashMap;

use apache_avro::types::Value as A;
use serde_json::{json, Value};

use super::*;

/// A Debezium PostgreSQL envelope as Apicurio's AvroConverter registers it (shortened).
const ENVELOPE: &str = r#"{
 "type": "record", "name": "Envelope", "namespace": "dbz.inv.customers",
 "fields": [
  {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
     {"name": "id", "type": "int"},
     {"name": "balance", "type": ["null", {"type": "bytes", "scale": 2, "precision": 10, "connect.version": 1,
        "connect.parameters": {"scale": "2", "connect.decimal.precision": "10"},
        "connect.name": "org.apache.kafka.connect.data.Decimal", "logicalType": "decimal"}], "default": null},
     {"name": "created", "type": [{"type": "string", "connect.version": 1, "connect.default": "1970-01-01T00:00:00Z",
        "connect.name": "io.debezium.time.ZonedTimestamp"}, "null"], "default": "1970-01-01T00:00:00Z"},
     {"name": "small", "type": {"type": "int", "connect.type": "int16"}},
     {"name": "day", "type": ["null", {"type": "int", "connect.version": 1, "connect.name": "io.debezium.time.Date"}], "default": null},
     {"name": "tags", "type": ["null", {"type": "array", "items": ["null", "string"]}], "default": null},
     {"name": "ratio", "type": ["null", "float"], "default": null},
     {"name": "body", "type": ["null", "string"], "default": null}
   ], "connect.name": "dbz.inv.customers.Value"}], "default": null},
  {"name": "after", "type": ["null", "Value"], "default": null},
  {"name": "op", "type": "string"},
  {"name": "ts_ms", "type": ["null", "long"], "default": null}
 ],
 "connect.version": 2, "connect.name": "dbz.inv.customers.Envelope"
}"#;

fn row(id: i32, balance: Option<&[u8]>, body: &str) -> A {
    A::Record(vec![
        ("id".into(), A::Int(id)),
        (
            "balance".into(),
            match balance {
                Some(b) => A::Union(1, Box::new(A::Decimal(apache_avro::Decimal::from(b)))),
                None => A::Union(0, Box::new(A::Null)),
            },
        ),
        (
            "created".into(),
            A::Union(0, Box::new(A::String("2024-01-02T03:04:05.678901Z".into()))),
        ),
        ("small".into(), A::Int(-32768)),
        ("day".into(), A::Union(1, Box::new(A::Int(19724)))),
        (
            "tags".into(),
            A::Union(
                1,
                Box::new(A::Array(vec![
                    A::Union(1, Box::new(A::String("x".into()))),
                    A::Union(0, Box::new(A::Null)),
                ])),
            ),
        ),
        ("ratio".into(), A::Union(1, Box::new(A::Float(3.14)))),
        ("body".into(), A::Union(1, Box::new(A::String(body.into())))),
    ])
}

fn framed(id: u32, data: Vec<u8>) -> Vec<u8> {
    let mut out = vec![0];
    out.extend(id.to_be_bytes());
    out.extend(data);
    out
}

fn envelope_bytes(schema: &apache_avro::Schema) -> Vec<u8> {
    let v = A::Record(vec![
        ("before".into(), A::Union(0, Box::new(A::Null))),
        (
            "after".into(),
            A::Union(
                1,
                Box::new(row(4, Some(&[0xff]), "__debezium_unavailable_value")),
            ),
        ),
        ("op".into(), A::String("u".into())),
        (
            "ts_ms".into(),
            A::Union(1, Box::new(A::Long(1_700_000_000_000))),
        ),
    ]);
    apache_avro::to_avro_datum(schema, v).unwrap()
}

fn schemas(entries: Vec<(u32, Entry)>) -> HashMap<u32, Arc<Entry>> {
    entries.into_iter().map(|(k, v)| (k, Arc::new(v))).collect()
}

fn avro_entry(text: &str) -> Entry {
    avro::AvroSchema::parse(text).map(Compiled::Avro)
}

#[test]
fn avro_becomes_what_the_json_converter_writes() {
    let schema = apache_avro::Schema::parse_str(ENVELOPE).unwrap();
    let s = schemas(vec![(7, avro_entry(ENVELOPE))]);
    let (id, text) = decode_one(&framed(7, envelope_bytes(&schema)), Format::Avro, &s).unwrap();
    assert_eq!(id, 7);
    let got: Value = serde_json::from_slice(&text).unwrap();
    let value_schema = json!({"type": "struct", "fields": [
        {"type": "int32", "optional": false, "field": "id"},
        {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
         "parameters": {"scale": "2", "connect.decimal.precision": "10"}, "field": "balance"},
        {"type": "string", "optional": true, "name": "io.debezium.time.ZonedTimestamp", "version": 1,
         "default": "1970-01-01T00:00:00Z", "field": "created"},
        {"type": "int16", "optional": false, "field": "small"},
        {"type": "int32", "optional": true, "name": "io.debezium.time.Date", "version": 1, "field": "day"},
        {"type": "array", "items": {"type": "string", "optional": true}, "optional": true, "field": "tags"},
        {"type": "float", "optional": true, "field": "ratio"},
        {"type": "string", "optional": true, "field": "body"}
    ], "optional": true, "name": "dbz.inv.customers.Value"});
    let mut before = value_schema.clone();
    before["field"] = json!("before");
    let mut after = value_schema;
    after["field"] = json!("after");
    assert_eq!(
        got["schema"],
        json!({"type": "struct", "fields": [before, after,
            {"type": "string", "optional": false, "field": "op"},
            {"type": "int64", "optional": true, "field": "ts_ms"}],
            "optional": false, "name": "dbz.inv.customers.Envelope", "version": 2})
    );
    assert_eq!(
        got["payload"],
        json!({"before": null, "after": {"id": 4, "balance": "/w==", "created": "2024-01-02T03:04:05.678901Z",
            "small": -32768, "day": 19724, "tags": ["x", null], "ratio": 3.14,
            "body": "__debezium_unavailable_value"}, "op": "u", "ts_ms": 1_700_000_000_000i64})
    );
    // field order is the schema's, as the JSON converter writes it
    let text = String::from_utf8(text).unwrap();
    assert!(
        text.starts_with(r#"{"schema":{"type":"struct","fields":[{"type":"struct""#),
        "{text}"
    );
    assert!(
        text.contains(r#""payload":{"before":null,"after":{"id":4,"#),
        "{text}"
    );
}

#[test]
fn bytes_that_do_not_match_are_bad_input_with_the_reason() {
    let schema = apache_avro::Schema::parse_str(ENVELOPE).unwrap();
    let s = schemas(vec![
        (7, avro_entry(ENVELOPE)),
        (
            9,
            Err("schema id 9 is unknown to the schema registry".into()),
        ),
    ]);
    let good = envelope_bytes(&schema);
    // truncated data
    let e = decode_one(
        &framed(7, good[..good.len() - 3].to_vec()),
        Format::Avro,
        &s,
    )
    .unwrap_err();
    assert!(e.contains("do not match the Avro schema"), "{e}");
    // trailing garbage
    let mut long = good.clone();
    long.extend([1, 2, 3]);
    let e = decode_one(&framed(7, long), Format::Avro, &s).unwrap_err();
    assert!(e.contains("3 bytes left"), "{e}");
    // wrong magic, truncated header
    let e = decode_one(br#"{"schema":null}"#, Format::Avro, &s).unwrap_err();
    assert!(e.contains("wrong magic byte 0x7b"), "{e}");
    let e = decode_one(&[0, 0, 0], Format::Avro, &s).unwrap_err();
    assert!(e.contains("truncated"), "{e}");
    // an id the registry does not know
    let e = decode_one(&framed(9, good), Format::Avro, &s).unwrap_err();
    assert!(e.contains("unknown"), "{e}");
}

#[test]
fn a_message_keeps_its_place_and_gets_schema_id_headers() {
    let schema = apache_avro::Schema::parse_str(ENVELOPE).unwrap();
    let key_schema = r#"{"type":"record","name":"Key","namespace":"dbz.inv.customers","fields":[{"name":"id","type":"int"}],"connect.name":"dbz.inv.customers.Key"}"#;
    let ks = apache_avro::Schema::parse_str(key_schema).unwrap();
    let key = apache_avro::to_avro_datum(&ks, A::Record(vec![("id".into(), A::Int(4))])).unwrap();
    let s = schemas(vec![(7, avro_entry(ENVELOPE)), (3, avro_entry(key_schema))]);
    let m = Message {
        topic: "dbz.inv.customers".into(),
        partition: 2,
        offset: 41,
        timestamp_ms: Some(5),
        key: Some(framed(3, key)),
        value: Some(framed(7, envelope_bytes(&schema))),
        headers: vec![Header {
            key: "h".into(),
            value: None,
        }],
    };
    let f = Formats {
        key: Format::Avro,
        value: Format::Avro,
    };
    let d = decode_message(&m, f, &s).unwrap();
    assert_eq!((d.partition, d.offset, d.timestamp_ms), (2, 41, Some(5)));
    let key: Value = serde_json::from_slice(d.key.as_ref().unwrap()).unwrap();
    assert_eq!(
        key,
        json!({"schema": {"type": "struct", "fields": [{"type": "int32", "optional": false, "field": "id"}],
            "optional": false, "name": "dbz.inv.customers.Key"}, "payload": {"id": 4}})
    );
    let h: Vec<_> = d
        .headers
        .iter()
        .map(|h| {
            (
                h.key.as_str(),
                h.value.clone().map(|v| String::from_utf8(v).unwrap()),
            )
        })
        .collect();
    assert_eq!(
        h,
        vec![
            ("h", None),
            ("smt.key.schema-id", Some("3".into())),
            ("smt.value.schema-id", Some("7".into()))
        ]
    );
    // a tombstone stays a tombstone; its key is decoded
    let t = Message {
        value: None,
        ..m.clone()
    };
    assert!(decode_message(&t, f, &s).unwrap().value.is_none());
    // the error names key or value and the format
    let bad = Message {
        key: Some(b"{}".to_vec()),
        ..m
    };
    let e = decode_message(&bad, f, &s).unwrap_err();
    assert!(e.starts_with("key (avro format): wrong magic byte"), "{e}");
}

#[test]
fn json_and_raw_pass_through() {
    let m = Message {
        topic: "t".into(),
        partition: 0,
        offset: 0,
        timestamp_ms: None,
        key: Some(vec![0, 1]),
        value: Some(b"x".to_vec()),
        headers: vec![],
    };
    assert!(Formats::default().passes_through());
    let f = Formats {
        key: Format::Raw,
        value: Format::Json,
    };
    assert!(f.passes_through());
    let i = Inputs::AsIs;
    assert_eq!(i.get(0, &m).unwrap().key, m.key);
}

#[test]
fn json_schema_gives_connect_types_and_checks_the_data() {
    let schema = r#"{"type": "object", "title": "dbz.inv.customers.Value", "properties": {
        "name": {"type": "string", "connect.index": 1},
        "id": {"type": "integer", "connect.type": "int32", "connect.index": 0},
        "balance": {"oneOf": [{"type": "null"}, {"type": "string", "connect.type": "bytes",
            "connect.name": "org.apache.kafka.connect.data.Decimal", "connect.version": 1,
            "connect.parameters": {"scale": "2"}}], "connect.index": 2},
        "day": {"type": "integer", "connect.type": "int32", "connect.name": "io.debezium.time.Date", "connect.index": 3}
    }, "required": ["id", "name", "day"]}"#;
    let s = schemas(vec![(
        21,
        jsonschema::JsonSchema::parse(schema).map(Compiled::Json),
    )]);
    let data = br#"{"day": 19724, "balance": "AQ==", "name": "n", "id": 1}"#;
    let (_, text) = decode_one(&framed(21, data.to_vec()), Format::JsonSchema, &s).unwrap();
    let text = String::from_utf8(text).unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap(),
        json!({"schema": {"type": "struct", "fields": [
            {"type": "int32", "optional": false, "field": "id"},
            {"type": "string", "optional": false, "field": "name"},
            {"type": "bytes", "optional": true, "name": "org.apache.kafka.connect.data.Decimal", "version": 1,
             "parameters": {"scale": "2"}, "field": "balance"},
            {"type": "int32", "optional": false, "name": "io.debezium.time.Date", "field": "day"}
        ], "optional": false, "name": "dbz.inv.customers.Value"},
        "payload": {"id": 1, "name": "n", "balance": "AQ==", "day": 19724}})
    );
    assert!(text.contains(r#""payload":{"id":1,"name":"n","#), "{text}");
    let e = decode_one(
        &framed(21, br#"{"id": "one"}"#.to_vec()),
        Format::JsonSchema,
        &s,
    )
    .unwrap_err();
    assert!(e.contains("$.id: expected integer"), "{e}");
    let e = decode_one(&framed(21, b"{not json".to_vec()), Format::JsonSchema, &s).unwrap_err();
    assert!(e.contains("not JSON"), "{e}");
    // an Avro schema id on a json-schema route
    let s2 = schemas(vec![(7, avro_entry(ENVELOPE))]);
    let e = decode_one(&framed(7, b"{}".to_vec()), Format::JsonSchema, &s2).unwrap_err();
    assert!(e.contains("is an Avro schema"), "{e}");
}

#[test]
fn unsupported_schemas_say_why() {
    let e = compile(
        5,
        &client::RawSchema {
            schema_type: "AVRO".into(),
            text: r#"{"type":"record","name":"R","fields":[{"name":"u","type":["int","string"]}]}"#
                .into(),
            has_references: false,
        },
    )
    .err()
    .unwrap();
    assert!(
        e.contains("schema 5") && e.contains("unions of several types"),
        "{e}"
    );
    let e = compile(
        5,
        &client::RawSchema {
            schema_type: "AVRO".into(),
            text: "\"int\"".into(),
            has_references: true,
        },
    )
    .err()
    .unwrap();
    assert!(e.contains("references"), "{e}");
    let e = compile(
        6,
        &client::RawSchema {
            schema_type: "PROTOBUF".into(),
            text: "syntax = \"proto3\";".into(),
            has_references: false,
        },
    )
    .err()
    .unwrap();
    assert!(e.contains("schema 6") && e.contains("no message"), "{e}");
    let e = compile(
        6,
        &client::RawSchema {
            schema_type: "PROTOBUF".into(),
            text: "syntax = \"proto3\"; message M { int32 a = 1 }".into(),
            has_references: false,
        },
    )
    .err()
    .unwrap();
    assert!(e.contains("not a valid Protobuf schema"), "{e}");
}

/// The real Debezium fixtures: the workload written as Avro through Apicurio's
/// converter (`avro.jsonl`, its schemas in `avro-schemas/`) decodes to what
/// the JSON converter wrote for the same workload (`schemas.jsonl`): the same
/// Connect schemas, the same row images (`before`, `after`), keys and ops.
/// Only what differs between two runs (source positions, times) is left out.
#[test]
fn the_avro_fixtures_decode_to_the_json_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/debezium");
    let schemas = SchemaDir::open(&dir.join("avro-schemas")).unwrap();
    let read = |f: &str| -> Vec<Message> {
        std::fs::read_to_string(dir.join(f))
            .unwrap()
            .lines()
            .map(record_line)
            .collect()
    };
    let (avro, json) = (read("avro.jsonl"), read("schemas.jsonl"));
    assert_eq!(avro.len(), json.len());
    let parse = |b: &Option<Vec<u8>>| {
        b.as_ref()
            .map(|b| serde_json::from_slice::<Value>(b).unwrap())
    };
    for (a, j) in avro.iter().zip(&json) {
        assert_eq!((&a.topic, a.offset), (&j.topic, j.offset));
        let d = schemas.decode(a).unwrap();
        let at = format!("{}@{}", a.topic, a.offset);
        assert_eq!(parse(&d.key), parse(&j.key), "key of {at}");
        let (dv, jv) = (parse(&d.value), parse(&j.value));
        let (Some(dv), Some(jv)) = (dv, jv) else {
            assert!(d.value.is_none() && j.value.is_none(), "tombstone {at}");
            continue;
        };
        assert_eq!(dv["schema"], jv["schema"], "Connect schema of {at}");
        for k in ["before", "after", "op"] {
            assert_eq!(dv["payload"][k], jv["payload"][k], "{k} of {at}");
        }
        assert!(d.headers.iter().any(|h| h.key == "smt.value.schema-id"));
    }
}

/// A fixture line (tests/fixtures/README.md) as a message (headers left out).
fn record_line(line: &str) -> Message {
    let v: Value = serde_json::from_str(line).unwrap();
    let bytes = |k: &str| -> Option<Vec<u8>> {
        match (&v[k], &v[format!("{k}_base64")]) {
            (Value::String(s), _) => Some(s.clone().into_bytes()),
            (_, Value::String(b)) => {
                Some(base64::Engine::decode(&base64::engine::general_purpose::STANDARD, b).unwrap())
            }
            _ => None,
        }
    };
    Message {
        topic: v["topic"].as_str().unwrap().to_owned(),
        partition: v["partition"].as_i64().unwrap() as i32,
        offset: v["offset"].as_i64().unwrap(),
        timestamp_ms: None,
        key: bytes("key"),
        value: bytes("value"),
        headers: vec![],
    }
}

/// What Confluent's Python `ProtobufSerializer` registered and framed for
/// `tests/src/schema_registry/produce.py protobuf` (a base64
/// `FileDescriptorProto`; messages Envelope, Value, Source, Key).
const PY_PROTO_SCHEMA: &str = "CiZzZXIzX2FiMTIvaW52L2N1c3RvbWVycy9lbnZlbG9wZS5wcm90bxIXc2VyM19hYjEyLmludi5jdXN0b21lcnMaFGNvbmZsdWVudC9tZXRhLnByb3RvGhxjb25mbHVlbnQvdHlwZS9kZWNpbWFsLnByb3RvIsQBCghFbnZlbG9wZRIuCgZiZWZvcmUYASABKAsyHi5zZXIzX2FiMTIuaW52LmN1c3RvbWVycy5WYWx1ZRItCgVhZnRlchgCIAEoCzIeLnNlcjNfYWIxMi5pbnYuY3VzdG9tZXJzLlZhbHVlEi8KBnNvdXJjZRgDIAEoCzIfLnNlcjNfYWIxMi5pbnYuY3VzdG9tZXJzLlNvdXJjZRIKCgJvcBgEIAEoCRISCgV0c19tcxgFIAEoA0gAiAEBQggKBl90c19tcyLVAgoFVmFsdWUSCgoCaWQYASABKAUSDAoEbmFtZRgCIAEoCRJKCgdiYWxhbmNlGAMgASgLMhcuY29uZmx1ZW50LnR5cGUuRGVjaW1hbEIggkQdEgoKBXNjYWxlEgEyEg8KCXByZWNpc2lvbhICMTASXgoKY3JlYXRlZF9hdBgEIAEoCUJKgkRHEhQKD2Nvbm5lY3QudmVyc2lvbhIBMRIvCgxjb25uZWN0Lm5hbWUSH2lvLmRlYmV6aXVtLnRpbWUuWm9uZWRUaW1lc3RhbXASUgoDZGF5GAUgASgFQkCCRD0SFAoPY29ubmVjdC52ZXJzaW9uEgExEiUKDGNvbm5lY3QubmFtZRIVaW8uZGViZXppdW0udGltZS5EYXRlSACIAQESEgoFc2NvcmUYBiABKAFIAYgBARIMCgR0YWdzGAcgAygJQgYKBF9kYXlCCAoGX3Njb3JlImUKBlNvdXJjZRIPCgd2ZXJzaW9uGAEgASgJEhEKCWNvbm5lY3RvchgCIAEoCRIMCgRuYW1lGAMgASgJEgoKAmRiGAQgASgJEg4KBnNjaGVtYRgFIAEoCRINCgV0YWJsZRgGIAEoCSIRCgNLZXkSCgoCaWQYASABKAViBnByb3RvMw==";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn proto_entry(text: &str) -> Entry {
    compile(
        9,
        &client::RawSchema {
            schema_type: "PROTOBUF".into(),
            text: text.into(),
            has_references: false,
        },
    )
}

fn decoded(bytes: &[u8], s: &HashMap<u32, Arc<Entry>>) -> Value {
    let (_, text) = decode_one(bytes, Format::Protobuf, s).unwrap();
    serde_json::from_slice(&text).unwrap()
}

#[test]
fn protobuf_from_confluents_python_serializer_becomes_what_the_json_converter_writes() {
    let mut s = schemas(vec![(9, proto_entry(PY_PROTO_SCHEMA))]);
    // the key: message index [3] (`Key`, the fourth message of the file)
    let key = decoded(&unhex("000000000902060801"), &s);
    assert_eq!(key["payload"], json!({"id": 1}));
    assert_eq!(key["schema"]["name"], "Key");
    assert_eq!(
        key["schema"]["fields"][0],
        json!({"type": "int32", "optional": true, "parameters": {"protobuf.tag": "1"}, "field": "id"})
    );
    // an insert of Sally: index [0] (a single 0 byte), `Envelope`
    let v = decoded(&unhex("00000000090012460801120553616c6c791a090a0301e23a100a1802221b323032342d30312d30325430333a30343a30352e3637383930315a288c9a01316957148b0abf05403a01613a036220631a360a0b332e362e332e46696e616c120a706f737467726573716c1a01742208706f7374677265732a03696e763209637573746f6d6572732201722880d095ffbc31"), &s);
    assert_eq!(
        v["payload"],
        json!({
            "before": null,
            "after": {"id": 1, "name": "Sally", "balance": "AeI6", "created_at": "2024-01-02T03:04:05.678901Z",
                      "day": 19724, "score": 2.718281828459045, "tags": ["a", "b c"]},
            "source": {"version": "3.6.3.Final", "connector": "postgresql", "name": "t", "db": "postgres",
                       "schema": "inv", "table": "customers"},
            "op": "r", "ts_ms": 1700000000000i64
        })
    );
    let after = &v["schema"]["fields"][1];
    assert_eq!(after["field"], "after");
    assert_eq!(after["name"], "Value");
    let f = |n: &str| {
        after["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        f("balance"),
        json!({"type": "bytes", "optional": true, "version": 1, "name": "org.apache.kafka.connect.data.Decimal",
               "parameters": {"scale": "2", "connect.decimal.precision": "10", "protobuf.tag": "3"}, "field": "balance"})
    );
    assert_eq!(f("day")["name"], "io.debezium.time.Date");
    assert_eq!(f("day")["version"], 1);
    assert_eq!(f("created_at")["name"], "io.debezium.time.ZonedTimestamp");
    assert_eq!(f("tags")["type"], "array");
    // George: unset optional fields and an unset message are null, an empty list []
    let g = decoded(&unhex("00000000090012200802120647656f7267652214313937302d30312d30315430303a30303a30305a1a360a0b332e362e332e46696e616c120a706f737467726573716c1a01742208706f7374677265732a03696e763209637573746f6d6572732201632880d095ffbc31"), &s);
    assert_eq!(
        g["payload"]["after"],
        json!({"id": 2, "name": "George", "balance": null, "created_at": "1970-01-01T00:00:00Z",
               "day": null, "score": null, "tags": []})
    );
    // bad input: an index that names no message, truncated bytes, a decimal of another scale
    let e = decode_one(&unhex("000000000902100801"), Format::Protobuf, &s).unwrap_err();
    assert!(e.contains("message indexes [8] name no message"), "{e}");
    let e = decode_one(&unhex("0000000009"), Format::Protobuf, &s).unwrap_err();
    assert!(e.contains("message indexes: truncated"), "{e}");
    let e = decode_one(&unhex("000000000900124608"), Format::Protobuf, &s).unwrap_err();
    assert!(e.contains("do not match the Protobuf message"), "{e}");
    s.insert(
        10,
        Arc::new(proto_entry(
            r#"syntax = "proto3"; import "confluent/type/decimal.proto";
               message W { confluent.type.Decimal d = 1; }"#,
        )),
    );
    let e = decode_one(&unhex("000000000a00"), Format::Protobuf, &s).unwrap();
    assert!(String::from_utf8(e.1)
        .unwrap()
        .contains(r#""payload":{"d":null}"#));
    let e = decode_one(&unhex("000000000a000a050a01011803"), Format::Protobuf, &s).unwrap_err();
    assert!(e.contains("scale 3 where the schema's scale is 0"), "{e}");
    let e = decode_one(&unhex("0000000009"), Format::Avro, &s).unwrap_err();
    assert!(e.contains("is a Protobuf schema"), "{e}");
}

#[test]
fn protobuf_text_schemas_compile_with_well_known_types() {
    let text = r#"
        syntax = "proto3";
        package shop.v1;
        import "google/protobuf/timestamp.proto";
        import "google/protobuf/wrappers.proto";
        import "google/type/date.proto";
        import "confluent/meta.proto";
        message Order {
          enum Status { NEW = 0; PAID = 1; }
          message Line { string sku = 1; uint32 qty = 2; }
          int64 id = 1;
          Status status = 2;
          repeated Line lines = 3;
          map<string, int32> counts = 4;
          google.protobuf.Timestamp at = 5;
          google.protobuf.StringValue note = 6;
          google.type.Date due = 7;
          oneof pay { string card = 8; int64 voucher = 9; }
          sint32 small = 10 [(confluent.field_meta).params = {key: "connect.type", value: "int16"}];
          optional string memo = 11;
        }"#;
    let Ok(Compiled::Proto(p)) = proto_entry(text) else {
        panic!("{:?}", proto_entry(text).err())
    };
    // Order{id 7, status PAID, lines [{sku "a", qty 2}], counts {"x": 1}, at 1.5 s, note "hi",
    //       due 2024-01-02, voucher 5, small -3}: encoded by hand, field by field
    let mut data = vec![0u8]; // message index [0]
    data.extend(unhex("0807")); // id = 7
    data.extend(unhex("1001")); // status = 1
    data.extend(unhex("1a050a01611002")); // lines [{sku "a", qty 2}]
    data.extend(unhex("22050a01781001")); // counts {"x": 1}
    data.extend(unhex("2a0808011080cab5ee01")); // at {1 s, 500000000 ns}
    data.extend(unhex("32040a026869")); // note {"hi"}
    data.extend(unhex("3a0708e80f10011802")); // due {2024, 1, 2}
    data.extend(unhex("4805")); // voucher = 5
    data.extend(unhex("5005")); // small = zigzag(-3)
    let (schema, payload) = p.decode(&data).unwrap();
    assert_eq!(
        payload,
        json!({
            "pay_0": {"card": null, "voucher": 5},
            "id": 7, "status": "PAID", "lines": [{"sku": "a", "qty": 2}], "counts": {"x": 1},
            "at": 1500, "note": "hi", "due": 19724, "small": -3, "memo": null
        })
    );
    let schema: Value = serde_json::from_str(schema).unwrap();
    assert_eq!(schema["name"], "Order");
    let f = |n: &str| {
        schema["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == n)
            .unwrap()
            .clone()
    };
    assert_eq!(
        f("pay_0")["name"],
        "io.confluent.connect.protobuf.Union.pay"
    );
    assert_eq!(f("status")["type"], "string");
    assert_eq!(f("status")["parameters"]["protobuf.type.enum.PAID"], "1");
    assert_eq!(f("lines")["items"]["fields"][1]["type"], "int64");
    assert_eq!(f("counts")["type"], "map");
    assert_eq!(f("at")["name"], "org.apache.kafka.connect.data.Timestamp");
    assert_eq!(f("note")["type"], "string");
    assert_eq!(f("due")["name"], "org.apache.kafka.connect.data.Date");
    assert_eq!(f("small")["type"], "int16");
    assert_eq!(f("small")["parameters"]["protobuf.type"], "sint32");
    // a nested message by its index path [0, 0]: Order.Line
    let (schema, payload) = p.decode(&unhex("0400000a0162")).unwrap();
    assert!(schema.contains(r#""name":"Line""#), "{schema}");
    assert_eq!(payload, json!({"sku": "b", "qty": 0}));
}
