//! The secured Kafka broker of the security tests (`scripts/services start
//! kafka-secure`): SASL_SSL (SCRAM-SHA-512/256, PLAIN, unsecured OAUTHBEARER)
//! and SSL with required client certificates, its throwaway CA and client
//! certificates, and a PLAINTEXT listener the harness uses to create topics
//! and produce test data (with any compression codec).
//!
//! [`secure_kafka`] starts one broker per test binary, in a run directory of
//! its own; the watcher of `scripts/services` stops it when the binary exits.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::ClientConfig;

use serde_json::{json, Value};

use crate::config::ConfigBuilder;
use crate::services::Services;

/// The running secured broker and the material its clients need.
pub struct SecureKafka {
    /// The run directory's services (kept alive for the binary's lifetime).
    _services: Services,
    /// `host:port` of the SASL_SSL listener.
    pub sasl_ssl: String,
    /// `host:port` of the SSL listener (client certificate required).
    pub ssl: String,
    /// `host:port` of the PLAINTEXT listener (harness only).
    pub plaintext: String,
    /// The directory of `ca.pem`, `client.pem`, `client.key`, `other-ca.pem`, …
    pub material: PathBuf,
    pub scram_user: String,
    pub scram_password: String,
    pub plain_user: String,
    pub plain_password: String,
    pub client_key_password: String,
    /// The broker's log.
    pub log: PathBuf,
    mongo: OnceLock<SecureMongo>,
}

/// The MongoDB-protocol server with TLS and SCRAM (`scripts/services start mongo-secure`).
pub struct SecureMongo {
    /// `mongodb://127.0.0.1:P/?tls=true&tlsCAFile=…`, without credentials.
    pub uri: String,
    pub user: String,
    /// Holds `/`, `?`, `@` and `:` on purpose.
    pub password: String,
    /// The file holding the password.
    pub password_file: String,
}

static SECURE: OnceLock<SecureKafka> = OnceLock::new();

/// The secured broker of this test binary (started on first use).
pub fn secure_kafka() -> &'static SecureKafka {
    SECURE.get_or_init(|| SecureKafka::start().expect("starting the secured Kafka broker"))
}

