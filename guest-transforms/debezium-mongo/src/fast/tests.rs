//! The fast path against the general one: for every record it takes, the
//! same operation, byte for byte; and it takes the common records.

use super::*;
use crate::Transform;
use smt_guest::Header;

/// The general path's operations as the component sends them: each JSON
/// document through the SDK's BSON encoder (what `transform` sends with BSON
/// output on), so that both sides are bytes.
fn general(t: &DebeziumMongo, msg: &Message) -> Result<Vec<WriteOp>, String> {
    let ops = t.transform_general(msg).map_err(|e| e.message)?;
    Ok(ops.into_iter().map(to_bson).collect())
}

fn bson(d: Document) -> Document {
    match d {
        Document::Json(text) => {
            let v: Value = serde_json::from_str(&text).expect("the SDK's JSON text");
            match ops::bson_bytes(&v) {
                Some(b) => Document::Bson(b),
                None => Document::Json(text),
            }
        }
        b => b,
    }
}

fn to_bson(op: WriteOp) -> WriteOp {
    match op {
        WriteOp::ReplaceOne(r) => WriteOp::ReplaceOne(ReplaceOne {
            ns: r.ns,
            filter: bson(r.filter),
            replacement: bson(r.replacement),
            upsert: r.upsert,
        }),
        WriteOp::DeleteOne(d) => WriteOp::DeleteOne(Delete {
            ns: d.ns,
            filter: bson(d.filter),
        }),
        other => other,
    }
}

/// Checks one record; true when the fast path took it.
fn check(t: &DebeziumMongo, msg: &Message) -> bool {
    let Some(fast) = map_bson(t, msg) else {
        return false;
    };
    let want = general(t, msg);
    assert_eq!(
        Ok(vec![fast]),
        want,
        "record {:?} / key {:?}",
        msg.value.as_deref().map(String::from_utf8_lossy),
        msg.key.as_deref().map(String::from_utf8_lossy)
    );
    true
}

fn record(key: Option<&str>, value: &str) -> Message {
    Message {
        topic: "dbz.inventory.customers".into(),
        partition: 1,
        offset: 7,
        timestamp_ms: None,
        key: key.map(|k| k.as_bytes().to_vec()),
        value: Some(value.as_bytes().to_vec()),
        headers: vec![],
    }
}

const CONFIGS: [&str; 3] = [
    "{}",
    r#"{"id": "scalar"}"#,
    r#"{"id": "wrapped", "collection": "${table}_x"}"#,
];

fn transforms() -> Vec<DebeziumMongo> {
    CONFIGS
        .iter()
        .map(|c| DebeziumMongo::init(c).expect("config"))
        .collect()
}

/// Every record of the fixtures (PostgreSQL, MariaDB, MongoDB, with and
/// without schemas), under each id mode.
#[test]
fn fixtures_give_the_general_paths_bytes() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/debezium");
    let mut taken = 0;
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).expect("fixtures") {
        let path = entry.expect("entry").path();
        let name = path.to_string_lossy().into_owned();
        if !name.ends_with(".jsonl") || name.ends_with(".expected.jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path).expect("read").lines() {
            let Ok(v) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            let (Some(topic), Some(value)) = (v["topic"].as_str(), v["value"].as_str()) else {
                continue;
            };
            let mut msg = record(v["key"].as_str(), value);
            msg.topic = topic.to_owned();
            if let Some(hs) = v["headers"].as_array() {
                msg.headers = hs
                    .iter()
                    .map(|h| Header {
                        key: h["key"].as_str().unwrap_or_default().to_owned(),
                        value: h["value"].as_str().map(|s| s.as_bytes().to_vec()),
                    })
                    .collect();
            }
            for t in &transforms() {
                seen += 1;
                if check(t, &msg) {
                    taken += 1;
                }
            }
        }
    }
    assert!(seen > 100, "{seen} records");
    assert!(taken > 50, "the fast path took {taken} of {seen}");
}

