//! The one place Kafka clients are configured: the consumer (`source/`), the
//! DLQ producer (`dlq`) and `smt doctor` take the same `[kafka.properties]`
//! (TLS, SASL, timeouts), plus the keys `smt` owns for each role.
//!
//! Also: the startup probe that turns librdkafka's retried connection errors
//! into one clear, early failure (authentication failed, certificate not
//! trusted, client certificate refused, wrong `security.protocol`), client
//! configurations printed with their secrets masked, and librdkafka's
//! version and built-in features (`smt --version`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::Client;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::consumer::ConsumerContext;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::producer::{DeliveryResult, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::ClientContext;

use crate::config::{redact_value, Config, KafkaConfig};

/// Keys of librdkafka `smt` sets itself (rejected in `[kafka.properties]` /
/// `[dlq.properties]`; the list is in `config/validate.rs`, this is the doc).
pub const OWNED_KEYS: &[&str] = &[
    "bootstrap.servers",
    "group.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
];

/// librdkafka features `smt` needs: TLS, SCRAM, OAUTHBEARER, zstd (gzip,
/// snappy and lz4 are always built in). `oidc` (token fetch over HTTP) is
/// wanted too; `smt doctor` says when it is missing.
pub const REQUIRED_FEATURES: &[&str] = &[
    "gzip",
    "snappy",
    "lz4",
    "zstd",
    "ssl",
    "sasl_plain",
    "sasl_scram",
    "sasl_oauthbearer",
];

/// Which client a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The group consumer of `smt run` (also used by `smt doctor`, which
    /// never subscribes).
    Consumer,
    /// The dead-letter producer: `[kafka.properties]` without the
    /// consumer-only keys, then `[dlq.properties]`.
    DlqProducer,
}

/// The librdkafka configuration of a client of `role`.
pub fn client_config(config: &Config, role: Role) -> ClientConfig {
    let mut cc = ClientConfig::new();
    match role {
        Role::Consumer => {
            for (k, v) in config.kafka.properties.iter() {
                cc.set(k, v);
            }
            cc.set("bootstrap.servers", &config.kafka.brokers)
                .set("group.id", &config.kafka.group_id)
                .set("enable.auto.commit", "false")
                .set("enable.auto.offset.store", "false")
                .set("auto.offset.reset", &config.kafka.auto_offset_reset);
            for (k, v) in [("statistics.interval.ms", "5000"), ("client.id", "smt")] {
                if cc.get(k).is_none() {
                    cc.set(k, v);
                }
            }
        }
        Role::DlqProducer => {
            for (k, v) in config.kafka.properties.iter() {
                if !is_consumer_only(k) {
                    cc.set(k, v);
                }
            }
            if let Some(dlq) = &config.dlq {
                for (k, v) in dlq.properties.iter() {
                    cc.set(k, v);
                }
            }
            cc.set("bootstrap.servers", &config.kafka.brokers);
            for (k, v) in [
                ("enable.idempotence", "true"),
                ("acks", "all"),
                ("message.timeout.ms", "30000"),
                ("client.id", "smt-dlq"),
            ] {
                if cc.get(k).is_none() {
                    cc.set(k, v);
                }
            }
        }
    }
    cc
}

/// Warnings about a configuration that works but should not be used as is.
pub fn warnings(config: &Config) -> Vec<String> {
    let p = &config.kafka.properties;
    let protocol = p
        .get("security.protocol")
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_else(|| "PLAINTEXT".into());
    let mechanism = p
        .get("sasl.mechanism")
        .or_else(|| p.get("sasl.mechanisms"))
        .map(|s| s.to_ascii_uppercase())
        .unwrap_or_else(|| "GSSAPI".into());
    let mut out = Vec::new();
    if protocol == "SASL_PLAINTEXT" && mechanism == "PLAIN" {
        out.push(
            "security.protocol = SASL_PLAINTEXT with sasl.mechanism = PLAIN sends the password in clear text: use SASL_SSL".into(),
        );
    }
    if p.get("ssl.endpoint.identification.algorithm")
        .is_some_and(|v| v.eq_ignore_ascii_case("none"))
    {
        out.push("ssl.endpoint.identification.algorithm = none: the broker's host name is not checked against its certificate".into());
    }
    if p.get("enable.ssl.certificate.verification")
        .is_some_and(|v| v == "false")
    {
        out.push(
            "enable.ssl.certificate.verification = false: any broker certificate is accepted"
                .into(),
        );
    }
    out
}

