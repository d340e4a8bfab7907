//! The `smt run` configuration: one TOML file, every key overridable from the
//! environment, validated at load. `docs/configuration.md` is the reference
//! and follows the doc comments here.
//!
//! Environment overrides: `SMT_<SECTION>__<KEY>[__<KEY>…]=value`, e.g.
//! `SMT_KAFKA__BROKERS=host:9092`, `SMT_PIPELINE__MAX_BATCH_SIZE=1000`,
//! `SMT_ROUTES__0__ON_ERROR=skip`, `SMT_KAFKA__PROPERTIES__FETCH_MAX_BYTES=1048576`.
//! Path segments are lower-cased and `_` becomes `-`, except below a
//! `properties`/`options` table where `_` becomes `.` (librdkafka names). The
//! value is read as a TOML value when it parses as one (`42`, `true`,
//! `["a","b"]`), as a string otherwise. Variables without `__` are not
//! overrides (`SMT_LOG`, `SMT_KAFKA_BROKERS` of the test harness).

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

mod env;
mod secret;
mod validate;

pub use secret::{is_secret_key, redact_uri, redact_value, Properties, Secret, ValueSource};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Config {
    /// Kafka consumer settings.
    pub kafka: KafkaConfig,
    /// MongoDB sink settings.
    pub mongodb: MongoConfig,
    /// Batching, commits and retries.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// The dead-letter topic (needed when a route's `on-error` is `dlq`).
    #[serde(default)]
    pub dlq: Option<DlqConfig>,
    /// Wasm engine settings: per-instance limits and the compile cache.
    #[serde(default)]
    pub engine: EngineConfig,
    /// The admin HTTP endpoint (`/metrics`, `/health`, `/ready`, `/transforms`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// Hot swap of transforms: file watch and validation (docs/hot-swap.md).
    #[serde(default)]
    pub hot_swap: HotSwapConfig,
    /// The Confluent-compatible schema registry that routes with an `avro`,
    /// `json-schema` or `protobuf` key or value format read their schemas
    /// from (docs/schema-registry.md).
    #[serde(default)]
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// The status report (`GET /status`, the status page, `smt status`):
    /// when a partition counts as stalled, the catch-up progress log.
    #[serde(default)]
    pub status: StatusConfig,
    /// The transforms, by name.
    pub transforms: BTreeMap<String, TransformConfig>,
    /// Which topics go to which transform, and what happens to records that fail.
    pub routes: Vec<RouteConfig>,
}

/// `[kafka]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port` (librdkafka `bootstrap.servers`).
    pub brokers: String,
    /// Consumer group id. Processes with the same group id share the partitions.
    pub group_id: String,
    /// Where a group with no committed offset starts: `earliest` or `latest`.
    #[serde(default = "default_offset_reset")]
    pub auto_offset_reset: String,
    /// librdkafka properties of every Kafka client of `smt` (the consumer, the
    /// DLQ producer, `smt doctor`), passed verbatim: security
    /// (`"security.protocol" = "SASL_SSL"`, `sasl.*`, `ssl.*`), timeouts,
    /// fetch sizes (docs/kafka.md). A value is text, or read at load from
    /// the environment (`{ env = "KAFKA_PASSWORD" }`) or a file
    /// (`{ file = "/run/secrets/kafka" }`); secret values (`sasl.password`,
    /// `ssl.key.password`, `sasl.oauthbearer.client.secret`, …) are printed as
    /// `***`. Keys that `smt` manages itself (`group.id`, `bootstrap.servers`,
    /// `enable.auto.commit`, `enable.auto.offset.store`) are rejected.
    #[serde(default)]
    pub properties: Properties,
}

/// `[mongodb]`. `Debug` prints the URI redacted.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct MongoConfig {
    /// Connection string. Credentials in it are never logged.
    pub uri: String,
    /// Database of operations whose namespace names none.
    pub database: String,
    /// User name, instead of one in `uri` (percent-encoded into it by `smt`).
    #[serde(default)]
    pub username: Option<String>,
    /// Password of `username`: text, `{ env = "VAR" }` or `{ file = "path" }`.
    /// Never printed.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Extra client options appended to the connection string verbatim
    /// (`maxPoolSize = "20"`, `serverSelectionTimeoutMS = "5000"`,
    /// `tls = "true"`, `tlsCAFile = "/etc/ssl/mongo-ca.pem"`,
    /// `tlsCertificateKeyFile = "client.pem"`, `authSource = "admin"`,
    /// `authMechanism = "SCRAM-SHA-256"`). Values as in `[kafka.properties]`:
    /// text, `{ env }` or `{ file }`; secret ones are printed as `***`.
    #[serde(default)]
    pub options: Properties,
    /// Write concern of the bulk writes.
    #[serde(default)]
    pub write_concern: WriteConcernConfig,
    /// Which bulk-write API to use: `auto` (the server's multi-namespace
    /// `bulkWrite` when it reports wire version 25 or later, MongoDB 8.0+;
    /// per-collection ordered writes otherwise), `client` or `collection`.
    #[serde(default)]
    pub bulk_api: BulkApi,
    /// Where transforms may write (and read through an aggregate's
    /// `$lookup`/`$unionWith`): `db` (any collection of it), `db.coll`,
    /// `db.*`, or `*` (anything). Default: `database` only. An operation
    /// outside fails its record with `forbidden-namespace`.
    #[serde(default)]
    pub allowed_namespaces: Vec<String>,
}