impl SecureKafka {
    fn start() -> Result<SecureKafka> {
        let services = Services::private(&[])?;
        let out = services.run_script(&["start", "kafka-secure"])?;
        let env: std::collections::HashMap<&str, &str> =
            out.lines().filter_map(|l| l.split_once('=')).collect();
        let get = |k: &str| {
            env.get(k)
                .map(|v| v.to_string())
                .ok_or_else(|| anyhow!("scripts/services start kafka-secure printed no {k}: {out}"))
        };
        let material = PathBuf::from(get("SMT_KAFKA_SECURE_DIR")?);
        let info: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(material.join("secure.json")).context("secure.json")?,
        )?;
        let s = |k: &str| info[k].as_str().unwrap_or_default().to_owned();
        Ok(SecureKafka {
            log: services.log_path("kafka-secure"),
            sasl_ssl: get("SMT_KAFKA_SECURE_SASL_SSL")?,
            ssl: get("SMT_KAFKA_SECURE_SSL")?,
            plaintext: get("SMT_KAFKA_SECURE_PLAINTEXT")?,
            scram_user: s("scram_user"),
            scram_password: s("scram_password"),
            plain_user: s("plain_user"),
            plain_password: s("plain_password"),
            client_key_password: s("client_key_password"),
            material,
            _services: services,
            mongo: OnceLock::new(),
        })
    }

    /// The TLS + SCRAM MongoDB-protocol server (started on first use, in the
    /// same run directory, with a certificate of the same CA).
    pub fn mongo(&self) -> &SecureMongo {
        self.mongo.get_or_init(|| {
            let out = self
                ._services
                .run_script(&["start", "mongo-secure"])
                .expect("starting mongo-secure");
            let env: std::collections::HashMap<&str, &str> =
                out.lines().filter_map(|l| l.split_once('=')).collect();
            let dir = PathBuf::from(env["SMT_MONGODB_SECURE_DIR"]);
            let password_file = dir.join("mongo.password");
            let password = std::fs::read_to_string(&password_file)
                .expect("mongo.password")
                .trim_end_matches('\n')
                .to_owned();
            SecureMongo {
                uri: env["SMT_MONGODB_SECURE_URI"].to_owned(),
                user: env["SMT_MONGODB_SECURE_USER"].to_owned(),
                password,
                password_file: password_file.display().to_string(),
            }
        })
    }

    /// A file of the material directory.
    pub fn file(&self, name: &str) -> String {
        self.material.join(name).display().to_string()
    }

    /// Creates `name` with `partitions` partitions (through the PLAINTEXT listener).
    pub fn create_topic(&self, name: &str, partitions: i32) -> Result<()> {
        let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
            .set("bootstrap.servers", &self.plaintext)
            .create()?;
        // A runtime of its own, on a thread of its own: callers may be async tests.
        let results = std::thread::scope(|s| {
            s.spawn(|| -> Result<_> {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()?;
                Ok(rt.block_on(admin.create_topics(
                    &[NewTopic::new(name, partitions, TopicReplication::Fixed(1))],
                    &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
                ))?)
            })
            .join()
            .expect("create_topic thread")
        })?;
        for r in results {
            if let Err((t, e)) = r {
                if e != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    bail!("creating topic {t}: {e}");
                }
            }
        }
        Ok(())
    }

    /// Produces `(key, value)` records to partition 0 of `topic` with
    /// `compression.type = codec` (through the PLAINTEXT listener) and waits
    /// for them to be acknowledged. Batches hold many records, so the codec
    /// really compresses them.
    pub fn produce(
        &self,
        topic: &str,
        codec: &str,
        records: &[(Option<String>, Option<String>)],
    ) -> Result<()> {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &self.plaintext)
            .set("compression.type", codec)
            .set("linger.ms", "50")
            .set("message.timeout.ms", "30000")
            .create()
            .with_context(|| format!("producer with compression.type={codec}"))?;
        for (k, v) in records {
            let mut r: BaseRecord<'_, str, str> = BaseRecord::to(topic).partition(0);
            if let Some(k) = k {
                r = r.key(k.as_str());
            }
            if let Some(v) = v {
                r = r.payload(v.as_str());
            }
            p.send(r)
                .map_err(|(e, _)| anyhow!("producing to {topic}: {e}"))?;
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(30))
            .with_context(|| format!("flushing {topic} ({codec})"))?;
        Ok(())
    }

    /// `[kafka.properties]` of SASL_SSL with SCRAM (`mechanism`
    /// `SCRAM-SHA-512` or `SCRAM-SHA-256`); `password` is text or
    /// `{"env": …}` / `{"file": …}`.
    pub fn scram_properties(&self, mechanism: &str, password: Value) -> Properties {
        vec![
            ("security.protocol".into(), json!("SASL_SSL")),
            ("sasl.mechanism".into(), json!(mechanism)),
            ("sasl.username".into(), json!(self.scram_user)),
            ("sasl.password".into(), password),
            ("ssl.ca.location".into(), json!(self.file("ca.pem"))),
        ]
    }

    /// `[kafka.properties]` of SSL with the client certificate of the CA
    /// (`client`, its key encrypted, the password from a file) or of the
    /// other CA (`other-client`).
    pub fn mtls_properties(&self, client: &str) -> Properties {
        let mut p: Properties = vec![
            ("security.protocol".into(), json!("SSL")),
            ("ssl.ca.location".into(), json!(self.file("ca.pem"))),
            (
                "ssl.certificate.location".into(),
                json!(self.file(&format!("{client}.pem"))),
            ),
            (
                "ssl.key.location".into(),
                json!(self.file(&format!("{client}.key"))),
            ),
        ];
        if client == "client" {
            p.push((
                "ssl.key.password".into(),
                json!({ "file": self.file("client.key.password") }),
            ));
        }
        p
    }
}

/// `[kafka.properties]` entries: (librdkafka name, TOML value as JSON).
pub type Properties = Vec<(String, Value)>;

/// `builder` with `properties` added to `[kafka.properties]`.
pub fn with_properties(mut builder: ConfigBuilder, properties: &Properties) -> ConfigBuilder {
    for (k, v) in properties {
        builder = builder.set(&["kafka", "properties", k], v.clone());
    }
    builder
}

/// Synthetic Debezium change events (JSON converter without schemas) of
/// rows `1..=n`: `{"id", "name", "qty"}` created, then every third updated.
/// Returns the records and the final rows.
pub fn debezium_rows(
    n: i64,
) -> (
    Vec<(Option<String>, Option<String>)>,
    std::collections::BTreeMap<i64, serde_json::Value>,
) {
    use serde_json::json;
    let mut records = Vec::new();
    let mut rows = std::collections::BTreeMap::new();
    let event = |op: &str, row: &serde_json::Value| {
        json!({"before": null, "after": row, "op": op, "ts_ms": 1_700_000_000_000i64}).to_string()
    };
    for id in 1..=n {
        // Compressible, not trivially: a name with the id repeated.
        let row = json!({"id": id, "name": format!("row {id} {}", "x".repeat((id % 40) as usize)), "qty": id});
        records.push((Some(json!({"id": id}).to_string()), Some(event("c", &row))));
        rows.insert(id, row);
    }
    for id in (1..=n).filter(|i| i % 3 == 0) {
        let row = json!({"id": id, "name": format!("updated {id}"), "qty": id * 10});
        records.push((Some(json!({"id": id}).to_string()), Some(event("u", &row))));
        rows.insert(id, row);
    }
    (records, rows)
}