/// `key=value, …` of a client configuration, secret values as `***`: safe to log.
pub fn describe(cc: &ClientConfig) -> String {
    let pairs: Vec<(String, String)> = cc
        .config_map()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), redact_value(k, v)))
        .collect();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A client creation error as text. librdkafka's configuration errors carry
/// the offending value: masked when the key is a secret.
pub fn creation_error(e: &KafkaError) -> String {
    match e {
        KafkaError::ClientConfig(_, desc, key, value) => {
            format!("{desc}: {key} = {}", redact_value(key, value))
        }
        other => other.to_string(),
    }
}

/// Consumer-only librdkafka properties: not passed to the producer (it would warn).
pub fn is_consumer_only(key: &str) -> bool {
    [
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "max.poll.interval.ms",
        "auto.offset.reset",
        "partition.assignment.strategy",
        "group.instance.id",
        "group.protocol",
        "group.remote.assignor",
        "fetch.",
        "queued.",
        "isolation.level",
        "check.crcs",
        "auto.commit.interval.ms",
        "enable.partition.eof",
        "statistics.interval.ms",
    ]
    .iter()
    .any(|p| {
        if p.ends_with('.') {
            key.starts_with(p)
        } else {
            key == *p
        }
    })
}

// ------------------------------------------------------------------ errors

/// What a librdkafka connection error means for startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// SASL authentication failed (wrong user, password or mechanism).
    Authentication,
    /// The broker's certificate is not trusted (unknown CA, wrong host name, expired).
    UntrustedBroker,
    /// The broker refused the client certificate (or required one).
    ClientCertificate,
    /// Another TLS failure.
    Tls,
    /// The connection was closed during the first request: usually a
    /// plaintext client on a TLS listener (or the reverse).
    Protocol,
    /// Anything else (refused, unreachable…): retried until the timeout.
    Other,
}

impl Cause {
    /// Whether retrying can help: no for a credential or certificate problem.
    pub fn is_fatal(self) -> bool {
        !matches!(self, Cause::Other)
    }

    /// What it means and what to change.
    pub fn explain(self, protocol: &str) -> String {
        match self {
            Cause::Authentication => "authentication failed: check sasl.mechanism, sasl.username and sasl.password in [kafka.properties]".into(),
            Cause::UntrustedBroker => "TLS: the broker's certificate cannot be verified: set ssl.ca.location to the CA that signed it (and connect with the host name it was issued for)".into(),
            Cause::ClientCertificate => "TLS: the broker refused the client certificate: ssl.certificate.location / ssl.key.location must hold a certificate signed by a CA the broker trusts".into(),
            Cause::Tls => "TLS handshake failed: check the ssl.* properties".into(),
            Cause::Protocol => format!("the broker closed the connection during the handshake: does security.protocol ({protocol}) match the listener's (a plaintext client on a TLS listener, or the reverse)?"),
            Cause::Other => "the brokers are not reachable".into(),
        }
    }
}

/// Classifies a librdkafka error (code and reason text).
pub fn classify(code: Option<RDKafkaErrorCode>, reason: &str) -> Cause {
    let r = reason.to_ascii_lowercase();
    if code == Some(RDKafkaErrorCode::Authentication)
        || code == Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        || r.contains("sasl authentication error")
        || r.contains("authentication failed")
    {
        Cause::Authentication
    } else if r.contains("certificate verify failed")
        || r.contains("broker certificate could not be verified")
    {
        Cause::UntrustedBroker
    } else if r.contains("alert bad certificate")
        || r.contains("certificate required")
        || r.contains("alert unknown ca")
        || r.contains("alert certificate")
    {
        Cause::ClientCertificate
    } else if r.contains("security.protocol")
        || r.contains("disconnected while requesting apiversion")
        || (r.contains("in state apiversion_query")
            && (r.contains("disconnected") || r.contains("connection closed")))
    {
        Cause::Protocol
    } else if code == Some(RDKafkaErrorCode::SSL) || r.contains("ssl") {
        Cause::Tls
    } else {
        Cause::Other
    }
}

/// The connection errors a client reported (librdkafka's error callback):
/// the last meaningful one and the first fatal one.
#[derive(Clone, Default)]
pub struct ClientErrors {
    inner: Arc<Mutex<ErrorsInner>>,
}

#[derive(Default)]
struct ErrorsInner {
    last: Option<String>,
    fatal: Option<(Cause, String)>,
    /// Connections closed during the first request: fatal from the second
    /// on (one can be a broker that is shutting down).
    protocol_seen: u32,
}