impl fmt::Debug for MongoConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MongoConfig")
            .field("uri", &redact_uri(&self.uri))
            .field("database", &self.database)
            .field("username", &self.username)
            .field("password", &self.password)
            .field("options", &self.options)
            .field("write_concern", &self.write_concern)
            .field("bulk_api", &self.bulk_api)
            .finish()
    }
}

/// `[mongodb.write-concern]`
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct WriteConcernConfig {
    /// `w`: a number of nodes (`1`) or a tag such as `"majority"`. Default:
    /// `"majority"` (an acknowledged write, and the offset committed after
    /// it, survive a failover).
    #[serde(default)]
    pub w: Option<WValue>,
    /// `j`: wait for the journal.
    #[serde(default)]
    pub journal: Option<bool>,
    /// `wtimeout` in milliseconds; a write concern timeout is retried.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
}

/// A write concern `w`: nodes or a tag.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum WValue {
    Nodes(u32),
    Tag(String),
}

#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum BulkApi {
    #[default]
    Auto,
    Client,
    Collection,
}

/// `[pipeline]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct PipelineConfig {
    /// Most records in one batch (one bulk write) of one partition.
    pub max_batch_size: usize,
    /// How long a partition waits for more records before writing a partial batch, in ms.
    pub linger_ms: u64,
    /// Records buffered per partition before the partition is paused (backpressure).
    pub queue_capacity: usize,
    /// How often stored offsets are committed, in ms (also on revoke and shutdown).
    pub commit_interval_ms: u64,
    /// Retries of a transient MongoDB or Kafka error before giving up; 0: retry forever.
    pub max_retries: u32,
    /// First retry delay, in ms; doubled on each retry up to `retry-backoff-max-ms`.
    pub retry_backoff_ms: u64,
    /// Cap of the retry delay, in ms.
    pub retry_backoff_max_ms: u64,
    /// On SIGTERM/SIGINT, how long the batches in flight may take to finish, in ms.
    pub shutdown_timeout_ms: u64,
    /// The breaker: stop the pipeline (without skipping, dead-lettering or
    /// committing) when more than this percentage of a partition's last
    /// `breaker-window` records failed. 0 turns it off.
    pub breaker_percent: u32,
    /// Records the breaker looks at (per partition).
    pub breaker_window: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            max_batch_size: 1000,
            linger_ms: 20,
            queue_capacity: 4000,
            commit_interval_ms: 1000,
            max_retries: 0,
            retry_backoff_ms: 100,
            retry_backoff_max_ms: 10_000,
            shutdown_timeout_ms: 30_000,
            breaker_percent: 50,
            breaker_window: 1000,
        }
    }
}

/// `[dlq]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DlqConfig {
    /// Topic the failed records are produced to (it must exist).
    pub topic: String,
    /// Extra librdkafka properties of the DLQ producer (on top of
    /// `[kafka.properties]`); values as there.
    #[serde(default)]
    pub properties: Properties,
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct AdminConfig {
    /// Serve the admin endpoint.
    pub enabled: bool,
    /// Listen address. Loopback by default. On any other address `token` is required.
    pub listen: SocketAddr,
    /// Bearer token required by every transform management route, reads
    /// and writes (`Authorization: Bearer <token>`); set it from the
    /// environment (`SMT_ADMIN__TOKEN`, or `token = { env = "VAR" }` /
    /// `{ file = "path" }`) rather than in the file. Never logged.
    pub token: Option<Secret>,
    /// Without a token, let anyone who can reach the (loopback) listener
    /// deploy, roll back and reconfigure transforms. Off: without a token
    /// the transform routes are read-only.
    pub allow_unauthenticated_writes: bool,
    /// Host names accepted in the `Host` header besides IP addresses and
    /// `localhost` (e.g. a Kubernetes service name). Any other name is
    /// refused: a browser tricked by DNS rebinding sends the attacker's.
    pub allowed_hosts: Vec<String>,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
            token: None,
            allow_unauthenticated_writes: false,
            allowed_hosts: Vec::new(),
        }
    }
}

