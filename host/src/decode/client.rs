//! The schema registry client: `GET <url>/schemas/ids/<id>` of the
//! Confluent API, with basic authentication, TLS, a request timeout, failover
//! over several URLs, and a bounded cache by id (a schema id never changes
//! meaning, so a cached schema is never fetched again).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use crate::config::{SchemaRegistryConfig, Secret};
use crate::telemetry::Metrics;

/// Why a schema could not be had.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// The registry says it has no schema with this id (404, error code 40403):
    /// the record is bad input.
    UnknownId(String),
    /// The registry could not be asked or refused (unreachable, timeout, 5xx,
    /// 401/403, an unexpected answer): retried, never blamed on the record.
    Transient(String),
}

/// What the registry returns for an id.
#[derive(Debug, Deserialize)]
struct SchemaResponse {
    schema: String,
    #[serde(default, rename = "schemaType")]
    schema_type: Option<String>,
    #[serde(default)]
    references: Vec<serde_json::Value>,
}

/// A schema as the registry holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawSchema {
    /// `AVRO` (when the registry leaves it out), `JSON` or `PROTOBUF`.
    pub schema_type: String,
    pub text: String,
    /// Whether it refers to other subjects (not supported).
    pub has_references: bool,
}

impl RawSchema {
    /// From the JSON the registry answers to `GET /schemas/ids/<id>`.
    pub fn from_response(text: &str) -> Result<RawSchema, String> {
        let r: SchemaResponse = serde_json::from_str(text)
            .map_err(|e| format!("not a registry schema response: {e}"))?;
        Ok(RawSchema {
            schema_type: r.schema_type.unwrap_or_else(|| "AVRO".into()),
            text: r.schema,
            has_references: !r.references.is_empty(),
        })
    }
}

pub struct Client {
    http: reqwest::Client,
    urls: Vec<String>,
    auth: Option<Secret>,
}

impl Client {
    pub fn new(c: &SchemaRegistryConfig) -> anyhow::Result<Client> {
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .timeout(Duration::from_millis(c.request_timeout_ms))
            .connect_timeout(Duration::from_millis(c.request_timeout_ms.min(5_000)));
        if let Some(ca) = &c.ca_file {
            let pem = std::fs::read(ca).map_err(|e| {
                anyhow::anyhow!("schema-registry.ca-file: cannot read {}: {e}", ca.display())
            })?;
            for cert in reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("schema-registry.ca-file: {}: {e}", ca.display()))?
            {
                b = b.add_root_certificate(cert);
            }
        }
        if let (Some(cert), Some(key)) = (&c.cert_file, &c.key_file) {
            let mut pem = std::fs::read(cert).map_err(|e| {
                anyhow::anyhow!(
                    "schema-registry.cert-file: cannot read {}: {e}",
                    cert.display()
                )
            })?;
            pem.push(b'\n');
            pem.extend(std::fs::read(key).map_err(|e| {
                anyhow::anyhow!(
                    "schema-registry.key-file: cannot read {}: {e}",
                    key.display()
                )
            })?);
            b = b.identity(reqwest::Identity::from_pem(&pem).map_err(|e| {
                anyhow::anyhow!(
                    "schema-registry.cert-file/key-file: not a usable PEM certificate and key: {e}"
                )
            })?);
        }
        let auth = match (&c.user_info, &c.user_info_file) {
            (Some(s), _) => Some(s.clone()),
            (None, Some(f)) => {
                let text = std::fs::read_to_string(f).map_err(|e| {
                    anyhow::anyhow!(
                        "schema-registry.user-info-file: cannot read {}: {e}",
                        f.display()
                    )
                })?;
                Some(Secret::new(text.trim().to_owned()))
            }
            (None, None) => None,
        };
        if let Some(a) = &auth {
            if !a.expose().contains(':') {
                anyhow::bail!("schema-registry.user-info: expected `user:password`");
            }
        }
        Ok(Client {
            http: b.build().map_err(|e| {
                anyhow::anyhow!("schema-registry: cannot build the HTTP client: {e}")
            })?,
            urls: c
                .url
                .list()
                .into_iter()
                .map(|u| u.trim_end_matches('/').to_owned())
                .collect(),
            auth,
        })
    }

    /// Asks each URL in turn until one answers.
    pub async fn fetch(&self, id: u32) -> Result<RawSchema, FetchError> {
        let mut errors = Vec::new();
        for url in &self.urls {
            match self.fetch_from(url, id).await {
                Ok(s) => return Ok(s),
                Err(FetchError::UnknownId(m)) => return Err(FetchError::UnknownId(m)),
                Err(FetchError::Transient(m)) => errors.push(m),
            }
        }
        Err(FetchError::Transient(errors.join("; ")))
    }

    async fn fetch_from(&self, url: &str, id: u32) -> Result<RawSchema, FetchError> {
        let endpoint = format!("{url}/schemas/ids/{id}");
        let mut req = self.http.get(&endpoint).header(
            "Accept",
            "application/vnd.schemaregistry.v1+json, application/json",
        );
        if let Some(a) = &self.auth {
            req = req.header(
                "Authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(a.expose())
                ),
            );
        }
        let t = |m: String| FetchError::Transient(format!("schema registry {endpoint}: {m}"));
        let resp = req.send().await.map_err(|e| t(error_chain(&e)))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| t(error_chain(&e)))?;
        if status.as_u16() == 404 {
            // Confluent: {"error_code":40403,"message":"Schema 7 not found"}; any other
            // 404 (a wrong base URL) is not about the record.
            let code = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error_code").and_then(|c| c.as_i64()));
            if code == Some(40403) {
                return Err(FetchError::UnknownId(format!(
                    "schema id {id} is unknown to the schema registry ({endpoint}: 404, error code 40403)"
                )));
            }
        }
        if status.as_u16() == 401 || status.as_u16() == 403 {
            return Err(t(format!(
                "{status}: the registry refused the credentials (schema-registry.user-info)"
            )));
        }
        if !status.is_success() {
            let text = String::from_utf8_lossy(&body);
            let text: String = text.chars().take(200).collect();
            return Err(t(format!("{status}: {text}")));
        }
        RawSchema::from_response(&String::from_utf8_lossy(&body))
            .map_err(|e| t(format!("unexpected answer ({e})")))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        s.push_str(": ");
        s.push_str(&x.to_string());
        src = x.source();
    }
    s
}