impl ClientErrors {
    /// Records an error of the error callback.
    pub fn record(&self, error: &KafkaError, reason: &str) {
        let code = error.rdkafka_error_code();
        // "all brokers down" follows every failed connection: the reason before it says why.
        if code == Some(RDKafkaErrorCode::AllBrokersDown) {
            return;
        }
        self.note(classify(code, reason), reason);
    }

    /// Records a librdkafka log line: connection failures (`FAIL`) say more
    /// than the error callback for some causes (a connection closed during
    /// the handshake is reported there only).
    pub fn record_log(&self, fac: &str, message: &str) {
        if fac == "FAIL" {
            self.note(classify(None, message), message);
        }
    }

    fn note(&self, cause: Cause, reason: &str) {
        let mut e = self.inner.lock().expect("errors lock");
        e.last = Some(reason.to_owned());
        let fatal = match cause {
            Cause::Protocol => {
                e.protocol_seen += 1;
                e.protocol_seen >= 2
            }
            c => c.is_fatal(),
        };
        if fatal && e.fatal.is_none() {
            e.fatal = Some((cause, reason.to_owned()));
        }
    }
}

/// librdkafka's log lines, recorded in `errors` and logged through `tracing`
/// (as the default `ClientContext::log` does through `log`).
pub fn log_line(errors: &ClientErrors, level: RDKafkaLogLevel, fac: &str, message: &str) {
    errors.record_log(fac, message);
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", "librdkafka: {fac} {message}")
        }
        RDKafkaLogLevel::Warning => {
            tracing::warn!(target: "librdkafka", "librdkafka: {fac} {message}")
        }
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", "librdkafka: {fac} {message}")
        }
        RDKafkaLogLevel::Debug => {
            tracing::debug!(target: "librdkafka", "librdkafka: {fac} {message}")
        }
    }
}

impl ClientErrors {
    /// The first error retrying cannot fix, if any.
    pub fn fatal(&self) -> Option<(Cause, String)> {
        self.inner.lock().expect("errors lock").fatal.clone()
    }

    /// The last error reported.
    pub fn last(&self) -> Option<String> {
        self.inner.lock().expect("errors lock").last.clone()
    }
}

/// A client context that records connection errors and logs them: the DLQ
/// producer's and `smt doctor`'s.
#[derive(Clone, Default)]
pub struct RecordingContext {
    pub errors: ClientErrors,
}

impl ClientContext for RecordingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, message: &str) {
        log_line(&self.errors, level, fac, message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.errors.record(&error, reason);
        tracing::warn!(error = %error, reason, "Kafka client error (librdkafka retries by itself).");
    }
}

impl ConsumerContext for RecordingContext {}

impl ProducerContext for RecordingContext {
    type DeliveryOpaque = ();
    fn delivery(&self, _: &DeliveryResult<'_>, _: Self::DeliveryOpaque) {}
}

/// Fetches metadata (all topics, or `topic`) until it succeeds, an error
/// that retrying cannot fix is reported (fails at once, saying what is
/// wrong), or `timeout` passes.
///
/// `serve` serves the client's callbacks (a consumer's or `BaseProducer`'s
/// `poll(0)`): librdkafka reports errors through them.
pub fn wait_for_metadata<C: ClientContext>(
    client: &Client<C>,
    serve: impl Fn(),
    kafka: &KafkaConfig,
    topic: Option<&str>,
    timeout: Duration,
    errors: &ClientErrors,
) -> anyhow::Result<Metadata> {
    let brokers = &kafka.brokers;
    let protocol = kafka
        .properties
        .get("security.protocol")
        .cloned()
        .unwrap_or_else(|| "PLAINTEXT".into());
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let attempt = left.min(Duration::from_millis(500));
        let result = client.fetch_metadata(topic, attempt);
        serve();
        if let Some((cause, reason)) = errors.fatal() {
            anyhow::bail!(
                "cannot connect to the Kafka brokers {brokers} (kafka.brokers): {}. librdkafka: {reason}",
                cause.explain(&protocol)
            );
        }
        match result {
            Ok(md) => return Ok(md),
            Err(e) if Instant::now() >= deadline => {
                let detail = errors.last().unwrap_or_else(|| e.to_string());
                anyhow::bail!(
                    "cannot reach the Kafka brokers {brokers} (kafka.brokers) within {timeout:?}: {detail}"
                );
            }
            Err(_) => {}
        }
    }
}

// ------------------------------------------------------------------ version

