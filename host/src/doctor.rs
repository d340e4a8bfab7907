//! `smt doctor --config smt.toml`: checks a configuration against the real
//! services without consuming anything, one line per check (`✓`/`✗`, what
//! was checked, the cause of a failure):
//!
//! * librdkafka: its version and whether it has TLS, SASL and every codec;
//! * Kafka: the brokers answer the consumer's configuration (TLS and SASL
//!   handshake included), every topic the routes name exists (patterns match
//!   at least one), with its partitions; the consumer group's state and
//!   committed offsets (read without joining it); the DLQ producer's
//!   configuration reaches the brokers and the DLQ topic exists;
//! * MongoDB: `hello` through the configured URI (TLS, credentials), and the
//!   connected user's privileges on the target database;
//! * every transform loads and its `init` accepts its config.
//!
//! Nothing is written to Kafka or MongoDB; the consumer group is not joined.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bson::doc;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::{Offset, TopicPartitionList};

use crate::config::Config;
use crate::engine::Engine;
use crate::kafka::{self, RecordingContext, Role};
use crate::sink::{self, Sink};
use crate::telemetry::Metrics;

/// One check's result.
#[derive(Debug, Clone)]
pub struct Check {
    pub ok: bool,
    /// What was checked (`kafka brokers`, `topic orders`, `transform dbz`…).
    pub name: String,
    /// What was found, or why it failed.
    pub detail: String,
}

impl Check {
    fn ok(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            ok: true,
            name: name.into(),
            detail: detail.into(),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            ok: false,
            name: name.into(),
            detail: detail.into(),
        }
    }

    /// `✓ name: detail` / `✗ name: detail`.
    pub fn line(&self) -> String {
        format!(
            "{} {}: {}",
            if self.ok { "✓" } else { "✗" },
            self.name,
            self.detail
        )
    }
}

/// Runs every check, handing each result to `report` as soon as it is known.
/// `timeout`: how long each service may take to answer.
pub fn run(config: &Config, timeout: Duration, mut report: impl FnMut(&Check)) -> Vec<Check> {
    let mut out = Vec::new();
    let mut push = |c: Check| {
        report(&c);
        out.push(c);
    };
    let lib = kafka::librdkafka();
    let missing = lib.missing();
    let has_oidc = lib.features.iter().any(|f| f == "oidc");
    push(if missing.is_empty() {
        Check::ok(
            "librdkafka",
            format!(
                "{} with {}{}",
                lib.version,
                lib.features.join(","),
                if has_oidc {
                    ""
                } else {
                    " (no oidc: sasl.oauthbearer.method = oidc is unavailable)"
                }
            ),
        )
    } else {
        Check::fail(
            "librdkafka",
            format!(
                "{} lacks {} (built-in: {})",
                lib.version,
                missing.join(", "),
                lib.features.join(",")
            ),
        )
    });
    for w in kafka::warnings(config) {
        push(Check::ok("kafka.properties", format!("warning: {w}")));
    }
    for c in kafka_checks(config, timeout) {
        push(c);
    }
    for c in mongodb_checks(config, timeout) {
        push(c);
    }
    for c in transform_checks(config) {
        push(c);
    }
    out
}