/// `[transforms.<name>]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct TransformConfig {
    /// Path of the component (`.wasm`), relative to the config file's directory.
    pub module: PathBuf,
    /// The transform's config, handed to its `init` as JSON (a TOML table here).
    #[serde(default)]
    pub config: Option<toml::Value>,
    /// A JSON file holding the transform's config instead of `config`.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// Record lines (the format of `smt test --input`) every new version of
    /// this transform must handle before it is activated (docs/hot-swap.md).
    #[serde(default)]
    pub sample_file: Option<PathBuf>,
}

/// `[status]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct StatusConfig {
    /// A partition is *stalled* when its acknowledged offset has not moved
    /// for this long while it has lag, or when it has been paused (queue
    /// full) this long without a break, in ms. A stalled partition makes
    /// `/ready` answer 503, shows in `smt_stalled_partitions`, in
    /// `GET /status` and makes `smt status` exit 1.
    pub stall_timeout_ms: u64,
    /// While a route's lag is at least this many records (a snapshot being
    /// loaded), `smt run` logs a catch-up progress line for the route
    /// every `progress-interval-ms`. 0 turns the lines off.
    pub progress_lag: u64,
    /// How often the catch-up progress line is logged, in ms.
    pub progress_interval_ms: u64,
    /// How many of the last record failures `GET /status` keeps (with
    /// topic, partition, offset and cause).
    pub recent_errors: usize,
}

/// The default `[status]` stall timeout: two minutes.
const fn default_stall_timeout_ms() -> u64 {
    120_000
}

impl Default for StatusConfig {
    fn default() -> Self {
        StatusConfig {
            stall_timeout_ms: default_stall_timeout_ms(),
            progress_lag: 10_000,
            progress_interval_ms: 5_000,
            recent_errors: 50,
        }
    }
}

/// `[[routes]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RouteConfig {
    /// The route's name in `GET /status`, `smt status`, `smt reset --route`
    /// and `smt dlq replay --route`. Default: the name of its transform when
    /// no other route uses that transform, else `<transform>-<index>`
    /// (index in `[[routes]]`, from 0).
    #[serde(default)]
    pub name: Option<String>,
    /// Topic names consumed by this route.
    #[serde(default)]
    pub topics: Vec<String>,
    /// A regular expression of topic names (subscribed as a pattern; anchored).
    #[serde(default)]
    pub topic_pattern: Option<String>,
    /// Name of the transform (a key of `[transforms]`).
    pub transform: String,
    /// What happens to a record that fails (transform error, trap, timeout,
    /// invalid operation, permanent write error): `dlq`, `skip` or `fail`.
    #[serde(default)]
    pub on_error: ErrorPolicy,
    /// Write the batches of all this route's partitions one at a time instead
    /// of concurrently (in this process). Transforms whose operations read
    /// what other partitions write, such as the relational mapper's
    /// server-side rebuilds, need it.
    #[serde(default)]
    pub serial_writes: bool,
    /// How record keys are encoded: `json` (the JSON converter; handed to the
    /// transform as they are), `avro`, `json-schema` or `protobuf` (the
    /// Confluent wire format, decoded with the `[schema-registry]` and handed
    /// to the transform as the JSON converter with `schemas.enable=true`
    /// would have written them), or `raw` (bytes as they are).
    #[serde(default)]
    pub key_format: Format,
    /// How record values are encoded; as `key-format`.
    #[serde(default)]
    pub value_format: Format,
}

/// The encoding of a record key or value (`key-format`, `value-format`).
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// JSON text as the JSON converter writes it: passed through.
    #[default]
    Json,
    /// Confluent wire format, Avro binary.
    Avro,
    /// Confluent wire format, JSON text validated by a JSON Schema.
    JsonSchema,
    /// Confluent wire format, Protobuf binary with message indexes.
    Protobuf,
    /// Bytes as they are, whatever they hold.
    Raw,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Avro => "avro",
            Format::JsonSchema => "json-schema",
            Format::Protobuf => "protobuf",
            Format::Raw => "raw",
        }
    }

    /// Whether records of this format carry a schema id to look up.
    pub fn uses_registry(self) -> bool {
        matches!(self, Format::Avro | Format::JsonSchema | Format::Protobuf)
    }
}

