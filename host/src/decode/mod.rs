//! Decoding of record keys and values before the transform, per route
//! (`key-format`, `value-format`): `json` and `raw` pass through; `avro`,
//! `json-schema` and `protobuf` read the Confluent wire format (magic byte,
//! schema id; Protobuf's message indexes), fetch
//! the writer schema from the `[schema-registry]` (cached by id) and hand the
//! transform the record as the JSON converter with `schemas.enable=true`
//! would have written it: `{"schema": <Connect schema>, "payload": <value>}`.
//! The schema ids go in the headers `smt.key.schema-id` and
//! `smt.value.schema-id` (decimal text).
//!
//! Errors: bytes that are not what the format says (wrong magic byte, a
//! truncated header, data not matching the schema, an id the registry does
//! not know) are the record's `bad-input` failure, handled by the route's
//! error policy. A registry that cannot be asked (down, timeouts, 5xx,
//! 401/403) is transient: retried with the pipeline's backoff; the batch
//! waits and nothing of it is committed.

mod avro;
mod client;
mod jsonschema;
mod protobuf;
pub mod wire;

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;
use tokio_util::sync::CancellationToken;

pub use crate::config::Format;
use crate::config::{Config, RouteConfig};
use crate::contract::{Header, Message};
use crate::retry::{Backoff, GiveUp};
use crate::telemetry::Metrics;

pub use client::FetchError;

/// The key and value formats of a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Formats {
    pub key: Format,
    pub value: Format,
}

impl Formats {
    pub fn of(route: &RouteConfig) -> Formats {
        Formats {
            key: route.key_format,
            value: route.value_format,
        }
    }

    fn passes_through(self) -> bool {
        !self.key.uses_registry() && !self.value.uses_registry()
    }
}

/// A registry schema compiled for decoding.
enum Compiled {
    Avro(avro::AvroSchema),
    Json(jsonschema::JsonSchema),
    Proto(protobuf::ProtoSchema),
}

/// A schema by id: compiled, or why it cannot be used (the same for every
/// record that names it).
type Entry = Result<Compiled, String>;

/// What the transform sees of each record of a batch.
pub enum Inputs {
    /// Every record as it is (`json`/`raw` routes).
    AsIs,
    /// Per record: the decoded message, or why it cannot be decoded (bad input).
    Decoded(Vec<Result<Message, String>>),
}

impl Inputs {
    /// The message record `i` (whose original is `original`) hands the transform.
    pub fn get<'a>(&'a self, i: usize, original: &'a Message) -> Result<&'a Message, &'a str> {
        match self {
            Inputs::AsIs => Ok(original),
            Inputs::Decoded(v) => v[i].as_ref().map_err(String::as_str),
        }
    }
}

/// The decoders of every route: one registry client and one schema cache.
pub struct Decoder {
    registry: Option<Registry>,
    backoff: Backoff,
    metrics: Arc<Metrics>,
}

struct Registry {
    client: client::Client,
    cache: client::Cache<Entry>,
}

impl Decoder {
    /// From `[schema-registry]` (a startup error names the key).
    pub fn new(config: &Config, metrics: Arc<Metrics>) -> anyhow::Result<Decoder> {
        let registry = match &config.schema_registry {
            Some(c) => Some(Registry {
                client: client::Client::new(c)?,
                cache: client::Cache::new(c.cache_capacity, metrics.clone()),
            }),
            None => None,
        };
        Ok(Decoder {
            registry,
            backoff: Backoff::from_config(&config.pipeline),
            metrics,
        })
    }