/// A bounded map by id; when full, the entry cached first goes.
pub struct Cache<T> {
    inner: Mutex<(HashMap<u32, Arc<T>>, VecDeque<u32>)>,
    capacity: usize,
    metrics: Arc<Metrics>,
}

impl<T> Cache<T> {
    pub fn new(capacity: usize, metrics: Arc<Metrics>) -> Self {
        Cache {
            inner: Mutex::default(),
            capacity: capacity.max(1),
            metrics,
        }
    }

    /// A cached entry (counted as a hit or a miss).
    pub fn get(&self, id: u32) -> Option<Arc<T>> {
        let got = self.inner.lock().expect("cache lock").0.get(&id).cloned();
        self.metrics
            .schema_cache
            .get_or_create(&[(
                "outcome",
                if got.is_some() { "hit" } else { "miss" }.to_owned(),
            )])
            .inc();
        got
    }

    pub fn insert(&self, id: u32, value: Arc<T>) {
        let mut g = self.inner.lock().expect("cache lock");
        let (map, order) = &mut *g;
        if map.insert(id, value).is_none() {
            order.push_back(id);
        }
        while map.len() > self.capacity {
            match order.pop_front() {
                Some(old) => {
                    map.remove(&old);
                }
                None => break,
            }
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.inner.lock().expect("cache lock").0.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cache_is_bounded_and_counts() {
        let metrics = Arc::new(Metrics::new());
        let c = Cache::new(2, metrics.clone());
        c.insert(1, Arc::new("a"));
        c.insert(2, Arc::new("b"));
        c.insert(1, Arc::new("a2"));
        assert_eq!(c.len(), 2);
        c.insert(3, Arc::new("c"));
        assert_eq!(c.len(), 2);
        assert!(c.get(1).is_none(), "the first cached goes first");
        assert_eq!(*c.get(3).unwrap(), "c");
        let hits = metrics
            .schema_cache
            .get_or_create(&[("outcome", "hit".to_owned())])
            .get();
        assert_eq!(hits, 1);
    }
}