/// `[schema-registry]`: a Confluent-compatible Schema Registry (Confluent,
/// Apicurio's `/apis/ccompat/v7`, Karapace, Redpanda).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct SchemaRegistryConfig {
    /// Base URL of the API, or several (tried in turn when one is unreachable),
    /// e.g. `"https://sr.example.com"` or `["http://a:8081", "http://b:8081"]`.
    pub url: Urls,
    /// Basic authentication `user:password`. Set it from the environment
    /// (`SMT_SCHEMA_REGISTRY__USER_INFO`) or `user-info-file`, not in the file.
    /// Never logged.
    #[serde(default)]
    pub user_info: Option<Secret>,
    /// A file holding `user:password` (surrounding whitespace ignored).
    #[serde(default)]
    pub user_info_file: Option<PathBuf>,
    /// PEM file of the CA certificate(s) that sign the registry's certificate
    /// (added to the system's roots).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM file of the client certificate (mutual TLS); needs `key-file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Timeout of one request to the registry, in ms.
    #[serde(default = "default_registry_timeout_ms")]
    pub request_timeout_ms: u64,
    /// Most schemas kept in memory, by id (the least recently fetched is
    /// dropped first). Schemas are immutable per id: a hit never asks the registry.
    #[serde(default = "default_schema_cache_capacity")]
    pub cache_capacity: usize,
}

/// One URL or several.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged)]
pub enum Urls {
    One(String),
    Many(Vec<String>),
}

impl Urls {
    pub fn list(&self) -> Vec<String> {
        match self {
            Urls::One(u) => vec![u.clone()],
            Urls::Many(v) => v.clone(),
        }
    }
}

fn default_registry_timeout_ms() -> u64 {
    10_000
}

fn default_schema_cache_capacity() -> usize {
    1_000
}

/// Which topics a route takes: its `topics`, or its `topic-pattern`
/// anchored at both ends (the consumer subscribes to the same anchored
/// pattern).
#[derive(Debug, Clone)]
pub enum TopicMatcher {
    Topics(Vec<String>),
    Pattern(regex::Regex),
}

impl TopicMatcher {
    pub fn new(route: &RouteConfig) -> Result<Self, regex::Error> {
        Ok(match &route.topic_pattern {
            Some(p) => TopicMatcher::Pattern(regex::Regex::new(&format!(
                "^(?:{})$",
                p.trim_start_matches('^').trim_end_matches('$')
            ))?),
            None => TopicMatcher::Topics(route.topics.clone()),
        })
    }

    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicMatcher::Topics(t) => t.iter().any(|t| t == topic),
            TopicMatcher::Pattern(p) => p.is_match(topic),
        }
    }
}

impl Config {
    /// The name of every route, in `[[routes]]` order (see `RouteConfig::name`).
    pub fn route_names(&self) -> Vec<String> {
        self.routes
            .iter()
            .enumerate()
            .map(|(i, r)| match &r.name {
                Some(n) => n.clone(),
                None if self
                    .routes
                    .iter()
                    .filter(|o| o.transform == r.transform)
                    .count()
                    == 1 =>
                {
                    r.transform.clone()
                }
                None => format!("{}-{i}", r.transform),
            })
            .collect()
    }
}

/// Per-record failure policy.
#[derive(Debug, Clone, Copy, Deserialize, Default, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorPolicy {
    /// Produce the original record to the DLQ topic with error headers, continue.
    Dlq,
    /// Log and count the record, continue.
    Skip,
    /// Stop without committing past the record; `smt` exits non-zero.
    #[default]
    Fail,
}

impl ErrorPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorPolicy::Dlq => "dlq",
            ErrorPolicy::Skip => "skip",
            ErrorPolicy::Fail => "fail",
        }
    }
}

/// Settings of the Wasm engine (the `[engine]` table of the configuration).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct EngineConfig {
    /// Limits applied to every transform instance.
    pub limits: Limits,
    /// Directory of compiled components. Default: `$XDG_CACHE_HOME/smt/compiled`
    /// (or `~/.cache/smt/compiled`). Compiling once per module version and
    /// engine build makes restarts load in milliseconds.
    pub cache_dir: Option<PathBuf>,
    /// Disable the compile cache (every load compiles).
    pub no_cache: bool,
}

/// Limits applied to every instance of every transform.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Limits {
    /// Most memory an instance may hold, in MiB: all its linear memories
    /// plus its tables (a pointer per element), together. JavaScript guests
    /// keep a ~100 MiB heap: give them at least 128.
    pub memory_mib: u64,
    /// Most core instances one transform instance may create (a component is
    /// several: its modules, adapters, shims). A Python guest uses about a dozen.
    pub max_instances: usize,
    /// Most linear memories one transform instance may create. Each reserves
    /// gigabytes of address space, so a guest declaring thousands of them
    /// could exhaust it even with little memory committed.
    pub max_memories: usize,
    /// Most tables one transform instance may create.
    pub max_tables: usize,
    /// Lines per second one instance may log through the `log` import, with
    /// a burst of as many; lines above it are dropped and counted
    /// (`smt_guest_log_lines_dropped_total`).
    pub log_lines_per_second: u32,
    /// Wall-clock deadline of one `init` or `transform` call, in milliseconds.
    /// A call past it is interrupted and its instance discarded.
    pub call_timeout_ms: u64,
    /// Largest total size of the documents one `transform` call may return, in bytes.
    pub max_output_bytes: usize,
    /// Most write operations one `transform` call may return.
    pub max_output_ops: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_mib: 256,
            max_instances: 64,
            max_memories: 8,
            max_tables: 16,
            log_lines_per_second: 100,
            call_timeout_ms: 1_000,
            max_output_bytes: 16 << 20,
            max_output_ops: 10_000,
        }
    }
}