    /// Decodes a batch of one route. Waits (retrying with backoff) while the
    /// registry cannot be asked; `Err` when stopped or out of retries.
    pub async fn batch(
        &self,
        formats: Formats,
        batch: &[Message],
        stop: &CancellationToken,
    ) -> Result<Inputs, GiveUp> {
        if formats.passes_through() {
            return Ok(Inputs::AsIs);
        }
        let registry = self
            .registry
            .as_ref()
            .expect("validated: a route that decodes has a [schema-registry]");
        // every schema the batch names, fetched (once) before any record is decoded
        let mut ids: Vec<u32> = Vec::new();
        for m in batch {
            for (bytes, f) in [(&m.key, formats.key), (&m.value, formats.value)] {
                if let (Some(b), true) = (bytes, f.uses_registry()) {
                    if let Some(id) = wire::schema_id(b) {
                        if !ids.contains(&id) {
                            ids.push(id);
                        }
                    }
                }
            }
        }
        let mut schemas = std::collections::HashMap::with_capacity(ids.len());
        for id in ids {
            schemas.insert(id, self.schema(registry, id, stop).await?);
        }
        Ok(Inputs::Decoded(
            batch
                .iter()
                .map(|m| decode_message(m, formats, &schemas))
                .collect(),
        ))
    }

    /// The schema of `id`: from the cache, else fetched (retrying transient errors).
    async fn schema(
        &self,
        registry: &Registry,
        id: u32,
        stop: &CancellationToken,
    ) -> Result<Arc<Entry>, GiveUp> {
        if let Some(e) = registry.cache.get(id) {
            return Ok(e);
        }
        let mut attempt = 0;
        loop {
            match registry.client.fetch(id).await {
                Ok(raw) => {
                    let entry = Arc::new(compile(id, &raw));
                    registry.cache.insert(id, entry.clone());
                    return Ok(entry);
                }
                Err(FetchError::UnknownId(m)) => {
                    self.count("unknown-id");
                    // not cached: the id may be registered later
                    return Ok(Arc::new(Err(m)));
                }
                Err(FetchError::Transient(m)) => {
                    self.count("fetch-error");
                    self.metrics
                        .retries
                        .get_or_create(&[("target", "schema-registry".to_owned())])
                        .inc();
                    attempt += 1;
                    tracing::warn!(schema_id = id, attempt, error = %m, "Cannot fetch a schema from the schema registry; retrying.");
                    self.backoff.wait(attempt, &m, stop).await?;
                }
            }
        }
    }

    fn count(&self, outcome: &str) {
        self.metrics
            .schema_cache
            .get_or_create(&[("outcome", outcome.to_owned())])
            .inc();
    }
}

fn compile(id: u32, raw: &client::RawSchema) -> Entry {
    if raw.has_references {
        return Err(format!(
            "schema {id} refers to other schemas (references are not supported: register self-contained schemas)"
        ));
    }
    match raw.schema_type.as_str() {
        "AVRO" => avro::AvroSchema::parse(&raw.text).map(Compiled::Avro),
        "JSON" => jsonschema::JsonSchema::parse(&raw.text).map(Compiled::Json),
        "PROTOBUF" => protobuf::ProtoSchema::parse(&raw.text).map(Compiled::Proto),
        other => Err(format!(
            "schema {id} is of type {other}, which is not supported"
        )),
    }
    .map_err(|e| format!("schema {id}: {e}"))
}

fn decode_message(
    m: &Message,
    formats: Formats,
    schemas: &std::collections::HashMap<u32, Arc<Entry>>,
) -> Result<Message, String> {
    let mut out = Message {
        topic: m.topic.clone(),
        partition: m.partition,
        offset: m.offset,
        timestamp_ms: m.timestamp_ms,
        key: None,
        value: None,
        headers: m.headers.clone(),
    };
    for (which, bytes, format) in [
        ("key", &m.key, formats.key),
        ("value", &m.value, formats.value),
    ] {
        let decoded = match bytes {
            None => None,
            Some(b) if !format.uses_registry() => Some(b.clone()),
            Some(b) => {
                let (id, text) = decode_one(b, format, schemas)
                    .map_err(|e| format!("{which} ({} format): {e}", format.as_str()))?;
                out.headers.push(Header {
                    key: format!("smt.{which}.schema-id"),
                    value: Some(id.to_string().into_bytes()),
                });
                Some(text)
            }
        };
        match which {
            "key" => out.key = decoded,
            _ => out.value = decoded,
        }
    }
    Ok(out)
}

