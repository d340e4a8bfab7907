//! The Rust guest code called natively, next to its Wasm build: the record
//! in the SDK's type, and the operations compared in the one JSON dialect
//! that the SDK's `ops::describe` and `smt test` both print (no second,
//! hand-written mapping of the contract's types).

use serde_json::Value;

use crate::record::Record;

/// The SDK's view of a host message.
pub fn to_guest_message(msg: &Record) -> smt_guest::Message {
    smt_guest::Message {
        topic: msg.topic.clone(),
        partition: msg.partition,
        offset: msg.offset,
        timestamp_ms: msg.timestamp_ms,
        key: msg.key.clone(),
        value: msg.value.clone(),
        headers: msg
            .headers
            .iter()
            .map(|h| smt_guest::Header {
                key: h.key.clone(),
                value: h.value.clone(),
            })
            .collect(),
    }
}

/// A natively produced operation as `smt test` prints it (the host's
/// `WriteOp::to_extjson`): the SDK's rendering, which is in the same dialect,
/// with its documents parsed into BSON and printed as canonical Extended
/// JSON, as the host does with a guest's. An error where the host would
/// refuse to parse a document (BSON documents are not rendered: the Rust
/// guests write JSON).
pub fn rendered(op: &smt_guest::WriteOp) -> Result<Value, String> {
    let Value::Object(described) = smt_guest::ops::describe(op) else {
        return Err("ops::describe gave no object".into());
    };
    let doc = bson::Document::try_from(described).map_err(|e| e.to_string())?;
    Ok(bson::Bson::Document(doc).into_canonical_extjson())
}

/// The records of a fixture file under `tests/fixtures/debezium/`.
pub fn fixture(name: &str) -> Vec<Record> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/debezium")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(n, l)| {
            smt_host::records::parse_line(l)
                .unwrap_or_else(|e| panic!("{}:{}: {e}", path.display(), n + 1))
        })
        .collect()
}