/// How many recent records a transform keeps as validation samples, by default.
pub const DEFAULT_RECENT_SAMPLES: usize = 100;

/// `[hot-swap]`: how new transform versions are picked up and validated.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct HotSwapConfig {
    /// Watch every transform's module file and deploy it when it changes.
    pub watch: bool,
    /// How often the module files are checked, in ms. A change is deployed
    /// once the file's content is the same on two consecutive checks.
    pub poll_interval_ms: u64,
    /// How many of the last records each transform handled are kept as
    /// validation samples for the next version (0: none).
    pub recent_samples: usize,
    /// Largest module the admin API accepts, in MiB.
    pub max_module_mib: usize,
    /// Directory where the active and previous version of every transform
    /// (module bytes and config) are kept, so that versions deployed through
    /// the admin API or the file watch survive a restart (docs/hot-swap.md,
    /// "Restarts"). Relative to the config file's directory. Unset: not
    /// kept; a restart starts from the config file.
    pub state_dir: Option<PathBuf>,
}

impl Default for HotSwapConfig {
    fn default() -> Self {
        HotSwapConfig {
            watch: true,
            poll_interval_ms: 500,
            recent_samples: DEFAULT_RECENT_SAMPLES,
            max_module_mib: 256,
            state_dir: None,
        }
    }
}

fn default_offset_reset() -> String {
    "earliest".into()
}

