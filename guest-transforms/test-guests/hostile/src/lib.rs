//! A misbehaving transform for the engine's tests. Its init config picks the
//! behaviour: `{"mode": "<mode>", ...}`.
//!
//! | mode | behaviour |
//! |---|---|
//! | `ok` | insert-one `{"offset": <offset>}` into collection `hostile` |
//! | `loop` | `transform` never returns |
//! | `membomb` | `transform` allocates (and touches) memory without bound |
//! | `trap` | `transform` panics (a trap) when the record key equals `trap_key`, else as `ok` |
//! | `init-fails` | `init` returns `Err("init refused: …")` |
//! | `big-output` | `transform` returns `ops` insert-ones (default 1) each with a string field of `doc_bytes` bytes (default 1 MiB) |
//! | `aggregate` | `transform` returns one aggregate on `hostile` with the config's `pipeline` (an array of stages), unchecked |
//! | `log-flood` | `transform` logs `lines` lines (default 10,000), then behaves as `ok` |
//! | `op` | `transform` returns one operation of kind `kind` (`insert-one` … `aggregate`) on `database`.`collection` (default: the configured database, `c`); an aggregate's pipeline is the config's `pipeline`, or a `$merge` into the same namespace |
//! | `by-key` | the record's key names the behaviour: `loop`, `membomb`, `trap`, `log-flood`, `big-output` (with the config's `lines`, `ops`, `doc_bytes`), anything else `ok` |
//! | `every-op` | `transform` returns one operation of every kind, built with the SDK's builders (the op-dialect test) |

use serde_json::{json, Value};
use smt_guest::{ops, Message, Transform, TransformError, WriteOp};

#[derive(Debug)]
pub enum Hostile {
    Ok,
    Loop,
    MemBomb,
    Trap {
        key: Vec<u8>,
    },
    BigOutput {
        ops: usize,
        doc_bytes: usize,
    },
    Aggregate {
        pipeline: Vec<Value>,
    },
    LogFlood {
        lines: usize,
    },
    Op {
        kind: String,
        ns: smt_guest::Namespace,
        pipeline: Vec<Value>,
    },
    ByKey {
        lines: usize,
        ops: usize,
        doc_bytes: usize,
    },
    EveryOp,
}

fn echo(msg: &Message) -> Vec<WriteOp> {
    vec![ops::insert_one("hostile", json!({ "offset": msg.offset }))]
}

impl Transform for Hostile {
    fn init(config: &str) -> Result<Self, String> {
        let cfg: Value = serde_json::from_str(config)
            .map_err(|e| format!("hostile: config is not JSON: {e}"))?;
        let num = |k: &str, default: usize| {
            cfg.get(k)
                .and_then(Value::as_u64)
                .map_or(default, |n| n as usize)
        };
        Ok(
            match cfg.get("mode").and_then(Value::as_str).unwrap_or("ok") {
                "ok" => Hostile::Ok,
                "loop" => Hostile::Loop,
                "membomb" => Hostile::MemBomb,
                "trap" => Hostile::Trap {
                    key: cfg
                        .get("trap_key")
                        .and_then(Value::as_str)
                        .unwrap_or("")
                        .as_bytes()
                        .to_vec(),
                },
                "init-fails" => {
                    return Err("init refused: the hostile guest was configured to fail".into())
                }
                "big-output" => Hostile::BigOutput {
                    ops: num("ops", 1),
                    doc_bytes: num("doc_bytes", 1 << 20),
                },
                "aggregate" => Hostile::Aggregate {
                    pipeline: cfg
                        .get("pipeline")
                        .and_then(Value::as_array)
                        .cloned()
                        .unwrap_or_default(),
                },
                "log-flood" => Hostile::LogFlood {
                    lines: num("lines", 10_000),
                },
                "op" => {
                    let coll = cfg.get("collection").and_then(Value::as_str).unwrap_or("c");
                    Hostile::Op {
                        kind: cfg
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("insert-one")
                            .to_owned(),
                        ns: match cfg.get("database").and_then(Value::as_str) {
                            Some(db) => ops::ns_in(db, coll),
                            None => ops::ns(coll),
                        },
                        pipeline: cfg
                            .get("pipeline")
                            .and_then(Value::as_array)
                            .cloned()
                            .unwrap_or_else(|| vec![json!({"$merge": {"into": coll}})]),
                    }
                }
                "by-key" => Hostile::ByKey {
                    lines: num("lines", 10_000),
                    ops: num("ops", 1),
                    doc_bytes: num("doc_bytes", 1 << 20),
                },
                "every-op" => Hostile::EveryOp,
                other => return Err(format!("hostile: unknown mode {other:?}")),
            },
        )
    }