fn kafka_checks(config: &Config, timeout: Duration) -> Vec<Check> {
    let mut out = Vec::new();
    let props = &config.kafka.properties;
    let security = format!(
        "security.protocol={}{}",
        props
            .get("security.protocol")
            .map(String::as_str)
            .unwrap_or("PLAINTEXT"),
        props
            .get("sasl.mechanism")
            .or_else(|| props.get("sasl.mechanisms"))
            .map(|m| format!(", sasl.mechanism={m}"))
            .unwrap_or_default()
    );
    let context = RecordingContext::default();
    let errors = context.errors.clone();
    let cc = kafka::client_config(config, Role::Consumer);
    let consumer: BaseConsumer<RecordingContext> = match cc.create_with_context(context) {
        Ok(c) => c,
        Err(e) => {
            out.push(Check::fail(
                "kafka client",
                format!("[kafka.properties]: {}", kafka::creation_error(&e)),
            ));
            return out;
        }
    };
    let md = match kafka::wait_for_metadata(
        consumer.client(),
        || drop(consumer.poll(Duration::ZERO)),
        &config.kafka,
        None,
        timeout,
        &errors,
    ) {
        Ok(md) => md,
        Err(e) => {
            out.push(Check::fail("kafka brokers", format!("{e:#}")));
            return out;
        }
    };
    out.push(Check::ok(
        "kafka brokers",
        format!(
            "{} answered ({} broker(s): {}; {security})",
            config.kafka.brokers,
            md.brokers().len(),
            md.brokers()
                .iter()
                .map(|b| format!("{}:{}", b.host(), b.port()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    ));

    // Topics of the routes.
    let existing: Vec<(&str, usize)> = md
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name(), t.partitions().len()))
        .collect();
    let mut consumed: BTreeSet<(String, i32)> = BTreeSet::new();
    for (i, r) in config.routes.iter().enumerate() {
        for topic in &r.topics {
            match existing.iter().find(|(n, _)| n == topic) {
                Some((_, parts)) => {
                    out.push(Check::ok(
                        format!("topic {topic}"),
                        format!("{parts} partition(s) (routes[{i}], transform {})", r.transform),
                    ));
                    for p in 0..*parts as i32 {
                        consumed.insert((topic.clone(), p));
                    }
                }
                None => out.push(Check::fail(
                    format!("topic {topic}"),
                    format!(
                        "does not exist (routes[{i}].topics); smt would wait for it without consuming anything"
                    ),
                )),
            }
        }
        if let Some(p) = &r.topic_pattern {
            let anchored = if p.starts_with('^') {
                p.clone()
            } else {
                format!("^{p}")
            };
            let re = match regex::Regex::new(&anchored) {
                Ok(re) => re,
                Err(e) => {
                    out.push(Check::fail(format!("topic pattern {p}"), e.to_string()));
                    continue;
                }
            };
            let matched: Vec<&(&str, usize)> = existing
                .iter()
                .filter(|(n, _)| !n.starts_with("__") && re.is_match(n))
                .collect();
            if matched.is_empty() {
                out.push(Check::fail(
                    format!("topic pattern {p}"),
                    format!("matches no topic (routes[{i}].topic-pattern)"),
                ));
            } else {
                out.push(Check::ok(
                    format!("topic pattern {p}"),
                    matched
                        .iter()
                        .map(|(n, parts)| format!("{n} ({parts} partition(s))"))
                        .collect::<Vec<_>>()
                        .join(", "),
                ));
                for (n, parts) in matched {
                    for p in 0..*parts as i32 {
                        consumed.insert((n.to_string(), p));
                    }
                }
            }
        }
    }

    // The consumer group: state and committed offsets, read without joining it.
    let group = &config.kafka.group_id;
    let state = match retry_coordinator(timeout, || consumer.fetch_group_list(Some(group), timeout))
    {
        Ok(list) => match list.groups().first() {
            Some(g) if !g.state().is_empty() && g.state() != "Dead" => {
                format!("{}, {} member(s)", g.state(), g.members().len())
            }
            _ => "not created yet".to_owned(),
        },
        Err(e) => {
            out.push(Check::fail(
                format!("consumer group {group}"),
                format!("cannot describe it: {e} (does the user have DESCRIBE on the group?)"),
            ));
            return dlq_check(config, timeout, out);
        }
    };
    let mut tpl = TopicPartitionList::new();
    for (t, p) in &consumed {
        tpl.add_partition(t, *p);
    }
    if consumed.is_empty() {
        out.push(Check::ok(format!("consumer group {group}"), state));
    } else {
        match retry_coordinator(timeout, || consumer.committed_offsets(tpl.clone(), timeout)) {
            Ok(committed) => {
                let mut with_offset = 0;
                let mut lag = 0i64;
                for el in committed.elements() {
                    if let Offset::Offset(o) = el.offset() {
                        with_offset += 1;
                        if let Ok((_, high)) =
                            consumer.fetch_watermarks(el.topic(), el.partition(), timeout)
                        {
                            lag += (high - o).max(0);
                        }
                    }
                }
                out.push(Check::ok(
                    format!("consumer group {group}"),
                    format!(
                        "{state}; committed offsets on {with_offset} of {} partition(s){}; auto-offset-reset={}",
                        consumed.len(),
                        if with_offset > 0 {
                            format!(" (lag {lag})")
                        } else {
                            String::new()
                        },
                        config.kafka.auto_offset_reset
                    ),
                ));
            }
            Err(e) => out.push(Check::fail(
                format!("consumer group {group}"),
                format!("cannot read its committed offsets: {e} (does the user have READ on the group?)"),
            )),
        }
    }
    dlq_check(config, timeout, out)
}

/// Retries `f` while the group coordinator is loading or moving (a broker
/// that just started, a rebalance of `__consumer_offsets`), up to `timeout`.
fn retry_coordinator<T>(
    timeout: Duration,
    f: impl Fn() -> rdkafka::error::KafkaResult<T>,
) -> rdkafka::error::KafkaResult<T> {
    use rdkafka::types::RDKafkaErrorCode as C;
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let r = f();
        let transient = matches!(
            r.as_ref().err().and_then(|e| e.rdkafka_error_code()),
            Some(C::CoordinatorLoadInProgress | C::CoordinatorNotAvailable | C::NotCoordinator)
        );
        if !transient || std::time::Instant::now() >= deadline {
            return r;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn dlq_check(config: &Config, timeout: Duration, mut out: Vec<Check>) -> Vec<Check> {
    let Some(dlq) = &config.dlq else {
        return out;
    };
    let name = format!("dlq topic {}", dlq.topic);
    let context = RecordingContext::default();
    let errors = context.errors.clone();
    let producer: BaseProducer<RecordingContext> =
        match kafka::client_config(config, Role::DlqProducer).create_with_context(context) {
            Ok(p) => p,
            Err(e) => {
                out.push(Check::fail(
                    name,
                    format!("[dlq.properties]: {}", kafka::creation_error(&e)),
                ));
                return out;
            }
        };
    match kafka::wait_for_metadata(
        producer.client(),
        || producer.poll(Duration::ZERO),
        &config.kafka,
        Some(&dlq.topic),
        timeout,
        &errors,
    ) {
        Ok(md) => match md.topics().first() {
            Some(t) if t.error().is_none() && !t.partitions().is_empty() => out.push(Check::ok(
                name,
                format!(
                    "{} partition(s); the producer's configuration is accepted",
                    t.partitions().len()
                ),
            )),
            _ => out.push(Check::fail(
                name,
                "does not exist (dlq.topic): create it first",
            )),
        },
        Err(e) => out.push(Check::fail(name, format!("the DLQ producer: {e:#}"))),
    }
    out
}

fn mongodb_checks(config: &Config, timeout: Duration) -> Vec<Check> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return vec![Check::fail("mongodb", format!("no async runtime: {e}"))],
    };
    rt.block_on(async {
        let mut out = Vec::new();
        let redacted = sink::uri::redact_uri(&sink::uri::connection_string(&config.mongodb));
        let sink = match Sink::connect(config, Arc::new(Metrics::new()), timeout).await {
            Ok(s) => s,
            Err(e) => {
                out.push(Check::fail("mongodb", format!("{e:#}")));
                return out;
            }
        };
        let hello = sink
            .client()
            .database("admin")
            .run_command(doc! {"hello": 1})
            .await;
        let version = sink
            .client()
            .database("admin")
            .run_command(doc! {"buildInfo": 1})
            .await
            .ok()
            .and_then(|b| b.get_str("version").ok().map(str::to_owned))
            .unwrap_or_else(|| "?".into());
        let wire = hello
            .as_ref()
            .ok()
            .and_then(|h| h.get("maxWireVersion").cloned())
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into());
        out.push(Check::ok(
            "mongodb",
            format!(
                "{redacted}: hello answered (server {version}, wire version {wire}, bulk writes: {:?})",
                sink.mode()
            ),
        ));
        let db = &config.mongodb.database;
        let name = format!("mongodb privileges on {db}");
        match sink
            .client()
            .database("admin")
            .run_command(doc! {"connectionStatus": 1, "showPrivileges": true})
            .await
        {
            Ok(status) => {
                let auth = status.get_document("authInfo").ok();
                let users = auth
                    .and_then(|a| a.get_array("authenticatedUsers").ok())
                    .map(|u| u.len())
                    .unwrap_or(0);
                if users == 0 {
                    // No credentials: fine when the server has no access control.
                    let probe = sink
                        .client()
                        .database(db)
                        .run_command(doc! {"listCollections": 1, "nameOnly": true})
                        .await;
                    out.push(match probe {
                        Ok(_) => Check::ok(
                            name,
                            "no credentials configured; the server has no access control",
                        ),
                        Err(e) => Check::fail(
                            name,
                            format!(
                                "no credentials configured and the server refuses to list the collections of {db}: {} (set mongodb.username and mongodb.password)",
                                sink::describe(&e)
                            ),
                        ),
                    });
                } else {
                    out.push(privilege_check(name, db, auth));
                }
            }
            Err(e) => out.push(Check::ok(
                name,
                format!("the server does not list privileges ({}); not checked", sink::describe(&e)),
            )),
        }
        out
    })
}