/// A configuration that cannot be used: names the file and the key.
#[derive(Debug)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(
                f,
                "config {}: `{}`: {}",
                self.file.display(),
                key,
                self.message
            ),
            None => write!(f, "config {}: {}", self.file.display(), self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads `path`, applies the `SMT_…__…` overrides of the process environment, validates.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::load_with_env(path, std::env::vars())
    }

    pub fn load_with_env(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let err = |key: Option<String>, message: String| ConfigError {
            file: path.to_owned(),
            key,
            message,
        };
        let text =
            std::fs::read_to_string(path).map_err(|e| err(None, format!("cannot read it: {e}")))?;
        let mut value: toml::Value = toml::from_str(&text).map_err(|e| {
            let message = e.message().to_owned();
            let line = e.span().map(|s| text[..s.start].lines().count().max(1));
            err(
                None,
                match line {
                    Some(l) => format!("invalid TOML at line {l}: {message}"),
                    None => format!("invalid TOML: {message}"),
                },
            )
        })?;
        let env: Vec<(String, String)> = env.into_iter().collect();
        let mut from_env = BTreeMap::new();
        for (name, raw) in env.iter().cloned() {
            let Some(rest) = name.strip_prefix("SMT_") else {
                continue;
            };
            if !rest.contains("__") {
                continue;
            }
            let key = env::apply_override(&mut value, rest, &raw)
                .map_err(|m| err(Some(name.clone()), m))?;
            from_env.insert(key, name);
        }
        let mut config: Config = serde_path_to_error::deserialize(value).map_err(|e| {
            let key = e.path().to_string();
            let mut message = e
                .inner()
                .to_string()
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            if let Some(var) = from_env.get(&key) {
                message.push_str(&format!(" (set by the environment variable {var})"));
            }
            err((key != ".").then_some(key), message)
        })?;
        let base = path.parent().unwrap_or(Path::new("."));
        config.resolve_paths(base);
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        config
            .resolve_values(base, &env)
            .map_err(|(key, m)| err(Some(key), m))?;
        config.validate().map_err(|(key, m)| err(Some(key), m))?;
        Ok(config)
    }

    /// Reads the `{ env }` / `{ file }` values (secrets) of every section.
    fn resolve_values(
        &mut self,
        base: &Path,
        env: &std::collections::HashMap<String, String>,
    ) -> Result<(), (String, String)> {
        self.kafka
            .properties
            .resolve("kafka.properties", base, env)?;
        if let Some(d) = &mut self.dlq {
            d.properties.resolve("dlq.properties", base, env)?;
        }
        self.mongodb.options.resolve("mongodb.options", base, env)?;
        if let Some(p) = &mut self.mongodb.password {
            secret::resolve_secret(p, "mongodb.password", base, env)?;
        }
        if let Some(t) = &mut self.admin.token {
            secret::resolve_secret(t, "admin.token", base, env)?;
        }
        Ok(())
    }

    fn resolve_paths(&mut self, base: &Path) {
        if let Some(dir) = &mut self.hot_swap.state_dir {
            if dir.is_relative() {
                *dir = base.join(&*dir);
            }
        }
        for t in self.transforms.values_mut() {
            if t.module.is_relative() {
                t.module = base.join(&t.module);
            }
            for f in [&mut t.config_file, &mut t.sample_file]
                .into_iter()
                .flatten()
            {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
        if let Some(r) = &mut self.schema_registry {
            for f in [
                &mut r.user_info_file,
                &mut r.ca_file,
                &mut r.cert_file,
                &mut r.key_file,
            ]
            .into_iter()
            .flatten()
            {
                if f.is_relative() {
                    *f = base.join(&*f);
                }
            }
        }
    }

    /// The JSON config text handed to the `init` of transform `name`.
    pub fn transform_config_json(&self, name: &str) -> anyhow::Result<String> {
        let t = &self.transforms[name];
        if let Some(file) = &t.config_file {
            let text = std::fs::read_to_string(file).map_err(|e| {
                anyhow::anyhow!(
                    "transforms.{name}.config-file: cannot read {}: {e}",
                    file.display()
                )
            })?;
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| {
                anyhow::anyhow!(
                    "transforms.{name}.config-file: {} is not JSON: {e}",
                    file.display()
                )
            })?;
            return Ok(text);
        }
        Ok(match &t.config {
            Some(v) => serde_json::to_string(v)?,
            None => "{}".to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[kafka]
brokers = "127.0.0.1:9092"
group-id = "g"
[kafka.properties]
"session.timeout.ms" = "10000"

[mongodb]
uri = "mongodb://u:pw@127.0.0.1:27017"
database = "db"

[dlq]
topic = "dlq"

[transforms.dbz]
module = "t.wasm"
config = { mode = "ok" }

[[routes]]
topics = ["a", "b"]
transform = "dbz"
on-error = "dlq"
"#;

    fn write(text: &str) -> (tempdir::Dir, PathBuf) {
        let dir = tempdir::Dir::new();
        let path = dir.0.join("smt.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    mod tempdir {
        pub struct Dir(pub std::path::PathBuf);
        impl Dir {
            pub fn new() -> Self {
                use std::sync::atomic::{AtomicUsize, Ordering};
                static N: AtomicUsize = AtomicUsize::new(0);
                let p = std::env::temp_dir().join(format!(
                    "smt-config-test-{}-{}",
                    std::process::id(),
                    N.fetch_add(1, Ordering::SeqCst)
                ));
                std::fs::create_dir_all(&p).unwrap();
                Dir(p)
            }
        }
        impl Drop for Dir {
            fn drop(&mut self) {
                let _ = std::fs::remove_dir_all(&self.0);
            }
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn loads_the_sample_and_resolves_paths() {
        let (dir, path) = write(SAMPLE);
        let c = Config::load_with_env(&path, env(&[])).unwrap();
        assert_eq!(c.kafka.properties["session.timeout.ms"], "10000");
        assert_eq!(c.transforms["dbz"].module, dir.0.join("t.wasm"));
        assert_eq!(c.transform_config_json("dbz").unwrap(), r#"{"mode":"ok"}"#);
        assert_eq!(c.routes[0].on_error, ErrorPolicy::Dlq);
        assert_eq!(c.pipeline.max_batch_size, 1000);
    }

    #[test]
    fn the_example_config_is_valid() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/smt.toml");
        Config::load_with_env(&path, env(&[])).unwrap();
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let (_dir, path) = write(&SAMPLE.replace("group-id", "group-idd"));
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("smt.toml"), "{e}");
        assert!(e.contains("kafka"), "{e}");
        assert!(e.contains("group-idd"), "{e}");
    }

    #[test]
    fn env_overrides() {
        let (_dir, path) = write(SAMPLE);
        let c = Config::load_with_env(
            &path,
            env(&[
                ("SMT_KAFKA__BROKERS", "h:1"),
                ("SMT_PIPELINE__MAX_BATCH_SIZE", "7"),
                ("SMT_ROUTES__0__ON_ERROR", "skip"),
                ("SMT_KAFKA__PROPERTIES__FETCH_MAX_BYTES", "1048576"),
                ("SMT_KAFKA_BROKERS", "ignored"),
                ("SMT_LOG", "debug"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.brokers, "h:1");
        assert_eq!(c.pipeline.max_batch_size, 7);
        assert_eq!(c.routes[0].on_error, ErrorPolicy::Skip);
        assert_eq!(c.kafka.properties["fetch.max.bytes"], "1048576");
    }

    #[test]
    fn bad_env_override_names_the_variable() {
        let (_dir, path) = write(SAMPLE);
        let e = Config::load_with_env(&path, env(&[("SMT_PIPELINE__MAX_BATCH_SIZE", "lots")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("SMT_PIPELINE__MAX_BATCH_SIZE"), "{e}");
        assert!(e.contains("max-batch-size"), "{e}");
    }

    #[test]
    fn validation_errors_name_the_key() {
        let (_dir, path) = write(&SAMPLE.replace("transform = \"dbz\"", "transform = \"nope\""));
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("routes[0].transform"), "{e}");
        let (_dir, path) = write(&SAMPLE.replace("\"session.timeout.ms\"", "\"group.id\""));
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("kafka.properties.group.id"), "{e}");
    }

    #[test]
    fn numbers_out_of_range_are_refused_with_their_bounds() {
        for (table, key, bad) in [
            ("engine.limits", "memory-mib", "0"),
            ("engine.limits", "memory-mib", "100000"),
            ("engine.limits", "call-timeout-ms", "0"),
            ("engine.limits", "max-memories", "0"),
            ("engine.limits", "max-output-ops", "0"),
            ("pipeline", "shutdown-timeout-ms", "0"),
            ("pipeline", "max-batch-size", "0"),
            ("hot-swap", "poll-interval-ms", "1"),
        ] {
            let text = format!("{SAMPLE}\n[{table}]\n{key} = {bad}\n");
            let (_dir, path) = write(&text);
            let e = Config::load_with_env(&path, env(&[]))
                .expect_err(&format!("{table}.{key} = {bad} must be refused"))
                .to_string();
            assert!(e.contains(&format!("{table}.{key}")), "{e}");
            assert!(e.contains("out of range"), "{e}");
        }
        let (_dir, path) = write(&format!("{SAMPLE}\n[engine.limits]\nmemory-mib = 4096\n"));
        Config::load_with_env(&path, env(&[])).expect("4 GiB is a valid memory cap");
    }

    #[test]
    fn schema_registry_formats_and_their_checks() {
        let avro = SAMPLE.replace(
            "on-error = \"dlq\"",
            "on-error = \"dlq\"\nkey-format = \"avro\"\nvalue-format = \"json-schema\"",
        );
        // a decoding format needs the section
        let (_dir, path) = write(&avro);
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("routes[0].key-format") && e.contains("[schema-registry]"),
            "{e}"
        );
        let with = avro.clone()
            + "[schema-registry]\nurl = [\"http://a:8081\", \"https://b\"]\nuser-info-file = \"ui\"\n";
        let (dir, path) = write(&with);
        let c = Config::load_with_env(&path, env(&[])).unwrap();
        assert_eq!(c.routes[0].key_format, Format::Avro);
        assert_eq!(c.routes[0].value_format, Format::JsonSchema);
        let r = c.schema_registry.as_ref().unwrap();
        assert_eq!(r.url.list(), ["http://a:8081", "https://b"]);
        assert_eq!(r.user_info_file.as_ref().unwrap(), &dir.0.join("ui"));
        assert_eq!((r.request_timeout_ms, r.cache_capacity), (10_000, 1_000));
        // the password from the environment is never printed
        let one = avro.clone() + "[schema-registry]\nurl = \"http://a:8081\"\n";
        let (_dir, path) = write(&one);
        let c = Config::load_with_env(
            &path,
            env(&[("SMT_SCHEMA_REGISTRY__USER_INFO", "u:s3cret-pw")]),
        )
        .unwrap();
        let r = c.schema_registry.as_ref().unwrap();
        assert_eq!(r.user_info.as_ref().unwrap().expose(), "u:s3cret-pw");
        assert!(!format!("{c:?}").contains("s3cret-pw"));
        // checks
        for (bad, key) in [
            ("url = \"a:8081\"", "schema-registry.url"),
            (
                "url = \"http://a\"\ncert-file = \"c.pem\"",
                "schema-registry.cert-file",
            ),
            (
                "url = \"http://a\"\nuser-info = \"u:p\"\nuser-info-file = \"f\"",
                "schema-registry.user-info",
            ),
            ("url = \"http://a\"\nsurl = 1", "surl"),
        ] {
            let (_dir, path) = write(&(avro.clone() + "[schema-registry]\n" + bad + "\n"));
            let e = Config::load_with_env(&path, env(&[]))
                .unwrap_err()
                .to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
        let (_dir, path) = write(&SAMPLE.replace(
            "on-error = \"dlq\"",
            "on-error = \"dlq\"\nvalue-format = \"protobuf\"",
        ));
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`protobuf` needs a `[schema-registry]` section"),
            "{e}"
        );
    }

    #[test]
    fn a_non_loopback_admin_needs_a_token_that_is_never_printed() {
        let exposed = SAMPLE.to_owned() + "[admin]\nlisten = \"0.0.0.0:9464\"\n";
        let (_dir, path) = write(&exposed);
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("admin.token") && e.contains("0.0.0.0:9464"),
            "{e}"
        );
        let c = Config::load_with_env(&path, env(&[("SMT_ADMIN__TOKEN", "s3cret-t0ken")])).unwrap();
        assert_eq!(c.admin.token.as_ref().unwrap().expose(), "s3cret-t0ken");
        assert!(!format!("{c:?}").contains("s3cret-t0ken"));
        // A token that looks like a number or a date stays a token.
        for token in ["12345678", "1979-05-27"] {
            let c = Config::load_with_env(&path, env(&[("SMT_ADMIN__TOKEN", token)])).unwrap();
            assert_eq!(c.admin.token.as_ref().unwrap().expose(), token);
        }
    }

    #[test]
    fn secrets_come_from_the_environment_or_files_and_are_never_printed() {
        let text = SAMPLE.replace(
            "\"session.timeout.ms\" = \"10000\"",
            "\"session.timeout.ms\" = 10000\n\"security.protocol\" = \"SASL_SSL\"\n\"sasl.password\" = { env = \"KAFKA_PW\" }\n\"ssl.key.password\" = { file = \"key.pw\" }\n\"sasl.oauthbearer.client.secret\" = \"inline-0auth-s3cret\"",
        ) + "[mongodb.options]\ntlsCertificateKeyFilePassword = { env = \"MONGO_KEY_PW\" }\n";
        let text = text
            .replace(
                "database = \"db\"",
                "database = \"db\"\nusername = \"app\"\npassword = { file = \"mongo.pw\" }",
            )
            .replace(
                "uri = \"mongodb://u:pw@127.0.0.1:27017\"",
                "uri = \"mongodb://127.0.0.1:27017\"",
            );
        let (dir, path) = write(&text);
        std::fs::write(dir.0.join("key.pw"), "k3y-pa55w0rd\n").unwrap();
        std::fs::write(dir.0.join("mongo.pw"), "m0ng0-pa55\n").unwrap();
        let c = Config::load_with_env(
            &path,
            env(&[
                ("KAFKA_PW", "kafka-pa55w0rd"),
                ("MONGO_KEY_PW", "tls-k3y-pw"),
            ]),
        )
        .unwrap();
        assert_eq!(c.kafka.properties["sasl.password"], "kafka-pa55w0rd");
        assert_eq!(c.kafka.properties["ssl.key.password"], "k3y-pa55w0rd");
        assert_eq!(c.kafka.properties["session.timeout.ms"], "10000");
        assert_eq!(c.mongodb.password.as_ref().unwrap().expose(), "m0ng0-pa55");
        assert_eq!(
            c.mongodb.options["tlsCertificateKeyFilePassword"],
            "tls-k3y-pw"
        );
        let dump = format!("{c:?}");
        for secret in [
            "kafka-pa55w0rd",
            "k3y-pa55w0rd",
            "inline-0auth-s3cret",
            "m0ng0-pa55",
            "tls-k3y-pw",
        ] {
            assert!(!dump.contains(secret), "{secret} printed in {dump}");
        }
        assert!(dump.contains("\"sasl.password\": \"***\""), "{dump}");
        assert!(
            dump.contains("SASL_SSL"),
            "non-secret values stay readable: {dump}"
        );
        let listed = c.kafka.properties.redacted();
        assert!(listed.contains(&("sasl.password".to_owned(), "***".to_owned())));
    }

    #[test]
    fn a_missing_secret_source_names_the_key() {
        let text = SAMPLE.replace(
            "\"session.timeout.ms\" = \"10000\"",
            "\"sasl.password\" = { env = \"NOT_SET_ANYWHERE\" }",
        );
        let (_dir, path) = write(&text);
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kafka.properties.sasl.password") && e.contains("NOT_SET_ANYWHERE"),
            "{e}"
        );
        let text = SAMPLE.replace(
            "\"session.timeout.ms\" = \"10000\"",
            "\"ssl.key.password\" = { file = \"nope.pw\" }",
        );
        let (_dir, path) = write(&text);
        let e = Config::load_with_env(&path, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("kafka.properties.ssl.key.password") && e.contains("nope.pw"),
            "{e}"
        );
        let text = SAMPLE.replace(
            "\"session.timeout.ms\" = \"10000\"",
            "\"sasl.password\" = { env = \"A\", file = \"b\" }",
        );
        let (_dir, path) = write(&text);
        let e = Config::load_with_env(&path, env(&[("A", "x")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("exactly one"), "{e}");
    }
}