    fn transform(&self, msg: &Message) -> Result<Vec<WriteOp>, TransformError> {
        match self {
            Hostile::Ok => Ok(echo(msg)),
            Hostile::LogFlood { lines } => {
                for i in 0..*lines {
                    smt_guest::log::info(&format!("hostile guest: flood line {i}"));
                }
                Ok(echo(msg))
            }
            Hostile::Op { kind, ns, pipeline } => {
                let ns = ns.clone();
                let id = json!({"_id": msg.offset});
                Ok(vec![match kind.as_str() {
                    "insert-one" => ops::insert_one(ns, id),
                    "replace-one" => ops::replace_one(ns, id.clone(), id).upsert().build(),
                    "update-one" => ops::update_one(ns, id).set(json!({"x": 1})).build(),
                    "update-many" => ops::update_many(ns, id).set(json!({"x": 1})).build(),
                    "delete-one" => ops::delete_one(ns, id),
                    "delete-many" => ops::delete_many(ns, id),
                    "aggregate" => ops::aggregate(ns, pipeline.clone()),
                    other => {
                        return Err(TransformError::internal(format!(
                            "hostile: unknown kind {other:?}"
                        )))
                    }
                }])
            }
            Hostile::ByKey {
                lines,
                ops,
                doc_bytes,
            } => {
                let as_mode = match msg.key.as_deref() {
                    Some(b"loop") => Hostile::Loop,
                    Some(b"membomb") => Hostile::MemBomb,
                    Some(b"trap") => Hostile::Trap {
                        key: b"trap".to_vec(),
                    },
                    Some(b"log-flood") => Hostile::LogFlood { lines: *lines },
                    Some(b"big-output") => Hostile::BigOutput {
                        ops: *ops,
                        doc_bytes: *doc_bytes,
                    },
                    _ => Hostile::Ok,
                };
                as_mode.transform(msg)
            }
            Hostile::Loop => {
                let mut n: u64 = 0;
                loop {
                    n = std::hint::black_box(n.wrapping_add(1));
                }
            }
            Hostile::MemBomb => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    // Touch every page so the memory is really committed.
                    hoard.push(vec![0xA5; 1 << 20]);
                    std::hint::black_box(&mut hoard);
                }
            }
            Hostile::Trap { key } => {
                if msg.key.as_deref() == Some(key.as_slice()) {
                    panic!(
                        "hostile guest: trap on key {:?}",
                        String::from_utf8_lossy(key)
                    );
                }
                Ok(echo(msg))
            }
            Hostile::BigOutput { ops: n, doc_bytes } => {
                let filler = "x".repeat(*doc_bytes);
                Ok((0..*n)
                    .map(|i| ops::insert_one("hostile", json!({ "i": i, "filler": filler })))
                    .collect())
            }
            Hostile::Aggregate { pipeline } => {
                Ok(vec![ops::aggregate("hostile", pipeline.clone())])
            }
            Hostile::EveryOp => Ok(every_op(msg)),
        }
    }
}

/// One operation of every kind and shape: both namespaces, an update with
/// operators and array filters, a pipeline update, an aggregate; values in
/// relaxed Extended JSON (int32, int64, double, decimal, date) so that a
/// rendering that prints them canonical shows it.
fn every_op(msg: &Message) -> Vec<WriteOp> {
    let id = json!(msg.offset);
    let typed = json!({"i": 1, "l": 1i64 << 40, "d": 1.5,
                       "dec": {"$numberDecimal": "1.50"}, "t": {"$date": "2024-01-02T03:04:05Z"}});
    vec![
        ops::insert_one("c", json!({"_id": id, "typed": typed})),
        ops::replace_one(
            ops::ns_in("other", "c"),
            json!({"_id": id}),
            json!({"_id": id, "r": true}),
        )
        .upsert()
        .into(),
        ops::update_one("c", json!({"_id": id}))
            .set(json!({"a.$[e].x": 1}))
            .operator("$inc", json!({"n": 1}))
            .array_filter(json!({"e.k": 2}))
            .into(),
        ops::update_many("c", json!({}))
            .pipeline(vec![json!({"$set": {"n": 1}}), json!({"$unset": "tmp"})])
            .upsert()
            .into(),
        ops::delete_one("c", json!({"_id": id})),
        ops::delete_many(ops::ns_in("d", "c"), json!({})),
        ops::aggregate(
            "rows",
            vec![
                json!({"$match": {"_id": id}}),
                json!({"$merge": {"into": {"db": "shop", "coll": "docs"}, "whenMatched": "replace"}}),
            ],
        ),
    ]
}

smt_guest::export_transform!(Hostile);

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(key: &str) -> Message {
        Message {
            topic: "t".into(),
            partition: 0,
            offset: 9,
            timestamp_ms: None,
            key: Some(key.as_bytes().to_vec()),
            value: None,
            headers: vec![],
        }
    }

    #[test]
    fn modes() {
        let ok = Hostile::init(r#"{"mode": "ok"}"#).unwrap();
        assert_eq!(
            ops::describe(&ok.transform(&msg("a")).unwrap()[0])["document"],
            json!({"offset": 9})
        );
        assert!(Hostile::init(r#"{"mode": "init-fails"}"#)
            .unwrap_err()
            .starts_with("init refused"));
        assert!(Hostile::init(r#"{"mode": "nope"}"#).is_err());
        let trap = Hostile::init(r#"{"mode": "trap", "trap_key": "bad"}"#).unwrap();
        assert!(trap.transform(&msg("good")).is_ok());
        assert!(std::panic::catch_unwind(|| trap.transform(&msg("bad"))).is_err());
        let big = Hostile::init(r#"{"mode": "big-output", "ops": 3, "doc_bytes": 10}"#).unwrap();
        assert_eq!(big.transform(&msg("a")).unwrap().len(), 3);
    }
}
