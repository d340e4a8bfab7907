//! `smt check` and `smt test`: load a transform and run records through it
//! with no Kafka and no MongoDB — what users run in their own CI.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde_json::{json, Value};

use crate::decode::SchemaDir;
use crate::engine::{Engine, EngineConfig, TransformModule};
use crate::records;

/// What `smt check` reports about a module.
pub fn check(
    engine: &Engine,
    path: &Path,
    config: Option<&str>,
) -> anyhow::Result<Arc<TransformModule>> {
    let name = transform_name(path);
    let module = engine.load_file(&name, path)?;
    if let Some(config) = config {
        module.instantiate(config)?;
    }
    Ok(module)
}

/// Runs every record line of `input` through the transform and writes one
/// JSON line per record: `{"topic","partition","offset","ops":[...]}` or
/// `{"topic","partition","offset","error":{"kind","message"}}`. Returns the
/// number of records that failed. With `schemas`, keys and values in the
/// Confluent wire format are decoded first (as `smt run` does for a route
/// in the `avro`/`json-schema` format); one that cannot be is the record's
/// `bad-input` error.
pub fn test(
    engine: &Engine,
    path: &Path,
    config: &str,
    schemas: Option<&SchemaDir>,
    input: impl BufRead,
    mut out: impl Write,
) -> anyhow::Result<usize> {
    let name = transform_name(path);
    let module = engine.load_file(&name, path)?;
    let mut instance = module.instantiate(config)?;
    let mut failures = 0;
    for (n, line) in input.lines().enumerate() {
        let line = line.context("reading the input")?;
        if line.trim().is_empty() {
            continue;
        }
        let result = match records::parse_line(&line) {
            Err(e) => {
                failures += 1;
                json!({ "line": n + 1, "error": { "kind": "invalid-record-line", "message": e } })
            }
            Ok(msg) => {
                let mut result =
                    json!({ "topic": msg.topic, "partition": msg.partition, "offset": msg.offset });
                let decoded = match schemas {
                    Some(s) => s.decode(&msg),
                    None => Ok(msg),
                };
                match decoded
                    .map_err(|reason| (crate::engine::FailureKind::BadInput, reason))
                    .and_then(|msg| instance.transform(&msg).map_err(|e| (e.kind, e.message)))
                {
                    Ok(ops) => {
                        result["ops"] = Value::Array(ops.iter().map(|op| op.to_extjson()).collect())
                    }
                    Err((kind, message)) => {
                        failures += 1;
                        result["error"] = json!({ "kind": kind.as_str(), "message": message });
                    }
                }
                result
            }
        };
        writeln!(out, "{result}")?;
    }
    out.flush()?;
    Ok(failures)
}

/// A transform's name, from its file name (`debezium_mongo.wasm` → `debezium_mongo`).
pub fn transform_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "transform".to_owned())
}

/// An engine for the offline commands: default limits, the shared compile cache.
pub fn engine() -> anyhow::Result<Engine> {
    Engine::new(&EngineConfig::default())
}