/// Whether the authenticated user may read and write `db`: through a role
/// (`readWrite`/`dbOwner` on it, `readWriteAnyDatabase`/`root`) or the
/// privileges the server lists (`find`, `insert`, `update`, `remove`).
fn privilege_check(name: String, db: &str, auth: Option<&bson::Document>) -> Check {
    let roles: Vec<(String, String)> = auth
        .and_then(|a| a.get_array("authenticatedUserRoles").ok())
        .into_iter()
        .flatten()
        .filter_map(|r| r.as_document())
        .map(|r| {
            (
                r.get_str("role").unwrap_or("").to_owned(),
                r.get_str("db").unwrap_or("").to_owned(),
            )
        })
        .collect();
    let by_role = roles.iter().find(|(role, rdb)| {
        (rdb == db && ["readWrite", "dbOwner"].contains(&role.as_str()))
            || ["readWriteAnyDatabase", "root", "__system"].contains(&role.as_str())
    });
    if let Some((role, rdb)) = by_role {
        return Check::ok(name, format!("allowed by the role {role}@{rdb}"));
    }
    let needed = ["find", "insert", "update", "remove"];
    let mut granted: BTreeSet<String> = BTreeSet::new();
    let privileges = auth
        .and_then(|a| a.get_array("authenticatedUserPrivileges").ok())
        .cloned()
        .unwrap_or_default();
    for p in privileges.iter().filter_map(|p| p.as_document()) {
        let Ok(res) = p.get_document("resource") else {
            continue;
        };
        let any = res.get_bool("anyResource").unwrap_or(false);
        let rdb = res.get_str("db").unwrap_or("-");
        let coll = res.get_str("collection").unwrap_or("-");
        if any || ((rdb == db || rdb.is_empty()) && coll.is_empty()) {
            for a in p.get_array("actions").into_iter().flatten() {
                if let Some(a) = a.as_str() {
                    granted.insert(a.to_owned());
                }
            }
        }
    }
    let lacking: Vec<&str> = needed
        .iter()
        .copied()
        .filter(|a| !granted.contains(*a))
        .collect();
    if lacking.is_empty() {
        Check::ok(name, format!("{} allowed", needed.join(", ")))
    } else {
        Check::fail(
            name,
            format!(
                "the user (roles: {}) lacks {} on database {db}: grant it readWrite on {db}",
                if roles.is_empty() {
                    "none".to_owned()
                } else {
                    roles
                        .iter()
                        .map(|(r, d)| format!("{r}@{d}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                },
                lacking.join(", ")
            ),
        )
    }
}

fn transform_checks(config: &Config) -> Vec<Check> {
    let engine = match Engine::new(&config.engine) {
        Ok(e) => e,
        Err(e) => return vec![Check::fail("engine", format!("[engine]: {e:#}"))],
    };
    let mut out = Vec::new();
    for (name, t) in &config.transforms {
        let check = format!("transform {name}");
        let module = match engine.load_file(name, &t.module) {
            Ok(m) => m,
            Err(e) => {
                out.push(Check::fail(check, format!("transforms.{name}.module: {e}")));
                continue;
            }
        };
        let init = config
            .transform_config_json(name)
            .and_then(|c| module.instantiate(&c).map_err(anyhow::Error::from));
        out.push(match init {
            Ok(_) => Check::ok(
                check,
                format!(
                    "{} loaded and initialised (smt:transform@{}, version {})",
                    t.module.display(),
                    module.contract_version(),
                    module.version()
                ),
            ),
            Err(e) => Check::fail(check, format!("init: {e:#}")),
        });
    }
    out
}