/// Records made to sit on the path's edges: numbers at the ends of their
/// ranges, escapes, duplicates, placeholders, nested values, `_id`, odd keys.
#[test]
fn edge_cases_give_the_general_paths_bytes_or_are_declined() {
    let afters = [
        r#"{"id": 1, "a": "x"}"#,
        r#"{"id": 1, "n": 9223372036854775807, "m": -9223372036854775808, "u": 9223372036854775808}"#,
        r#"{"id": 1, "big": 18446744073709551615, "bigger": 18446744073709551616, "f": 1.0, "e": 1e308, "z": -0, "zf": -0.0}"#,
        r#"{"id": 1, "small": 2147483647, "neg": -2147483649, "t": true, "f": false, "nul": null}"#,
        r#"{"id": 1, "s": "a\"b\\c\u0000d\ud83d\ude00é", "k\u0065y": "esc"}"#,
        r#"{"id": 1, "a": 1, "a": 2}"#,
        r#"{"id": 1, "_id": 5}"#,
        r#"{"id": 1, "$set": 5}"#,
        r#"{"id": 1, "a\u0000b": 5}"#,
        r#"{"id": 1, "toast": "__debezium_unavailable_value"}"#,
        r#"{"id": 1, "toast": "X19kZWJleml1bV91bmF2YWlsYWJsZV92YWx1ZQ=="}"#,
        r#"{"id": 1, "arr": [1, 2]}"#,
        r#"{"id": 1, "obj": {"$numberLong": "5"}}"#,
        r#"{"id": 1}"#,
        r#"{"other": 1}"#,
        r#"{}"#,
        r#"null"#,
        r#""text""#,
        r#"[1]"#,
        r#"{"id": 1, "schema": 1, "payload": 2}"#,
    ];
    let keys = [
        Some(r#"{"id": 1}"#),
        Some(r#"{"id": "1"}"#),
        Some(r#"{"id": 1, "t": "a"}"#),
        Some(r#"{"i\u0064": 1}"#),
        Some(r#"{"id": 1.5}"#),
        Some(r#"{"id": 18446744073709551615}"#),
        Some(r#"{"id": null}"#),
        Some(r#"{"id": [1]}"#),
        Some(r#"{"id": 1, "id": 2}"#),
        Some(r#"{"_id": 1}"#),
        Some(r#"{"$oid": "0123456789abcdef01234567"}"#),
        Some(r#"{"schema": null, "payload": {"id": 1}}"#),
        Some(r#"{}"#),
        Some("null"),
        Some("1"),
        Some("not json"),
        Some(r#"{"id": 1} x"#),
        None,
    ];
    let envelopes = [
        r#"{"before": null, "after": AFTER, "source": {"connector": "postgresql", "lsn": 5}, "op": "OP", "ts_ms": 1}"#,
        r#"{"op": "OP", "after": AFTER}"#,
        r#"{"op": "OP", "after": AFTER, "op": "d"}"#,
        r#"{"op": "OP", "after": AFTER, "after": {"id": 2}}"#,
        r#"{"op": "OP", "after": AFTER, "source": 1, "source": {"connector": "mongodb"}}"#,
        r#"{"op": "OP", "after": AFTER, "transaction": {"id": "1", "total_order": 2}, "before": {"id": 1}}"#,
        r#"{"schema": {"type": "struct"}, "payload": {"op": "OP", "after": AFTER}}"#,
        r#"{"op": "OP", "after": AFTER} trailing"#,
        r#"{"op": "OP", "after": AFTER, "deep": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}"#,
        r#"{"op": 5, "after": AFTER}"#,
        r#"{"before": {"id": 1}, "after": null, "source": {"connector": "mongodb", "db": "x"}, "op": "OP"}"#,
        r#"{"before": null, "after": null, "source": {"connector": "postgresql", "db": "x"}, "op": "OP"}"#,
        r#"{"before": null, "source": {"connector": "mysql"}, "op": "OP"}"#,
        r#"{"before": null, "source": {"connector": "mongo\u0064b"}, "op": "OP"}"#,
        r#"{"before": null, "source": "x", "op": "OP"}"#,
        r#"{"after": "{\"_id\": 1}", "source": {"connector": "mongodb"}, "op": "OP"}"#,
        r#"{"op": "OP", "after": null, "after": AFTER}"#,
    ];
    let mut taken = 0;
    for t in &transforms() {
        for env in envelopes {
            for after in afters {
                for op in ["c", "r", "u", "d", "t", "x"] {
                    let value = env.replace("AFTER", after).replace("OP", op);
                    for key in keys {
                        if check(t, &record(key, &value)) {
                            taken += 1;
                        }
                    }
                }
            }
        }
    }
    assert!(taken > 100, "the fast path took {taken}");
}

/// A key change (its header present) goes the general way.
#[test]
fn a_key_change_is_declined() {
    let t = &transforms()[1];
    let mut msg = record(
        Some(r#"{"id": 2}"#),
        r#"{"op": "u", "after": {"id": 2, "a": 1}}"#,
    );
    assert!(map_bson(t, &msg).is_some());
    msg.headers.push(Header {
        key: "__debezium.oldkey".into(),
        value: Some(br#"{"id": 1}"#.to_vec()),
    });
    assert!(map_bson(t, &msg).is_none());
}

/// The delete half of a key change (its header present) goes the general way.
#[test]
fn a_key_changes_delete_is_declined() {
    let t = &transforms()[1];
    let mut msg = record(
        Some(r#"{"id": 1}"#),
        r#"{"op": "d", "before": {"id": 1}, "after": null}"#,
    );
    assert!(check(t, &msg));
    msg.headers.push(Header {
        key: "__debezium.newkey".into(),
        value: Some(br#"{"id": 2}"#.to_vec()),
    });
    assert!(map_bson(t, &msg).is_none());
}

/// Invalid UTF-8 goes the general way (which reports it).
#[test]
fn invalid_utf8_is_declined() {
    let t = &transforms()[0];
    let mut msg = record(
        Some(r#"{"id": 2}"#),
        r#"{"op": "u", "after": {"id": 2, "a": "é"}}"#,
    );
    assert!(map_bson(t, &msg).is_some());
    if let Some(v) = msg.value.as_mut() {
        let at = v.len() - 4;
        v[at] = 0xff;
    }
    assert!(map_bson(t, &msg).is_none());
}