/// One framed key or value → (schema id, `{"schema":…,"payload":…}` text).
fn decode_one(
    bytes: &[u8],
    format: Format,
    schemas: &std::collections::HashMap<u32, Arc<Entry>>,
) -> Result<(u32, Vec<u8>), String> {
    let framed = wire::split(bytes)?;
    let id = framed.schema_id;
    let entry = schemas
        .get(&id)
        .expect("every id of the batch was looked up");
    let compiled = entry.as_ref().as_ref().map_err(Clone::clone)?;
    let (connect, payload): (&str, Value) = match (compiled, format) {
        (Compiled::Avro(s), Format::Avro) => (&s.connect_schema, s.decode(framed.data)?),
        (Compiled::Json(s), Format::JsonSchema) => (&s.connect_schema, s.decode(framed.data)?),
        (Compiled::Proto(s), Format::Protobuf) => s.decode(framed.data)?,
        (Compiled::Avro(_), _) => return Err(format!("schema {id} is an Avro schema")),
        (Compiled::Json(_), _) => return Err(format!("schema {id} is a JSON Schema")),
        (Compiled::Proto(_), _) => return Err(format!("schema {id} is a Protobuf schema")),
    };
    Ok((id, envelope(connect, &payload)))
}

/// `{"schema":<schema>,"payload":<payload>}` as bytes.
fn envelope(schema: &str, payload: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(schema.len() + 256);
    out.extend_from_slice(b"{\"schema\":");
    out.extend_from_slice(schema.as_bytes());
    out.extend_from_slice(b",\"payload\":");
    serde_json::to_writer(&mut out, payload).expect("a JSON value serialises");
    out.push(b'}');
    out
}

/// Schemas from files, for `smt test --schemas DIR` (no registry): `DIR/<id>.json`
/// holds what the registry answers to `GET /schemas/ids/<id>`
/// (`{"schema": "...", "schemaType": "JSON"}`; `PROTOBUF`; no `schemaType`: Avro).
pub struct SchemaDir {
    entries: HashMap<u32, Arc<Entry>>,
}

impl SchemaDir {
    pub fn open(dir: &std::path::Path) -> anyhow::Result<SchemaDir> {
        let mut entries = HashMap::new();
        let list = std::fs::read_dir(dir)
            .map_err(|e| anyhow::anyhow!("--schemas {}: {e}", dir.display()))?;
        for f in list {
            let path = f?.path();
            let Some(id) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".json"))
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            let text = std::fs::read_to_string(&path)?;
            let raw = client::RawSchema::from_response(&text)
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            entries.insert(id, Arc::new(compile(id, &raw)));
        }
        Ok(SchemaDir { entries })
    }

    /// Decodes the key and the value of `m` that are in the Confluent wire
    /// format (first byte `0x00`), each by the type of its schema; other
    /// bytes stay as they are.
    pub fn decode(&self, m: &Message) -> Result<Message, String> {
        let format = |b: &Option<Vec<u8>>| -> Format {
            let id = b.as_deref().and_then(wire::schema_id);
            match id.and_then(|id| self.entries.get(&id)).map(|e| e.as_ref()) {
                Some(Ok(Compiled::Json(_))) => Format::JsonSchema,
                Some(Ok(Compiled::Proto(_))) => Format::Protobuf,
                Some(_) => Format::Avro,
                None if id.is_some() => Format::Avro, // unknown id: says so
                None => Format::Raw,
            }
        };
        let formats = Formats {
            key: format(&m.key),
            value: format(&m.value),
        };
        let mut schemas = self.entries.clone();
        for b in [&m.key, &m.value].into_iter().flatten() {
            if let Some(id) = wire::schema_id(b) {
                schemas.entry(id).or_insert_with(|| {
                    Arc::new(Err(format!(
                        "schema id {id} is not in the --schemas directory"
                    )))
                });
            }
        }
        decode_message(m, formats, &schemas)
    }
}

#[cfg(test)]
mod tests;