/// The librdkafka `smt` is linked with.
#[derive(Debug, Clone)]
pub struct Librdkafka {
    /// e.g. `2.12.1`
    pub version: String,
    /// `builtin.features`, e.g. `gzip`, `snappy`, `ssl`, `sasl_scram`, `zstd`, `oidc`.
    pub features: Vec<String>,
}

impl Librdkafka {
    /// The required features it lacks.
    pub fn missing(&self) -> Vec<&'static str> {
        REQUIRED_FEATURES
            .iter()
            .copied()
            .filter(|f| !self.features.iter().any(|x| x == f))
            .collect()
    }
}

/// librdkafka's version and built-in features.
pub fn librdkafka() -> Librdkafka {
    let (_, version) = rdkafka::util::get_rdkafka_version();
    let features = ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_default();
    Librdkafka {
        version,
        features: features
            .split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(extra_props: &str, dlq: bool) -> Config {
        let dir = std::env::temp_dir().join(format!(
            "smt-kafka-test-{}-{}",
            std::process::id(),
            extra_props.len() + dlq as usize
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("smt.toml");
        std::fs::write(&path, format!(
            "[kafka]\nbrokers = \"b:9093\"\ngroup-id = \"g\"\n[kafka.properties]\n\"session.timeout.ms\" = \"10000\"\n{extra_props}\n[mongodb]\nuri = \"mongodb://h\"\ndatabase = \"d\"\n{}[transforms.t]\nmodule = \"t.wasm\"\n[[routes]]\ntopics = [\"a\"]\ntransform = \"t\"\n",
            if dlq { "[dlq]\ntopic = \"dead\"\n[dlq.properties]\n\"linger.ms\" = \"7\"\n" } else { "" }
        )).unwrap();
        let env = vec![("SECRET_PW".to_owned(), "pa55-from-env".to_owned())];
        let c = Config::load_with_env(Path::new(&path), env).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        c
    }

    const SASL: &str = "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"SCRAM-SHA-512\"\n\"sasl.username\" = \"u\"\n\"sasl.password\" = { env = \"SECRET_PW\" }\n\"ssl.ca.location\" = \"probe\"\n";

    #[test]
    fn consumer_and_dlq_producer_are_secured_the_same_way() {
        let c = config(SASL, true);
        let consumer = client_config(&c, Role::Consumer);
        let producer = client_config(&c, Role::DlqProducer);
        for cc in [&consumer, &producer] {
            assert_eq!(cc.get("security.protocol"), Some("SASL_SSL"));
            assert_eq!(cc.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
            assert_eq!(cc.get("sasl.password"), Some("pa55-from-env"));
            assert_eq!(cc.get("ssl.ca.location"), Some("probe"));
            assert_eq!(cc.get("bootstrap.servers"), Some("b:9093"));
        }
        assert_eq!(consumer.get("group.id"), Some("g"));
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("session.timeout.ms"), Some("10000"));
        assert_eq!(producer.get("group.id"), None);
        assert_eq!(
            producer.get("session.timeout.ms"),
            None,
            "consumer-only keys stay off the producer"
        );
        assert_eq!(producer.get("linger.ms"), Some("7"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        // Both create with librdkafka (the properties exist in this build).
        consumer
            .create::<rdkafka::consumer::BaseConsumer>()
            .unwrap();
        producer
            .create::<rdkafka::producer::BaseProducer>()
            .unwrap();
    }

    #[test]
    fn descriptions_and_errors_mask_secrets() {
        let c = config(SASL, false);
        let cc = client_config(&c, Role::Consumer);
        let d = describe(&cc);
        assert!(d.contains("sasl.password=***"), "{d}");
        assert!(d.contains("sasl.username=u"), "{d}");
        assert!(!d.contains("pa55-from-env"), "{d}");
        let e = KafkaError::ClientConfig(
            rdkafka::types::RDKafkaConfRes::RD_KAFKA_CONF_INVALID,
            "Invalid value".into(),
            "sasl.password".into(),
            "pa55-from-env".into(),
        );
        assert_eq!(creation_error(&e), "Invalid value: sasl.password = ***");
    }

    #[test]
    fn oauthbearer_oidc_configuration_is_accepted_with_its_secret_from_a_file() {
        let dir = std::env::temp_dir().join(format!("smt-oidc-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("client.secret"), "0idc-cl1ent-s3cret\n").unwrap();
        let props = format!(
            "\"security.protocol\" = \"SASL_SSL\"\n\"sasl.mechanism\" = \"OAUTHBEARER\"\n\"sasl.oauthbearer.method\" = \"oidc\"\n\"sasl.oauthbearer.client.id\" = \"smt\"\n\"sasl.oauthbearer.client.secret\" = {{ file = \"{}\" }}\n\"sasl.oauthbearer.token.endpoint.url\" = \"https://idp.example.com/oauth2/token\"\n\"sasl.oauthbearer.scope\" = \"kafka\"\n",
            dir.join("client.secret").display()
        );
        let c = config(&props, true);
        let _ = std::fs::remove_dir_all(&dir);
        for role in [Role::Consumer, Role::DlqProducer] {
            let cc = client_config(&c, role);
            assert_eq!(
                cc.get("sasl.oauthbearer.client.secret"),
                Some("0idc-cl1ent-s3cret")
            );
            assert!(!describe(&cc).contains("0idc-cl1ent-s3cret"));
            // librdkafka validates the OIDC settings when the client is created:
            // this fails on a build without OIDC support (no libcurl).
            let native = cc.create_native_config().unwrap();
            assert_eq!(native.get("sasl.oauthbearer.method").unwrap(), "oidc");
            if librdkafka().features.iter().any(|f| f == "oidc") {
                cc.create::<rdkafka::producer::BaseProducer>()
                    .unwrap_or_else(|e| panic!("{role:?}: {}", creation_error(&e)));
            }
        }
        assert!(!format!("{c:?}").contains("0idc-cl1ent-s3cret"));
    }

    #[test]
    fn plain_over_plaintext_is_warned_about() {
        let c = config(
            "\"security.protocol\" = \"SASL_PLAINTEXT\"\n\"sasl.mechanism\" = \"PLAIN\"\n",
            false,
        );
        assert!(warnings(&c)[0].contains("clear text"));
        assert!(warnings(&config(SASL, false)).is_empty());
    }

    #[test]
    fn errors_are_classified() {
        use RDKafkaErrorCode as C;
        assert_eq!(classify(Some(C::Authentication), "sasl_ssl://h:1/bootstrap: SASL authentication error: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"), Cause::Authentication);
        assert_eq!(classify(Some(C::SSL), "ssl://h:1/bootstrap: SSL handshake failed: error:0A000086:SSL routines::certificate verify failed: broker certificate could not be verified, verify that ssl.ca.location is correctly configured or root CA certificates are installed"), Cause::UntrustedBroker);
        assert_eq!(classify(Some(C::BrokerTransportFailure), "ssl://h:1/bootstrap: Receive failed: error:0A000412:SSL routines::ssl/tls alert bad certificate: SSL alert number 42"), Cause::ClientCertificate);
        assert_eq!(classify(Some(C::BrokerTransportFailure), "h:1/bootstrap: Disconnected while requesting ApiVersion: might be caused by incorrect security.protocol configuration (connecting to a SSL listener?) or broker version is < 0.10 (see api.version.request)"), Cause::Protocol);
        assert_eq!(
            classify(
                Some(C::BrokerTransportFailure),
                "h:1/bootstrap: Connect to ipv4#127.0.0.1:1 failed: Connection refused"
            ),
            Cause::Other
        );
        let closed = "127.0.0.1:1/bootstrap: Disconnected: connection closed by peer: receive 0 after POLLIN (after 700ms in state APIVERSION_QUERY)";
        assert_eq!(classify(None, closed), Cause::Protocol);
        // A connection closed during the handshake is fatal from the second one on.
        let errors = ClientErrors::default();
        errors.record_log("FAIL", closed);
        assert!(errors.fatal().is_none());
        errors.record_log("CONNECT", "not a failure line");
        errors.record_log("FAIL", closed);
        assert_eq!(errors.fatal().map(|f| f.0), Some(Cause::Protocol));
        // "all brokers down" never hides the cause before it.
        let errors = ClientErrors::default();
        errors.record(
            &KafkaError::Global(C::Authentication),
            "SASL authentication error: Authentication failed",
        );
        errors.record(
            &KafkaError::Global(C::AllBrokersDown),
            "1/1 brokers are down",
        );
        assert_eq!(
            errors.last().unwrap(),
            "SASL authentication error: Authentication failed"
        );
    }

    #[test]
    fn this_build_has_tls_sasl_and_every_codec() {
        let l = librdkafka();
        assert!(
            l.missing().is_empty(),
            "librdkafka {} lacks {:?} (has {:?})",
            l.version,
            l.missing(),
            l.features
        );
    }
}
