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
    assert!(e.contains("PROTOBUF"), "{e}");
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
